//! What a worker did, as counters its clones share: the embedding service reads a
//! [`WorkerMetrics`] snapshot and exports it (Prometheus, OpenTelemetry, a status route)
//! without the library choosing a metrics stack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::jobs::model::{Job, JobOutcome, JobStatus};

/// Declares [`WorkerMetrics`] and the live [`WorkerCounters`] behind it from one list of
/// counters, with the snapshot and the field-wise sum.
macro_rules! worker_counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A snapshot of a worker's counters since it was created. Every counter only grows,
        /// except `running`, the jobs running at the moment of the snapshot.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct WorkerMetrics {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// Field-wise sums: the metrics of a pool of workers.
        impl std::ops::Add for WorkerMetrics {
            type Output = WorkerMetrics;
            fn add(self, o: WorkerMetrics) -> WorkerMetrics {
                WorkerMetrics { $($name: self.$name + o.$name,)* }
            }
        }

        /// The live counters behind [`WorkerMetrics`].
        #[derive(Debug, Default)]
        pub(crate) struct WorkerCounters {
            $($name: AtomicU64,)*
        }

        impl WorkerCounters {
            pub(crate) fn snapshot(&self) -> WorkerMetrics {
                WorkerMetrics { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

worker_counters! {
    /// Jobs claimed (each claim is an attempt).
    claimed,
    /// Attempts that completed their run (complete, or stopped at a page limit).
    completed,
    /// Attempts stopped by a stop or pause request (the job is cancelled or paused).
    stopped,
    /// Attempts handed back uncounted because the worker shut down.
    released,
    /// Attempts deferred uncounted because the sync was busy.
    deferred,
    /// Failed attempts that left the job pending for a retry after its backoff.
    retried,
    /// Failed attempts that failed the job (a permanent error, or its last attempt).
    failed,
    /// Attempts whose lease was lost (another worker continues the job).
    lost,
    /// Attempts whose outcome the queue did not record: reporting it failed, or the attempt
    /// panicked or was cancelled (its lease expires and a sweep rescues the job).
    unreported,
    /// Heartbeats that failed without losing the lease (the next one may succeed).
    heartbeat_errors,
    /// Claims, outcome reports and sweep steps that failed (the queue was unreachable, say).
    queue_errors,
    /// Jobs of dead workers this worker's sweeps rescued.
    rescued,
    /// Scheduled jobs this worker's sweeps enqueued.
    scheduled,
    /// Finished jobs this worker's sweeps pruned.
    pruned,
    /// Jobs running now.
    running,
    /// Time spent in runs, in milliseconds, over every finished attempt.
    run_ms,
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

impl std::iter::Sum for WorkerMetrics {
    fn sum<I: Iterator<Item = WorkerMetrics>>(iter: I) -> WorkerMetrics {
        iter.fold(WorkerMetrics::default(), |a, b| a + b)
    }
}

/// One running attempt, counted in `running` while it lives. How it ended is counted once,
/// and recorded as the `outcome` of its span: through [`RunningGuard::finished`] or
/// [`RunningGuard::lost`], or as `unreported` when it drops without either.
pub(crate) struct RunningGuard<'a> {
    counters: &'a WorkerCounters,
    span: tracing::Span,
    since: Instant,
    ended: bool,
}

impl RunningGuard<'_> {
    /// The queue recorded `outcome`, leaving the job as `after`; returns the name of how the
    /// attempt ended (its counter's name: `completed`, `retried`, `stopped`, ...).
    pub(crate) fn finished(&mut self, outcome: &JobOutcome, after: &Job) -> &'static str {
        let c = self.counters;
        // A stop request turns a release or a deferral into cancelled or paused too.
        let stopped = matches!(after.status, JobStatus::Cancelled | JobStatus::Paused);
        let (counter, name) = match outcome {
            JobOutcome::Completed { .. } => (&c.completed, "completed"),
            JobOutcome::Stopped { .. } => (&c.stopped, "stopped"),
            _ if stopped => (&c.stopped, "stopped"),
            JobOutcome::Released { .. } => (&c.released, "released"),
            JobOutcome::Deferred { .. } => (&c.deferred, "deferred"),
            JobOutcome::Failed { .. } if after.status == JobStatus::Failed => (&c.failed, "failed"),
            JobOutcome::Failed { .. } => (&c.retried, "retried"),
        };
        self.end(counter, name);
        name
    }

    /// The attempt's lease was lost: another worker continues the job.
    pub(crate) fn lost(&mut self) {
        self.end(&self.counters.lost, "lost");
    }

    fn end(&mut self, counter: &AtomicU64, name: &'static str) {
        add(counter, 1);
        self.span.record("outcome", name);
        self.ended = true;
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        if !self.ended {
            self.end(&c.unreported, "unreported");
        }
        c.running.fetch_sub(1, Ordering::Relaxed);
        let took = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        add(&c.run_ms, took);
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl WorkerCounters {
    /// A job was claimed and starts running in `span`; it counts as running until the guard
    /// drops (the attempt ended, panicked or was cancelled), which adds its time to `run_ms`.
    pub(crate) fn started(&self, span: &tracing::Span) -> RunningGuard<'_> {
        add(&self.claimed, 1);
        add(&self.running, 1);
        RunningGuard {
            counters: self,
            span: span.clone(),
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
            let mut running = counters.started(&tracing::Span::none());
            assert_eq!(running.finished(outcome, &job(status)), name);
        }
        // Dropped without an outcome: a panic, a cancelled task, a failed report.
        drop(counters.started(&tracing::Span::none()));
        let m = counters.snapshot();
        assert_eq!(
            (m.deferred, m.stopped, m.retried, m.failed, m.unreported),
            (1, 1, 1, 1, 1)
        );
        assert_eq!((m.claimed, m.ended(), m.running), (5, 5, 0));
    }
}
