//! Sequence-window strategy: windows `(last committed end, safe high-water mark]` of a change
//! queue; the latest state of each distinct id fetched once, promoted with the window's
//! history row in one transaction, then delivered to the sink.
//!
//! Two positions are kept: `position` (promoted up to) and `delivered` (the sink confirmed up
//! to). Delivery happens after promotion and advances `delivered` only once the sink
//! confirms, in window order; a run first redelivers promoted windows the sink has not
//! confirmed (sinks are idempotent per key).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{RunReport, RunState, Strategy, StrategyKind, SyncContext};
use crate::checkpoint::{CheckpointState, LedgerEntry, LedgerStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::position::{CheckpointDelta, Position, SequenceNo, Window};
use crate::queue::ChangeQueue;
use crate::record::{Key, RecordBatch};
use crate::schema::StreamSchema;
use crate::sink::Delivery;
use crate::stager::{PromoteMode, ValidationRules};

/// Configuration of a sequence-window sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceWindowConfig {
    /// The stream the latest states go to.
    pub stream: String,
    /// The change queue name.
    pub queue: String,
    /// Most queue entries in one window (a larger backlog becomes several windows).
    #[serde(default = "default_max_entries")]
    pub max_window_entries: usize,
    /// Ids per `fetch_latest` call.
    #[serde(default = "default_fetch_batch")]
    pub fetch_batch: usize,
}

fn default_max_entries() -> usize {
    10_000
}
fn default_fetch_batch() -> usize {
    100
}

impl SequenceWindowConfig {
    /// A sequence-window sync of `stream` from `queue`.
    pub fn new(stream: impl Into<String>, queue: impl Into<String>) -> Self {
        SequenceWindowConfig {
            stream: stream.into(),
            queue: queue.into(),
            max_window_entries: default_max_entries(),
            fetch_batch: default_fetch_batch(),
        }
    }
}

/// The sequence-window strategy.
#[derive(Debug, Clone)]
pub struct SequenceWindowStrategy {
    config: SequenceWindowConfig,
}

fn seq_of(p: &Position) -> Result<SequenceNo> {
    match p {
        Position::Start => Ok(SequenceNo(0)),
        Position::Sequence(s) => Ok(*s),
        other => Err(Error::new(
            ErrorKind::CheckpointDelta,
            "sequence checkpoint has the wrong kind",
        )
        .with_context("position", other)),
    }
}

impl SequenceWindowStrategy {
    /// A sequence-window strategy; fails on zero sizes.
    pub fn new(config: SequenceWindowConfig) -> Result<Self> {
        if config.max_window_entries == 0 || config.fetch_batch == 0 {
            return Err(Error::config(
                "max_window_entries and fetch_batch must be at least 1",
            ));
        }
        Ok(SequenceWindowStrategy { config })
    }

    fn queue(ctx: &SyncContext) -> Result<&Arc<dyn ChangeQueue>> {
        ctx.queue
            .as_ref()
            .ok_or_else(|| Error::config("the sequence-window strategy needs a change queue"))
    }

