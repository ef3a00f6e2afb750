//! `SyncJobs`: the operations of a sync engine over a [`JobQueue`] and the [`Checkpoint`]
//! store its runs commit to. An admin API or a CLI is a thin layer over these calls.

use std::sync::Arc;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, LedgerEntry, SyncLogEntry};
use crate::error::{Error, ErrorKind, Result};
use crate::jobs::model::{
    check_name, EnqueueRequest, Enqueued, Integration, Job, JobAction, JobFilter, JobKey, JobScope,
    JobStatus, StopIntent,
};
use crate::jobs::queue::{JobCounts, JobQueue};
use crate::position::{Position, Window};

/// A request to sync some or all streams of an integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// The provider.
    pub provider: String,
    /// The tenant.
    pub tenant: String,
    /// The streams (`None`: all of the integration's).
    pub streams: Option<Vec<String>>,
    /// What to do (default: a sync with the integration's strategy).
    pub action: JobAction,
    /// Makes the trigger safe to repeat; each stream's job uses `<key>/<stream>`.
    pub idempotency_key: Option<String>,
    /// Overrides the integration's priority.
    pub priority: Option<i32>,
}

impl Trigger {
    /// A sync of every stream of the integration.
    pub fn new(provider: impl Into<String>, tenant: impl Into<String>) -> Self {
        Trigger {
            provider: provider.into(),
            tenant: tenant.into(),
            streams: None,
            action: JobAction::default(),
            idempotency_key: None,
            priority: None,
        }
    }

