//! Conformance clauses of the [`JobQueue`] contract. A queue implementation runs them all with
//! one macro call:
//!
//! ```ignore
//! async fn make_queue() -> std::sync::Arc<dyn sync_core::jobs::JobQueue> { /* a fresh queue */ }
//! sync_core::job_queue_suite!(make_queue);
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ErrorKind;
use crate::jobs::{
    EnqueueRequest, Integration, JobAction, JobFilter, JobKey, JobOutcome, JobQueue, JobScope,
    JobStatus, Schedule, StopIntent,
};
use crate::position::{SequenceNo, Window};
use crate::strategy::StrategyKind;

/// Runs every clause against queues made by `$make` (an async fn returning
/// `Arc<dyn JobQueue>`); `enabled = false` skips them with a message.
#[macro_export]
macro_rules! job_queue_suite {
    ($make:path) => {
        $crate::job_queue_suite!($make, enabled = true);
    };
    ($make:path, enabled = $enabled:expr) => {
        $crate::job_queue_suite!(@tests $make, $enabled;
            jobs_integrations_round_trip_and_validate,
            jobs_enqueue_dedupes_the_open_job_of_a_key,
            jobs_idempotency_key_returns_the_original_job,
            jobs_concurrent_enqueues_create_one_open_job,
            jobs_claim_orders_by_priority_time_and_id,
            jobs_claim_skips_future_and_paused_jobs,
            jobs_concurrent_claims_never_share_a_job,
            jobs_heartbeat_and_finish_require_the_current_fence,
            jobs_failures_back_off_then_fail_after_max_attempts,
            jobs_permanent_failure_fails_at_once_with_scrubbed_error,
            jobs_stop_cancels_pending_and_flags_processing,
            jobs_pause_holds_the_scope_and_later_jobs,
            jobs_pausing_a_running_job_ends_paused,
            jobs_released_attempt_is_not_counted,
            jobs_deferred_attempt_waits_uncounted_and_says_why,
            jobs_rescue_requeues_then_fails_dead_workers,
            jobs_retry_failed_requeues_one_or_all,
            jobs_counts_and_filters,
            jobs_prune_removes_old_finished_jobs_and_their_keys,
            jobs_hostile_names_are_rejected,
            jobs_replay_action_round_trips
        );
    };
    (@tests $make:path, $enabled:expr; $($clause:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $clause() {
                if !$enabled {
                    eprintln!("skipped: the queue under test is not configured");
                    return;
                }
                $crate::testkit::jobs::$clause($make().await).await;
            }
        )*
    };
}

type Queue = Arc<dyn JobQueue>;

const LEASE: Duration = Duration::from_secs(60);

fn key(stream: &str) -> JobKey {
    JobKey::new("acme", "t1", stream).unwrap()
}

fn completed() -> JobOutcome {
    JobOutcome::Completed {
        summary: serde_json::json!({"rows_written": 1}),
    }
}

