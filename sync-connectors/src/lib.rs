//! # sync-connectors
//!
//! Sources and sinks for external APIs over reqwest (shell: filled by the connector issues).
//! It depends on `sync-core` only; nothing here is implemented yet.

pub use sync_core;
