//! The worker runtime: claims jobs, heartbeats their leases, runs them through a
//! [`JobRunner`], backs off failures, rescues the jobs of dead workers and enqueues
//! scheduled syncs. Any number of workers, in one process or many, share one queue; there
//! is no coordinator.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::future::select;

use crate::error::{Error, Result};
use crate::jobs::metrics::{WorkerCounters, WorkerMetrics};
use crate::jobs::model::{EnqueueRequest, Job};
use crate::jobs::queue::JobQueue;
use crate::stop::StopSignal;
use crate::strategy::RunReport;

/// Runs one job. The embedding service maps the job's key and action to a source, a store
/// and a strategy, and passes `stop` on to the run ([`SyncContext::with_stop`](crate::SyncContext::with_stop)).
///
/// # Contract
/// - It MUST use `job.key.sync_name()` as the sync's checkpoint key, so that a run of a
///   rescued job resumes the checkpoint and fences out the worker that lost the lease.
/// - When `stop` is raised it SHOULD return soon, after promoting the page in flight, with
///   `report.stopped` set.
#[async_trait]
pub trait JobRunner: Debug + Send + Sync + 'static {
    /// Runs `job` once.
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport>;
}

/// Exponential backoff with jitter between failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay after `attempt` failed attempts (1-based): `base * 2^(attempt-1)`, capped at
    /// `max`, then a uniformly random point in its upper half, so that jobs failing together
    /// do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker's name, unique among the workers of a queue (stored as the lease owner).
    pub id: String,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// How often a running job's lease is extended; well below `lease`.
    pub heartbeat: Duration,
    /// How long an idle worker waits before it claims again.
    pub poll: Duration,
    /// How often the worker rescues expired leases, enqueues scheduled syncs and prunes.
    pub sweep: Duration,
    /// Jobs run at once by this worker.
    pub concurrency: usize,
    /// Delays between failed attempts.
    pub backoff: Backoff,
    /// Finished jobs older than this are pruned.
    pub retention: Duration,
    /// Whether this worker enqueues scheduled syncs (any number may; slots run once).
    pub schedule: bool,
}

impl WorkerConfig {
    /// Defaults: lease 30 s, heartbeat 10 s, poll 1 s, sweep 15 s, one job at a time,
    /// backoff 5 s to 10 min, 7 days of history, scheduling on.
    pub fn new(id: impl Into<String>) -> Self {
        WorkerConfig {
            id: id.into(),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            sweep: Duration::from_secs(15),
            concurrency: 1,
            backoff: Backoff::default(),
            retention: Duration::from_secs(7 * 86_400),
            schedule: true,
        }
    }