/// Integrations are validated, stored, replaced and listed by provider.
pub async fn jobs_integrations_round_trip_and_validate(q: Queue) {
    let mut a = Integration::new("square", "v1", StrategyKind::Incremental, ["orders"])
        .with_schedule(Schedule::cron("*/5 * * * *"));
    a.credentials_ref = Some("vault:square/v1".into());
    a.settings = serde_json::json!({"location": "L1"});
    q.put_integration(&a).await.unwrap();
    let b = Integration::new("oracle", "v1", StrategyKind::Offset, ["opportunities"]);
    q.put_integration(&b).await.unwrap();
    assert_eq!(
        q.integration("square", "v1").await.unwrap(),
        Some(a.clone())
    );
    a.enabled = false;
    q.put_integration(&a).await.unwrap();
    assert_eq!(
        q.integrations(Some("square")).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(q.integrations(None).await.unwrap(), vec![b, a]);
    assert_eq!(q.integration("square", "nope").await.unwrap(), None);
    let empty = Integration::new("square", "v2", StrategyKind::Full, Vec::<String>::new());
    let bad_cron = Integration::new("square", "v3", StrategyKind::Full, ["x"])
        .with_schedule(Schedule::cron("not cron"));
    for bad in [empty, bad_cron] {
        assert_eq!(
            q.put_integration(&bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    assert_eq!(q.integrations(Some("square")).await.unwrap().len(), 1);
}

/// A key has at most one open job; other keys are independent.
pub async fn jobs_enqueue_dedupes_the_open_job_of_a_key(q: Queue) {
    let first = q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap();
    assert!(first.created);
    assert_eq!(first.job.status, JobStatus::Pending);
    assert_eq!((first.job.attempts, first.job.fence), (0, 0));
    let again = q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.job.id, first.job.id);
    let other = q.enqueue(&EnqueueRequest::sync(key("b"))).await.unwrap();
    assert!(other.created && other.job.id != first.job.id);
    // Once the job is processing it is still the open one; once completed, a new job starts.
    let claimed = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.id, first.job.id);
    assert!(
        !q.enqueue(&EnqueueRequest::sync(key("a")))
            .await
            .unwrap()
            .created
    );
    q.finish(claimed.id, claimed.fence, &completed())
        .await
        .unwrap();
    let next = q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap();
    assert!(next.created && next.job.id != first.job.id);
}

/// A repeated idempotency key returns the job it created, even when finished.
pub async fn jobs_idempotency_key_returns_the_original_job(q: Queue) {
    let req = EnqueueRequest::sync(key("a")).with_idempotency_key("req-1");
    let first = q.enqueue(&req).await.unwrap();
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    q.finish(job.id, job.fence, &completed()).await.unwrap();
    let again = q.enqueue(&req).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.job.id, first.job.id);
    assert_eq!(again.job.status, JobStatus::Completed);
    assert_eq!(again.job.idempotency_key.as_deref(), Some("req-1"));
    // A key that met an open job maps to that job.
    let open = q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap();
    let keyed = q
        .enqueue(&EnqueueRequest::sync(key("a")).with_idempotency_key("req-2"))
        .await
        .unwrap();
    assert_eq!(keyed.job.id, open.job.id);
    q.request_stop(&JobScope::all().job(open.job.id), StopIntent::Cancel)
        .await
        .unwrap();
    let replayed = q
        .enqueue(&EnqueueRequest::sync(key("a")).with_idempotency_key("req-2"))
        .await
        .unwrap();
    assert_eq!((replayed.job.id, replayed.created), (open.job.id, false));
}

/// Concurrent enqueues of one key create exactly one open job.
pub async fn jobs_concurrent_enqueues_create_one_open_job(q: Queue) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move { q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap() })
        })
        .collect();
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let e = t.await.unwrap();
        ids.insert(e.job.id);
        created += usize::from(e.created);
    }
    assert_eq!((ids.len(), created), (1, 1));
}

/// Claims take the highest priority, then the earliest due time, then the lowest id, and
/// record the lease.
pub async fn jobs_claim_orders_by_priority_time_and_id(q: Queue) {
    let past = chrono::Utc::now() - chrono::Duration::seconds(60);
    let low = q
        .enqueue(&EnqueueRequest::sync(key("low")))
        .await
        .unwrap()
        .job;
    let late = q
        .enqueue(&EnqueueRequest::sync(key("late")).with_priority(5))
        .await
        .unwrap()
        .job;
    let early = q
        .enqueue(
            &EnqueueRequest::sync(key("early"))
                .with_priority(5)
                .with_run_at(past),
        )
        .await
        .unwrap()
        .job;
    let low2 = q
        .enqueue(&EnqueueRequest::sync(key("low2")))
        .await
        .unwrap()
        .job;
    let mut order = vec![];
    while let Some(job) = q.claim("w1", LEASE).await.unwrap() {
        assert_eq!(job.status, JobStatus::Processing);
        assert_eq!(job.lease_owner.as_deref(), Some("w1"));
        assert!(job.lease_until.unwrap() > chrono::Utc::now());
        assert_eq!((job.attempts, job.fence), (1, 1));
        assert!(job.started_at.is_some());
        order.push(job.id);
    }
    assert_eq!(order, vec![early.id, late.id, low.id, low2.id]);
}

/// Jobs due later, and paused jobs, are not claimed.
pub async fn jobs_claim_skips_future_and_paused_jobs(q: Queue) {
    assert!(q.claim("w", LEASE).await.unwrap().is_none());
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    q.enqueue(&EnqueueRequest::sync(key("later")).with_run_at(later))
        .await
        .unwrap();
    let paused = q
        .enqueue(&EnqueueRequest::sync(key("p")))
        .await
        .unwrap()
        .job;
    q.request_stop(&JobScope::all().job(paused.id), StopIntent::Pause)
        .await
        .unwrap();
    assert_eq!(
        q.job(paused.id).await.unwrap().unwrap().status,
        JobStatus::Paused
    );
    assert!(q.claim("w", LEASE).await.unwrap().is_none());
}

