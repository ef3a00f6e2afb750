//! The worker runtime: claims jobs, heartbeats their leases, runs them through a
//! [`JobRunner`], backs off failures, rescues the jobs of dead workers and enqueues
//! scheduled syncs. Any number of workers, in one process or many, share one queue; there
//! is no coordinator.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::future::{select, Either};

use crate::error::{Error, ErrorKind, Result, RetryClass};
use crate::jobs::model::{EnqueueRequest, Job, JobOutcome, StopIntent};
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

/// A worker. Cheap to clone; clones share the queue and the runner.
#[derive(Debug, Clone)]
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    runner: Arc<dyn JobRunner>,
    config: Arc<WorkerConfig>,
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
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Claims one due job and runs it to its end; `None` when nothing is due. Returns the
    /// job as finished, or as claimed when the lease was lost (another worker owns it now).
    pub async fn run_one(&self) -> Result<Option<Job>> {
        self.run_one_until(&StopSignal::new()).await
    }

    async fn run_one_until(&self, shutdown: &StopSignal) -> Result<Option<Job>> {
        let Some(job) = self.queue.claim(&self.config.id, self.config.lease).await? else {
            return Ok(None);
        };
        self.execute(job, shutdown).await.map(Some)
    }

    /// Rescues expired leases, enqueues due scheduled syncs and prunes old jobs.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let rescued = self.queue.rescue_expired().await?;
        for id in &rescued {
            tracing::warn!(job = %id, "rescued a job whose worker stopped heartbeating");
        }
        let scheduled = if self.config.schedule {
            self.enqueue_scheduled().await?
        } else {
            0
        };
        let pruned = self.queue.prune(self.config.retention).await?;
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
                created += usize::from(self.queue.enqueue(&request).await?.created);
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
                    Err(e) => tracing::warn!(worker = %self.config.id, error = %e, "claim failed"),
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

    /// Runs a claimed job with its heartbeat, then reports the outcome to the queue.
    async fn execute(&self, job: Job, shutdown: &StopSignal) -> Result<Job> {
        let stop = StopSignal::new();
        let lost = AtomicBool::new(false);
        let intent: Mutex<Option<StopIntent>> = Mutex::new(job.stop_requested);
        if job.stop_requested.is_some() {
            stop.stop();
        }
        let done = StopSignal::new();
        let run = async {
            let result = self.runner.run(&job, stop.clone()).await;
            done.stop();
            result
        };
        let beat = self.heartbeat_loop(&job, &stop, &done, &lost, &intent, shutdown);
        let (result, ()) = futures::future::join(run, beat).await;
        if lost.load(Ordering::SeqCst)
            || result
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::Fenced)
        {
            tracing::warn!(job = %job.id, key = %job.key, "the job's lease was lost; another worker continues it");
            return Ok(job);
        }
        let intent = *intent.lock().expect("intent lock");
        let outcome = match result {
            Ok(report) if report.stopped && intent.is_none() && shutdown.is_stopped() => {
                JobOutcome::Released {
                    summary: summary(&report),
                }
            }
            Ok(report) if report.stopped => JobOutcome::Stopped {
                summary: summary(&report),
            },
            Ok(report) => JobOutcome::Completed {
                summary: summary(&report),
            },
            Err(e) if e.kind() == ErrorKind::Busy => {
                // Held by another live holder: wait for it, at most the backoff's base and
                // no longer than the error says the hold lasts.
                let retry_in = e.retry_after().map_or(self.config.backoff.base, |d| {
                    d.min(self.config.backoff.base)
                });
                tracing::info!(job = %job.id, key = %job.key, error = %e, retry_in_ms = retry_in.as_millis() as u64, "job deferred: its sync is busy");
                JobOutcome::Deferred {
                    reason: e.to_string(),
                    retry_in,
                }
            }
            Err(e) => {
                let retry_in = (e.retry_class() != RetryClass::Permanent).then(|| {
                    self.config
                        .backoff
                        .delay(job.attempts)
                        .max(e.retry_after().unwrap_or_default())
                });
                tracing::warn!(job = %job.id, key = %job.key, attempt = job.attempts, error = %e, "job attempt failed");
                JobOutcome::Failed {
                    error: e.to_string(),
                    retry_in,
                }
            }
        };
        match self.queue.finish(job.id, job.fence, &outcome).await {
            Err(e) if e.kind() == ErrorKind::Fenced => {
                tracing::warn!(job = %job.id, key = %job.key, "the job's lease was lost before its outcome was reported");
                Ok(job)
            }
            other => other,
        }
    }

    /// Extends the lease every `heartbeat` until the run is `done`; raises `stop` when a stop
    /// is requested, the worker shuts down or the lease is lost.
    async fn heartbeat_loop(
        &self,
        job: &Job,
        stop: &StopSignal,
        done: &StopSignal,
        lost: &AtomicBool,
        intent: &Mutex<Option<StopIntent>>,
        shutdown: &StopSignal,
    ) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            let tick = tokio::time::sleep(self.config.heartbeat);
            futures::pin_mut!(tick);
            let ended = done.stopped();
            futures::pin_mut!(ended);
            let down = shutdown.stopped();
            futures::pin_mut!(down);
            match select(ended, select(tick, down)).await {
                Either::Left(_) => return,
                Either::Right((Either::Right(_), _)) => {
                    // Shutting down: stop the run, keep heartbeating until it ends.
                    stop.stop();
                    shutdown_wait(done, self.config.heartbeat).await;
                    if done.is_stopped() {
                        return;
                    }
                }
                Either::Right((Either::Left(_), _)) => {}
            }
            match self
                .queue
                .heartbeat(job.id, job.fence, self.config.lease)
                .await
            {
                Ok(hb) => {
                    last_ok = tokio::time::Instant::now();
                    if let Some(requested) = hb.stop_requested {
                        *intent.lock().expect("intent lock") = Some(requested);
                        stop.stop();
                    }
                }
                Err(e) if e.kind() == ErrorKind::Fenced => {
                    lost.store(true, Ordering::SeqCst);
                    stop.stop();
                    return;
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "heartbeat failed");
                    if last_ok.elapsed() >= self.config.lease {
                        // The lease has expired by now: another worker may own the job.
                        lost.store(true, Ordering::SeqCst);
                        stop.stop();
                        return;
                    }
                }
            }
        }
    }
}

/// Waits until `done` or `limit` passed.
async fn shutdown_wait(done: &StopSignal, limit: Duration) {
    let ended = done.stopped();
    futures::pin_mut!(ended);
    let timeout = tokio::time::sleep(limit);
    futures::pin_mut!(timeout);
    select(ended, timeout).await;
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

/// A run report as the JSON a job keeps.
pub fn summary(report: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "run_id": report.run_id,
        "pages": report.pages,
        "rows_read": report.rows_read,
        "rows_written": report.rows_written,
        "rows_rejected": report.rows_rejected,
        "windows": report.windows,
        "position": report.position,
        "complete": report.complete,
        "stopped": report.stopped,
    })
}
