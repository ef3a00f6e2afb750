//! Offset strategy: a persisted offset over a stable source order, advanced by the records
//! actually received (servers clamp limits silently), with drift detection.
//!
//! Every page after the first re-reads one record (offset - 1) and checks that it is the last
//! key seen: when records were inserted or deleted before the offset, the check fails and the
//! run fails with [`ErrorKind::Drift`] or restarts the scan from zero, as configured, instead
//! of skipping records silently. A change of the source's total within a run is drift too.
//!
//! One shift no offset reader can see: an insert and a delete before the offset between two
//! pages cancel out (the record before the offset and the total are unchanged), and the
//! inserted record is never read. Sources that offer a cursor or keyset order should use the
//! incremental strategy; a periodic reset and rescan bounds the exposure here.

use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{
    log_entry, while_fetching, ContinuedPage, RunReport, RunState, Strategy, StrategyKind,
    SyncContext,
};
use crate::checkpoint::{CheckpointState, LedgerStatus, LogLevel};
use crate::error::{Error, ErrorKind, Result};
use crate::position::{CheckpointDelta, Position};
use crate::record::{Key, RecordBatch};
use crate::source::{PageRequest, PageSelector, SourceOrdering};
use crate::stager::{PromoteMode, ValidationRules};

/// What to do when the source drifted under the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    /// Fail the run with [`ErrorKind::Drift`]; nothing of the drifted page is committed.
    #[default]
    Fail,
    /// Reset the checkpoint and scan again from offset 0 (keyed upserts absorb re-reads).
    Restart,
}

/// Configuration of an offset sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetConfig {
    /// The stream.
    pub stream: String,
    /// Records per page requested (the seed's batch size).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Drift handling.
    #[serde(default)]
    pub drift: DriftPolicy,
}

fn default_page_size() -> u32 {
    500
}

impl OffsetConfig {
    /// An offset sync of `stream` failing on drift.
    pub fn new(stream: impl Into<String>) -> Self {
        OffsetConfig {
            stream: stream.into(),
            page_size: default_page_size(),
            drift: DriftPolicy::Fail,
        }
    }
}

/// Constant-size extras kept in the checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct OffsetExtra {
    last_key: Option<Key>,
    total: Option<u64>,
    complete: bool,
}

impl OffsetExtra {
    fn from_state(state: &CheckpointState) -> Result<Self> {
        serde_json::from_value(serde_json::Value::Object(state.extra.clone())).map_err(|e| {
            Error::new(
                ErrorKind::CorruptState,
                "offset checkpoint extras are malformed",
            )
            .with_source(e)
        })
    }

    fn into_map(self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self).expect("offset extras serialize") {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a struct serializes to an object"),
        }
    }
}