/// Concurrent claimers never get the same job, and together get every job.
pub async fn jobs_concurrent_claims_never_share_a_job(q: Queue) {
    for i in 0..40 {
        q.enqueue(&EnqueueRequest::sync(key(&format!("s{i}"))))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..6)
        .map(|w| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut got = vec![];
                while let Some(job) = q.claim(&format!("w{w}"), LEASE).await.unwrap() {
                    got.push(job.id);
                }
                got
            })
        })
        .collect();
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (40, 40));
}

/// Heartbeat and finish with a stale fence are `Fenced` and change nothing.
pub async fn jobs_heartbeat_and_finish_require_the_current_fence(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap();
    let job = q.claim("w", Duration::from_secs(5)).await.unwrap().unwrap();
    let hb = q.heartbeat(job.id, job.fence, LEASE).await.unwrap();
    assert_eq!(hb.stop_requested, None);
    let extended = q.job(job.id).await.unwrap().unwrap();
    assert!(extended.lease_until > job.lease_until);
    for fence in [job.fence + 1, job.fence - 1] {
        assert_eq!(
            q.heartbeat(job.id, fence, LEASE).await.unwrap_err().kind(),
            ErrorKind::Fenced
        );
        assert_eq!(
            q.finish(job.id, fence, &completed())
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Fenced
        );
    }
    assert_eq!(q.job(job.id).await.unwrap().unwrap(), extended);
    let done = q.finish(job.id, job.fence, &completed()).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.summary, Some(serde_json::json!({"rows_written": 1})));
    assert!(done.lease_owner.is_none() && done.lease_until.is_none());
    assert!(done.finished_at.is_some());
    // A finished job's lease is gone: the old fence is stale now.
    assert_eq!(
        q.heartbeat(job.id, job.fence, LEASE)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Fenced
    );
}

/// A failure with `retry_in` goes back to pending at the delay while attempts remain.
pub async fn jobs_failures_back_off_then_fail_after_max_attempts(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("a")).with_max_attempts(2))
        .await
        .unwrap();
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    let failed = JobOutcome::Failed {
        error: "HTTP 503".into(),
        retry_in: Some(Duration::from_secs(3600)),
    };
    let after = q.finish(job.id, job.fence, &failed).await.unwrap();
    assert_eq!(after.status, JobStatus::Pending);
    assert!(after.next_run_at > chrono::Utc::now() + chrono::Duration::minutes(59));
    assert_eq!(after.last_error.as_deref(), Some("HTTP 503"));
    assert!(q.claim("w", LEASE).await.unwrap().is_none(), "not due yet");
    // Due again at once with a zero delay: the second attempt is the last.
    q.request_stop(&JobScope::all(), StopIntent::Cancel)
        .await
        .unwrap();
    q.enqueue(&EnqueueRequest::sync(key("b")).with_max_attempts(2))
        .await
        .unwrap();
    let now = JobOutcome::Failed {
        error: "HTTP 503".into(),
        retry_in: Some(Duration::ZERO),
    };
    let first = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(
        q.finish(first.id, first.fence, &now).await.unwrap().status,
        JobStatus::Pending
    );
    let second = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (first.id, 2));
    let last = q.finish(second.id, second.fence, &now).await.unwrap();
    assert_eq!(last.status, JobStatus::Failed);
    assert!(last.finished_at.is_some());
}

/// `retry_in: None` fails the job at once; the stored error has its secrets scrubbed.
pub async fn jobs_permanent_failure_fails_at_once_with_scrubbed_error(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap();
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    let outcome = JobOutcome::Failed {
        error: "401 from https://u:hunter2@api.example/x: Authorization: Bearer tok123".into(),
        retry_in: None,
    };
    let failed = q.finish(job.id, job.fence, &outcome).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    let text = failed.last_error.unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("tok123"),
        "{text}"
    );
    assert!(text.contains("401"));
}

