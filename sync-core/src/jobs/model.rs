//! The data of the job queue: integrations, job keys and scopes, jobs and their statuses.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::jobs::schedule::Schedule;
use crate::position::Window;
use crate::strategy::StrategyKind;

/// The longest provider, tenant or stream name a queue accepts.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a provider, tenant or stream name: 1 to [`MAX_NAME_LEN`] bytes of letters, digits,
/// `_`, `-`, `.` and `:`. `/` is excluded because it separates the parts of a sync name.
pub fn check_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{what} must be 1 to {MAX_NAME_LEN} characters of letters, digits, '_', '-', '.' or ':'"
            ),
        )
        .with_context(what, name.chars().take(MAX_NAME_LEN).collect::<String>()))
    }
}

/// What a job syncs: one stream of one tenant's integration with one provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobKey {
    /// The provider (`square`, `oracle`, ...).
    pub provider: String,
    /// The tenant or venue.
    pub tenant: String,
    /// The stream.
    pub stream: String,
}

impl JobKey {
    /// A key; every part is checked with [`check_name`].
    pub fn new(
        provider: impl Into<String>,
        tenant: impl Into<String>,
        stream: impl Into<String>,
    ) -> Result<Self> {
        let key = JobKey {
            provider: provider.into(),
            tenant: tenant.into(),
            stream: stream.into(),
        };
        check_name("provider", &key.provider)?;
        check_name("tenant", &key.tenant)?;
        check_name("stream", &key.stream)?;
        Ok(key)
    }

    /// The checkpoint key of the stream: `provider/tenant/stream`.
    pub fn sync_name(&self) -> String {
        format!("{}/{}/{}", self.provider, self.tenant, self.stream)
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.tenant, self.stream)
    }
}

/// The identifier a queue gives a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker (from `next_run_at` on).
    Pending,
    /// Claimed by a worker that holds its lease.
    Processing,
    /// Finished; its run's report is in `summary`.
    Completed,
    /// Gave up: a permanent error, or `max_attempts` attempts failed or died.
    Failed,
    /// Held by a pause; `resume` makes it pending again.
    Paused,
    /// Stopped by request before it finished; a new trigger starts a new job.
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Paused,
        JobStatus::Cancelled,
    ];

    /// The stable lowercase name stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Paused => "paused",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// True for pending, processing and paused: a key has at most one open job.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            JobStatus::Pending | JobStatus::Processing | JobStatus::Paused
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::new(ErrorKind::InvalidInput, "unknown job status").with_context("status", s)
            })
    }
}

/// What a job does when it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobAction {
    /// A run of the stream's strategy (`None`: the integration's), resuming its checkpoint.
    Sync {
        /// Overrides the integration's strategy (a foundation full sync, say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strategy: Option<StrategyKind>,
    },
    /// Applies a past window of the sequence-window strategy again.
    Replay {
        /// The window, as in the ledger.
        window: Window,
    },
}

impl Default for JobAction {
    fn default() -> Self {
        JobAction::Sync { strategy: None }
    }
}

/// What a stop request asks of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopIntent {
    /// End it: pending becomes cancelled; processing stops gracefully, then cancelled.
    Cancel,
    /// Hold it: pending becomes paused; processing stops gracefully, then paused.
    Pause,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What it syncs.
    pub key: JobKey,
    /// What it does.
    pub action: JobAction,
    /// Where it is.
    pub status: JobStatus,
    /// Higher runs first among due jobs.
    pub priority: i32,
    /// Claims so far (a claim counts as an attempt, so a worker that dies counts too).
    pub attempts: u32,
    /// After this many attempts a failure or a lost worker makes it failed.
    pub max_attempts: u32,
    /// Not claimed before this time.
    pub next_run_at: DateTime<Utc>,
    /// The trigger's idempotency key.
    pub idempotency_key: Option<String>,
    /// The last error, with secrets scrubbed ([`scrub_secrets`](crate::jobs::scrub_secrets)).
    pub last_error: Option<String>,
    /// The worker holding the lease (processing only).
    pub lease_owner: Option<String>,
    /// When the lease expires unless heartbeated (processing only).
    pub lease_until: Option<DateTime<Utc>>,
    /// Incremented by every claim; heartbeat and finish must present the current one.
    pub fence: u64,
    /// A stop or pause asked of the processing job, seen by its worker's next heartbeat.
    pub stop_requested: Option<StopIntent>,
    /// The last run's report as JSON (`rows_written`, `position`, ...).
    pub summary: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed, failed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A request to enqueue one job.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueRequest {
    /// What it syncs.
    pub key: JobKey,
    /// What it does.
    pub action: JobAction,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts before it fails for good (at least 1).
    pub max_attempts: u32,
    /// Not before this time (`None`: now).
    pub run_at: Option<DateTime<Utc>>,
    /// A request carrying a key seen before returns the job that key created.
    pub idempotency_key: Option<String>,
}

