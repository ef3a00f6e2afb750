//! The `JobQueue` trait: the durable queue of sync jobs that workers on many machines share.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::jobs::model::{
    EnqueueRequest, Enqueued, Integration, Job, JobFilter, JobId, JobOutcome, JobScope, JobStatus,
    StopIntent,
};

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// A stop or pause was requested: stop gracefully, then finish with
    /// [`JobOutcome::Stopped`].
    pub stop_requested: Option<StopIntent>,
}

/// Per-status job counts; every status is present, zero included.
pub type JobCounts = BTreeMap<JobStatus, u64>;

/// The durable job queue.
///
/// Times are the queue's clock (the database server's where there is one), so workers on
/// machines whose clocks disagree still agree on leases.
///
/// # Contract
/// - `put_integration` MUST validate ([`Integration::validate`]) and insert or replace the
///   `(provider, tenant)` integration; `integrations` returns them ordered by provider, tenant.
/// - `enqueue` MUST validate the request; a request whose idempotency key was seen before MUST
///   return the job that key created (`created: false`), whatever its status; otherwise, when
///   the key has an open job (pending, processing, paused) it MUST return that job
///   (`created: false`) and remember the idempotency key for it; otherwise it creates a
///   pending job (paused when a pause covers its key, see `pause`). Concurrent calls for one
///   key create at most one open job.
/// - `claim` MUST atomically take the due pending job (`next_run_at <= now`) with the highest
///   priority, then the earliest `next_run_at`, then the lowest id; make it processing with
///   `lease_owner = worker`, `lease_until = now + lease`, `attempts + 1`, `fence + 1`,
///   `started_at = now`; and return it. Two concurrent claims never return the same job.
/// - `heartbeat` MUST extend the lease of a processing job whose fence matches and report a
///   requested stop; for any other fence or status it MUST fail with
///   [`ErrorKind::Fenced`](crate::ErrorKind::Fenced) and change nothing.
/// - `finish` MUST, for a processing job whose fence matches: `Completed` → completed;
///   `Stopped` → paused or cancelled as the request asked (cancelled when none); `Released`
///   → pending, due now, `attempts - 1` (or paused/cancelled when a stop was requested);
///   `Deferred` → as `Released` but due at `now + retry_in`, its reason the last error; `Failed`
///   with `retry_in` and attempts below `max_attempts` → pending at `now + retry_in`, else
///   failed. It clears the lease and the stop request, stores the summary or the scrubbed
///   error ([`scrub_secrets`](crate::jobs::scrub_secrets)), and returns the job. A stale
///   fence MUST give `Fenced` and change nothing.
/// - `request_stop` MUST turn open jobs in scope into: pending or paused → cancelled (intent
///   cancel) or paused (intent pause); processing → processing with `stop_requested` set.
///   With intent pause and a scope without a job id it MUST also record a pause of the scope,
///   so that jobs enqueued later under it start paused and are never claimed. Returns how
///   many jobs it changed.
/// - `resume` MUST delete the recorded pauses the scope contains (none when the scope names
///   a job), and make paused jobs in
///   scope pending (attempts 0, due now) unless a remaining pause covers them. Returns how
///   many jobs it resumed.
/// - `retry_failed` MUST make failed jobs in scope pending (attempts 0, due now, error kept),
///   or paused when a recorded pause covers their key, unless their key has another open
///   job. Returns how many.
/// - `rescue_expired` MUST take every processing job whose lease expired: pending again when
///   attempts remain (its `next_run_at` unchanged: it was due when claimed, so it keeps its
///   place ahead of later work), failed otherwise; a stop request is honoured as if the
///   worker had stopped. Returns the ids it rescued.
/// - `job` returns one job; `jobs` those the filter matches, newest (highest id) first;
///   `counts` every status of the scope's jobs.
/// - `prune` MUST delete completed and cancelled jobs finished at or before `now - older_than`,
///   with the idempotency keys that point to them, and return how many jobs it deleted.
#[async_trait]
pub trait JobQueue: Debug + Send + Sync + 'static {
    /// Inserts or replaces an integration.
    async fn put_integration(&self, integration: &Integration) -> Result<()>;
    /// One integration.
    async fn integration(&self, provider: &str, tenant: &str) -> Result<Option<Integration>>;
    /// The integrations, of one provider or all.
    async fn integrations(&self, provider: Option<&str>) -> Result<Vec<Integration>>;
    /// Enqueues a job (deduplicated by idempotency key and by open job).
    async fn enqueue(&self, request: &EnqueueRequest) -> Result<Enqueued>;
    /// Claims the next due job for `worker`.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>>;
    /// Extends a held lease; reports a requested stop.
    async fn heartbeat(&self, id: JobId, fence: u64, lease: Duration) -> Result<Heartbeat>;
    /// Ends an attempt.
    async fn finish(&self, id: JobId, fence: u64, outcome: &JobOutcome) -> Result<Job>;
    /// Cancels or pauses the open jobs of a scope.
    async fn request_stop(&self, scope: &JobScope, intent: StopIntent) -> Result<u64>;
    /// Lifts pauses and resumes paused jobs.
    async fn resume(&self, scope: &JobScope) -> Result<u64>;
    /// Requeues failed jobs.
    async fn retry_failed(&self, scope: &JobScope) -> Result<u64>;
    /// Requeues or fails jobs whose worker stopped heartbeating.
    async fn rescue_expired(&self) -> Result<Vec<JobId>>;
    /// One job.
    async fn job(&self, id: JobId) -> Result<Option<Job>>;
    /// Jobs matching a filter, newest first.
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;
    /// Job counts by status.
    async fn counts(&self, scope: &JobScope) -> Result<JobCounts>;
    /// Deletes old finished jobs.
    async fn prune(&self, older_than: Duration) -> Result<u64>;
}