/// Stop cancels pending jobs at once and asks processing ones to stop.
pub async fn jobs_stop_cancels_pending_and_flags_processing(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("run"))).await.unwrap();
    let running = q.claim("w", LEASE).await.unwrap().unwrap();
    let pending = q
        .enqueue(&EnqueueRequest::sync(key("wait")))
        .await
        .unwrap()
        .job;
    let other = q
        .enqueue(&EnqueueRequest::sync(
            JobKey::new("other", "t1", "x").unwrap(),
        ))
        .await
        .unwrap()
        .job;
    let changed = q
        .request_stop(&JobScope::provider("acme"), StopIntent::Cancel)
        .await
        .unwrap();
    assert_eq!(changed, 2);
    assert_eq!(
        q.job(pending.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(
        q.job(other.id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    let flagged = q.job(running.id).await.unwrap().unwrap();
    assert_eq!(flagged.status, JobStatus::Processing);
    assert_eq!(flagged.stop_requested, Some(StopIntent::Cancel));
    let hb = q.heartbeat(running.id, running.fence, LEASE).await.unwrap();
    assert_eq!(hb.stop_requested, Some(StopIntent::Cancel));
    let stopped = JobOutcome::Stopped {
        summary: serde_json::json!({"stopped": true}),
    };
    let done = q.finish(running.id, running.fence, &stopped).await.unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(done.stop_requested, None);
}

/// A pause holds pending jobs and jobs enqueued later under its scope; resume of a narrower
/// scope does not lift a wider pause.
pub async fn jobs_pause_holds_the_scope_and_later_jobs(q: Queue) {
    let a = q
        .enqueue(&EnqueueRequest::sync(key("a")))
        .await
        .unwrap()
        .job;
    q.request_stop(&JobScope::provider("acme"), StopIntent::Pause)
        .await
        .unwrap();
    assert_eq!(
        q.job(a.id).await.unwrap().unwrap().status,
        JobStatus::Paused
    );
    let later = q.enqueue(&EnqueueRequest::sync(key("b"))).await.unwrap();
    assert!(later.created);
    assert_eq!(later.job.status, JobStatus::Paused);
    let elsewhere = q
        .enqueue(&EnqueueRequest::sync(
            JobKey::new("other", "t1", "x").unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(elsewhere.job.status, JobStatus::Pending);
    assert_eq!(
        q.claim("w", LEASE).await.unwrap().unwrap().id,
        elsewhere.job.id
    );
    assert!(
        q.claim("w", LEASE).await.unwrap().is_none(),
        "a paused scope starts nothing"
    );
    // A narrower resume leaves the provider's pause in place.
    assert_eq!(
        q.resume(&JobScope::provider("acme").tenant("t1").stream("a"))
            .await
            .unwrap(),
        0
    );
    assert!(q.claim("w", LEASE).await.unwrap().is_none());
    // Resuming one job lifts no pause: the job stays held by the provider's.
    assert_eq!(q.resume(&JobScope::all().job(a.id)).await.unwrap(), 0);
    assert!(q.claim("w", LEASE).await.unwrap().is_none());
    assert_eq!(q.resume(&JobScope::provider("acme")).await.unwrap(), 2);
    let resumed = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(resumed.id, a.id);
    assert_eq!(resumed.attempts, 1);
    let fresh = q.enqueue(&EnqueueRequest::sync(key("c"))).await.unwrap();
    assert_eq!(fresh.job.status, JobStatus::Pending);
}

/// Pausing a processing job flags it; its graceful stop leaves it paused, and resume makes
/// it pending again.
pub async fn jobs_pausing_a_running_job_ends_paused(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("a"))).await.unwrap();
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(
        q.request_stop(&JobScope::all().job(job.id), StopIntent::Pause)
            .await
            .unwrap(),
        1
    );
    let hb = q.heartbeat(job.id, job.fence, LEASE).await.unwrap();
    assert_eq!(hb.stop_requested, Some(StopIntent::Pause));
    let stopped = JobOutcome::Stopped {
        summary: serde_json::json!({}),
    };
    let paused = q.finish(job.id, job.fence, &stopped).await.unwrap();
    assert_eq!(paused.status, JobStatus::Paused);
    assert!(paused.finished_at.is_none());
    assert_eq!(q.resume(&JobScope::all().job(job.id)).await.unwrap(), 1);
    let again = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.fence), (job.id, job.fence + 1));
}

/// A released attempt (the worker shut down) is pending again and not counted.
pub async fn jobs_released_attempt_is_not_counted(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("a")).with_max_attempts(1))
        .await
        .unwrap();
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    let released = JobOutcome::Released {
        summary: serde_json::json!({}),
    };
    let back = q.finish(job.id, job.fence, &released).await.unwrap();
    assert_eq!((back.status, back.attempts), (JobStatus::Pending, 0));
    assert!(back.lease_owner.is_none());
    let again = q.claim("w2", LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (job.id, 1));
}

