//! What a worker did, as counters its clones share: the embedding service reads a
//! [`WorkerMetrics`] snapshot and exports it (Prometheus, OpenTelemetry, a status route)
//! without the library choosing a metrics stack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::jobs::model::{Job, JobOutcome, JobStatus};

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
    /// Attempts whose outcome the queue did not record: reporting it failed, or the attempt
    /// panicked or was cancelled (its lease expires and a sweep rescues the job).
    pub unreported: u64,
    /// Heartbeats that failed without losing the lease (the next one may succeed).
    pub heartbeat_errors: u64,
    /// Claims, outcome reports and sweep steps that failed (the queue was unreachable, say).
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
    /// Attempts that ended, each counted once by how: `claimed` equals this plus `running`.
    pub fn ended(&self) -> u64 {
        self.completed
            + self.stopped
            + self.released
            + self.deferred
            + self.retried
            + self.failed
            + self.lost
            + self.unreported
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
            unreported: self.unreported + o.unreported,
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

/// One running attempt, counted in `running` while it lives; how it ended is counted once,
/// through [`RunningGuard::finished`] or [`RunningGuard::lost`], or as `unreported` when it
/// drops without either.
pub(crate) struct RunningGuard<'a> {
    counters: &'a WorkerCounters,
    since: Instant,
    ended: bool,
}

impl RunningGuard<'_> {
    /// The queue recorded `outcome`, leaving the job as `after`; returns the name of how the
    /// attempt ended (its counter's name: `completed`, `retried`, `stopped`, ...).
    pub(crate) fn finished(&mut self, outcome: &JobOutcome, after: &Job) -> &'static str {
        let c = self.counters;
        let stopped = matches!(after.status, JobStatus::Cancelled | JobStatus::Paused);
        let (counter, name) = match outcome {
            JobOutcome::Completed { .. } => (&c.completed, "completed"),
            // A release or deferral that a stop request turned into cancelled or paused.
            JobOutcome::Stopped { .. }
            | JobOutcome::Released { .. }
            | JobOutcome::Deferred { .. }
                if stopped =>
            {
                (&c.stopped, "stopped")
            }
            JobOutcome::Stopped { .. } => (&c.stopped, "stopped"),
            JobOutcome::Released { .. } => (&c.released, "released"),
            JobOutcome::Deferred { .. } => (&c.deferred, "deferred"),
            JobOutcome::Failed { .. } if after.status == JobStatus::Failed => (&c.failed, "failed"),
            JobOutcome::Failed { .. } => (&c.retried, "retried"),
        };
        add(counter, 1);
        self.ended = true;
        name
    }

    /// Whether how the attempt ended was counted.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended
    }

    /// The attempt's lease was lost: another worker continues the job.
    pub(crate) fn lost(&mut self) {
        add(&self.counters.lost, 1);
        self.ended = true;
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        if !self.ended {
            add(&c.unreported, 1);
        }
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
    unreported: AtomicU64,
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
            unreported: get(&self.unreported),
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
            ended: false,
        }
    }

    pub(crate) fn heartbeat_failed(&self) {
        add(&self.heartbeat_errors, 1);
    }

    pub(crate) fn queue_failed(&self) {
        add(&self.queue_errors, 1);
    }

    pub(crate) fn rescued(&self, n: usize) {
        add(&self.rescued, n as u64);
    }

    pub(crate) fn scheduled(&self, n: usize) {
        add(&self.scheduled, n as u64);
    }

    pub(crate) fn pruned(&self, n: u64) {
        add(&self.pruned, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{EnqueueRequest, JobId, JobKey};

    fn job(status: JobStatus) -> Job {
        let request = EnqueueRequest::sync(JobKey::new("p", "t", "s").unwrap());
        let mut job = Job::enqueued(JobId(1), &request, JobStatus::Pending, chrono::Utc::now());
        job.status = status;
        job
    }

    #[test]
    fn each_attempt_ends_once_and_a_stop_request_counts_as_stopped() {
        let counters = WorkerCounters::default();
        let deferred = JobOutcome::Deferred {
            reason: "busy".into(),
            retry_in: std::time::Duration::ZERO,
        };
        let failed = JobOutcome::Failed {
            error: "503".into(),
            retry_in: Some(std::time::Duration::ZERO),
        };
        let cases = [
            (&deferred, JobStatus::Pending, "deferred"),
            (&deferred, JobStatus::Cancelled, "stopped"),
            (&failed, JobStatus::Pending, "retried"),
            (&failed, JobStatus::Failed, "failed"),
        ];
        for (outcome, status, name) in cases {
            let mut running = counters.started();
            assert_eq!(running.finished(outcome, &job(status)), name);
        }
        // Dropped without an outcome: a panic, a cancelled task, a failed report.
        drop(counters.started());
        let m = counters.snapshot();
        assert_eq!(
            (m.deferred, m.stopped, m.retried, m.failed, m.unreported),
            (1, 1, 1, 1, 1)
        );
        assert_eq!((m.claimed, m.ended(), m.running), (5, 5, 0));
    }
}
