//! # sync-connectors
//!
//! Sources and sinks for external APIs over reqwest, on top of `sync-core`:
//!
//! - [`http`]: the HTTP layer every connector shares: connection reuse, compression,
//!   timeouts, capped response bodies, error classification in one place (`Retry-After`
//!   honoured), a proactive rate limit per credential and authentication whose secrets never
//!   reach `Debug`, logs or errors.

pub mod http;

pub use sync_core;