/// A deferred attempt (the sync was busy) waits `retry_in` without counting, even on the
/// job's last attempt, and keeps its scrubbed reason as the last error; a deferral due at
/// once is claimable again; a pending stop request ends it cancelled.
pub async fn jobs_deferred_attempt_waits_uncounted_and_says_why(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("a")).with_max_attempts(1))
        .await
        .unwrap();
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    let later = JobOutcome::Deferred {
        reason: "busy: another run holds https://u:hunter2@db.example/x".into(),
        retry_in: Duration::from_secs(3600),
    };
    let back = q.finish(job.id, job.fence, &later).await.unwrap();
    assert_eq!((back.status, back.attempts), (JobStatus::Pending, 0));
    assert!(back.next_run_at > chrono::Utc::now() + chrono::Duration::minutes(59));
    let reason = back.last_error.unwrap();
    assert!(reason.starts_with("busy: another run holds"), "{reason}");
    assert!(!reason.contains("hunter2"), "{reason}");
    assert!(back.lease_owner.is_none() && back.finished_at.is_none());
    assert!(q.claim("w", LEASE).await.unwrap().is_none(), "not due yet");

    q.enqueue(&EnqueueRequest::sync(key("b")).with_max_attempts(1))
        .await
        .unwrap();
    let now = JobOutcome::Deferred {
        reason: "busy".into(),
        retry_in: Duration::ZERO,
    };
    let first = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(first.key, key("b"));
    q.finish(first.id, first.fence, &now).await.unwrap();
    let second = q.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (first.id, 1));
    q.request_stop(&JobScope::all().job(second.id), StopIntent::Cancel)
        .await
        .unwrap();
    let cancelled = q.finish(second.id, second.fence, &now).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
}

