//! Incremental strategy: by timestamp, version or an API's `modifiedSince`.
//!
//! Each run reads records with `cursor >= checkpoint cursor - lookback` up to an upper bound
//! pinned at run start (`source high watermark - settle_lag`). The checkpoint is a
//! (cursor, key) pair: records at the boundary value whose key is at or below the
//! checkpoint key are skipped, so ties are neither lost nor read twice, in constant-size
//! state. Sources ordered by (cursor, key) promote and checkpoint after every page; unordered
//! sources make the whole run one window, committed at the end.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use futures::future::OptionFuture;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{
    tagged_params, while_fetching, RunReport, RunState, Strategy, StrategyKind, SyncContext,
};
use crate::checkpoint::{CheckpointState, LedgerStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::position::{CheckpointDelta, CursorKey, Position};
use crate::progress::ProgressEvent;
use crate::record::{RecordBatch, Row};
use crate::schema::{ColumnType, StreamSchema};
use crate::source::{Page, PageRequest, PageSelector, SourceOrdering};
use crate::stager::{params_from, params_of, PromoteMode, StagingRun, ValidationRules};
use crate::value::Value;

/// What to do with a record whose cursor value is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingCursorPolicy {
    /// Quarantine it with the reason "missing cursor value" and go on.
    #[default]
    Quarantine,
    /// Fail the run before staging the page.
    Fail,
}

/// Configuration of an incremental sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalConfig {
    /// The stream; its schema needs exactly one cursor column of type timestamp or integer.
    pub stream: String,
    /// Records per page requested.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Re-read this far behind the checkpoint each run, in cursor units (milliseconds for
    /// timestamps, versions for integers). Re-read rows are absorbed by the keyed upsert.
    #[serde(default)]
    pub lookback: i64,
    /// Records become visible in the source strictly within this lag (cursor units); the
    /// upper bound of a run is the source's high watermark (or the clock for timestamps)
    /// minus the lag.
    #[serde(default)]
    pub settle_lag: i64,
    /// Records without a cursor value.
    #[serde(default)]
    pub missing_cursor: MissingCursorPolicy,
    /// Pages staged per promotion of a source ordered by (cursor, key): each promotion is one
    /// durable commit with its checkpoint and ledger row, so more pages per window means
    /// fewer commits (and a crash re-reads at most this many pages). The last page, a page
    /// limit and a stop request promote at once.
    #[serde(default = "default_pages_per_window")]
    pub pages_per_window: u32,
}

fn default_page_size() -> u32 {
    1000
}

fn default_pages_per_window() -> u32 {
    1
}

impl IncrementalConfig {
    /// An incremental sync of `stream` without lookback or settle lag.
    pub fn new(stream: impl Into<String>) -> Self {
        IncrementalConfig {
            stream: stream.into(),
            page_size: default_page_size(),
            lookback: 0,
            settle_lag: 0,
            missing_cursor: MissingCursorPolicy::default(),
            pages_per_window: default_pages_per_window(),
        }
    }
}

/// The incremental strategy.
#[derive(Debug, Clone)]
pub struct IncrementalStrategy {
    config: IncrementalConfig,
}

/// Parameters pinned when a staging run begins.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WindowParams {
    until: Option<Value>,
    ordered: bool,
    /// Page numbers depend on the page size: a resumed fill keeps the one it began with.
    limit: u32,
}

/// Fill progress of an unordered window, staged with each page.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UnorderedFill {
    next: Option<PageSelector>,
    read: u64,
}

impl IncrementalStrategy {
    /// An incremental strategy; fails on a zero page size or negative lookback or lag.
    pub fn new(config: IncrementalConfig) -> Result<Self> {
        if config.page_size == 0
            || config.pages_per_window == 0
            || config.lookback < 0
            || config.settle_lag < 0
        {
            return Err(Error::config(
                "page_size and pages_per_window must be positive and lookback and settle_lag not negative",
            ));
        }
        Ok(IncrementalStrategy { config })
    }

    fn cursor_column(schema: &StreamSchema) -> Result<(usize, ColumnType)> {
        match schema.cursor() {
            [c] if matches!(
                schema.columns()[*c].ty,
                ColumnType::Timestamp | ColumnType::Integer
            ) =>
            {
                Ok((*c, schema.columns()[*c].ty))
            }
            _ => Err(Error::config(
                "incremental sync needs exactly one timestamp or integer cursor column",
            )
            .with_context("stream", schema.name())),
        }
    }

