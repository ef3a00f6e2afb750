//! # sync-store-postgres
//!
//! PostgreSQL staging, promotion and checkpoints (shell: filled by the PostgreSQL store issue).
//! It depends on `sync-core` only; nothing here is implemented yet.

pub use sync_core;