/// An expired lease is rescued: pending again while attempts remain (the old holder is
/// fenced), failed once a worker died on every attempt.
pub async fn jobs_rescue_requeues_then_fails_dead_workers(q: Queue) {
    q.enqueue(&EnqueueRequest::sync(key("a")).with_max_attempts(2))
        .await
        .unwrap();
    let live = q
        .enqueue(&EnqueueRequest::sync(key("live")))
        .await
        .unwrap()
        .job;
    let dead = q.claim("w1", Duration::ZERO).await.unwrap().unwrap();
    let held = q.claim("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(held.id, live.id);
    assert_eq!(q.rescue_expired().await.unwrap(), vec![dead.id]);
    let rescued = q.job(dead.id).await.unwrap().unwrap();
    assert_eq!(rescued.status, JobStatus::Pending);
    assert!(rescued.lease_owner.is_none());
    assert_eq!(
        q.heartbeat(dead.id, dead.fence, LEASE)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Fenced
    );
    let second = q.claim("w2", Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(
        (second.id, second.attempts, second.fence),
        (dead.id, 2, dead.fence + 1)
    );
    assert_eq!(q.rescue_expired().await.unwrap(), vec![dead.id]);
    let failed = q.job(dead.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.last_error.is_some());
    assert_eq!(
        q.job(live.id).await.unwrap().unwrap().status,
        JobStatus::Processing
    );
}

/// `retry_failed` requeues one failed job or all of a scope, attempts reset.
pub async fn jobs_retry_failed_requeues_one_or_all(q: Queue) {
    let fail = JobOutcome::Failed {
        error: "boom".into(),
        retry_in: None,
    };
    let mut failed = vec![];
    for s in ["a", "b", "c"] {
        q.enqueue(&EnqueueRequest::sync(key(s))).await.unwrap();
        let job = q.claim("w", LEASE).await.unwrap().unwrap();
        failed.push(q.finish(job.id, job.fence, &fail).await.unwrap());
    }
    assert_eq!(
        q.retry_failed(&JobScope::all().job(failed[0].id))
            .await
            .unwrap(),
        1
    );
    let one = q.job(failed[0].id).await.unwrap().unwrap();
    assert_eq!((one.status, one.attempts), (JobStatus::Pending, 0));
    // A failed job whose key has an open job again stays failed.
    q.enqueue(&EnqueueRequest::sync(key("c"))).await.unwrap();
    assert_eq!(
        q.retry_failed(&JobScope::provider("acme")).await.unwrap(),
        1
    );
    assert_eq!(
        q.job(failed[1].id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    assert_eq!(
        q.job(failed[2].id).await.unwrap().unwrap().status,
        JobStatus::Failed
    );
    // Under a pause, a retried job waits paused.
    q.enqueue(&EnqueueRequest::sync(key("d"))).await.unwrap();
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    let d = q.finish(job.id, job.fence, &fail).await.unwrap();
    q.request_stop(&JobScope::provider("acme"), StopIntent::Pause)
        .await
        .unwrap();
    assert_eq!(q.retry_failed(&JobScope::all().job(d.id)).await.unwrap(), 1);
    assert_eq!(
        q.job(d.id).await.unwrap().unwrap().status,
        JobStatus::Paused
    );
}

/// Counts hold every status; `jobs` is newest first, filtered and limited.
pub async fn jobs_counts_and_filters(q: Queue) {
    for s in ["a", "b", "c"] {
        q.enqueue(&EnqueueRequest::sync(key(s))).await.unwrap();
    }
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    q.finish(job.id, job.fence, &completed()).await.unwrap();
    let counts = q.counts(&JobScope::provider("acme")).await.unwrap();
    assert_eq!(counts.len(), JobStatus::ALL.len());
    assert_eq!(counts[&JobStatus::Pending], 2);
    assert_eq!(counts[&JobStatus::Completed], 1);
    assert_eq!(counts[&JobStatus::Failed], 0);
    assert_eq!(
        q.counts(&JobScope::provider("nobody")).await.unwrap()[&JobStatus::Pending],
        0
    );
    let all = q.jobs(&JobFilter::new(JobScope::all(), 10)).await.unwrap();
    let ids: Vec<_> = all.iter().map(|j| j.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!((ids.len(), &ids), (3, &sorted));
    let pending = q
        .jobs(&JobFilter::new(JobScope::all(), 1).with_statuses([JobStatus::Pending]))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, JobStatus::Pending);
    let one = q
        .jobs(&JobFilter::new(
            JobScope::provider("acme").tenant("t1").stream("a"),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].key, key("a"));
}

/// `prune` deletes finished (completed, cancelled) jobs and frees their idempotency keys;
/// failed and open jobs stay.
pub async fn jobs_prune_removes_old_finished_jobs_and_their_keys(q: Queue) {
    let req = EnqueueRequest::sync(key("a")).with_idempotency_key("k");
    let done = q.enqueue(&req).await.unwrap().job;
    let job = q.claim("w", LEASE).await.unwrap().unwrap();
    q.finish(job.id, job.fence, &completed()).await.unwrap();
    let open = q
        .enqueue(&EnqueueRequest::sync(key("b")))
        .await
        .unwrap()
        .job;
    assert_eq!(q.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(q.prune(Duration::ZERO).await.unwrap(), 1);
    assert!(q.job(done.id).await.unwrap().is_none());
    assert!(q.job(open.id).await.unwrap().is_some());
    let fresh = q.enqueue(&req).await.unwrap();
    assert!(fresh.created && fresh.job.id != done.id);
}

/// Names with separators, quotes, SQL or excess length are `InvalidInput`; nothing is stored.
pub async fn jobs_hostile_names_are_rejected(q: Queue) {
    let long = "x".repeat(crate::jobs::MAX_NAME_LEN + 1);
    for (p, t, s) in [
        ("a/b", "t", "s"),
        ("", "t", "s"),
        ("p", "x'; DROP TABLE canary;--", "s"),
        ("p", "t", long.as_str()),
        ("p", "t", "a\"b"),
    ] {
        let req = EnqueueRequest::sync(JobKey {
            provider: p.into(),
            tenant: t.into(),
            stream: s.into(),
        });
        assert_eq!(
            q.enqueue(&req).await.unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{p} {t} {s}"
        );
    }
    let bad_key = EnqueueRequest::sync(key("a")).with_idempotency_key("k".repeat(201));
    assert_eq!(
        q.enqueue(&bad_key).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(q
        .jobs(&JobFilter::new(JobScope::all(), 10))
        .await
        .unwrap()
        .is_empty());
}

/// The action (a replay window) survives the round trip.
pub async fn jobs_replay_action_round_trips(q: Queue) {
    let action = JobAction::Replay {
        window: Window::new(SequenceNo(4), SequenceNo(9)).unwrap(),
    };
    q.enqueue(&EnqueueRequest::sync(key("a")).with_action(action.clone()))
        .await
        .unwrap();
    let strat = JobAction::Sync {
        strategy: Some(StrategyKind::Full),
    };
    q.enqueue(&EnqueueRequest::sync(key("b")).with_action(strat.clone()))
        .await
        .unwrap();
    assert_eq!(q.claim("w", LEASE).await.unwrap().unwrap().action, action);
    assert_eq!(q.claim("w", LEASE).await.unwrap().unwrap().action, strat);
}
