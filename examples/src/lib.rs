//! # sync-examples
//!
//! Runnable examples of the sync workspace, and what they share:
//!
//! - [`demo_api`]: an in-process demo REST API on 127.0.0.1 serving deterministic records
//!   with the shape and the contract of the shared bench's fake API, and the
//!   [`RestStreamConfig`](sync_connectors::rest::RestStreamConfig) that describes it.
//!
//! - [`device_sync`]: seed 002, the Cisco device sync (full sync of the last 30 days plus one
//!   through staging, then page-limited incremental syncs) against the Control Center fake.
//! - [`engine`]: a job runner for REST streams ([`engine::Catalog`], [`engine::RestJobRunner`]).
//! - [`admin`]: the admin HTTP API over the job queue (seed 003's sync engine, seed 001's
//!   admin endpoints), and [`admin::AdminClient`], a typed client of it.
//! - [`service`]: the admin API and workers in one process ([`service::EngineService`]).
//! - the five seed systems end to end, each behind a binary of the same name:
//!   [`restaurant_delta`] (seed 000), [`square_sync`] (seed 001), [`device_sync`] (seed
//!   002), [`venue_engine`] (seed 003, driven over HTTP) and [`opportunity_batches`] (seed
//!   004).
//!
//! The `quickstart` binary syncs it into SQLite: a full sync, 1% of the records changed, a
//! crash in the middle of the incremental sync, and the resume.

pub mod admin;
pub mod demo_api;
pub mod device_sync;
pub mod engine;
pub mod opportunity_batches;
pub mod restaurant_delta;
pub mod service;
pub mod square_sync;
pub mod store;
pub mod venue_engine;
