//! The four strategies (full, incremental, offset, sequence window) and what they share:
//! the run context, the run report, page fetching with retry and limits, and the commit
//! step that survives an outcome-unknown error.

mod fill;
pub mod full;
pub mod incremental;
pub mod offset;
mod prefetch;
pub mod sequence_window;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    Checkpoint, CheckpointCommit, CheckpointState, FenceToken, LedgerEntry, LedgerStatus, LogLevel,
    StoredCheckpoint, SyncLogEntry,
};
use crate::error::{Error, ErrorKind, Result, RetryClass};
use crate::position::{CheckpointDelta, Position};
use crate::progress::{Progress, ProgressEvent};
use crate::queue::ChangeQueue;
use crate::retry::{RetryPolicy, RunLimits};
use crate::schema::StreamSchema;
use crate::sink::Sink;
use crate::source::Source;
use crate::stager::{
    PromoteMode, PromoteReport, Stager, StagingRun, ValidationReport, ValidationRules,
};
use crate::stop::StopSignal;

pub use full::{FullConfig, FullStrategy};
pub use incremental::{IncrementalConfig, IncrementalStrategy, MissingCursorPolicy};
pub use offset::{DriftPolicy, OffsetConfig, OffsetStatus, OffsetStrategy};
pub(crate) use prefetch::{while_fetching, ContinuedPage, Fetched, Fetcher};
pub use sequence_window::{
    check_history, HistoryReport, SequenceWindowConfig, SequenceWindowStrategy,
};

/// The four strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Full snapshot (optionally of a recent window), promoted once.
    Full,
    /// Cursor-based incremental (timestamp, version or `modifiedSince`).
    Incremental,
    /// Persisted offset over a stable order.
    Offset,
    /// Windows of a change queue `(low, high]`.
    SequenceWindow,
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrategyKind::Full => "full",
            StrategyKind::Incremental => "incremental",
            StrategyKind::Offset => "offset",
            StrategyKind::SequenceWindow => "sequence_window",
        })
    }
}

/// Everything a run needs. The stager and the checkpoint store MUST be the same database:
/// `Stager::promote` commits the checkpoint that `Checkpoint::load` reads.
#[derive(Debug, Clone)]
pub struct SyncContext {
    /// Name of the sync (one stream of one integration), the checkpoint key.
    pub sync: String,
    /// Where records come from.
    pub source: Arc<dyn Source>,
    /// Staging and promotion.
    pub stager: Arc<dyn Stager>,
    /// Checkpoints, ledger and log.
    pub checkpoints: Arc<dyn Checkpoint>,
    /// Optional destination for promoted records; only the sequence-window strategy delivers
    /// (the others refuse to run with a sink rather than ignore it).
    pub sink: Option<Arc<dyn Sink>>,
    /// The change queue (sequence window).
    pub queue: Option<Arc<dyn ChangeQueue>>,
    /// Retry policy around source and sink calls.
    pub retry: RetryPolicy,
    /// Per-run limits.
    pub limits: RunLimits,
    /// Progress events.
    pub progress: Progress,
    /// A graceful-stop request: the run stops after the page in flight is promoted.
    pub stop: StopSignal,
}

impl SyncContext {
    /// A context with the default retry policy, no limits, no sink and no progress events.
    pub fn new(
        sync: impl Into<String>,
        source: Arc<dyn Source>,
        stager: Arc<dyn Stager>,
        checkpoints: Arc<dyn Checkpoint>,
    ) -> Self {
        SyncContext {
            sync: sync.into(),
            source,
            stager,
            checkpoints,
            sink: None,
            queue: None,
            retry: RetryPolicy::default(),
            limits: RunLimits::default(),
            progress: Progress::none(),
            stop: StopSignal::new(),
        }
    }