    /// `value - amount` in cursor units.
    fn minus(value: &Value, amount: i64) -> Value {
        match value {
            Value::Timestamp(t) => Value::Timestamp(*t - chrono::Duration::milliseconds(amount)),
            Value::Integer(i) => Value::Integer(i.saturating_sub(amount)),
            other => other.clone(),
        }
    }

    async fn upper_bound(&self, ctx: &SyncContext, ty: ColumnType) -> Result<Option<Value>> {
        let hwm = ctx.source.high_watermark(&self.config.stream).await?;
        Ok(match (hwm.and_then(|v| v.into_iter().next()), ty) {
            (Some(v), _) => Some(Self::minus(&v, self.config.settle_lag)),
            (None, ColumnType::Timestamp) => Some(Self::minus(
                &Value::Timestamp(Utc::now()),
                self.config.settle_lag,
            )),
            (None, _) => None,
        })
    }

    async fn run_inner(&self, ctx: &SyncContext, st: &mut RunState) -> Result<bool> {
        let cfg = &self.config;
        let schema = ctx.source.schema(&cfg.stream)?;
        let (cursor_col, cursor_ty) = Self::cursor_column(&schema)?;
        let ordered = ctx.source.capabilities().ordering == SourceOrdering::ByCursorThenKey;
        let fresh_until = self.upper_bound(ctx, cursor_ty).await?;
        if !ordered && fresh_until.is_none() {
            return Err(Error::unsupported(
                ctx.source.name(),
                "incremental sync of an unordered source without a high watermark",
            ));
        }
        ctx.stager.ensure_stream(&schema).await?;
        let rules = ValidationRules {
            require: vec![cursor_col],
            require_reason: Some("missing cursor value".into()),
            rules: Vec::new(),
        };
        let fresh = WindowParams {
            until: fresh_until.clone(),
            ordered,
            limit: ctx.source.capabilities().clamp_page_size(cfg.page_size),
        };
        let mut run = st
            .open_run(ctx, &schema, StrategyKind::Incremental, params_of(&fresh))
            .await?;
        let pinned: Option<WindowParams> = if run.resumed {
            params_from(&run).ok()
        } else {
            None
        };
        let mut pos = st.position();
        if run.resumed {
            match &pinned {
                // An unordered window resumes its fill with the upper bound it began with.
                Some(p) if !ordered && !p.ordered && matches!(run.progress, Position::Token(_)) => {
                }
                Some(p) if ordered && p.ordered && run.staged_rows > 0 && run.progress != pos => {
                    // Promote what the interrupted run staged but did not commit.
                    let delta = CheckpointDelta::new(pos.clone(), run.progress.clone())?;
                    self.promote(ctx, st, &run, &rules, delta, 0, Instant::now(), false)
                        .await?;
                    pos = run.progress.clone();
                }
                // Begun again now, so with this run's bounds and page size: a fill that
                // another interruption stops resumes with the ones it was read with.
                _ => {
                    let params = tagged_params(StrategyKind::Incremental, params_of(&fresh));
                    run = st.restart_run(ctx, &run, params).await?;
                }
            }
        }
        if ordered {
            let since = self.since(&pos)?;
            return self
                .run_ordered(ctx, st, &schema, &run, &rules, pos, since, fresh_until)
                .await;
        }
        if let Some(p) =
            pinned.filter(|_| run.resumed && matches!(run.progress, Position::Token(_)))
        {
            // Finish the interrupted window with the bound it began with, then sync up to now.
            let since = self.since(&pos)?;
            if !self
                .run_unordered(ctx, st, &schema, &run, &rules, pos, since, &p)
                .await?
            {
                return Ok(false);
            }
            pos = st.position();
            run = st
                .open_run(ctx, &schema, StrategyKind::Incremental, params_of(&fresh))
                .await?;
        }
        let since = self.since(&pos)?;
        self.run_unordered(ctx, st, &schema, &run, &rules, pos, since, &fresh)
            .await
    }

    /// The inclusive lower bound of a run from the checkpoint, lookback applied.
    fn since(&self, pos: &Position) -> Result<Option<Vec<Value>>> {
        match pos {
            Position::Start => Ok(None),
            Position::CursorKey(ck) if ck.cursor.len() == 1 => {
                Ok(Some(vec![Self::minus(&ck.cursor[0], self.config.lookback)]))
            }
            other => Err(Error::new(
                ErrorKind::CheckpointDelta,
                "incremental checkpoint has the wrong kind",
            )
            .with_context("position", other)),
        }
    }

