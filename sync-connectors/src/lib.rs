//! # sync-connectors
//!
//! Sources and sinks for external APIs over reqwest, on top of `sync-core`:
//!
//! - [`http`]: the HTTP layer every connector shares: connection reuse, compression,
//!   timeouts, capped response bodies, error classification in one place (`Retry-After`
//!   honoured), a proactive rate limit per credential and authentication whose secrets never
//!   reach `Debug`, logs or errors;
//! - [`rest`]: a declarative REST source for any JSON API: where the records are, how the API
//!   pages (offset, page number, cursor token, next link, keyset, time windows) and which
//!   field is the cursor, as serde data (TOML or JSON);
//! - the vendor connectors, one feature each: [`square`], [`oracle`] (Oracle Fusion Cloud),
//!   [`cisco`] (Cisco IoT Control Center), [`dataverse`] (a Dynamics 365 sink) and [`sqs`]
//!   (SNS-wrapped SQS messages into a change queue);
//! - `fakes` (feature `fakes`): loopback fakes of those vendor APIs, each a real HTTP server
//!   on 127.0.0.1 that reproduces the documented contract (auth, paging, cursors, limits,
//!   errors), for your own tests and for the runnable examples.

pub mod http;
pub mod rest;

#[cfg(feature = "cisco")]
pub mod cisco;
#[cfg(feature = "dataverse")]
pub mod dataverse;
#[cfg(feature = "fakes")]
pub mod fakes;
#[cfg(feature = "oracle")]
pub mod oracle;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "square")]
pub mod square;

pub use sync_core;
