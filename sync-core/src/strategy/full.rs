//! Full strategy: stage a whole snapshot (or the last N days plus one), recording fill progress
//! with every staged batch of pages so a crash resumes the fill, then validate and promote
//! once, atomically, optionally deleting target rows of the window that the snapshot no longer
//! contains. The fill itself (its progress, pages fetched ahead) is in `fill.rs`.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::fill::{fetch_fill, stage_pages, FillChain, FillProgress};
use super::{
    log_entry, while_fetching, ContinuedPage, Fetched, RunReport, RunState, Strategy, StrategyKind,
    SyncContext,
};
use crate::checkpoint::{CheckpointState, LedgerStatus, LogLevel};
use crate::error::{Error, ErrorKind, Result};
use crate::position::{compare_values, CheckpointDelta, CursorKey, Position};
use crate::progress::ProgressEvent;
use crate::record::RecordBatch;
use crate::schema::{ColumnType, StreamSchema};
use crate::source::{PageRequest, PageSelector, SourceOrdering};
use crate::stager::{params_from, params_of, PromoteMode, ReplaceScope, ValidationRules};
use crate::value::Value;

/// Configuration of a full sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullConfig {
    /// The stream to sync.
    pub stream: String,
    /// Records per page requested.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Only records whose (timestamp) cursor is within the last `window_days` days plus one
    /// day, as the device sync's "last month plus one day"; `None` syncs everything.
    #[serde(default)]
    pub window_days: Option<u32>,
    /// Delete target rows in the window that the snapshot no longer contains.
    #[serde(default = "default_true")]
    pub delete_missing: bool,
    /// Rows staged per store call: pages are gathered until they hold at least this many
    /// rows (or the fill ends, or stops), then staged together with the fill's progress.
    ///
    /// A store pays a transaction, a bulk load and a progress update per call, so staging
    /// every page of 1,000 rows alone spent a fifth of a PostgreSQL fill waiting on those round
    /// trips. While one batch is staged the pages of the next are fetched. A crash re-reads at
    /// most one batch; memory holds about two. `1` stages every page alone.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: u32,
}

fn default_page_size() -> u32 {
    1000
}
fn default_batch_rows() -> u32 {
    FullConfig::DEFAULT_BATCH_ROWS
}
fn default_true() -> bool {
    true
}

impl FullConfig {
    /// The default [`batch_rows`](FullConfig::batch_rows): five pages of 1,000.
    pub const DEFAULT_BATCH_ROWS: u32 = 5000;

    /// A full sync of everything in `stream`, deleting rows the snapshot lacks.
    pub fn new(stream: impl Into<String>) -> Self {
        FullConfig {
            stream: stream.into(),
            page_size: default_page_size(),
            window_days: None,
            delete_missing: true,
            batch_rows: default_batch_rows(),
        }
    }
}

/// Parameters pinned when the fill began, so a resumed fill reads the same window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FullParams {
    since: Option<Vec<Value>>,
    /// The cursor column `since` applies to: the delete scope of a windowed fill.
    #[serde(default)]
    scope_column: Option<usize>,
    started_at: DateTime<Utc>,
    /// Page numbers depend on the page size: a resumed fill keeps the one it began with.
    limit: u32,
    /// The source's high watermark when the fill began (or the clock for a timestamp cursor):
    /// the checkpoint never passes it, so records changed during the fill are read by the
    /// incremental syncs that follow.
    #[serde(default)]
    high: Option<Vec<Value>>,
}

/// Fills restarted in one run because the source shifted, before the run settles for a
/// snapshot that deletes nothing.
const MAX_FILL_RESTARTS: u32 = 3;

/// The full strategy.
#[derive(Debug, Clone)]
pub struct FullStrategy {
    config: FullConfig,
}

impl FullStrategy {
    /// A full strategy; fails on a zero page size or batch size.
    pub fn new(config: FullConfig) -> Result<Self> {
        if config.page_size == 0 {
            return Err(Error::config("page_size must be at least 1"));
        }
        if config.batch_rows == 0 {
            return Err(Error::config("batch_rows must be at least 1"));
        }
        Ok(FullStrategy { config })
    }