    /// Only these streams.
    pub fn with_streams(mut self, streams: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.streams = Some(streams.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the action.
    pub fn with_action(mut self, action: JobAction) -> Self {
        self.action = action;
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// The checkpoint of one stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStatus {
    /// The stream's key.
    pub key: JobKey,
    /// The promoted position (`None`: never synced or reset).
    pub position: Option<Position>,
    /// The checkpoint's version (commits so far).
    pub version: Option<u64>,
    /// The last commit.
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What `status` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncStatus {
    /// The integrations in scope.
    pub integrations: Vec<Integration>,
    /// The checkpoint of each of their streams.
    pub streams: Vec<StreamStatus>,
    /// Job counts by status.
    pub counts: JobCounts,
    /// The open jobs (pending, processing, paused), newest first.
    pub open: Vec<Job>,
}

/// What `history` reports for one stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncHistory {
    /// The window ledger, in commit order (the last `limit` rows).
    pub ledger: Vec<LedgerEntry>,
    /// The newest `limit` sync-log entries, oldest first.
    pub log: Vec<SyncLogEntry>,
    /// The newest `limit` jobs.
    pub jobs: Vec<Job>,
}

/// The operations of a sync engine.
#[derive(Debug, Clone)]
pub struct SyncJobs {
    queue: Arc<dyn JobQueue>,
    checkpoints: Arc<dyn Checkpoint>,
}

/// The most open jobs `status` lists.
const STATUS_OPEN_LIMIT: usize = 500;

impl SyncJobs {
    /// Operations over `queue`, with history and resets from `checkpoints` (the store the
    /// runs commit to).
    pub fn new(queue: Arc<dyn JobQueue>, checkpoints: Arc<dyn Checkpoint>) -> Self {
        SyncJobs { queue, checkpoints }
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    /// Inserts or replaces an integration.
    pub async fn put_integration(&self, integration: &Integration) -> Result<()> {
        self.queue.put_integration(integration).await
    }

    /// Enqueues a job per requested stream. The integration must exist and be enabled, and
    /// the streams must be its own; a replay needs exactly one stream. A stream that has an
    /// open job gets that job back (`created: false`).
    pub async fn trigger(&self, trigger: &Trigger) -> Result<Vec<Enqueued>> {
        let integration = self
            .enabled_integration(&trigger.provider, &trigger.tenant)
            .await?;
        let streams = match &trigger.streams {
            None => integration.streams.clone(),
            Some(list) if list.is_empty() => {
                return Err(Error::invalid_input(
                    "streams, when given, must not be empty",
                ))
            }
            Some(list) => {
                for s in list {
                    if !integration.streams.contains(s) {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            "the integration has no such stream",
                        )
                        .with_context("stream", s.chars().take(128).collect::<String>()));
                    }
                }
                list.clone()
            }
        };
        if matches!(trigger.action, JobAction::Replay { .. }) && streams.len() != 1 {
            return Err(Error::invalid_input("a replay names exactly one stream"));
        }
        let mut out = Vec::with_capacity(streams.len());
        for stream in &streams {
            let mut request = EnqueueRequest::sync(integration.key(stream))
                .with_action(trigger.action.clone())
                .with_priority(trigger.priority.unwrap_or(integration.priority))
                .with_max_attempts(integration.max_attempts);
            if let Some(k) = &trigger.idempotency_key {
                request = request.with_idempotency_key(format!("{k}/{stream}"));
            }
            out.push(self.queue.enqueue(&request).await?);
        }
        Ok(out)
    }

    async fn enabled_integration(&self, provider: &str, tenant: &str) -> Result<Integration> {
        check_name("provider", provider)?;
        check_name("tenant", tenant)?;
        let integration = self
            .queue
            .integration(provider, tenant)
            .await?
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "no such integration")
                    .with_context("provider", provider)
                    .with_context("tenant", tenant)
            })?;
        if !integration.enabled {
            return Err(Error::config("the integration is disabled")
                .with_context("provider", provider)
                .with_context("tenant", tenant));
        }
        Ok(integration)
    }

    /// Stops the open jobs of a scope: pending ones are cancelled at once; running ones
    /// finish the batch in flight, commit it with its checkpoint and release the lease.
    pub async fn stop(&self, scope: &JobScope) -> Result<u64> {
        self.queue.request_stop(scope, StopIntent::Cancel).await
    }

    /// Pauses a scope: its pending jobs, the jobs enqueued under it later, and its running
    /// jobs once their batch in flight is committed.
    pub async fn pause(&self, scope: &JobScope) -> Result<u64> {
        self.queue.request_stop(scope, StopIntent::Pause).await
    }

    /// Lifts the pauses a scope contains; its paused jobs continue from their checkpoints.
    pub async fn resume(&self, scope: &JobScope) -> Result<u64> {
        self.queue.resume(scope).await
    }

    /// Requeues failed jobs (all of a scope, or one with [`JobScope::job`]); they continue from
    /// their checkpoints.
    pub async fn retry_failed(&self, scope: &JobScope) -> Result<u64> {
        self.queue.retry_failed(scope).await
    }

    /// Integrations, checkpoints, counts and open jobs of a scope.
    pub async fn status(&self, scope: &JobScope) -> Result<SyncStatus> {
        let integrations: Vec<Integration> = self
            .queue
            .integrations(scope.provider.as_deref())
            .await?
            .into_iter()
            .filter(|i| scope.tenant.as_ref().map_or(true, |t| *t == i.tenant))
            .collect();
        let mut streams = vec![];
        for integration in &integrations {
            for stream in &integration.streams {
                if scope.stream.as_ref().is_some_and(|s| s != stream) {
                    continue;
                }
                let key = integration.key(stream);
                let stored = self.checkpoints.load(&key.sync_name()).await?;
                streams.push(StreamStatus {
                    key,
                    position: stored.as_ref().map(|s| s.state.position.clone()),
                    version: stored.as_ref().map(|s| s.version),
                    updated_at: stored.as_ref().map(|s| s.updated_at),
                });
            }
        }
        let open = self
            .queue
            .jobs(
                &JobFilter::new(scope.clone(), STATUS_OPEN_LIMIT).with_statuses([
                    JobStatus::Pending,
                    JobStatus::Processing,
                    JobStatus::Paused,
                ]),
            )
            .await?;
        Ok(SyncStatus {
            integrations,
            streams,
            counts: self.queue.counts(scope).await?,
            open,
        })
    }

    /// The ledger, the sync log and the jobs of one stream, `limit` of each at most.
    pub async fn history(&self, key: &JobKey, limit: usize) -> Result<SyncHistory> {
        let sync = key.sync_name();
        let mut ledger = self.checkpoints.ledger(&sync).await?;
        ledger.drain(..ledger.len().saturating_sub(limit));
        Ok(SyncHistory {
            ledger,
            log: self.checkpoints.sync_log(&sync, limit).await?,
            jobs: self
                .queue
                .jobs(&JobFilter::new(JobScope::of_key(key), limit))
                .await?,
        })
    }

    /// Enqueues a replay of a window the stream's ledger holds.
    pub async fn replay(&self, key: &JobKey, window: Window) -> Result<Enqueued> {
        let ledger = self.checkpoints.ledger(&key.sync_name()).await?;
        let known = ledger.iter().any(|e| {
            e.low == Position::Sequence(window.low) && e.high == Position::Sequence(window.high)
        });
        if !known {
            return Err(Error::new(
                ErrorKind::NotFound,
                "the stream's ledger has no such window",
            )
            .with_context("window", format!("({}, {}]", window.low, window.high)));
        }
        let mut out = self
            .trigger(
                &Trigger::new(&key.provider, &key.tenant)
                    .with_streams([key.stream.clone()])
                    .with_action(JobAction::Replay { window }),
            )
            .await?;
        Ok(out.remove(0))
    }

    /// Deletes a stream's checkpoint so its next run starts from the beginning (ledger and
    /// log are kept). `confirm` must repeat the stream's sync name (`provider/tenant/stream`);
    /// a stream with a running job is refused with [`ErrorKind::Conflict`].
    pub async fn reset(&self, key: &JobKey, confirm: &str) -> Result<()> {
        let sync = key.sync_name();
        if confirm != sync {
            return Err(Error::invalid_input(
                "a reset must be confirmed with the stream's sync name",
            )
            .with_context("expected", &sync));
        }
        let running = self
            .queue
            .jobs(&JobFilter::new(JobScope::of_key(key), 1).with_statuses([JobStatus::Processing]))
            .await?;
        if !running.is_empty() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "the stream has a running job; stop it first",
            )
            .with_context("job", running[0].id));
        }
        crate::checkpoint::reset_checkpoint(self.checkpoints.as_ref(), &sync).await
    }
}
