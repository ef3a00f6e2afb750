//! The test kit (feature `testkit`): the conformance suite every store runs, fixtures, and the
//! model-based strategy tests.
//!
//! A store crate runs the whole suite with one macro call in a test file:
//!
//! ```ignore
//! async fn make_store() -> sync_core::testkit::StoreHandles { /* a fresh, isolated store */ }
//! sync_core::conformance_suite!(make_store);
//! ```

pub mod conformance;
pub mod crash;
mod gated;
pub mod jobs;
pub mod model;

pub use gated::GatedSource;

use std::sync::Arc;

use chrono::Utc;

use crate::checkpoint::{
    Checkpoint, CheckpointCommit, CheckpointState, FenceToken, LedgerEntry, LedgerStatus, LogLevel,
    SyncLogEntry,
};
use crate::fault::Faults;
use crate::memory::MemoryStore;
use crate::position::{CheckpointDelta, Position};
use crate::queue::ChangeQueue;
use crate::record::{Key, RecordBatch, Row};
use crate::schema::{Column, ColumnType, StreamSchema};
use crate::stager::Stager;
use crate::strategy::StrategyKind;
use crate::value::Value;

/// One store under test, seen through each of its traits, plus the fault set it checks.
#[derive(Debug, Clone)]
pub struct StoreHandles {
    /// Staging and promotion.
    pub stager: Arc<dyn Stager>,
    /// Checkpoints, ledger, log.
    pub checkpoints: Arc<dyn Checkpoint>,
    /// The change queue.
    pub queue: Arc<dyn ChangeQueue>,
    /// Faults the store checks at its fault points.
    pub faults: Faults,
}

impl StoreHandles {
    /// Handles of one store implementing every trait.
    pub fn of<S: Stager + Checkpoint + ChangeQueue>(store: Arc<S>, faults: Faults) -> Self {
        StoreHandles {
            stager: store.clone(),
            checkpoints: store.clone(),
            queue: store,
            faults,
        }
    }
}

/// A fresh [`MemoryStore`] as handles (the reference implementation's factory).
pub async fn memory_store() -> StoreHandles {
    let faults = Faults::new();
    StoreHandles::of(Arc::new(MemoryStore::with_faults(faults.clone())), faults)
}

/// The fixture stream: `id text pk, version integer (guard), updated integer (cursor),
/// deleted bool, body text`.
pub fn items_schema(name: &str) -> Arc<StreamSchema> {
    Arc::new(
        StreamSchema::builder(name)
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::required("version", ColumnType::Integer))
            .with_column(Column::new("updated", ColumnType::Integer))
            .with_column(Column::required("deleted", ColumnType::Bool))
            .with_column(Column::new("body", ColumnType::Text))
            .with_primary_key(["id"])
            .with_cursor(["updated"])
            .with_version("version")
            .build()
            .expect("fixture schema is valid"),
    )
}

/// The fixture stream without a cursor (for full, offset and sequence-window tests).
pub fn keyed_schema(name: &str) -> Arc<StreamSchema> {
    Arc::new(
        StreamSchema::builder(name)
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::required("version", ColumnType::Integer))
            .with_column(Column::new("updated", ColumnType::Integer))
            .with_column(Column::required("deleted", ColumnType::Bool))
            .with_column(Column::new("body", ColumnType::Text))
            .with_primary_key(["id"])
            .with_version("version")
            .build()
            .expect("fixture schema is valid"),
    )
}

/// A fixture row.
pub fn item(id: &str, version: i64, updated: Option<i64>) -> Row {
    Row::new(vec![
        Value::from(id),
        Value::from(version),
        updated.map_or(Value::Null, Value::from),
        Value::Bool(false),
        Value::from(format!("{id} v{version}")),
    ])
}

/// A batch of rows advancing `(from, to]`.
pub fn batch(
    schema: &Arc<StreamSchema>,
    rows: Vec<Row>,
    from: Position,
    to: Position,
) -> RecordBatch {
    RecordBatch::new(schema.clone(), rows, CheckpointDelta { from, to })
        .expect("fixture batch is valid")
}

/// A commit moving `sync` from `from` to `to` with a ledger row.
pub fn commit(
    sync: &str,
    expected: Option<u64>,
    fence: FenceToken,
    from: Position,
    to: Position,
) -> CheckpointCommit {
    CheckpointCommit {
        sync: sync.to_string(),
        expected_version: expected,
        fence,
        delta: CheckpointDelta {
            from: from.clone(),
            to: to.clone(),
        },
        state: CheckpointState::at(to.clone()),
        ledger: Some(LedgerEntry {
            sync: sync.to_string(),
            run_id: "test-run".into(),
            strategy: StrategyKind::Incremental,
            low: from,
            high: to,
            rows_read: 0,
            rows_written: 0,
            rows_rejected: 0,
            duration_ms: 0,
            status: LedgerStatus::Committed,
            committed_at: Utc::now(),
        }),
        log: Vec::new(),
    }
}

/// Primary keys of rows (first column), as strings, for compact assertions.
pub fn ids(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.get(0).to_string()).collect()
}

/// A text key.
pub fn key(id: &str) -> Key {
    Key::text(id)
}

/// A warning-level sync-log entry of `sync` with event `event`, at a fixed time of whole
/// milliseconds (so it round-trips through every store's timestamp column unchanged).
pub fn log_entry(sync: &str, event: &str) -> SyncLogEntry {
    SyncLogEntry {
        sync: sync.to_owned(),
        run_id: format!("{event}-1"),
        at: chrono::DateTime::from_timestamp_millis(1_700_000_000_123).expect("a valid time"),
        level: LogLevel::Warn,
        event: event.to_owned(),
        message: format!("{event} of {sync}"),
    }
}