/// The status operation's answer (as the seed's `status` command).
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetStatus {
    /// Records consumed so far.
    pub offset: u64,
    /// Key of the last record consumed.
    pub last_key: Option<Key>,
    /// The source's total at the last page.
    pub total: Option<u64>,
    /// True when the last run reached the end of the source.
    pub complete: bool,
    /// When the checkpoint was last written.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The offset strategy.
#[derive(Debug, Clone)]
pub struct OffsetStrategy {
    config: OffsetConfig,
}

const MAX_RESTARTS: u32 = 3;

impl OffsetStrategy {
    /// An offset strategy; fails on a zero page size.
    pub fn new(config: OffsetConfig) -> Result<Self> {
        if config.page_size == 0 {
            return Err(Error::config("page_size must be at least 1"));
        }
        Ok(OffsetStrategy { config })
    }

    /// Where the sync stands.
    pub async fn status(&self, ctx: &SyncContext) -> Result<OffsetStatus> {
        let stored = ctx.checkpoints.load(&ctx.sync).await?;
        let state = stored
            .as_ref()
            .map_or_else(|| CheckpointState::at(Position::Start), |s| s.state.clone());
        let extra = OffsetExtra::from_state(&state)?;
        Ok(OffsetStatus {
            offset: offset_of(&state.position)?,
            last_key: extra.last_key,
            total: extra.total,
            complete: extra.complete,
            updated_at: stored.map(|s| s.updated_at),
        })
    }

    /// Starts over from offset 0 on the next run (fences out a running sync).
    pub async fn reset(&self, ctx: &SyncContext) -> Result<()> {
        crate::checkpoint::reset_checkpoint(ctx.checkpoints.as_ref(), &ctx.sync).await?;
        ctx.checkpoints
            .append_log(&log_entry(
                ctx,
                "-",
                LogLevel::Warn,
                "reset",
                "offset reset to 0".into(),
            ))
            .await
    }

    async fn run_inner(&self, ctx: &SyncContext, st: &mut RunState) -> Result<bool> {
        let cfg = &self.config;
        let schema = ctx.source.schema(&cfg.stream)?;
        if ctx.source.capabilities().ordering == SourceOrdering::Unordered {
            return Err(Error::unsupported(
                ctx.source.name(),
                "offset sync of an unordered source",
            ));
        }
        ctx.stager.ensure_stream(&schema).await?;
        let mut run = st
            .open_run(ctx, &schema, StrategyKind::Offset, serde_json::Value::Null)
            .await?;
        if run.resumed {
            // Rows staged but never promoted are fetched again from the committed offset.
            run = st.restart_run(ctx, &run, run.params.clone()).await?;
        }
        let limit = ctx.source.capabilities().clamp_page_size(cfg.page_size);
        let rules = ValidationRules::default();
        let mut staged_at = run.progress.clone();
        let mut extra = OffsetExtra::from_state(&st.state())?;
        let mut offset = offset_of(&st.position())?;
        let mut run_total: Option<u64> = None;
        let mut restarts = 0;
        let request = |offset| PageRequest {
            stream: cfg.stream.clone(),
            selector: PageSelector::Offset(offset),
            since: None,
            until: None,
            limit,
        };
        let fetcher = st.fetcher(ctx);
        // The page at `offset`, fetched while the page before it was staged and promoted.
        let mut ahead: Option<ContinuedPage> = None;
        loop {
            let ContinuedPage { page, continuous } = match ahead.take() {
                Some(continued) => continued,
                None => {
                    if st.page_limit_reached(ctx) {
                        ctx.stager.abort(&run).await?;
                        return Ok(false);
                    }
                    let fetched = fetcher
                        .fetch_continuing(
                            &request(offset),
                            offset,
                            extra.last_key.as_ref(),
                            &schema,
                        )
                        .instrument(tracing::debug_span!("page", offset))
                        .await?;
                    st.count(ctx, fetched)
                }
            };
            let drift = match (run_total, page.total) {
                (Some(before), Some(now)) if before != now => {
                    Some(format!("source total changed from {before} to {now}"))
                }
                _ if !continuous => Some(format!(
                    "the record before offset {offset} is no longer {}",
                    extra
                        .last_key
                        .as_ref()
                        .map_or_else(String::new, ToString::to_string)
                )),
                _ => None,
            };
            if let Some(reason) = drift {
                let e = Error::new(ErrorKind::Drift, reason.clone())
                    .with_context("stream", &cfg.stream);
                if cfg.drift == DriftPolicy::Fail || restarts >= MAX_RESTARTS {
                    return Err(e);
                }
                restarts += 1;
                tracing::warn!(sync = %ctx.sync, %reason, "offset drift; restarting the scan");
                let message = format!("{reason}; restarting from 0");
                ctx.checkpoints
                    .append_log(&log_entry(
                        ctx,
                        &st.run_id,
                        LogLevel::Warn,
                        "drift",
                        message,
                    ))
                    .await?;
                ctx.checkpoints.reset(&ctx.sync, st.fence).await?;
                run = st.restart_run(ctx, &run, run.params.clone()).await?;
                staged_at = run.progress.clone();
                st.stored = None;
                (offset, extra, run_total) = (0, OffsetExtra::default(), None);
                continue;
            }
            run_total = page.total.or(run_total);
            let rows = page.rows;
            let at_end = page.next.is_none();
            if rows.is_empty() && !at_end {
                return Err(Error::new(
                    ErrorKind::Drift,
                    "source returned an empty page before the end",
                )
                .with_context("offset", offset));
            }
            let received = rows.len() as u64;
            let new_offset = offset + received;
            let window_started = Instant::now();
            let from = st.position();
            let to = Position::Offset(new_offset);
            if let Some(last) = rows.last() {
                extra.last_key = Some(last.key(&schema));
            }
            extra.total = page.total;
            extra.complete = at_end;
            let batch = RecordBatch::new(
                schema.clone(),
                rows,
                CheckpointDelta {
                    from: staged_at.clone(),
                    to: to.clone(),
                },
            )?;
            let delta = CheckpointDelta::new(from, to.clone())?;
            let state = CheckpointState {
                position: to,
                delivered: None,
                extra: extra.clone().into_map(),
            };
            // The next offset and the last key are known: fetch the next page while this one
            // is staged and promoted, unless this is the end or the page limit stops the run.
            let prefetch = (!at_end && !st.page_limit_reached(ctx)).then(|| {
                let (req, last_key) = (request(new_offset), extra.last_key.clone());
                let (fetcher, schema) = (&fetcher, &schema);
                async move {
                    fetcher
                        .fetch_continuing(&req, new_offset, last_key.as_ref(), schema)
                        .instrument(tracing::debug_span!("page", offset = new_offset))
                        .await
                }
            });
            let window = async {
                staged_at = ctx.stager.stage(&run, batch).await?;
                let ledger = st.ledger(
                    ctx,
                    StrategyKind::Offset,
                    &delta,
                    received,
                    LedgerStatus::Committed,
                    window_started,
                );
                let commit = st.commit_for(ctx, delta, state, Some(ledger));
                st.validate_and_promote(ctx, &run, &rules, &PromoteMode::Upsert, commit, false)
                    .instrument(tracing::info_span!("batch", offset = new_offset))
                    .await
            };
            let (_, fetched) = while_fetching(window, prefetch).await?;
            offset = new_offset;
            if at_end {
                ctx.stager.abort(&run).await?;
                return Ok(true);
            }
            ahead = fetched.transpose()?.map(|f| st.count(ctx, f));
        }
    }
}

fn offset_of(position: &Position) -> Result<u64> {
    match position {
        Position::Start => Ok(0),
        Position::Offset(o) => Ok(*o),
        other => Err(Error::new(
            ErrorKind::CheckpointDelta,
            "offset checkpoint has the wrong kind",
        )
        .with_context("position", other)),
    }
}

#[async_trait]
impl Strategy for OffsetStrategy {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Offset
    }

    async fn run(&self, ctx: &SyncContext) -> Result<RunReport> {
        let span = tracing::info_span!("sync_run", sync = %ctx.sync, strategy = "offset");
        async {
            let mut st = RunState::start(ctx, StrategyKind::Offset).await?;
            match self.run_inner(ctx, &mut st).await {
                Ok(complete) => st.finish(ctx, complete).await,
                Err(e) => st.fail(ctx, e).await,
            }
        }
        .instrument(span)
        .await
    }
}