    /// Sets the sink.
    pub fn with_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Sets the change queue.
    pub fn with_queue(mut self, queue: Arc<dyn ChangeQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the run limits.
    pub fn with_limits(mut self, limits: RunLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the progress sender.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Sets the stop signal a job runtime raises to stop the run gracefully.
    pub fn with_stop(mut self, stop: StopSignal) -> Self {
        self.stop = stop;
        self
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunReport {
    /// The run id.
    pub run_id: String,
    /// Pages fetched.
    pub pages: u64,
    /// Records fetched.
    pub rows_read: u64,
    /// Records written to the target.
    pub rows_written: u64,
    /// Records quarantined.
    pub rows_rejected: u64,
    /// Windows committed (ledger rows written).
    pub windows: u64,
    /// The checkpoint position at the end.
    pub position: Option<Position>,
    /// False when a limit or a stop request ended the run before the end of the source
    /// (it resumes next run).
    pub complete: bool,
    /// True when the run ended early because its [`StopSignal`] was raised.
    pub stopped: bool,
}

/// A strategy: one resumable run at a time per sync.
#[async_trait]
pub trait Strategy: fmt::Debug + Send + Sync + 'static {
    /// Which strategy this is.
    fn kind(&self) -> StrategyKind;
    /// Runs once: resumes whatever an interrupted run left, then syncs up to the end or a limit.
    async fn run(&self, ctx: &SyncContext) -> Result<RunReport>;
}

/// A staging run's parameters as the strategies store them: the strategy's kind beside its
/// own parameters, so a run begun by another strategy is told apart.
pub(crate) fn tagged_params(kind: StrategyKind, params: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "strategy": kind, "params": params })
}

/// Per-run bookkeeping shared by the strategies.
#[derive(Debug)]
pub(crate) struct RunState {
    pub(crate) run_id: String,
    pub(crate) fence: FenceToken,
    pub(crate) stored: Option<StoredCheckpoint>,
    pub(crate) report: RunReport,
    /// Errors seen by source and sink calls, shared with this run's [`Fetcher`]s.
    errors: Arc<AtomicU64>,
    /// Pages that do not count toward `max_pages` (see [`RunState::exempt_page`]).
    exempt_pages: u64,
    started: Instant,
}

impl RunState {
    /// Acquires the fence and loads the checkpoint.
    pub(crate) async fn start(ctx: &SyncContext, kind: StrategyKind) -> Result<RunState> {
        ctx.source.capabilities().require(ctx.source.name(), kind)?;
        if let (Some(sink), false) = (&ctx.sink, kind == StrategyKind::SequenceWindow) {
            // Only the sequence window knows which promoted rows a redelivery must resend.
            return Err(Error::unsupported(
                sink.name(),
                format_args!("sink delivery with the {kind} strategy"),
            ));
        }
        let fence = ctx.checkpoints.acquire_fence(&ctx.sync).await?;
        let run_id = crate::stager::new_run_id();
        let started = async {
            let stored = ctx.checkpoints.load(&ctx.sync).await?;
            ctx.checkpoints
                .append_log(&log_entry(
                    ctx,
                    &run_id,
                    LogLevel::Info,
                    "run_started",
                    format!("{kind} run started"),
                ))
                .await?;
            Ok(stored)
        }
        .await;
        let stored = match started {
            Ok(stored) => stored,
            Err(e) => {
                release(ctx, fence).await;
                return Err(e);
            }
        };
        ctx.progress.emit(ProgressEvent::RunStarted {
            sync: ctx.sync.clone(),
            run_id: run_id.clone(),
        });
        tracing::info!(sync = %ctx.sync, run_id = %run_id, strategy = %kind, fence = fence.0, "run started");
        let report = RunReport {
            run_id: run_id.clone(),
            position: stored.as_ref().map(|s| s.state.position.clone()),
            ..RunReport::default()
        };
        Ok(RunState {
            run_id,
            fence,
            stored,
            report,
            errors: Arc::new(AtomicU64::new(0)),
            exempt_pages: 0,
            started: Instant::now(),
        })
    }

    /// Begins this strategy's staging run (or resumes it). A run left open by another
    /// strategy (the sync was switched) or staged under another schema of the stream is
    /// discarded.
    pub(crate) async fn open_run(
        &self,
        ctx: &SyncContext,
        schema: &Arc<StreamSchema>,
        kind: StrategyKind,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        let tagged = tagged_params(kind, params);
        let run = ctx
            .stager
            .begin(&ctx.sync, schema.clone(), self.fence, tagged.clone())
            .await?;
        let other_strategy = run.params.get("strategy") != tagged.get("strategy");
        if run.resumed && (other_strategy || run.schema != *schema) {
            // Its progress means nothing to this strategy, or its rows do not fit the stream's
            // schema any more: read again rather than resume.
            tracing::warn!(sync = %ctx.sync, other_strategy, "discarding a staging run that cannot be resumed");
            ctx.stager.abort(&run).await?;
            return ctx
                .stager
                .begin(&ctx.sync, schema.clone(), self.fence, tagged)
                .await;
        }
        Ok(run)
    }

    /// Discards `run` (staged rows and progress) and begins a fresh one with `params` as
    /// tagged by [`RunState::open_run`] (`run.params` to keep what the run pinned, or
    /// [`tagged_params`] of this run's own).
    pub(crate) async fn restart_run(
        &self,
        ctx: &SyncContext,
        run: &StagingRun,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        ctx.stager.abort(run).await?;
        ctx.stager
            .begin(&ctx.sync, run.schema.clone(), self.fence, params)
            .await
    }

