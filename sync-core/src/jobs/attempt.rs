//! One attempt of a claimed job: the run beside its heartbeat, the outcome reported to the
//! queue, in the attempt's span and counted in the worker's metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::{select, Either};
use tracing::Instrument;

use crate::error::{ErrorKind, Result, RetryClass};
use crate::jobs::metrics::RunningGuard;
use crate::jobs::model::{Job, JobAction, JobOutcome, StopIntent};
use crate::jobs::worker::Worker;
use crate::stop::StopSignal;
use crate::strategy::RunReport;

/// The shortest wait of a deferred job.
const MIN_DEFERRAL: Duration = Duration::from_secs(1);

impl Worker {
    /// Runs a claimed job in its span and counts it.
    pub(super) async fn execute(&self, job: Job, shutdown: &StopSignal) -> Result<Job> {
        let span = tracing::info_span!(
            "sync_job",
            worker = %self.config.id,
            job = %job.id,
            key = %job.key,
            action = match &job.action {
                JobAction::Sync { .. } => "sync",
                JobAction::Replay { .. } => "replay",
            },
            attempt = job.attempts,
            outcome = tracing::field::Empty,
        );
        let mut running = self.counters.started(&span);
        self.attempt(job, shutdown, &mut running)
            .instrument(span)
            .await
    }

    /// Runs a claimed job with its heartbeat, then reports the outcome to the queue.
    async fn attempt(
        &self,
        job: Job,
        shutdown: &StopSignal,
        running: &mut RunningGuard<'_>,
    ) -> Result<Job> {
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
            running.lost();
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
            Err(e) if e.kind() == ErrorKind::Busy && e.retry_class() != RetryClass::Permanent => {
                // Held by another live holder: wait for it, at most the backoff's base and
                // no longer than the error says the hold lasts, but never less than a
                // second (a zero base would claim and defer in a tight loop).
                let retry_in = e
                    .retry_after()
                    .map_or(self.config.backoff.base, |d| {
                        d.min(self.config.backoff.base)
                    })
                    .max(MIN_DEFERRAL);
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
                running.lost();
                tracing::warn!(job = %job.id, key = %job.key, "the job's lease was lost before its outcome was reported");
                Ok(job)
            }
            Ok(after) => {
                let ended = running.finished(&outcome, &after);
                tracing::info!(job = %job.id, key = %job.key, outcome = ended, status = %after.status, "job attempt ended");
                Ok(after)
            }
            Err(e) => {
                self.counters.queue_failed();
                Err(e)
            }
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
                    self.counters.heartbeat_failed();
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