impl EnqueueRequest {
    /// A sync of `key` now, priority 0, 3 attempts, no idempotency key.
    pub fn sync(key: JobKey) -> Self {
        EnqueueRequest {
            key,
            action: JobAction::default(),
            priority: 0,
            max_attempts: 3,
            run_at: None,
            idempotency_key: None,
        }
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

    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the attempts before the job fails for good.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the earliest run time.
    pub fn with_run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Checks the key parts, the attempts and the idempotency key (1 to 200 bytes).
    pub fn validate(&self) -> Result<()> {
        check_name("provider", &self.key.provider)?;
        check_name("tenant", &self.key.tenant)?;
        check_name("stream", &self.key.stream)?;
        if self.max_attempts == 0 || self.max_attempts > 1000 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "max_attempts must be between 1 and 1000",
            ));
        }
        if let Some(k) = &self.idempotency_key {
            if k.is_empty() || k.len() > 200 {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "an idempotency key must be 1 to 200 bytes",
                ));
            }
        }
        Ok(())
    }
}

/// What `enqueue` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    /// The job: the new one, the one the idempotency key created, or the key's open job.
    pub job: Job,
    /// True when this call created it.
    pub created: bool,
}

/// Which jobs an operation touches: every part that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobScope {
    /// One provider.
    pub provider: Option<String>,
    /// One tenant.
    pub tenant: Option<String>,
    /// One stream.
    pub stream: Option<String>,
    /// One job.
    pub job: Option<JobId>,
}

impl JobScope {
    /// Every job.
    pub fn all() -> Self {
        JobScope::default()
    }

    /// The jobs of one provider.
    pub fn provider(provider: impl Into<String>) -> Self {
        JobScope {
            provider: Some(provider.into()),
            ..JobScope::default()
        }
    }

    /// Narrows to a tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Narrows to a stream.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// Narrows to one job.
    pub fn job(mut self, id: JobId) -> Self {
        self.job = Some(id);
        self
    }

    /// The scope of exactly one key.
    pub fn of_key(key: &JobKey) -> Self {
        JobScope::provider(&key.provider)
            .tenant(&key.tenant)
            .stream(&key.stream)
    }

    /// True when `job` is in the scope.
    pub fn matches(&self, job: &Job) -> bool {
        self.covers(&job.key) && self.job.map_or(true, |id| id == job.id)
    }

    /// True when every job of `key` is in the scope, ignoring the job id part.
    pub fn covers(&self, key: &JobKey) -> bool {
        self.provider.as_ref().map_or(true, |p| *p == key.provider)
            && self.tenant.as_ref().map_or(true, |t| *t == key.tenant)
            && self.stream.as_ref().map_or(true, |s| *s == key.stream)
    }

    /// True when this scope covers every key `narrower` covers (job ids ignored).
    pub fn contains(&self, narrower: &JobScope) -> bool {
        fn part(wide: &Option<String>, narrow: &Option<String>) -> bool {
            wide.is_none() || wide == narrow
        }
        part(&self.provider, &narrower.provider)
            && part(&self.tenant, &narrower.tenant)
            && part(&self.stream, &narrower.stream)
    }
}

/// A query of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    /// Which jobs.
    pub scope: JobScope,
    /// Only these statuses (empty: all).
    pub statuses: Vec<JobStatus>,
    /// At most this many.
    pub limit: usize,
}