/// Every status with a zero count, for implementations to fill.
pub fn zero_counts() -> JobCounts {
    JobStatus::ALL.into_iter().map(|s| (s, 0)).collect()
}

#[async_trait]
impl<T: JobQueue + ?Sized> JobQueue for Arc<T> {
    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        (**self).put_integration(integration).await
    }
    async fn integration(&self, provider: &str, tenant: &str) -> Result<Option<Integration>> {
        (**self).integration(provider, tenant).await
    }
    async fn integrations(&self, provider: Option<&str>) -> Result<Vec<Integration>> {
        (**self).integrations(provider).await
    }
    async fn enqueue(&self, request: &EnqueueRequest) -> Result<Enqueued> {
        (**self).enqueue(request).await
    }
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        (**self).claim(worker, lease).await
    }
    async fn heartbeat(&self, id: JobId, fence: u64, lease: Duration) -> Result<Heartbeat> {
        (**self).heartbeat(id, fence, lease).await
    }
    async fn finish(&self, id: JobId, fence: u64, outcome: &JobOutcome) -> Result<Job> {
        (**self).finish(id, fence, outcome).await
    }
    async fn request_stop(&self, scope: &JobScope, intent: StopIntent) -> Result<u64> {
        (**self).request_stop(scope, intent).await
    }
    async fn resume(&self, scope: &JobScope) -> Result<u64> {
        (**self).resume(scope).await
    }
    async fn retry_failed(&self, scope: &JobScope) -> Result<u64> {
        (**self).retry_failed(scope).await
    }
    async fn rescue_expired(&self) -> Result<Vec<JobId>> {
        (**self).rescue_expired().await
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>> {
        (**self).job(id).await
    }
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        (**self).jobs(filter).await
    }
    async fn counts(&self, scope: &JobScope) -> Result<JobCounts> {
        (**self).counts(scope).await
    }
    async fn prune(&self, older_than: Duration) -> Result<u64> {
        (**self).prune(older_than).await
    }
}
