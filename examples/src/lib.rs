//! # sync-examples
//!
//! Runnable examples of the sync workspace, and what they share:
//!
//! - [`demo_api`]: an in-process demo REST API on 127.0.0.1 serving deterministic records
//!   with the shape and the contract of the shared bench's fake API, and the
//!   [`RestStreamConfig`](sync_connectors::rest::RestStreamConfig) that describes it.
//!
//! - [`engine`]: a job runner for REST streams ([`engine::Catalog`], [`engine::RestJobRunner`]).
//! - [`admin`]: the admin HTTP API over the job queue (seed 003's sync engine, seed 001's
//!   admin endpoints).
//!
//! The `quickstart` binary syncs it into SQLite: a full sync, 1% of the records changed, a
//! crash in the middle of the incremental sync, and the resume.

pub mod admin;
pub mod demo_api;
pub mod engine;
pub mod square_sync;
pub mod store;