    /// Ordered by (cursor, key): promote and checkpoint after every `pages_per_window` pages
    /// (and the last one). The next request is
    /// anchored on the last record seen (keyset `After` when the source serves it, else the
    /// cursor value with already-seen ties skipped), never on an offset that records moving
    /// to the end would shift; only inside a run of ties longer than a page does it follow the
    /// source's own `next`.
    #[allow(clippy::too_many_arguments)]
    async fn run_ordered(
        &self,
        ctx: &SyncContext,
        st: &mut RunState,
        schema: &Arc<StreamSchema>,
        run: &StagingRun,
        rules: &ValidationRules,
        mut pos: Position,
        since: Option<Vec<Value>>,
        until: Option<Value>,
    ) -> Result<bool> {
        let caps = ctx.source.capabilities();
        let limit = caps.clamp_page_size(self.config.page_size);
        let until_bound = until.clone().map(|u| vec![u]);
        let cursor_col = schema.cursor()[0];
        let mut staged_at = run.progress.clone();
        let (mut request_since, mut selector) = (since, PageSelector::First);
        let mut anchor: Option<CursorKey> = None;
        // The greatest (cursor, key) of the page before, and whether the page in hand is the
        // first of a request anchored on a cursor value (the run's first request, or one made
        // after the anchor moved).
        let mut previous_last: Option<CursorKey> = None;
        let mut anchored_first = true;
        let mut no_cursor_seen = std::collections::BTreeSet::new();
        let mut rows_staged = 0;
        let request = |selector: &PageSelector, since: &Option<Vec<Value>>| PageRequest {
            stream: self.config.stream.clone(),
            selector: selector.clone(),
            since: since.clone(),
            until: until_bound.clone(),
            limit,
        };
        let fetcher = st.fetcher(ctx);
        // The page of the next request, fetched while the page before it was promoted.
        let mut ahead: Option<Page> = None;
        // The window being staged: its start position, pages, records read and start time.
        let per_window = self.config.pages_per_window.max(1);
        let mut promoted = pos.clone();
        let (mut window_pages, mut window_read) = (0u32, 0u64);
        let mut window_started = Instant::now();
        loop {
            if window_pages == 0 {
                // The window's duration in its ledger row: from taking its first page to its
                // commit.
                window_started = Instant::now();
            }
            let page = match ahead.take() {
                Some(page) => page,
                None => {
                    if st.page_limit_reached(ctx) {
                        return Ok(false);
                    }
                    let fetched = fetcher
                        .fetch(&request(&selector, &request_since))
                        .instrument(tracing::debug_span!("page", selector = ?selector))
                        .await?;
                    st.count(ctx, fetched)
                }
            };
            let read = page.rows.len() as u64;
            let page_last = page
                .rows
                .iter()
                .filter(|r| !r.get(cursor_col).is_null())
                .max_by(|a, b| {
                    a.compare_cursor_key_row(b, schema)
                        .unwrap_or(Ordering::Equal)
                })
                .map(|r| r.cursor_key(schema));
            // A page of nothing but records this run has seen or that are at or before the
            // checkpoint, served by an anchored request or further along than the page before:
            // the way back into a run of ties, which a source without keyset paging serves from
            // its first record again. It does not count toward the page limit, or a run of
            // ties longer than the limit would be re-read by every run and never passed. The
            // way back is finite: the anchor only moves forward, and a source serving one
            // page over and over is not further along, so such pages count.
            let seen = |r: &Row| {
                let at_or_before =
                    |ck: &CursorKey| r.compare_cursor_key(schema, ck) != Some(Ordering::Greater);
                !r.get(cursor_col).is_null()
                    && (anchor.as_ref().is_some_and(at_or_before)
                        || (self.config.lookback == 0
                            && matches!(&pos, Position::CursorKey(ck) if at_or_before(ck))))
            };
            let further = match (&previous_last, &page_last) {
                (Some(p), Some(l)) => l.compare(p) == Some(Ordering::Greater),
                _ => false,
            };
            if page.next.is_some()
                && (anchored_first || further)
                && !page.rows.is_empty()
                && page.rows.iter().all(seen)
            {
                st.exempt_page();
            }
            previous_last = page_last.clone();
            anchored_first = false;
            // Rows already seen in this run (ties re-read by an anchored request) are skipped;
            // a row without a cursor value is taken once, wherever it appears (to quarantine).
            let unseen: Vec<Row> = page
                .rows
                .into_iter()
                .filter(|r| {
                    if r.get(cursor_col).is_null() {
                        return no_cursor_seen.insert(r.key(schema));
                    }
                    anchor.as_ref().map_or(true, |a| {
                        r.compare_cursor_key(schema, a) == Some(Ordering::Greater)
                    })
                })
                .collect();
            let (rows, page_max) = self.filter(schema, cursor_col, &pos, until.as_ref(), unseen)?;
            let new_pos = match page_max {
                Some(ck)
                    if pos.compare(&Position::CursorKey(ck.clone())) == Some(Ordering::Less) =>
                {
                    Position::CursorKey(ck)
                }
                _ => pos.clone(),
            };
            // The next request depends on this page only, not on its promotion: anchor it now.
            let last_page = page.next.is_none();
            if let Some(next) = page.next {
                let progressed = match (&anchor, &page_last) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(a), Some(l)) => l.compare(a) == Some(Ordering::Greater),
                };
                if progressed {
                    let a = page_last.expect("progress means a last record");
                    request_since = Some(a.cursor.clone());
                    selector = if caps.keyset {
                        PageSelector::After(a.clone())
                    } else {
                        anchored_first = true;
                        PageSelector::First
                    };
                    anchor = Some(a);
                } else {
                    selector = next;
                }
            }
            // Fetch the next page while this one is staged (and promoted), unless this is the
            // last page or the page limit stops the run first. A run that stops promotes what
            // it staged first, so it never returns with a window half-committed.
            let stopping = st.page_limit_reached(ctx);
            let prefetch = (!last_page && !stopping)
                .then(|| fetcher.fetch_owned(request(&selector, &request_since)));
            window_pages += 1;
            window_read += read;
            let promote_now = last_page || stopping || window_pages >= per_window;
            let stage_page = !rows.is_empty() || new_pos != pos;
            let fetched = if stage_page || (promote_now && promoted != pos) {
                let batch = if stage_page {
                    rows_staged += rows.len() as u64;
                    let staged_delta = CheckpointDelta {
                        from: staged_at.clone(),
                        to: new_pos.clone(),
                    };
                    Some(RecordBatch::new(schema.clone(), rows, staged_delta)?)
                } else {
                    None
                };
                let delta = CheckpointDelta::new(promoted.clone(), new_pos.clone())?;
                let window = async {
                    if let Some(batch) = batch {
                        staged_at = ctx.stager.stage(run, batch).await?;
                        ctx.progress.emit(ProgressEvent::Staged { rows_staged });
                    }
                    if promote_now {
                        self.promote(
                            ctx,
                            st,
                            run,
                            rules,
                            delta,
                            window_read,
                            window_started,
                            false,
                        )
                        .instrument(tracing::info_span!("batch", high = %new_pos))
                        .await?;
                    }
                    Ok(())
                };
                let ((), fetched) = while_fetching(window, prefetch).await?;
                pos = new_pos;
                fetched
            } else {
                OptionFuture::from(prefetch).await
            };
            if promote_now {
                promoted = pos.clone();
                (window_pages, window_read) = (0, 0);
            }
            if last_page {
                break;
            }
            ahead = fetched.transpose()?.map(|f| st.count(ctx, f));
        }
        ctx.stager.abort(run).await?;
        Ok(true)
    }

    /// Unordered: the run is one window up to the pinned upper bound. Pages are staged with
    /// their fill progress, so a run stopped by a limit or a crash resumes the fill; the
    /// window is promoted once at the end.
    #[allow(clippy::too_many_arguments)]
    async fn run_unordered(
        &self,
        ctx: &SyncContext,
        st: &mut RunState,
        schema: &Arc<StreamSchema>,
        run: &StagingRun,
        rules: &ValidationRules,
        pos: Position,
        since: Option<Vec<Value>>,
        params: &WindowParams,
    ) -> Result<bool> {
        let limit = params.limit;
        let until = params.until.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::CorruptState,
                "an unordered window has no pinned upper bound",
            )
        })?;
        let cursor_col = schema.cursor()[0];
        let mut fill = match &run.progress {
            Position::Token(t) => serde_json::from_str(t).map_err(|e| {
                Error::new(
                    ErrorKind::CorruptState,
                    "incremental fill progress is malformed",
                )
                .with_source(e)
            })?,
            _ => UnorderedFill {
                next: Some(PageSelector::First),
                read: 0,
            },
        };
        let mut staged_at = run.progress.clone();
        let started = Instant::now();
        let request = |selector: &PageSelector| PageRequest {
            stream: self.config.stream.clone(),
            selector: selector.clone(),
            since: since.clone(),
            until: Some(vec![until.clone()]),
            limit,
        };
        let fetcher = st.fetcher(ctx);
        // The page at `fill.next`, fetched while the page before it was staged.
        let mut ahead: Option<Page> = None;
        while let Some(selector) = fill.next.take() {
            let page = match ahead.take() {
                Some(page) => page,
                None => {
                    if st.page_limit_reached(ctx) {
                        return Ok(false);
                    }
                    let fetched = fetcher.fetch(&request(&selector)).await?;
                    st.count(ctx, fetched)
                }
            };
            fill.read += page.rows.len() as u64;
            fill.next = page.next;
            let (rows, _) = self.filter(schema, cursor_col, &pos, Some(&until), page.rows)?;
            let delta = CheckpointDelta {
                from: staged_at.clone(),
                to: Position::Token(serde_json::to_string(&fill)?),
            };
            let batch = RecordBatch::new(schema.clone(), rows, delta)?;
            // Fetch the next page while this one is staged, unless the page limit stops first.
            let next = fill.next.as_ref().filter(|_| !st.page_limit_reached(ctx));
            let prefetch = next.map(|next| fetcher.fetch_owned(request(next)));
            let (staged, fetched) = while_fetching(ctx.stager.stage(run, batch), prefetch).await?;
            staged_at = staged;
            ahead = fetched.transpose()?.map(|f| st.count(ctx, f));
        }
        let end = Position::CursorKey(CursorKey {
            cursor: vec![until],
            key: None,
        });
        let end = if pos.compare(&end) == Some(Ordering::Greater) {
            pos.clone()
        } else {
            end
        };
        let delta = CheckpointDelta::new(pos, end)?;
        self.promote(ctx, st, run, rules, delta, fill.read, started, true)
            .await?;
        Ok(true)
    }

    /// Drops rows at or before the checkpoint (without lookback) and above the upper bound;
    /// applies the missing-cursor policy; returns the kept rows and the largest (cursor, key).
    fn filter(
        &self,
        schema: &StreamSchema,
        cursor_col: usize,
        pos: &Position,
        until: Option<&Value>,
        rows: Vec<Row>,
    ) -> Result<(Vec<Row>, Option<CursorKey>)> {
        let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
        // The largest kept row, by index: its (cursor, key) is copied out once, at the end.
        let mut max: Option<usize> = None;
        for row in rows {
            let cursor = row.get(cursor_col);
            if cursor.is_null() {
                if self.config.missing_cursor == MissingCursorPolicy::Fail {
                    return Err(Error::invalid_input("record has no cursor value")
                        .with_context("stream", schema.name())
                        .with_context("key", row.key(schema)));
                }
                kept.push(row);
                continue;
            }
            if until.is_some_and(|u| cursor.compare(u) == Some(Ordering::Greater)) {
                continue;
            }
            let at_or_before = match pos {
                Position::CursorKey(p) => matches!(
                    row.compare_cursor_key(schema, p),
                    Some(Ordering::Less | Ordering::Equal)
                ),
                _ => false,
            };
            if at_or_before && self.config.lookback == 0 {
                continue;
            }
            if max.map_or(true, |m| {
                row.compare_cursor_key_row(&kept[m], schema) == Some(Ordering::Greater)
            }) {
                max = Some(kept.len());
            }
            kept.push(row);
        }
        let max = max.map(|m| kept[m].cursor_key(schema));
        Ok((kept, max))
    }

    #[allow(clippy::too_many_arguments)]
    async fn promote(
        &self,
        ctx: &SyncContext,
        st: &mut RunState,
        run: &StagingRun,
        rules: &ValidationRules,
        delta: CheckpointDelta,
        read: u64,
        started: Instant,
        close: bool,
    ) -> Result<()> {
        let ledger = st.ledger(
            ctx,
            StrategyKind::Incremental,
            &delta,
            read,
            LedgerStatus::Committed,
            started,
        );
        let state = CheckpointState {
            position: delta.to.clone(),
            ..st.state()
        };
        let commit = st.commit_for(ctx, delta, state, Some(ledger));
        st.validate_and_promote(ctx, run, rules, &PromoteMode::Upsert, commit, close)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Strategy for IncrementalStrategy {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Incremental
    }

    async fn run(&self, ctx: &SyncContext) -> Result<RunReport> {
        let span = tracing::info_span!("sync_run", sync = %ctx.sync, strategy = "incremental");
        async {
            let mut st = RunState::start(ctx, StrategyKind::Incremental).await?;
            match self.run_inner(ctx, &mut st).await {
                Ok(complete) => st.finish(ctx, complete).await,
                Err(e) => st.fail(ctx, e).await,
            }
        }
        .instrument(span)
        .await
    }
}