    /// Checks the id and that heartbeats come well within the lease.
    pub fn validate(&self) -> Result<()> {
        crate::jobs::model::check_name("worker id", &self.id)?;
        if self.heartbeat.is_zero() || self.heartbeat * 2 > self.lease {
            return Err(Error::config(
                "the heartbeat must be positive and at most half the lease",
            ));
        }
        if self.concurrency == 0 || self.poll.is_zero() || self.sweep.is_zero() {
            return Err(Error::config(
                "concurrency, poll and sweep must be positive",
            ));
        }
        Ok(())
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs whose expired lease was rescued.
    pub rescued: usize,
    /// Scheduled jobs this sweep created.
    pub scheduled: usize,
    /// Finished jobs pruned.
    pub pruned: u64,
}

/// A worker. Cheap to clone; clones share the queue, the runner and the metrics.
///
/// Each attempt runs in a `sync_job` span (fields `worker`, `job`, `key`, `action`,
/// `attempt`, and `outcome` once known) that the strategy's `sync_run` span nests in;
/// [`Worker::metrics`] counts what came of the attempts.
#[derive(Debug, Clone)]
pub struct Worker {
    pub(super) queue: Arc<dyn JobQueue>,
    pub(super) runner: Arc<dyn JobRunner>,
    pub(super) config: Arc<WorkerConfig>,
    pub(super) counters: Arc<WorkerCounters>,
}

impl Worker {
    /// A worker; fails with [`ErrorKind::Config`] for a bad configuration.
    pub fn new(
        queue: Arc<dyn JobQueue>,
        runner: Arc<dyn JobRunner>,
        config: WorkerConfig,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Worker {
            queue,
            runner,
            config: Arc::new(config),
            counters: Arc::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// What this worker and its clones did so far.
    pub fn metrics(&self) -> WorkerMetrics {
        self.counters.snapshot()
    }

    /// Claims one due job and runs it to its end; `None` when nothing is due. Returns the
    /// job as finished, or as claimed when the lease was lost (another worker owns it now).
    pub async fn run_one(&self) -> Result<Option<Job>> {
        self.run_one_until(&StopSignal::new()).await
    }

    async fn run_one_until(&self, shutdown: &StopSignal) -> Result<Option<Job>> {
        let claimed = self.queue.claim(&self.config.id, self.config.lease).await;
        let Some(job) = claimed.inspect_err(|_| self.counters.queue_failed())? else {
            return Ok(None);
        };
        self.execute(job, shutdown).await.map(Some)
    }

    /// Rescues expired leases, enqueues due scheduled syncs and prunes old jobs.
    pub async fn sweep(&self) -> Result<SweepReport> {
        self.sweep_steps()
            .await
            .inspect_err(|_| self.counters.queue_failed())
    }

    /// The sweep's steps, each counted in the metrics as it completes.
    async fn sweep_steps(&self) -> Result<SweepReport> {
        let rescued = self.queue.rescue_expired().await?;
        self.counters.rescued(rescued.len());
        for id in &rescued {
            tracing::warn!(job = %id, "rescued a job whose worker stopped heartbeating");
        }
        let scheduled = if self.config.schedule {
            self.enqueue_scheduled().await?
        } else {
            0
        };
        let pruned = self.queue.prune(self.config.retention).await?;
        self.counters.pruned(pruned);
        Ok(SweepReport {
            rescued: rescued.len(),
            scheduled,
            pruned,
        })
    }

    async fn enqueue_scheduled(&self) -> Result<usize> {
        let now = Utc::now();
        let mut created = 0;
        for integration in self.queue.integrations(None).await? {
            let Some(schedule) = integration
                .schedule
                .as_ref()
                .filter(|_| integration.enabled)
            else {
                continue;
            };
            let slot = match schedule.current_slot(now) {
                Ok(slot) => slot,
                Err(e) => {
                    tracing::warn!(provider = %integration.provider, tenant = %integration.tenant, error = %e, "skipping a schedule");
                    continue;
                }
            };
            for stream in &integration.streams {
                let key = integration.key(stream);
                let request = EnqueueRequest::sync(key.clone())
                    .with_priority(integration.priority)
                    .with_max_attempts(integration.max_attempts)
                    .with_idempotency_key(format!("schedule:{key}@{}", slot.timestamp()));
                let created_now = usize::from(self.queue.enqueue(&request).await?.created);
                self.counters.scheduled(created_now);
                created += created_now;
            }
        }
        Ok(created)
    }

    /// Runs until `shutdown` is raised: sweeps every `sweep`, claims while a slot is free,
    /// waits `poll` when nothing is due. On shutdown the running jobs stop gracefully and go
    /// back to pending for another worker to continue from their checkpoints.
    pub async fn run(&self, shutdown: StopSignal) -> Result<()> {
        let mut running = tokio::task::JoinSet::new();
        let mut next_sweep = tokio::time::Instant::now();
        while !shutdown.is_stopped() {
            if tokio::time::Instant::now() >= next_sweep {
                if let Err(e) = self.sweep().await {
                    tracing::warn!(worker = %self.config.id, error = %e, "sweep failed");
                }
                next_sweep = tokio::time::Instant::now() + self.config.sweep;
            }
            while let Some(done) = running.try_join_next() {
                log_task_end(done);
            }
            let mut claimed = false;
            if running.len() < self.config.concurrency {
                match self.queue.claim(&self.config.id, self.config.lease).await {
                    Ok(Some(job)) => {
                        claimed = true;
                        let worker = self.clone();
                        let shutdown = shutdown.clone();
                        running.spawn(async move { worker.execute(job, &shutdown).await });
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.counters.queue_failed();
                        tracing::warn!(worker = %self.config.id, error = %e, "claim failed");
                    }
                }
            }
            if claimed && running.len() < self.config.concurrency {
                continue;
            }
            // Wait for a slot, the poll interval, the next sweep or the shutdown.
            let wait = self
                .config
                .poll
                .min(next_sweep.saturating_duration_since(tokio::time::Instant::now()));
            let idle = async {
                if running.len() >= self.config.concurrency {
                    if let Some(done) = running.join_next().await {
                        log_task_end(done);
                    }
                } else {
                    tokio::time::sleep(wait).await;
                }
            };
            futures::pin_mut!(idle);
            let stopped = shutdown.stopped();
            futures::pin_mut!(stopped);
            select(idle, stopped).await;
        }
        while let Some(done) = running.join_next().await {
            log_task_end(done);
        }
        Ok(())
    }
}

fn log_task_end(done: std::result::Result<Result<Job>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(job)) => tracing::debug!(job = %job.id, status = %job.status, "job ended"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reporting a job's outcome failed; its lease will expire and it will be rescued")
        }
        Err(e) => {
            tracing::error!(error = %e, "a job task panicked; its lease will expire and it will be rescued")
        }
    }
}
