//! Loopback fakes of the vendor APIs (feature `fakes`).
//!
//! Each fake is a real HTTP server on 127.0.0.1 (a random port) that reproduces the contract
//! its connector is written against, as `shared/reference/api-semantics.md` documents it:
//! authentication, paging and cursors, limits, error bodies and the API's own pitfalls. The
//! connector tests of this crate run against them, and so do the runnable examples, so a
//! fake is held to the same contract as the connector it serves. Use them to test your own
//! pipelines without network access or vendor credentials.
//!
//! A fake keeps its data in memory behind a mutex; tests change it between runs (new,
//! changed and deleted records) and inject faults per path.

#[cfg(feature = "cisco")]
pub mod cisco;
#[cfg(feature = "dataverse")]
pub mod dataverse;
#[cfg(feature = "oracle")]
pub mod oracle;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "square")]
pub mod square;
