//! What a worker did, as counters its clones share: the embedding service reads a
//! [`WorkerMetrics`] snapshot and exports it (Prometheus, OpenTelemetry, a status route)
//! without the library choosing a metrics stack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::jobs::model::{Job, JobOutcome, JobStatus};
use crate::jobs::worker::SweepReport;

/// A snapshot of a worker's counters since it was created. Every counter only grows, except
/// `running`, the jobs running at the moment of the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkerMetrics {
    /// Jobs claimed (each claim is an attempt).
    pub claimed: u64,
    /// Attempts that completed their run (complete, or stopped at a page limit).
    pub completed: u64,
    /// Attempts stopped by a stop or pause request (the job is cancelled or paused).
    pub stopped: u64,
    /// Attempts handed back uncounted because the worker shut down.
    pub released: u64,
    /// Attempts deferred uncounted because the sync was busy.
    pub deferred: u64,
    /// Failed attempts that left the job pending for a retry after its backoff.
    pub retried: u64,
    /// Failed attempts that failed the job (a permanent error, or its last attempt).
    pub failed: u64,
    /// Attempts whose lease was lost (another worker continues the job).
    pub lost: u64,
    /// Heartbeats that failed without losing the lease (the next one may succeed).
    pub heartbeat_errors: u64,
    /// Claims and sweeps that failed (the queue was unreachable, say).
    pub queue_errors: u64,
    /// Jobs of dead workers this worker's sweeps rescued.
    pub rescued: u64,
    /// Scheduled jobs this worker's sweeps enqueued.
    pub scheduled: u64,
    /// Finished jobs this worker's sweeps pruned.
    pub pruned: u64,
    /// Jobs running now.
    pub running: u64,
    /// Time spent in runs, in milliseconds, over every finished attempt.
    pub run_ms: u64,
}

impl WorkerMetrics {
    /// Attempts whose end is counted: `claimed` equals this plus `running`.
    pub fn ended(&self) -> u64 {
        self.completed
            + self.stopped
            + self.released
            + self.deferred
            + self.retried
            + self.failed
            + self.lost
    }
}

/// Field-wise sums: the metrics of a pool of workers.
impl std::ops::Add for WorkerMetrics {
    type Output = WorkerMetrics;
    fn add(self, o: WorkerMetrics) -> WorkerMetrics {
        WorkerMetrics {
            claimed: self.claimed + o.claimed,
            completed: self.completed + o.completed,
            stopped: self.stopped + o.stopped,
            released: self.released + o.released,
            deferred: self.deferred + o.deferred,
            retried: self.retried + o.retried,
            failed: self.failed + o.failed,
            lost: self.lost + o.lost,
            heartbeat_errors: self.heartbeat_errors + o.heartbeat_errors,
            queue_errors: self.queue_errors + o.queue_errors,
            rescued: self.rescued + o.rescued,
            scheduled: self.scheduled + o.scheduled,
            pruned: self.pruned + o.pruned,
            running: self.running + o.running,
            run_ms: self.run_ms + o.run_ms,
        }
    }
}

impl std::iter::Sum for WorkerMetrics {
    fn sum<I: Iterator<Item = WorkerMetrics>>(iter: I) -> WorkerMetrics {
        iter.fold(WorkerMetrics::default(), |a, b| a + b)
    }
}

/// One running attempt, counted in `running` while it lives.
pub(crate) struct RunningGuard<'a> {
    counters: &'a WorkerCounters,
    since: Instant,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        c.running.fetch_sub(1, Ordering::Relaxed);
        let took = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        add(&c.run_ms, took);
    }
}

/// The live counters behind [`WorkerMetrics`].
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    claimed: AtomicU64,
    completed: AtomicU64,
    stopped: AtomicU64,
    released: AtomicU64,
    deferred: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    heartbeat_errors: AtomicU64,
    queue_errors: AtomicU64,
    rescued: AtomicU64,
    scheduled: AtomicU64,
    pruned: AtomicU64,
    running: AtomicU64,
    run_ms: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl WorkerCounters {
    pub(crate) fn snapshot(&self) -> WorkerMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerMetrics {
            claimed: get(&self.claimed),
            completed: get(&self.completed),
            stopped: get(&self.stopped),
            released: get(&self.released),
            deferred: get(&self.deferred),
            retried: get(&self.retried),
            failed: get(&self.failed),
            lost: get(&self.lost),
            heartbeat_errors: get(&self.heartbeat_errors),
            queue_errors: get(&self.queue_errors),
            rescued: get(&self.rescued),
            scheduled: get(&self.scheduled),
            pruned: get(&self.pruned),
            running: get(&self.running),
            run_ms: get(&self.run_ms),
        }
    }

    /// A job was claimed and starts running; it counts as running until the guard drops
    /// (the attempt ended, panicked or was cancelled), which adds its time to `run_ms`.
    pub(crate) fn started(&self) -> RunningGuard<'_> {
        add(&self.claimed, 1);
        add(&self.running, 1);
        RunningGuard {
            counters: self,
            since: Instant::now(),
        }
    }

    /// The queue recorded `outcome`, leaving the job as `after`; returns the name of what came
    /// of the attempt (the counter's name: `completed`, `retried`, ...).
    pub(crate) fn finished(&self, outcome: &JobOutcome, after: &Job) -> &'static str {
        let (counter, name) = match outcome {
            JobOutcome::Completed { .. } => (&self.completed, "completed"),
            JobOutcome::Stopped { .. } => (&self.stopped, "stopped"),
            JobOutcome::Released { .. } => (&self.released, "released"),
            JobOutcome::Deferred { .. } => (&self.deferred, "deferred"),
            JobOutcome::Failed { .. } if after.status == JobStatus::Failed => {
                (&self.failed, "failed")
            }
            JobOutcome::Failed { .. } => (&self.retried, "retried"),
        };
        add(counter, 1);
        name
    }

    pub(crate) fn lost_lease(&self) {
        add(&self.lost, 1);
    }

    pub(crate) fn heartbeat_failed(&self) {
        add(&self.heartbeat_errors, 1);
    }

    pub(crate) fn queue_failed(&self) {
        add(&self.queue_errors, 1);
    }

    pub(crate) fn swept(&self, report: &SweepReport) {
        add(&self.rescued, report.rescued as u64);
        add(&self.scheduled, report.scheduled as u64);
        add(&self.pruned, report.pruned);
    }
}
