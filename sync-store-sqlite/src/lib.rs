//! # sync-store-sqlite
//!
//! SQLite staging, promotion and checkpoints (shell: filled by the SQLite store issue).
//! It depends on `sync-core` only; nothing here is implemented yet.

pub use sync_core;
