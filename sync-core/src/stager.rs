//! The `Stager` trait: staging runs, bulk staging, validation in the store, and promotion
//! together with the checkpoint advance and a ledger row in one transaction.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointCommit, FenceToken};
use crate::error::Result;
use crate::position::Position;
use crate::record::{Key, RecordBatch, Row};
use crate::schema::StreamSchema;
use crate::value::Value;

/// An open staging run as the store reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagingRun {
    /// The sync it belongs to.
    pub sync: String,
    /// Unique run id.
    pub run_id: String,
    /// The stream schema.
    pub schema: Arc<StreamSchema>,
    /// The `to` of the last staged batch (`Start` for a new run): where a resumed fill continues.
    pub progress: Position,
    /// Rows staged and not yet promoted.
    pub staged_rows: u64,
    /// Strategy parameters fixed when the run began (window bounds), returned on resume.
    pub params: serde_json::Value,
    /// True when `begin` found this run open from an earlier, interrupted attempt.
    pub resumed: bool,
    /// When the run began.
    pub started_at: DateTime<Utc>,
    /// The fencing token of the writer that owns the run: the last one to `begin` it.
    pub fence: FenceToken,
}

/// A rule checked on every staged row during validation; a failing row is quarantined with
/// the returned reason.
pub trait RowRule: Debug + Send + Sync + 'static {
    /// Rule name, recorded with quarantined rows.
    fn name(&self) -> &str;
    /// `Err(reason)` quarantines the row.
    fn check(&self, schema: &StreamSchema, row: &Row) -> std::result::Result<(), String>;
}

/// What validation enforces, beyond the schema's own rules (types, required columns,
/// one row per key keeping the newest by the version guard).
#[derive(Debug, Clone, Default)]
pub struct ValidationRules {
    /// Extra columns that must not be NULL (for example the cursor columns).
    pub require: Vec<usize>,
    /// Reason recorded for rows failing `require`.
    pub require_reason: Option<String>,
    /// Custom row rules.
    pub rules: Vec<Arc<dyn RowRule>>,
}

/// What validation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// Rows left to promote.
    pub valid: u64,
    /// Older duplicates of a key dropped.
    pub duplicates_dropped: u64,
    /// Rows moved to quarantine.
    pub quarantined: u64,
}

/// A row moved to quarantine.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedRow {
    /// The sync.
    pub sync: String,
    /// The run.
    pub run_id: String,
    /// The row as staged.
    pub row: Row,
    /// Why.
    pub reason: String,
}

/// How promotion applies staged rows to the target.
#[derive(Debug, Clone, PartialEq)]
pub enum PromoteMode {
    /// Keyed upsert that never replaces a row by one with an older version guard; deletes the
    /// batch's delete keys.
    Upsert,
    /// Upsert, then delete target rows in `scope` that the staged snapshot does not contain.
    Replace(ReplaceScope),
}

/// The part of the target a full snapshot replaces.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplaceScope {
    /// The whole table.
    All,
    /// Rows whose `column` is at least `since` (for example "the last 30 days").
    Since {
        /// Column index.
        column: usize,
        /// Inclusive lower bound.
        since: Value,
    },
}

/// What a promotion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromoteReport {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows skipped because the target held a newer or equal version.
    pub unchanged: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows moved to the quarantine by this promotion.
    pub quarantined: u64,
    /// The checkpoint version after the commit.
    pub checkpoint_version: u64,
}

