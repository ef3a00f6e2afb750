//! A run in offset-tracked batches: the Oracle source, the offset strategy and the database,
//! with a report for every batch promoted and a graceful stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sync_core::strategy::DriftPolicy;
use sync_core::{
    CheckpointCommit, FenceToken, Key, OffsetConfig, OffsetStrategy, Position, PromoteMode,
    PromoteReport, QuarantinedRow, RecordBatch, Result, Row, RunReport, Stager, StagingRun,
    StopSignal, Strategy, StreamSchema, SyncContext, ValidationReport, ValidationRules,
};

use super::source::OpportunitySource;
use super::{BatchDatabase, STREAM, SYNC_NAME};

/// How a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Records asked for per batch (`limit`); the server may return fewer, and the offset
    /// advances by what it returned.
    pub batch_size: u32,
    /// What to do when the source shifted before the offset: rescan from 0 or fail.
    pub drift: DriftPolicy,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_size: 100,
            drift: DriftPolicy::Restart,
        }
    }
}

/// One batch promoted: its rows, its offset and its ledger row are committed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPromoted {
    /// The batch's number in this run, from 1.
    pub number: u64,
    /// The offset before the batch (0 again after a rescan).
    pub from: u64,
    /// The offset after it: `from` plus the records received.
    pub to: u64,
    /// Records in the batch.
    pub rows: u64,
    /// Rows this promotion inserted or changed in the target (the rest were already there).
    pub written: u64,
    /// The source's `totalResults` at this batch.
    pub total: Option<u64>,
    /// True for the batch that reached the end of the source.
    pub complete: bool,
}

/// Told about every batch right after its promotion committed.
pub type BatchListener = Arc<dyn Fn(&BatchPromoted) + Send + Sync>;

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRun {
    /// The strategy's report (`stopped` when the stop signal ended it).
    pub report: RunReport,
    /// The offset the checkpoint holds at the end.
    pub offset: u64,
    /// Batches promoted.
    pub batches: u64,
    /// Times the run found the source shifted before its offset and rescanned from 0, with
    /// the reason logged.
    pub drift: Vec<String>,
}

/// The source, the strategy and the database of the seed's sync.
#[derive(Debug, Clone)]
pub struct BatchPipeline {
    source: Arc<OpportunitySource>,
    database: BatchDatabase,
    strategy: OffsetStrategy,
    options: RunOptions,
}

impl BatchPipeline {
    /// A pipeline reading `source` into `database`; no I/O.
    pub fn new(
        source: Arc<OpportunitySource>,
        database: BatchDatabase,
        options: RunOptions,
    ) -> Result<Self> {
        let strategy = OffsetStrategy::new(OffsetConfig {
            stream: STREAM.into(),
            page_size: options.batch_size,
            drift: options.drift,
        })?;
        Ok(BatchPipeline {
            source,
            database,
            strategy,
            options,
        })
    }

    /// The source.
    pub fn source(&self) -> &OpportunitySource {
        &self.source
    }

    /// The database.
    pub fn database(&self) -> &BatchDatabase {
        &self.database
    }

    /// The strategy.
    pub fn strategy(&self) -> &OffsetStrategy {
        &self.strategy
    }

    /// A context over `stager` (the database's, or one wrapping it).
    pub(crate) fn context(&self, stager: Arc<dyn Stager>, stop: StopSignal) -> Result<SyncContext> {
        let source = self
            .source
            .oracle_source(self.options.batch_size, self.options.drift)?;
        Ok(SyncContext::new(
            SYNC_NAME,
            Arc::new(source),
            stager,
            self.database.checkpoints.clone(),
        )
        .with_stop(stop))
    }

    /// Runs from the stored offset to the end of the source, or until `stop` is raised: then
    /// the batch in flight (and one fetched ahead, if any) is promoted with its offset and
    /// the run returns with `report.stopped`. `listener` hears of every batch promoted.
    pub async fn run(&self, stop: StopSignal, listener: BatchListener) -> Result<BatchRun> {
        let reporting = Arc::new(ReportingStager {
            inner: self.database.stager.clone(),
            listener,
            batches: AtomicU64::new(0),
        });
        let ctx = self.context(reporting.clone(), stop)?;
        let report = self.strategy.run(&ctx).await?;
        let log = self.database.checkpoints.sync_log(SYNC_NAME, 1_000).await?;
        let drift = log
            .into_iter()
            .filter(|e| e.run_id == report.run_id && e.event == "drift")
            .map(|e| e.message)
            .collect();
        let offset = match &report.position {
            Some(Position::Offset(o)) => *o,
            _ => 0,
        };
        Ok(BatchRun {
            offset,
            batches: reporting.batches.load(Ordering::SeqCst),
            drift,
            report,
        })
    }
}

fn offset_of(position: &Position) -> u64 {
    match position {
        Position::Offset(o) => *o,
        _ => 0,
    }
}

/// A stager that forwards everything and, once a promotion committed, tells the listener
/// what the batch was (from the commit it carried).
struct ReportingStager {
    inner: Arc<dyn Stager>,
    listener: BatchListener,
    batches: AtomicU64,
}

impl std::fmt::Debug for ReportingStager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportingStager")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Stager for ReportingStager {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn ensure_stream(&self, schema: &StreamSchema) -> Result<()> {
        self.inner.ensure_stream(schema).await
    }
    async fn begin(
        &self,
        sync: &str,
        schema: Arc<StreamSchema>,
        fence: FenceToken,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        self.inner.begin(sync, schema, fence, params).await
    }
    async fn stage(&self, run: &StagingRun, batch: RecordBatch) -> Result<Position> {
        self.inner.stage(run, batch).await
    }
    async fn validate(
        &self,
        run: &StagingRun,
        rules: &ValidationRules,
    ) -> Result<ValidationReport> {
        self.inner.validate(run, rules).await
    }
    async fn promote(
        &self,
        run: &StagingRun,
        mode: &PromoteMode,
        commit: &CheckpointCommit,
        close: bool,
    ) -> Result<PromoteReport> {
        let promoted = self.inner.promote(run, mode, commit, close).await?;
        let extra = &commit.state.extra;
        let batch = BatchPromoted {
            number: self.batches.fetch_add(1, Ordering::SeqCst) + 1,
            from: offset_of(&commit.delta.from),
            to: offset_of(&commit.delta.to),
            rows: commit.ledger.as_ref().map_or(0, |l| l.rows_read),
            written: promoted.written(),
            total: extra.get("total").and_then(serde_json::Value::as_u64),
            complete: extra.get("complete").and_then(serde_json::Value::as_bool) == Some(true),
        };
        (self.listener)(&batch);
        Ok(promoted)
    }
    async fn abort(&self, run: &StagingRun) -> Result<()> {
        self.inner.abort(run).await
    }
    async fn read_target(&self, stream: &str) -> Result<Vec<Row>> {
        self.inner.read_target(stream).await
    }
    async fn read_target_keys(&self, stream: &str, keys: &[Key]) -> Result<Vec<Row>> {
        self.inner.read_target_keys(stream, keys).await
    }
    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantinedRow>> {
        self.inner.quarantined(sync).await
    }
}