    /// The stored state, or `Start`.
    pub(crate) fn state(&self) -> CheckpointState {
        self.stored
            .as_ref()
            .map_or_else(|| CheckpointState::at(Position::Start), |s| s.state.clone())
    }

    /// The current checkpoint position.
    pub(crate) fn position(&self) -> Position {
        self.stored
            .as_ref()
            .map_or(Position::Start, |s| s.state.position.clone())
    }

    /// True once `max_pages` pages were fetched or a stop was requested: the run ends after
    /// the page in flight is promoted.
    pub(crate) fn page_limit_reached(&self, ctx: &SyncContext) -> bool {
        let counted = self.report.pages.saturating_sub(self.exempt_pages);
        ctx.stop.is_stopped() || ctx.limits.max_pages.is_some_and(|m| counted >= m)
    }

    /// Takes the last page fetched off the `max_pages` count (it stays in the report): a page
    /// that only re-read records this run has seen, on the way back to where it was.
    pub(crate) fn exempt_page(&mut self) {
        self.exempt_pages = (self.exempt_pages + 1).min(self.report.pages);
    }

    /// Counts a page of `rows` new records in the report and the progress events.
    fn count_page(&mut self, ctx: &SyncContext, rows: usize) {
        self.report.pages += 1;
        self.report.rows_read += rows as u64;
        ctx.progress.emit(ProgressEvent::Page {
            pages: self.report.pages,
            rows_fetched: self.report.rows_read,
        });
        tracing::debug!(sync = %ctx.sync, page = self.report.pages, rows, "page fetched");
    }

    /// Runs a source or sink call under the retry policy and the `max_errors` limit.
    pub(crate) async fn retrying<T, F, Fut>(&self, ctx: &SyncContext, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        retry_counted(ctx, &self.errors, op).await
    }

    /// A ledger row for a window of this run; the store fills in the rows written and
    /// validation the rows rejected.
    pub(crate) fn ledger(
        &self,
        ctx: &SyncContext,
        kind: StrategyKind,
        delta: &CheckpointDelta,
        read: u64,
        status: LedgerStatus,
        since: Instant,
    ) -> LedgerEntry {
        LedgerEntry {
            sync: ctx.sync.clone(),
            run_id: self.run_id.clone(),
            strategy: kind,
            low: delta.from.clone(),
            high: delta.to.clone(),
            rows_read: read,
            rows_written: 0,
            rows_rejected: 0,
            duration_ms: since.elapsed().as_millis() as u64,
            status,
            committed_at: Utc::now(),
        }
    }

    /// The commit for `state` reached through `delta`, with `ledger`.
    pub(crate) fn commit_for(
        &self,
        ctx: &SyncContext,
        delta: CheckpointDelta,
        state: CheckpointState,
        ledger: Option<LedgerEntry>,
    ) -> CheckpointCommit {
        CheckpointCommit {
            sync: ctx.sync.clone(),
            expected_version: self.stored.as_ref().map(|s| s.version),
            fence: self.fence,
            delta,
            state,
            ledger,
            log: Vec::new(),
        }
    }

    /// Validates and promotes everything staged in `run` with `commit` (the store fills in the
    /// ledger row's written and rejected counts); on an
    /// outcome-unknown error re-reads the checkpoint and treats the commit as done when it is
    /// there. Updates the run report and the stored checkpoint this run compares against.
    pub(crate) async fn validate_and_promote(
        &mut self,
        ctx: &SyncContext,
        run: &StagingRun,
        rules: &ValidationRules,
        mode: &PromoteMode,
        commit: CheckpointCommit,
        close: bool,
    ) -> Result<(ValidationReport, PromoteReport)> {
        ctx.progress.emit(ProgressEvent::Window {
            low: commit.delta.from.clone(),
            high: commit.delta.to.clone(),
        });
        let validation = ctx.stager.validate(run, rules).await?;
        let promoted = match ctx.stager.promote(run, mode, &commit, close).await {
            Ok(r) => r,
            Err(e) if e.is_outcome_unknown() => {
                let now = ctx.checkpoints.load(&ctx.sync).await?;
                let landed = now.as_ref().is_some_and(|s| {
                    Some(s.version) == commit.expected_version.map(|v| v + 1).or(Some(1))
                        && s.state == commit.state
                });
                if !landed {
                    return Err(e);
                }
                tracing::warn!(sync = %ctx.sync, "promote outcome unknown; the checkpoint shows it committed");
                PromoteReport {
                    checkpoint_version: now.as_ref().map_or(0, |s| s.version),
                    ..PromoteReport::default()
                }
            }
            Err(e) => return Err(e),
        };
        self.stored = Some(StoredCheckpoint {
            sync: ctx.sync.clone(),
            state: commit.state.clone(),
            version: promoted.checkpoint_version,
            updated_at: Utc::now(),
        });
        self.report.rows_written += promoted.written();
        self.report.rows_rejected += promoted.quarantined;
        self.report.windows += u64::from(commit.ledger.is_some());
        self.report.position = Some(commit.state.position.clone());
        ctx.progress.emit(ProgressEvent::Promoted {
            rows_promoted: self.report.rows_written,
            rows_rejected: self.report.rows_rejected,
            position: commit.state.position.clone(),
        });
        tracing::info!(sync = %ctx.sync, position = %commit.state.position, written = promoted.written(), rejected = validation.quarantined, "window promoted");
        Ok((validation, promoted))
    }

