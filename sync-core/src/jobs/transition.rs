//! The state changes of one job, as the [`JobQueue`](crate::jobs::JobQueue) contract states
//! them. Every queue applies these inside its transaction (the memory queue under its lock,
//! a database queue to the row it read, written back guarded by fence and status), so all
//! queues move a job through its life the same way, as `CheckpointCommit::check` does for
//! checkpoints.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::jobs::model::{EnqueueRequest, Job, JobId, JobOutcome, JobStatus, StopIntent};
use crate::jobs::scrub::scrub_secrets;

/// `now + d`, saturating at the latest time chrono represents.
fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The status a stop request turns into: paused for a pause, cancelled otherwise.
fn stopped_status(intent: Option<StopIntent>) -> JobStatus {
    match intent {
        Some(StopIntent::Pause) => JobStatus::Paused,
        _ => JobStatus::Cancelled,
    }
}

impl Job {
    /// The job `enqueue` creates for a validated request: `status` is pending, or paused when
    /// a pause covers its key; due at the request's `run_at` or now; no attempts, fence 0.
    pub fn enqueued(
        id: JobId,
        request: &EnqueueRequest,
        status: JobStatus,
        now: DateTime<Utc>,
    ) -> Job {
        Job {
            id,
            key: request.key.clone(),
            action: request.action.clone(),
            status,
            priority: request.priority,
            attempts: 0,
            max_attempts: request.max_attempts,
            next_run_at: request.run_at.unwrap_or(now),
            idempotency_key: request.idempotency_key.clone(),
            last_error: None,
            lease_owner: None,
            lease_until: None,
            fence: 0,
            stop_requested: None,
            summary: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    /// `claim` of a pending job by `worker`: processing, leased until `now + lease`, one
    /// more attempt, the next fence, started now.
    pub fn claim(&mut self, worker: &str, lease: Duration, now: DateTime<Utc>) {
        self.status = JobStatus::Processing;
        self.lease_owner = Some(worker.to_string());
        self.lease_until = Some(after(now, lease));
        self.attempts += 1;
        self.fence += 1;
        self.started_at = Some(now);
        self.updated_at = now;
    }

    /// `heartbeat` of a processing job whose fence matched: leased until `now + lease`.
    pub fn extend_lease(&mut self, lease: Duration, now: DateTime<Utc>) {
        self.lease_until = Some(after(now, lease));
        self.updated_at = now;
    }

    /// `finish` of a processing job whose fence matched, with `outcome`.
    pub fn finish(&mut self, outcome: &JobOutcome, now: DateTime<Utc>) {
        match outcome {
            JobOutcome::Completed { summary } => {
                self.status = JobStatus::Completed;
                self.summary = Some(summary.clone());
            }
            JobOutcome::Stopped { summary } => {
                self.status = stopped_status(self.stop_requested);
                self.summary = Some(summary.clone());
            }
            JobOutcome::Released { summary } => {
                self.summary = Some(summary.clone());
                self.attempts = self.attempts.saturating_sub(1);
                self.next_run_at = now;
                self.status = match self.stop_requested {
                    Some(intent) => stopped_status(Some(intent)),
                    None => JobStatus::Pending,
                };
            }
            JobOutcome::Deferred { reason, retry_in } => {
                self.last_error = Some(scrub_secrets(reason));
                self.attempts = self.attempts.saturating_sub(1);
                self.next_run_at = after(now, *retry_in);
                self.status = match self.stop_requested {
                    Some(intent) => stopped_status(Some(intent)),
                    None => JobStatus::Pending,
                };
            }
            JobOutcome::Failed { error, retry_in } => {
                self.last_error = Some(scrub_secrets(error));
                match retry_in {
                    Some(delay) if self.attempts < self.max_attempts => {
                        self.status = JobStatus::Pending;
                        self.next_run_at = after(now, *delay);
                    }
                    _ => self.status = JobStatus::Failed,
                }
            }
        }
        self.release(now);
    }

    /// `rescue_expired` of a processing job whose lease expired: as if its worker had
    /// stopped when a stop was requested, pending again while attempts remain (keeping its
    /// `next_run_at`, already past, so it is claimed ahead of work enqueued since), failed
    /// otherwise.
    pub fn rescue(&mut self, now: DateTime<Utc>) {
        self.status = match self.stop_requested {
            Some(intent) => stopped_status(Some(intent)),
            None if self.attempts < self.max_attempts => JobStatus::Pending,
            None => JobStatus::Failed,
        };
        if self.status == JobStatus::Failed {
            self.last_error = Some(format!(
                "the worker stopped heartbeating on each of {} attempts",
                self.attempts
            ));
        }
        self.release(now);
    }

    /// `retry_failed` of a failed job: pending (paused when a recorded pause covers its key),
    /// attempts 0, due now, its error kept.
    pub fn retry(&mut self, now: DateTime<Utc>, paused: bool) {
        self.status = if paused {
            JobStatus::Paused
        } else {
            JobStatus::Pending
        };
        self.attempts = 0;
        self.next_run_at = now;
        self.finished_at = None;
        self.updated_at = now;
    }

    /// Clears the lease and the stop request of a job leaving processing; one that ends
    /// there (completed, failed, cancelled) is finished now, a pending or paused one is not.
    fn release(&mut self, now: DateTime<Utc>) {
        if matches!(
            self.status,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        ) {
            self.finished_at = Some(now);
        }
        self.lease_owner = None;
        self.lease_until = None;
        self.stop_requested = None;
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobKey;

    fn processing(attempts: u32, max_attempts: u32, stop: Option<StopIntent>) -> Job {
        let now = Utc::now();
        let request = EnqueueRequest::sync(JobKey::new("p", "t", "s").unwrap())
            .with_max_attempts(max_attempts);
        let mut job = Job::enqueued(JobId(1), &request, JobStatus::Pending, now);
        for _ in 0..attempts {
            job.claim("w", Duration::ZERO, now);
        }
        job.stop_requested = stop;
        job
    }

    #[test]
    fn a_released_attempt_with_a_pause_requested_ends_paused_and_uncounted() {
        let mut job = processing(2, 3, Some(StopIntent::Pause));
        let released = JobOutcome::Released {
            summary: serde_json::json!({}),
        };
        job.finish(&released, Utc::now());
        assert_eq!((job.status, job.attempts), (JobStatus::Paused, 1));
        assert!(job.finished_at.is_none() && job.stop_requested.is_none());
        assert!(job.lease_owner.is_none() && job.lease_until.is_none());
    }

    #[test]
    fn a_deferred_attempt_waits_uncounted_and_says_why() {
        let now = Utc::now();
        let deferred = JobOutcome::Deferred {
            reason: "another run holds the sync".into(),
            retry_in: Duration::from_secs(30),
        };
        // Its last attempt: deferring it never fails it for running out of attempts.
        let mut job = processing(3, 3, None);
        job.finish(&deferred, now);
        assert_eq!((job.status, job.attempts), (JobStatus::Pending, 2));
        assert_eq!(job.next_run_at, now + chrono::Duration::seconds(30));
        assert_eq!(
            job.last_error.as_deref(),
            Some("another run holds the sync")
        );
        assert!(job.finished_at.is_none() && job.lease_owner.is_none());

        let mut cancelled = processing(1, 3, Some(StopIntent::Cancel));
        cancelled.finish(&deferred, now);
        assert_eq!(
            (cancelled.status, cancelled.finished_at),
            (JobStatus::Cancelled, Some(now))
        );
    }

    #[test]
    fn a_rescue_honours_the_stop_request_then_the_attempts() {
        let now = Utc::now();
        let mut cancelled = processing(1, 3, Some(StopIntent::Cancel));
        cancelled.rescue(now);
        assert_eq!(
            (cancelled.status, cancelled.finished_at),
            (JobStatus::Cancelled, Some(now))
        );
        let mut requeued = processing(1, 3, None);
        requeued.rescue(now);
        assert_eq!(
            (requeued.status, requeued.finished_at),
            (JobStatus::Pending, None)
        );
        let mut failed = processing(3, 3, None);
        failed.rescue(now);
        assert_eq!(failed.status, JobStatus::Failed);
        assert!(failed.last_error.unwrap().contains("3 attempts"));
    }

    #[test]
    fn a_lease_past_the_end_of_time_saturates() {
        let mut job = processing(0, 3, None);
        job.claim("w", Duration::MAX, Utc::now());
        assert_eq!(job.lease_until, Some(DateTime::<Utc>::MAX_UTC));
    }
}