impl PromoteReport {
    /// Rows written (inserted, updated or deleted).
    pub fn written(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// Staging and atomic promotion in a store.
///
/// # Contract
/// - `ensure_stream` MUST create the target when missing and add columns the schema gained
///   (nullable; existing rows keep NULL); it MUST NOT drop or retype columns and MUST reject
///   a changed primary key with [`crate::ErrorKind::Config`].
/// - `begin` MUST return the open run of `sync` if one exists (with `resumed: true`, its
///   progress, params and staged rows intact), handing it to the caller's fence, else start an
///   empty run with `params`; a fence older than the run's owner MUST get
///   [`crate::ErrorKind::Fenced`].
/// - `stage`, `validate`, `promote` and `abort` MUST refuse with [`crate::ErrorKind::Fenced`] a
///   run whose owner has since been replaced by a newer `begin`, changing nothing.
/// - `stage` MUST store the batch's rows and deletes and set the run's progress to
///   `delta.to` atomically, and only if `delta.from` equals the current progress
///   ([`crate::ErrorKind::CheckpointDelta`] otherwise, nothing staged).
/// - `validate` MUST keep one row per key (the newest by the version guard, the last staged on
///   ties), set aside rows with missing required values or failing rules with a reason, and
///   report the counts.
/// - `promote` MUST refuse rows that were not validated, and otherwise in ONE transaction:
///   apply `mode`, apply [`CheckpointCommit`] (see [`CheckpointCommit::check`]), write its
///   ledger row (with `rows_written` and `rows_rejected` set to the rows this promotion wrote
///   and quarantined) and log entries, move the rows validation set aside to the quarantine
///   (a replace MUST NOT delete their keys: they are still in the snapshot), remove the promoted rows from staging and, when `close`,
///   end the run. On error nothing MUST change. A reader MUST never see a state between.
/// - `abort` MUST discard staged rows and end the run; the target and checkpoint stay.
/// - `read_target` MUST return every target row ordered by primary key.
#[async_trait]
pub trait Stager: Debug + Send + Sync + 'static {
    /// Backend name.
    fn name(&self) -> &str;
    /// Creates or evolves the target of a stream.
    async fn ensure_stream(&self, schema: &StreamSchema) -> Result<()>;
    /// Begins (or resumes) the staging run of `sync`.
    async fn begin(
        &self,
        sync: &str,
        schema: Arc<StreamSchema>,
        fence: FenceToken,
        params: serde_json::Value,
    ) -> Result<StagingRun>;
    /// Stages a batch (taken by value: stores move it to a blocking thread or a COPY stream
    /// without copying); returns the new progress.
    async fn stage(&self, run: &StagingRun, batch: RecordBatch) -> Result<Position>;
    /// Validates staged rows.
    async fn validate(&self, run: &StagingRun, rules: &ValidationRules)
        -> Result<ValidationReport>;
    /// Promotes validated rows with the checkpoint commit in one transaction.
    async fn promote(
        &self,
        run: &StagingRun,
        mode: &PromoteMode,
        commit: &CheckpointCommit,
        close: bool,
    ) -> Result<PromoteReport>;
    /// Discards staged rows and ends the run.
    async fn abort(&self, run: &StagingRun) -> Result<()>;
    /// Every target row of `stream`, ordered by key.
    async fn read_target(&self, stream: &str) -> Result<Vec<Row>>;
    /// The target rows with these keys (absent keys are skipped), ordered by key.
    async fn read_target_keys(&self, stream: &str, keys: &[Key]) -> Result<Vec<Row>>;
    /// Quarantined rows of `sync`.
    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantinedRow>>;
}

#[async_trait]
impl<T: Stager + ?Sized> Stager for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn ensure_stream(&self, schema: &StreamSchema) -> Result<()> {
        (**self).ensure_stream(schema).await
    }
    async fn begin(
        &self,
        sync: &str,
        schema: Arc<StreamSchema>,
        fence: FenceToken,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        (**self).begin(sync, schema, fence, params).await
    }
    async fn stage(&self, run: &StagingRun, batch: RecordBatch) -> Result<Position> {
        (**self).stage(run, batch).await
    }
    async fn validate(
        &self,
        run: &StagingRun,
        rules: &ValidationRules,
    ) -> Result<ValidationReport> {
        (**self).validate(run, rules).await
    }
    async fn promote(
        &self,
        run: &StagingRun,
        mode: &PromoteMode,
        commit: &CheckpointCommit,
        close: bool,
    ) -> Result<PromoteReport> {
        (**self).promote(run, mode, commit, close).await
    }
    async fn abort(&self, run: &StagingRun) -> Result<()> {
        (**self).abort(run).await
    }
    async fn read_target(&self, stream: &str) -> Result<Vec<Row>> {
        (**self).read_target(stream).await
    }
    async fn read_target_keys(&self, stream: &str, keys: &[Key]) -> Result<Vec<Row>> {
        (**self).read_target_keys(stream, keys).await
    }
    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantinedRow>> {
        (**self).quarantined(sync).await
    }
}

/// A run id unique enough for ledger rows: time plus randomness.
pub fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u32(..)
    )
}

/// Serde helper so strategies can keep typed params in [`StagingRun::params`].
pub fn params_of<T: Serialize>(params: &T) -> serde_json::Value {
    serde_json::to_value(params).expect("strategy params serialize")
}

/// Reads typed params back from a run begun by a strategy (which tags them with its kind
/// under `params`); a mismatch is [`crate::ErrorKind::CorruptState`].
pub fn params_from<T: for<'de> Deserialize<'de>>(run: &StagingRun) -> Result<T> {
    let params = run
        .params
        .get("params")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    serde_json::from_value(params).map_err(|e| {
        crate::Error::new(
            crate::ErrorKind::CorruptState,
            "staging run params do not match the strategy",
        )
        .with_context("sync", &run.sync)
        .with_source(e)
    })
}