impl JobFilter {
    /// The newest `limit` jobs of `scope`, any status.
    pub fn new(scope: JobScope, limit: usize) -> Self {
        JobFilter {
            scope,
            statuses: vec![],
            limit,
        }
    }

    /// Only jobs with one of `statuses`.
    pub fn with_statuses(mut self, statuses: impl IntoIterator<Item = JobStatus>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// True when `job` passes the filter (the limit aside).
    pub fn matches(&self, job: &Job) -> bool {
        self.scope.matches(job) && (self.statuses.is_empty() || self.statuses.contains(&job.status))
    }
}

/// One tenant's integration with one provider: the streams it syncs and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// The provider.
    pub provider: String,
    /// The tenant or venue.
    pub tenant: String,
    /// A disabled integration accepts no triggers and is never scheduled.
    pub enabled: bool,
    /// When the workers enqueue its streams by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// The name under which the embedding service finds the credentials (a secret-store
    /// path, an environment variable); never the secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<String>,
    /// The strategy its sync jobs run.
    pub strategy: StrategyKind,
    /// The streams it syncs.
    pub streams: Vec<String>,
    /// Attempts before a job fails for good.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The priority of its jobs.
    #[serde(default)]
    pub priority: i32,
    /// Provider-specific settings the runner reads (page size, location ids, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

fn default_max_attempts() -> u32 {
    3
}

impl Integration {
    /// An enabled integration without schedule, credentials or settings.
    pub fn new(
        provider: impl Into<String>,
        tenant: impl Into<String>,
        strategy: StrategyKind,
        streams: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Integration {
            provider: provider.into(),
            tenant: tenant.into(),
            enabled: true,
            schedule: None,
            credentials_ref: None,
            strategy,
            streams: streams.into_iter().map(Into::into).collect(),
            max_attempts: default_max_attempts(),
            priority: 0,
            settings: serde_json::Value::Null,
        }
    }

    /// Sets the schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Checks names, streams (at least one, no duplicates) and attempts.
    pub fn validate(&self) -> Result<()> {
        check_name("provider", &self.provider)?;
        check_name("tenant", &self.tenant)?;
        if self.streams.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "an integration needs at least one stream",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.streams {
            check_name("stream", s)?;
            if !seen.insert(s) {
                return Err(Error::new(ErrorKind::InvalidInput, "duplicate stream")
                    .with_context("stream", s));
            }
        }
        if self.max_attempts == 0 || self.max_attempts > 1000 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "max_attempts must be between 1 and 1000",
            ));
        }
        Ok(())
    }

    /// The key of one of its streams.
    pub fn key(&self, stream: &str) -> JobKey {
        JobKey {
            provider: self.provider.clone(),
            tenant: self.tenant.clone(),
            stream: stream.to_string(),
        }
    }
}

/// What a finished attempt reports to the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// The run ended (complete, or at a page limit); `summary` is its report.
    Completed {
        /// The report as JSON.
        summary: serde_json::Value,
    },
    /// The run stopped on a stop request; the status becomes cancelled or paused.
    Stopped {
        /// The report as JSON.
        summary: serde_json::Value,
    },
    /// The worker shut down and stopped the run gracefully: pending again, due now, and the
    /// attempt is not counted.
    Released {
        /// The report as JSON.
        summary: serde_json::Value,
    },
    /// The run could not start or go on because something it needs is held by another live
    /// holder (an [`ErrorKind::Busy`](crate::ErrorKind::Busy) error: another run's lease on
    /// the sync, a database lock): pending again after `retry_in`, and the attempt is not
    /// counted, since waiting for a holder is no fault of the job. `reason` becomes the job's
    /// last error, so its status says why it waits. A stop request turns it into paused or
    /// cancelled, as for [`JobOutcome::Released`].
    Deferred {
        /// Why the job waits (scrubbed again by the queue).
        reason: String,
        /// How long it waits before it is due again.
        retry_in: std::time::Duration,
    },
    /// The attempt failed.
    Failed {
        /// The error text (scrubbed again by the queue).
        error: String,
        /// `Some(delay)`: pending again after `delay` if attempts remain; `None`: failed now.
        retry_in: Option<std::time::Duration>,
    },
}
