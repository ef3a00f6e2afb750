//! Seed 004: Oracle opportunities synced in offset-tracked batches that survive Ctrl+C,
//! crashes and a source that shifts between runs.
//!
//! The seed reads `opportunities` from Oracle Fusion with `limit=<batch size>&offset=<n>`,
//! saves each item, then `offset = offset + batchSize` and stores the offset in a
//! `sync_state` row (current offset, total synced, last sync time, is complete), so a stopped
//! sync resumes where it was. Three things in that loop lose or duplicate records:
//!
//! | seed | here |
//! |---|---|
//! | items saved one by one, the offset written after them: a crash in between saves a batch twice, or records without the offset | each batch is promoted with its offset, its ledger row and the `sync_state` extras (last key, total, complete) in **one** transaction ([`sync_core::OffsetStrategy`]) |
//! | `offset + batchSize`, although Oracle clamps `limit` silently | the offset advances by the records received |
//! | records inserted (or moved) before the offset between two runs shift the rest: the resumed run skips as many records as shifted | every batch after the first re-reads the record before the offset; when it is no longer the last key promoted the source drifted, and the run rescans from 0 (keyed upserts absorb the re-read) or fails, as chosen |
//!
//! The pieces, one per file:
//! [`source`] (the in-process Oracle fake with a seeded data set, and the
//! [`OracleSource`](sync_connectors::oracle::OracleSource) over it),
//! [`database`] (SQLite or PostgreSQL from one URL), [`pipeline`] (a run in batches, with a
//! report per promoted batch and a graceful stop), [`status`] (the seed's `sync_state` view,
//! and reset), [`verify`] (the target against the source), [`demo`] (everything in one
//! process, as the binary's default command runs it).
//!
//! One shift no offset reader can see, as [`sync_core::OffsetStrategy`] documents: an insert
//! and a delete before the offset between two pages cancel out, and the inserted record is
//! not read until the next rescan. The demo's drift is an import of back-dated records and
//! an update of a record already synced, both of which are caught.

pub mod database;
pub mod demo;
pub mod pipeline;
pub mod source;
pub mod status;
pub mod verify;

pub use database::BatchDatabase;
pub use demo::{run_demo, DemoEvent, DemoOptions, DemoReport, NaiveResume};
pub use pipeline::{BatchListener, BatchPipeline, BatchPromoted, BatchRun, RunOptions};
pub use source::{OpportunitySource, SourceSettings};
pub use status::SyncState;
pub use verify::TargetCheck;

/// The sync's name: the checkpoint key, as the seed's `sync_name`.
pub const SYNC_NAME: &str = "oracle_opportunities";

/// The target table.
pub const STREAM: &str = "opportunities";