    /// Distinct ids of a window, in first-seen order.
    async fn window_ids(&self, ctx: &SyncContext, window: Window) -> Result<Vec<Key>> {
        let entries = Self::queue(ctx)?
            .read_window(&self.config.queue, window)
            .await?;
        let mut seen = BTreeSet::new();
        Ok(entries
            .into_iter()
            .filter_map(|e| seen.insert(e.entity.clone()).then_some(e.entity))
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    /// Fetches the latest state of `ids` once each, stages it with the deletes of ids the
    /// source no longer has, and promotes with `delta` (a stay for replays).
    async fn apply(
        &self,
        ctx: &SyncContext,
        st: &mut RunState,
        schema: &Arc<StreamSchema>,
        ids: &[Key],
        delta: CheckpointDelta,
        window: Window,
        status: LedgerStatus,
    ) -> Result<()> {
        let started = Instant::now();
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.config.fetch_batch) {
            let fetched = st
                .retrying(ctx, || ctx.source.fetch_latest(&self.config.stream, chunk))
                .await?;
            st.report.pages += 1;
            rows.extend(fetched);
        }
        st.report.rows_read += rows.len() as u64;
        let deletes = missing(ids, &rows, schema);
        let run = st
            .open_run(
                ctx,
                schema,
                StrategyKind::SequenceWindow,
                serde_json::Value::Null,
            )
            .await?;
        let run = if run.staged_rows > 0 {
            st.restart_run(ctx, &run, run.params.clone()).await?
        } else {
            run
        };
        let read = rows.len() as u64;
        let stage_delta = CheckpointDelta {
            from: run.progress.clone(),
            to: run.progress.clone(),
        };
        let batch = RecordBatch::new(schema.clone(), rows, stage_delta)?.with_deletes(deletes);
        ctx.stager.stage(&run, batch).await?;
        let ledger = st.ledger(
            ctx,
            StrategyKind::SequenceWindow,
            &window_delta(window),
            read,
            status,
            started,
        );
        let state = CheckpointState {
            position: delta.to.clone(),
            ..st.state()
        };
        let commit = st.commit_for(ctx, delta, state, Some(ledger));
        st.validate_and_promote(
            ctx,
            &run,
            &ValidationRules::default(),
            &PromoteMode::Upsert,
            commit,
            true,
        )
        .await?;
        Ok(())
    }

    /// What the sink receives for `window`: the promoted rows of its ids, and deletes for the
    /// ids the target no longer holds.
    async fn delivery(
        &self,
        ctx: &SyncContext,
        schema: &Arc<StreamSchema>,
        ids: &[Key],
        window: Window,
    ) -> Result<Delivery> {
        let upserts = ctx
            .stager
            .read_target_keys(&self.config.stream, ids)
            .await?;
        let deletes = missing(ids, &upserts, schema);
        Ok(Delivery {
            sync: ctx.sync.clone(),
            schema: schema.clone(),
            upserts,
            deletes,
            delta: window_delta(window),
        })
    }

    /// Delivers the promoted state of `window` to the sink, then records the delivery.
    async fn deliver(
        &self,
        ctx: &SyncContext,
        st: &mut RunState,
        schema: &Arc<StreamSchema>,
        window: Window,
    ) -> Result<()> {
        let Some(sink) = &ctx.sink else { return Ok(()) };
        let started = Instant::now();
        let ids = self.window_ids(ctx, window).await?;
        let delivery = self.delivery(ctx, schema, &ids, window).await?;
        let delta = delivery.delta.clone();
        let receipt = st.retrying(ctx, || sink.deliver(&delivery)).await?;
        let mut state = st.state();
        state.delivered = Some(Position::Sequence(window.high));
        let mut ledger = st.ledger(
            ctx,
            StrategyKind::SequenceWindow,
            &delta,
            0,
            LedgerStatus::Delivered,
            started,
        );
        ledger.rows_written = receipt.delivered;
        let commit = st.commit_for(
            ctx,
            CheckpointDelta::stay(state.position.clone()),
            state,
            Some(ledger),
        );
        let version = ctx.checkpoints.commit(&commit).await?;
        st.stored = Some(crate::checkpoint::StoredCheckpoint {
            sync: ctx.sync.clone(),
            state: commit.state,
            version,
            updated_at: chrono::Utc::now(),
        });
        tracing::info!(sync = %ctx.sync, %window, delivered = receipt.delivered, "window delivered");
        Ok(())
    }

    async fn run_inner(&self, ctx: &SyncContext, st: &mut RunState) -> Result<bool> {
        let cfg = &self.config;
        let schema = ctx.source.schema(&cfg.stream)?;
        if !ctx.source.capabilities().fetch_latest {
            return Err(Error::unsupported(ctx.source.name(), "fetch_latest"));
        }
        let queue = Self::queue(ctx)?.clone();
        ctx.stager.ensure_stream(&schema).await?;
        let mut low = seq_of(&st.position())?;
        if ctx.sink.is_some() {
            let delivered = st
                .state()
                .delivered
                .as_ref()
                .map_or(Ok(SequenceNo(0)), seq_of)?;
            if delivered < low {
                tracing::info!(sync = %ctx.sync, from = %delivered, to = %low, "redelivering promoted windows");
                self.deliver(ctx, st, &schema, Window::new(delivered, low)?)
                    .await?;
            }
        }
        let hwm = queue.safe_high_water_mark(&cfg.queue).await?;
        while low < hwm {
            if st.page_limit_reached(ctx) {
                return Ok(false);
            }
            let entries = queue
                .read_window(&cfg.queue, Window::new(low, hwm)?)
                .await?;
            let high = match entries.get(cfg.max_window_entries) {
                Some(_) => entries[cfg.max_window_entries - 1].seq,
                None => hwm,
            };
            let window = Window::new(low, high)?;
            let ids = self.window_ids(ctx, window).await?;
            let delta = CheckpointDelta::new(st.position(), Position::Sequence(high))?;
            self.apply(
                ctx,
                st,
                &schema,
                &ids,
                delta,
                window,
                LedgerStatus::Committed,
            )
            .instrument(tracing::info_span!("window", %window, ids = ids.len()))
            .await?;
            self.deliver(ctx, st, &schema, window).await?;
            low = high;
        }
        Ok(true)
    }

    /// Applies a past window again: fetches the latest state of its ids, promotes it without
    /// moving the checkpoint, writes a `replayed` ledger row and delivers it to the sink.
    /// The window must lie within what was already committed.
    pub async fn replay(&self, ctx: &SyncContext, window: Window) -> Result<RunReport> {
        let span = tracing::info_span!(
            "sync_run",
            sync = %ctx.sync,
            strategy = "sequence_window",
            replay = %window
        );
        self.replay_inner(ctx, window).instrument(span).await
    }

    async fn replay_inner(&self, ctx: &SyncContext, window: Window) -> Result<RunReport> {
        // Its fields are public: a window built from them is checked as `Window::new` checks.
        let window = Window::new(window.low, window.high)?;
        let mut st = RunState::start(ctx, StrategyKind::SequenceWindow).await?;
        let result = async {
            let schema = ctx.source.schema(&self.config.stream)?;
            let committed = seq_of(&st.position())?;
            if window.high > committed {
                return Err(
                    Error::invalid_input("replay window is beyond the committed position")
                        .with_context("window", window)
                        .with_context("committed", committed),
                );
            }
            let ids = self.window_ids(ctx, window).await?;
            let delta = CheckpointDelta::stay(st.position());
            self.apply(
                ctx,
                &mut st,
                &schema,
                &ids,
                delta,
                window,
                LedgerStatus::Replayed,
            )
            .await?;
            if let Some(sink) = &ctx.sink {
                let delivery = self.delivery(ctx, &schema, &ids, window).await?;
                st.retrying(ctx, || sink.deliver(&delivery)).await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => st.finish(ctx, true).await,
            Err(e) => st.fail(ctx, e).await,
        }
    }
}

#[async_trait]
impl Strategy for SequenceWindowStrategy {
    fn kind(&self) -> StrategyKind {
        StrategyKind::SequenceWindow
    }

    async fn run(&self, ctx: &SyncContext) -> Result<RunReport> {
        let span = tracing::info_span!("sync_run", sync = %ctx.sync, strategy = "sequence_window");
        async {
            let mut st = RunState::start(ctx, StrategyKind::SequenceWindow).await?;
            match self.run_inner(ctx, &mut st).await {
                Ok(complete) => st.finish(ctx, complete).await,
                Err(e) => st.fail(ctx, e).await,
            }
        }
        .instrument(span)
        .await
    }
}

/// The checkpoint delta that names `window` in the ledger and in deliveries.
fn window_delta(window: Window) -> CheckpointDelta {
    CheckpointDelta {
        from: Position::Sequence(window.low),
        to: Position::Sequence(window.high),
    }
}

/// The ids among `ids` that no row of `rows` carries: the deletes of a window.
fn missing(ids: &[Key], rows: &[crate::record::Row], schema: &StreamSchema) -> Vec<Key> {
    let present: BTreeSet<Key> = rows.iter().map(|r| r.key(schema)).collect();
    ids.iter()
        .filter(|k| !present.contains(k))
        .cloned()
        .collect()
}

/// Gaps and overlaps among the committed windows of a ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryReport {
    /// Committed windows in order.
    pub windows: Vec<Window>,
    /// Ranges no committed window covers, between the first and the last.
    pub gaps: Vec<Window>,
    /// Pairs of committed windows that overlap.
    pub overlaps: Vec<(Window, Window)>,
}

impl HistoryReport {
    /// True when the history is contiguous.
    pub fn is_contiguous(&self) -> bool {
        self.gaps.is_empty() && self.overlaps.is_empty()
    }
}

/// Checks the `committed` sequence windows of a ledger for gaps and overlaps (replayed and
/// delivered rows are ignored). Rows with non-sequence positions are an error.
pub fn check_history(ledger: &[LedgerEntry]) -> Result<HistoryReport> {
    let mut windows = Vec::new();
    for e in ledger.iter().filter(|e| {
        e.status == LedgerStatus::Committed && e.strategy == StrategyKind::SequenceWindow
    }) {
        let w = Window::new(seq_of(&e.low)?, seq_of(&e.high)?)?;
        if !w.is_empty() {
            windows.push(w);
        }
    }
    windows.sort_by_key(|w| (w.low, w.high));
    let mut report = HistoryReport {
        windows: windows.clone(),
        ..HistoryReport::default()
    };
    for pair in windows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.low > a.high {
            report.gaps.push(Window {
                low: a.high,
                high: b.low,
            });
        } else if b.low < a.high {
            report.overlaps.push((a, b));
        }
    }
    Ok(report)
}