    /// Logs the end of the run and returns the report.
    pub(crate) async fn finish(mut self, ctx: &SyncContext, complete: bool) -> Result<RunReport> {
        self.report.complete = complete;
        self.report.stopped = !complete && ctx.stop.is_stopped();
        let msg = format!(
            "read {} rows in {} pages, wrote {}, rejected {}, {} windows in {} ms{}",
            self.report.rows_read,
            self.report.pages,
            self.report.rows_written,
            self.report.rows_rejected,
            self.report.windows,
            self.started.elapsed().as_millis(),
            match (complete, self.report.stopped) {
                (true, _) => "",
                (false, true) => "; stopped on request, resumes next run",
                (false, false) => "; stopped at a limit, resumes next run",
            }
        );
        let logged = ctx
            .checkpoints
            .append_log(&log_entry(
                ctx,
                &self.run_id,
                LogLevel::Info,
                "run_finished",
                msg,
            ))
            .await;
        release(ctx, self.fence).await;
        logged?;
        ctx.progress.emit(ProgressEvent::RunFinished { complete });
        Ok(self.report)
    }

    /// Logs the run's failure (best effort), releases its fence and passes `error` on.
    pub(crate) async fn fail(self, ctx: &SyncContext, error: Error) -> Result<RunReport> {
        let result = log_failure(ctx, Some(&self.run_id), Err(error)).await;
        release(ctx, self.fence).await;
        result
    }
}

/// Releases what `fence` holds on the run's sync, so that the next run need not wait for a
/// lease to expire (best effort).
async fn release(ctx: &SyncContext, fence: FenceToken) {
    crate::checkpoint::release_fence_logged(ctx.checkpoints.as_ref(), &ctx.sync, fence).await;
}

/// Runs `op` under the retry policy, counting its errors in `errors` against `max_errors`.
pub(crate) async fn retry_counted<T, F, Fut>(
    ctx: &SyncContext,
    errors: &AtomicU64,
    op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let result = ctx
        .retry
        .run(op, |attempt, _, e| {
            errors.fetch_add(1, Ordering::Relaxed);
            ctx.progress.emit(ProgressEvent::Retry {
                attempt,
                error: e.to_string(),
            });
        })
        .await;
    if let Err(e) = &result {
        if e.retry_class() != RetryClass::Permanent {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some(max) = ctx.limits.max_errors {
        let seen = errors.load(Ordering::Relaxed);
        if seen > max {
            let e = Error::new(ErrorKind::LimitReached, "too many errors in this run")
                .with_retry(RetryClass::Exhausted)
                .with_context("errors", seen);
            return Err(match result {
                Err(inner) => e.with_source(inner),
                Ok(_) => e,
            });
        }
    }
    result
}

/// Logs a failed run (best effort) and passes the error on.
pub(crate) async fn log_failure<T>(
    ctx: &SyncContext,
    run_id: Option<&str>,
    result: Result<T>,
) -> Result<T> {
    if let Err(e) = &result {
        let entry = log_entry(
            ctx,
            run_id.unwrap_or("-"),
            LogLevel::Error,
            "run_failed",
            e.to_string(),
        );
        if let Err(log_err) = ctx.checkpoints.append_log(&entry).await {
            tracing::warn!(sync = %ctx.sync, error = %log_err, "could not log the failed run");
        }
        tracing::error!(sync = %ctx.sync, error = %e, "run failed");
    }
    result
}

pub(crate) fn log_entry(
    ctx: &SyncContext,
    run_id: &str,
    level: LogLevel,
    event: &str,
    message: String,
) -> SyncLogEntry {
    SyncLogEntry {
        sync: ctx.sync.clone(),
        run_id: run_id.to_string(),
        at: Utc::now(),
        level,
        event: event.to_string(),
        message,
    }
}