    async fn run_inner(&self, ctx: &SyncContext, st: &mut RunState) -> Result<bool> {
        let cfg = &self.config;
        let schema = ctx.source.schema(&cfg.stream)?;
        let fresh_scope = self.scope(&schema)?;
        ctx.stager.ensure_stream(&schema).await?;
        let high = match ctx.source.high_watermark(&cfg.stream).await? {
            Some(h) => Some(h),
            None => match schema.cursor() {
                [c] if schema.columns()[*c].ty == ColumnType::Timestamp => {
                    Some(vec![Value::Timestamp(Utc::now())])
                }
                _ => None,
            },
        };
        let fresh = FullParams {
            since: fresh_scope.as_ref().map(|(_, since)| vec![since.clone()]),
            scope_column: fresh_scope.as_ref().map(|(column, _)| *column),
            started_at: Utc::now(),
            limit: ctx.source.capabilities().clamp_page_size(cfg.page_size),
            high,
        };
        let run = st
            .open_run(ctx, &schema, StrategyKind::Full, params_of(&fresh))
            .await?;
        let params: FullParams = if run.resumed {
            params_from(&run)?
        } else {
            fresh
        };
        // The delete scope is the window the fill reads, pinned when it began (a config that
        // dropped the window meanwhile must not turn it into "delete everything").
        let scope = params
            .scope_column
            .zip(params.since.as_ref().and_then(|s| s.first().cloned()));
        let windowed = params.since.is_some();
        let mut run = run;
        let mut fill = match &run.progress {
            Position::Start => FillProgress::new(),
            Position::Token(t) => serde_json::from_str(t).map_err(|e| {
                Error::new(
                    ErrorKind::CorruptState,
                    "full-sync fill progress is malformed",
                )
                .with_source(e)
            })?,
            other => {
                return Err(Error::new(
                    ErrorKind::CorruptState,
                    "full-sync fill progress has the wrong kind",
                )
                .with_context("progress", other))
            }
        };
        if run.resumed {
            tracing::info!(sync = %ctx.sync, pages = fill.pages, rows = fill.rows, "resuming full-sync fill");
        }
        let limit = params.limit;
        let mut staged_at = run.progress.clone();
        let window_started = Instant::now();
        let mut restarts = 0;
        let request = |selector: &PageSelector| PageRequest {
            stream: cfg.stream.clone(),
            selector: selector.clone(),
            since: params.since.clone(),
            until: None,
            limit,
        };
        let page_by_number = ctx.source.capabilities().ordering != SourceOrdering::ByKey;
        let fetcher = st.fetcher(ctx);
        // Pages fetched while the batch before them was staged, counted when taken.
        let mut ahead: VecDeque<Result<Fetched<ContinuedPage>>> = VecDeque::new();
        // Pages taken but not yet staged, each a batch to the fill state after it.
        let mut pending: Vec<RecordBatch> = Vec::new();
        let batch_rows = cfg.batch_rows as usize;
        // Pages per chain fetched ahead: a batch's worth at the size pages come in.
        let mut chain = (batch_rows as u64).div_ceil(u64::from(limit.max(1))).max(1);
        while let Some(selector) = fill.next.take() {
            let continued = match ahead.pop_front() {
                Some(fetched) => st.count(ctx, fetched?),
                None => {
                    if st.page_limit_reached(ctx) {
                        fill.next = Some(selector);
                        if !pending.is_empty() {
                            stage_pages(ctx, &run, std::mem::take(&mut pending)).await?;
                            ctx.progress.emit(ProgressEvent::Staged {
                                rows_staged: fill.rows,
                            });
                        }
                        return Ok(false);
                    }
                    let fetched =
                        fetch_fill(&fetcher, request(&selector), fill.last_key.clone(), &schema)
                            .instrument(tracing::debug_span!("page", pages = fill.pages))
                            .await?;
                    st.count(ctx, fetched)
                }
            };
            if matches!(selector, PageSelector::Page(_)) {
                fill.unverifiable |= page_by_number;
            }
            fill.drifted |= !continued.continuous;
            let page = continued.page;
            if let (Some(before), Some(now)) = (fill.total, page.total) {
                fill.drifted |= before != now;
            }
            if fill.drifted && restarts < MAX_FILL_RESTARTS {
                // The source shifted under the fill: read it again rather than miss records.
                restarts += 1;
                let message =
                    "the source changed while the fill read it; reading it again".to_string();
                tracing::warn!(sync = %ctx.sync, restarts, "{message}");
                ctx.checkpoints
                    .append_log(&log_entry(
                        ctx,
                        &st.run_id,
                        LogLevel::Warn,
                        "drift",
                        message,
                    ))
                    .await?;
                run = st.restart_run(ctx, &run, run.params.clone()).await?;
                (fill, staged_at) = (FillProgress::new(), run.progress.clone());
                (ahead, pending) = (VecDeque::new(), Vec::new());
                continue;
            }
            fill.total = page.total.or(fill.total);
            if let Some(last) = page.rows.last() {
                fill.last_key = Some(last.key(&schema));
            }
            if !schema.cursor().is_empty() {
                fill.note_max_cursor(&page.rows, &schema);
            }
            fill.next = page.next;
            fill.pages += 1;
            fill.rows += page.rows.len() as u64;
            if !page.rows.is_empty() {
                chain = (batch_rows as u64).div_ceil(page.rows.len() as u64);
            }
            let from = pending
                .last()
                .map_or_else(|| staged_at.clone(), |b| b.delta().to.clone());
            let to = Position::Token(serde_json::to_string(&fill)?);
            pending.push(RecordBatch::new(
                schema.clone(),
                page.rows,
                CheckpointDelta { from, to },
            )?);
            let more_ahead = !ahead.is_empty();
            if pending.iter().map(RecordBatch::len).sum::<usize>() < batch_rows
                && fill.next.is_some()
                && (more_ahead || !st.page_limit_reached(ctx))
            {
                continue;
            }
            let batch = std::mem::take(&mut pending);
            // The next pages are known from this one: fetch a batch's worth of them while
            // this batch is staged, within the page limit.
            let left = ctx
                .limits
                .max_pages
                .map_or(chain, |m| m.saturating_sub(st.report.pages).min(chain));
            let next = fill
                .next
                .as_ref()
                .filter(|_| !more_ahead && left > 0 && !st.page_limit_reached(ctx));
            let prefetch = next.map(|next| {
                FillChain {
                    fetcher: &fetcher,
                    schema: &schema,
                    pages: left,
                }
                .fetch(request, next.clone(), fill.last_key.clone(), &ctx.stop)
                .map(Ok)
            });
            let (staged, fetched) = while_fetching(stage_pages(ctx, &run, batch), prefetch).await?;
            staged_at = staged;
            ctx.progress.emit(ProgressEvent::Staged {
                rows_staged: fill.rows,
            });
            ahead.extend(fetched.transpose()?.into_iter().flatten());
        }

        let old = st.position();
        let reached = match (&fill.max_cursor, &params.high) {
            (Some(c), Some(h)) if compare_values(c, h) == Some(Ordering::Greater) => {
                Some(h.clone())
            }
            (Some(c), _) => Some(c.clone()),
            // Nothing with a cursor was read: the source held nothing up to the fill's start,
            // so the incremental syncs that follow start there (not from the beginning again).
            (None, Some(h)) if fill.rows == 0 => Some(h.clone()),
            (None, _) => None,
        };
        let new = match &reached {
            Some(c) if !schema.cursor().is_empty() => Position::CursorKey(CursorKey {
                cursor: c.clone(),
                key: None,
            }),
            _ if schema.cursor().is_empty() => Position::Timestamp(params.started_at),
            _ => old.clone(),
        };
        // A snapshot never moves the checkpoint backwards: keep the old position when ahead.
        let new = if old.compare(&new) == Some(Ordering::Greater) {
            old.clone()
        } else {
            new
        };
        let delta = CheckpointDelta::new(old.clone(), new.clone())?;
        let deletes_unsafe = fill.drifted || fill.unverifiable;
        if deletes_unsafe && cfg.delete_missing {
            let message = if fill.drifted {
                "the source kept changing while the fill read it; this snapshot deletes nothing"
            } else {
                "pages read by number from a source whose records move cannot show a shift; this snapshot deletes nothing"
            }
            .to_string();
            tracing::warn!(sync = %ctx.sync, "{message}");
            ctx.checkpoints
                .append_log(&log_entry(
                    ctx,
                    &st.run_id,
                    LogLevel::Warn,
                    "drift",
                    message,
                ))
                .await?;
        }
        let mode = match (cfg.delete_missing && !deletes_unsafe, scope) {
            (false, _) => PromoteMode::Upsert,
            (true, None) if windowed => PromoteMode::Upsert,
            (true, None) => PromoteMode::Replace(ReplaceScope::All),
            (true, Some((column, since))) => {
                PromoteMode::Replace(ReplaceScope::Since { column, since })
            }
        };
        let state = CheckpointState {
            position: new,
            ..st.state()
        };
        let ledger = st.ledger(
            ctx,
            StrategyKind::Full,
            &delta,
            fill.rows,
            LedgerStatus::Committed,
            window_started,
        );
        let commit = st.commit_for(ctx, delta.clone(), state, Some(ledger));
        let rules = ValidationRules::default();
        st.validate_and_promote(ctx, &run, &rules, &mode, commit, true)
            .instrument(tracing::info_span!("window", low = %delta.from, high = %delta.to))
            .await?;
        Ok(true)
    }

    /// The replace scope `(cursor column, since)` for a windowed full sync.
    fn scope(&self, schema: &StreamSchema) -> Result<Option<(usize, Value)>> {
        let Some(days) = self.config.window_days else {
            return Ok(None);
        };
        let column = match schema.cursor() {
            [c] if schema.columns()[*c].ty == ColumnType::Timestamp => *c,
            _ => {
                return Err(
                    Error::config("window_days needs exactly one timestamp cursor column")
                        .with_context("stream", schema.name()),
                )
            }
        };
        let since = Utc::now() - chrono::Duration::days(i64::from(days) + 1);
        Ok(Some((column, Value::Timestamp(since))))
    }
}

#[async_trait]
impl Strategy for FullStrategy {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Full
    }

    async fn run(&self, ctx: &SyncContext) -> Result<RunReport> {
        let span = tracing::info_span!("sync_run", sync = %ctx.sync, strategy = "full");
        async {
            let mut st = RunState::start(ctx, StrategyKind::Full).await?;
            match self.run_inner(ctx, &mut st).await {
                Ok(complete) => st.finish(ctx, complete).await,
                Err(e) => st.fail(ctx, e).await,
            }
        }
        .instrument(span)
        .await
    }
}
