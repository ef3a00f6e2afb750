//! # sync-core
//!
//! The domain model, traits, strategies, commit protocol and test kit of a resumable,
//! verifiable data-synchronization library.
//!
//! Data flows one way: a [`Source`] yields pages; a strategy ([`FullStrategy`],
//! [`IncrementalStrategy`], [`OffsetStrategy`], [`SequenceWindowStrategy`]) turns them into
//! [`RecordBatch`]es that carry their checkpoint delta `(from, to]`; a [`Stager`] stages and
//! validates them, then promotes them together with the [`Checkpoint`] advance and a ledger
//! row in one transaction; an optional [`Sink`] receives promoted records, and its delivered
//! position advances only after it confirms.
//!
//! ```
//! use std::sync::Arc;
//! use sync_core::memory::{MemorySource, MemoryStore};
//! use sync_core::{Column, ColumnType, FullConfig, FullStrategy, Strategy, StreamSchema, SyncContext, Value};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let schema = StreamSchema::builder("items")
//!     .with_column(Column::required("id", ColumnType::Text))
//!     .with_column(Column::required("version", ColumnType::Integer))
//!     .with_primary_key(["id"])
//!     .with_version("version")
//!     .build()?;
//! let source = Arc::new(MemorySource::new(schema));
//! source.upsert(vec![Value::from("a"), Value::from(1)]);
//! source.upsert(vec![Value::from("b"), Value::from(1)]);
//! let store = Arc::new(MemoryStore::new());
//! let ctx = SyncContext::new("demo/items", source, store.clone(), store.clone());
//! let report = FullStrategy::new(FullConfig::new("items"))?.run(&ctx).await?;
//! assert_eq!(report.rows_written, 2);
//! assert_eq!(store.target_rows("items").len(), 2);
//! # Ok::<_, sync_core::Error>(())
//! # }).unwrap();
//! ```

pub mod checkpoint;
pub mod error;
pub mod fault;
pub mod jobs;
pub mod memory;
pub mod position;
pub mod progress;
pub mod queue;
pub mod record;
pub mod retry;
pub mod schema;
pub mod sink;
pub mod source;
pub mod stager;
pub mod stop;
pub mod strategy;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod value;

pub use checkpoint::{
    Checkpoint, CheckpointCommit, CheckpointState, FenceToken, LedgerEntry, LedgerStatus, LogLevel,
    StoredCheckpoint, SyncLogEntry,
};
pub use error::{Error, ErrorKind, Result, RetryClass};
pub use fault::{FaultAction, FaultPoint, Faults};
pub use position::{CheckpointDelta, CursorKey, Position, SequenceNo, Window};
pub use progress::{Progress, ProgressEvent};
pub use queue::{ChangeQueue, QueueEntry};
pub use record::{Key, RecordBatch, Row};
pub use retry::{RetryPolicy, RunLimits};
pub use schema::{Column, ColumnType, StreamSchema};
pub use sink::{Delivery, DeliveryReceipt, Sink};
pub use source::{Page, PageRequest, PageSelector, Source, SourceCapabilities, SourceOrdering};
pub use stager::{
    PromoteMode, PromoteReport, QuarantinedRow, ReplaceScope, RowRule, Stager, StagingRun,
    ValidationReport, ValidationRules,
};
pub use stop::StopSignal;
pub use strategy::{
    FullConfig, FullStrategy, IncrementalConfig, IncrementalStrategy, OffsetConfig, OffsetStrategy,
    RunReport, SequenceWindowConfig, SequenceWindowStrategy, Strategy, StrategyKind, SyncContext,
};
pub use value::Value;

/// Compile-time proof that the traits stay dyn-compatible (`Box<dyn Source>` works).
#[allow(dead_code, clippy::too_many_arguments)]
fn _assert_dyn_compatible(
    _: &dyn Source,
    _: &dyn Stager,
    _: &dyn Checkpoint,
    _: &dyn Sink,
    _: &dyn ChangeQueue,
    _: &dyn Strategy,
    _: &dyn jobs::JobQueue,
    _: &dyn jobs::JobRunner,
) {
}

/// The workspace README's code, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
