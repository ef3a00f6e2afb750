//! Sync jobs: integrations per tenant and provider, a durable queue of jobs with leases and
//! fencing, the operations users expect of a sync engine (trigger, stop, pause, resume,
//! status, history, retry, replay, reset), the worker runtime that runs them, and runners
//! for change-queue streams ([`SequenceWindowRunner`]) and for routing by provider
//! ([`RunnerByProvider`]).
//!
//! The queue is a trait ([`JobQueue`]) with a written contract; the stores implement it on
//! their databases (PostgreSQL with `FOR UPDATE SKIP LOCKED`, SQLite with one writer) and
//! [`MemoryJobQueue`](crate::memory::MemoryJobQueue) is the reference. A job's attempt holds
//! a lease with a fencing token; its run's checkpoint fence is issued anew by every run, so
//! when a lease expires and another worker takes the job over, the old worker's promotions
//! and checkpoint writes are rejected with [`ErrorKind::Fenced`](crate::ErrorKind::Fenced).
//!
//! ```
//! use std::sync::Arc;
//! use sync_core::jobs::{Integration, JobScope, JobStatus, SyncJobs, Trigger};
//! use sync_core::memory::{MemoryJobQueue, MemoryStore};
//! use sync_core::StrategyKind;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let jobs = SyncJobs::new(Arc::new(MemoryJobQueue::new()), Arc::new(MemoryStore::new()));
//! jobs.put_integration(&Integration::new("square", "venue-1", StrategyKind::Incremental, ["orders", "payments"])).await?;
//! let enqueued = jobs.trigger(&Trigger::new("square", "venue-1").with_idempotency_key("req-42")).await?;
//! assert_eq!(enqueued.len(), 2);
//! // The same request again changes nothing.
//! let again = jobs.trigger(&Trigger::new("square", "venue-1").with_idempotency_key("req-42")).await?;
//! assert!(again.iter().all(|e| !e.created));
//! let status = jobs.status(&JobScope::provider("square")).await?;
//! assert_eq!(status.counts[&JobStatus::Pending], 2);
//! # Ok::<_, sync_core::Error>(())
//! # }).unwrap();
//! ```

mod attempt;
mod metrics;
mod model;
mod queue;
mod runners;
mod schedule;
mod scrub;
mod service;
mod transition;
mod worker;

pub use attempt::summary;
pub use metrics::WorkerMetrics;
pub use model::{
    check_name, EnqueueRequest, Enqueued, Integration, Job, JobAction, JobFilter, JobId, JobKey,
    JobOutcome, JobScope, JobStatus, StopIntent, MAX_NAME_LEN,
};
pub use queue::{zero_counts, Heartbeat, JobCounts, JobQueue};
pub use runners::{RunnerByProvider, SequenceWindowRunner, SequenceWindowStreams};
pub use schedule::Schedule;
pub use scrub::{scrub_secrets, MAX_ERROR_LEN};
pub use service::{StreamStatus, SyncHistory, SyncJobs, SyncStatus, Trigger};
pub use worker::{Backoff, JobRunner, SweepReport, Worker, WorkerConfig};
