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
//!   field is the cursor, as serde data (TOML or JSON).

pub mod http;
pub mod rest;

pub use sync_core;
