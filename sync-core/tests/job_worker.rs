//! The worker runtime and the sync-engine operations over the in-memory queue and store,
//! with real strategies: jobs complete, stop gracefully with their batch committed, back off
//! and fail, are rescued from dead workers, and a worker that lost its lease is fenced.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{hwm, put};
use sync_core::jobs::{
    Integration, Job, JobAction, JobKey, JobQueue, JobRunner, JobScope, JobStatus, Schedule,
    SyncJobs, Trigger, Worker, WorkerConfig,
};
use sync_core::memory::{MemoryJobQueue, MemorySource, MemoryStore};
use sync_core::testkit::{ids, items_schema, GatedSource};
use sync_core::{
    Error, ErrorKind, IncrementalConfig, IncrementalStrategy, Result, RetryPolicy, RunReport,
    Source, StopSignal, Strategy, StrategyKind, SyncContext,
};
use tokio::sync::Notify;

const ITEMS: usize = 50;
const PAGE: u32 = 10;

/// Runs each job as an incremental sync of the `items` stream into one memory store, and
/// records every run's result.
#[derive(Debug)]
struct IncrementalRunner {
    source: Arc<dyn Source>,
    store: Arc<MemoryStore>,
    results: Mutex<Vec<(String, std::result::Result<RunReport, ErrorKind>)>>,
    /// Notified when a run's stop signal is raised.
    stop_seen: Arc<Notify>,
}

#[async_trait]
impl JobRunner for IncrementalRunner {
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport> {
        let (watched, seen) = (stop.clone(), self.stop_seen.clone());
        let watcher = tokio::spawn(async move {
            watched.stopped().await;
            seen.notify_one();
        });
        let ctx = SyncContext::new(
            job.key.sync_name(),
            self.source.clone(),
            self.store.clone(),
            self.store.clone(),
        )
        .with_retry(RetryPolicy::none())
        .with_stop(stop);
        let mut config = IncrementalConfig::new("items");
        config.page_size = PAGE;
        let result = IncrementalStrategy::new(config)?.run(&ctx).await;
        watcher.abort();
        let recorded = result.as_ref().map(Clone::clone).map_err(|e| e.kind());
        self.results
            .lock()
            .unwrap()
            .push((job.lease_owner.clone().unwrap_or_default(), recorded));
        result
    }
}

fn source_with_items() -> Arc<MemorySource> {
    let source = Arc::new(MemorySource::new((*items_schema("items")).clone()));
    for i in 0..ITEMS {
        put(&source, &format!("k{i:03}"), 1, Some(i as i64));
    }
    hwm(&source, "items", ITEMS as i64);
    source
}

fn runner(source: Arc<dyn Source>, store: Arc<MemoryStore>) -> Arc<IncrementalRunner> {
    Arc::new(IncrementalRunner {
        source,
        store,
        results: Mutex::new(vec![]),
        stop_seen: Arc::new(Notify::new()),
    })
}

fn config(id: &str) -> WorkerConfig {
    let mut c = WorkerConfig::new(id);
    c.lease = Duration::from_secs(30);
    c.heartbeat = Duration::from_secs(10);
    c.poll = Duration::from_millis(20);
    c.sweep = Duration::from_millis(50);
    c
}

fn key() -> JobKey {
    JobKey::new("acme", "t1", "items").unwrap()
}

async fn setup() -> (Arc<MemoryJobQueue>, Arc<MemoryStore>, SyncJobs) {
    let queue = Arc::new(MemoryJobQueue::new());
    let store = Arc::new(MemoryStore::new());
    let jobs = SyncJobs::new(queue.clone(), store.clone());
    jobs.put_integration(&Integration::new(
        "acme",
        "t1",
        StrategyKind::Incremental,
        ["items"],
    ))
    .await
    .unwrap();
    (queue, store, jobs)
}

#[tokio::test]
async fn a_triggered_job_runs_to_completion_and_the_target_equals_the_source() {
    let (queue, store, jobs) = setup().await;
    let source = source_with_items();
    let worker = Worker::new(
        queue.clone(),
        runner(source.clone(), store.clone()),
        config("w1"),
    )
    .unwrap();
    let enqueued = jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    assert_eq!(enqueued.len(), 1);
    let done = worker.run_one().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let summary = done.summary.unwrap();
    assert_eq!(summary["rows_written"], ITEMS as u64);
    assert_eq!(summary["complete"], true);
    assert_eq!(ids(&store.target_rows("items")), ids(&source.rows("items")));
    assert!(
        worker.run_one().await.unwrap().is_none(),
        "nothing else is due"
    );
    let history = jobs.history(&key(), 10).await.unwrap();
    assert!(!history.ledger.is_empty());
    assert!(history.log.iter().any(|e| e.event == "run_finished"));
    assert_eq!(history.jobs[0].id, done.id);
}

#[tokio::test]
async fn a_stop_request_commits_the_batch_in_flight_and_the_next_job_resumes() {
    let (queue, store, jobs) = setup().await;
    let inner = source_with_items();
    let gated = GatedSource::over(inner.clone());
    let mut cfg = config("w1");
    cfg.heartbeat = Duration::from_millis(20);
    cfg.lease = Duration::from_secs(30);
    let the_runner = runner(gated.clone(), store.clone());
    let worker = Worker::new(queue.clone(), the_runner.clone(), cfg).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run_one().await }
    });
    // The first page is promoted; the run waits for its second page.
    gated.reached().await;
    assert_eq!(jobs.stop(&JobScope::provider("acme")).await.unwrap(), 1);
    // The next heartbeat delivers the stop to the run; then the page in flight arrives.
    the_runner.stop_seen.notified().await;
    gated.release();
    let stopped = running.await.unwrap().unwrap().unwrap();
    assert_eq!(stopped.status, JobStatus::Cancelled);
    let summary = stopped.summary.unwrap();
    assert_eq!(summary["stopped"], true);
    assert_eq!(summary["complete"], false);
    let written = summary["rows_written"].as_u64().unwrap();
    assert!(written > 0 && written < ITEMS as u64, "{written}");
    // What was promoted is in the target, and its checkpoint says so.
    assert_eq!(store.target_rows("items").len() as u64, written);
    // A new trigger continues from the checkpoint: nothing lost, nothing twice.
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let done = worker.run_one().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(
        done.summary.unwrap()["rows_written"].as_u64().unwrap() + written,
        ITEMS as u64
    );
    assert_eq!(ids(&store.target_rows("items")), ids(&inner.rows("items")));
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_is_fenced_and_the_rescuer_completes_the_job() {
    let (queue, store, jobs) = setup().await;
    let inner = source_with_items();
    let gated = GatedSource::over(inner.clone());
    let old_runner = runner(gated.clone(), store.clone());
    let old = Worker::new(queue.clone(), old_runner.clone(), config("old")).unwrap();
    let new_runner = runner(gated.clone(), store.clone());
    let new = Worker::new(queue.clone(), new_runner.clone(), config("new")).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let stuck = tokio::spawn({
        let old = old.clone();
        async move { old.run_one().await }
    });
    gated.reached().await;
    // The old worker hangs past its lease; a sweep rescues the job and the new worker runs it.
    queue.advance(Duration::from_secs(31));
    let sweep = new.sweep().await.unwrap();
    assert_eq!(sweep.rescued, 1);
    let done = new.run_one().await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.lease_owner.as_deref()),
        (JobStatus::Completed, None)
    );
    assert_eq!(done.attempts, 2);
    // The old worker wakes up: its promotion is rejected, and it reports nothing.
    gated.release();
    let returned = stuck.await.unwrap().unwrap().unwrap();
    assert_eq!(
        returned.status,
        JobStatus::Processing,
        "the old worker's view, unchanged"
    );
    let old_results = old_runner.results.lock().unwrap().clone();
    assert_eq!(old_results.len(), 1);
    // Its staging run was taken over and promoted by the rescuer: gone (or fenced).
    let kind = *old_results[0].1.as_ref().unwrap_err();
    assert!(
        matches!(kind, ErrorKind::Fenced | ErrorKind::NotFound),
        "{kind:?}"
    );
    let job = queue.job(done.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(ids(&store.target_rows("items")), ids(&inner.rows("items")));
    let (old, new) = (old.metrics(), new.metrics());
    assert_eq!(
        (old.claimed, old.lost, old.completed, old.running),
        (1, 1, 0, 0)
    );
    assert_eq!((new.claimed, new.completed, new.rescued), (1, 1, 1));
}

/// A runner that fails with the errors it is given, then succeeds.
#[derive(Debug)]
struct FailingRunner {
    errors: Mutex<Vec<Error>>,
    runs: AtomicUsize,
}

#[async_trait]
impl JobRunner for FailingRunner {
    async fn run(&self, _job: &Job, _stop: StopSignal) -> Result<RunReport> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.errors.lock().unwrap().pop() {
            Some(e) => Err(e),
            None => Ok(RunReport {
                complete: true,
                ..RunReport::default()
            }),
        }
    }
}

#[tokio::test]
async fn transient_failures_back_off_and_fail_after_max_attempts() {
    let (queue, _store, jobs) = setup().await;
    let transient = || Error::new(ErrorKind::Remote, "HTTP 503 token=abc123").transient();
    let runner = Arc::new(FailingRunner {
        errors: Mutex::new(vec![transient(), transient(), transient()]),
        runs: AtomicUsize::new(0),
    });
    let worker = Worker::new(queue.clone(), runner.clone(), config("w1")).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let first = worker.run_one().await.unwrap().unwrap();
    assert_eq!((first.status, first.attempts), (JobStatus::Pending, 1));
    assert!(first.next_run_at > chrono::Utc::now(), "backed off");
    assert!(!first.last_error.as_ref().unwrap().contains("abc123"));
    assert!(
        worker.run_one().await.unwrap().is_none(),
        "not due during the backoff"
    );
    queue.advance(Duration::from_secs(601));
    assert_eq!(
        worker.run_one().await.unwrap().unwrap().status,
        JobStatus::Pending
    );
    queue.advance(Duration::from_secs(601));
    let last = worker.run_one().await.unwrap().unwrap();
    assert_eq!((last.status, last.attempts), (JobStatus::Failed, 3));
    assert_eq!(runner.runs.load(Ordering::SeqCst), 3);
    let m = worker.metrics();
    assert_eq!((m.claimed, m.retried, m.failed, m.completed), (3, 2, 1, 0));
    // Retry of the failed job continues; this time the run succeeds.
    assert_eq!(
        jobs.retry_failed(&JobScope::provider("acme"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        worker.run_one().await.unwrap().unwrap().status,
        JobStatus::Completed
    );
}

#[tokio::test]
async fn a_busy_sync_defers_the_job_without_counting_attempts() {
    let (queue, _store, jobs) = setup().await;
    let busy = |held_for: u64| {
        Error::new(ErrorKind::Busy, "another run holds the sync")
            .with_retry_after(Duration::from_secs(held_for))
    };
    // More busy answers than the job has attempts (popped from the end): the first waits
    // as long as the hold lasts, the longer ones no more than the backoff's base.
    let runner = Arc::new(FailingRunner {
        errors: Mutex::new(vec![busy(3600), busy(3600), busy(3600), busy(2)]),
        runs: AtomicUsize::new(0),
    });
    let mut cfg = config("w1");
    cfg.backoff.base = Duration::from_secs(5);
    let worker = Worker::new(queue.clone(), runner.clone(), cfg).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let first = worker.run_one().await.unwrap().unwrap();
    assert_eq!((first.status, first.attempts), (JobStatus::Pending, 0));
    assert!(first
        .last_error
        .unwrap()
        .contains("another run holds the sync"));
    assert!(
        worker.run_one().await.unwrap().is_none(),
        "waits for the hold"
    );
    queue.advance(Duration::from_secs(2));
    for _ in 0..3 {
        let again = worker.run_one().await.unwrap().unwrap();
        assert_eq!((again.status, again.attempts), (JobStatus::Pending, 0));
        assert!(worker.run_one().await.unwrap().is_none());
        queue.advance(Duration::from_secs(5));
    }
    let done = worker.run_one().await.unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Completed, 1));
    assert_eq!(runner.runs.load(Ordering::SeqCst), 5);
    let m = worker.metrics();
    assert_eq!((m.claimed, m.deferred, m.completed, m.failed), (5, 4, 1, 0));
}

#[tokio::test]
async fn a_permanent_failure_fails_the_job_at_once() {
    let (queue, _store, jobs) = setup().await;
    let runner = Arc::new(FailingRunner {
        errors: Mutex::new(vec![Error::config("bad page size")]),
        runs: AtomicUsize::new(0),
    });
    let worker = Worker::new(queue, runner, config("w1")).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let job = worker.run_one().await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 1));
    assert!(job.last_error.unwrap().contains("bad page size"));
}

#[tokio::test]
async fn schedules_enqueue_each_slot_once_across_workers() {
    let (queue, store, jobs) = setup().await;
    jobs.put_integration(
        &Integration::new("acme", "t2", StrategyKind::Incremental, ["a", "b"])
            .with_schedule(Schedule::every(3600)),
    )
    .await
    .unwrap();
    let r = runner(source_with_items(), store);
    let w1 = Worker::new(queue.clone(), r.clone(), config("w1")).unwrap();
    let w2 = Worker::new(queue.clone(), r, config("w2")).unwrap();
    assert_eq!(w1.sweep().await.unwrap().scheduled, 2);
    assert_eq!(w2.sweep().await.unwrap().scheduled, 0);
    assert_eq!(w1.sweep().await.unwrap().scheduled, 0);
    let counts = queue
        .counts(&JobScope::provider("acme").tenant("t2"))
        .await
        .unwrap();
    assert_eq!(counts[&JobStatus::Pending], 2);
}

/// Blocks every run until stopped, then reports a graceful stop.
#[derive(Debug, Default)]
struct WaitingRunner {
    started: Notify,
}

#[async_trait]
impl JobRunner for WaitingRunner {
    async fn run(&self, _job: &Job, stop: StopSignal) -> Result<RunReport> {
        self.started.notify_one();
        stop.stopped().await;
        Ok(RunReport {
            stopped: true,
            ..RunReport::default()
        })
    }
}

#[tokio::test]
async fn shutting_a_worker_down_releases_its_job_for_another_worker() {
    let (queue, _store, jobs) = setup().await;
    let runner = Arc::new(WaitingRunner::default());
    let worker = Worker::new(queue.clone(), runner.clone(), config("w1")).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let shutdown = StopSignal::new();
    let loop_task = tokio::spawn({
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        async move { worker.run(shutdown).await }
    });
    runner.started.notified().await;
    shutdown.stop();
    loop_task.await.unwrap().unwrap();
    let job = &queue
        .jobs(&sync_core::jobs::JobFilter::new(JobScope::all(), 1))
        .await
        .unwrap()[0];
    assert_eq!((job.status, job.attempts), (JobStatus::Pending, 0));
    assert!(job.lease_owner.is_none());
    let m = worker.metrics();
    assert_eq!((m.claimed, m.released, m.running), (1, 1, 0));
}

#[tokio::test]
async fn pausing_a_running_job_parks_it_until_resumed() {
    let (queue, _store, jobs) = setup().await;
    let runner = Arc::new(WaitingRunner::default());
    let mut cfg = config("w1");
    cfg.heartbeat = Duration::from_millis(10);
    let worker = Worker::new(queue.clone(), runner.clone(), cfg).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run_one().await }
    });
    runner.started.notified().await;
    jobs.pause(&JobScope::provider("acme")).await.unwrap();
    let paused = running.await.unwrap().unwrap().unwrap();
    assert_eq!(paused.status, JobStatus::Paused);
    assert!(
        worker.run_one().await.unwrap().is_none(),
        "a paused queue starts nothing"
    );
    // A trigger while paused joins the paused job instead of starting one.
    let again = jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    assert_eq!((again[0].job.id, again[0].created), (paused.id, false));
    assert_eq!(jobs.resume(&JobScope::provider("acme")).await.unwrap(), 1);
    let status = jobs.status(&JobScope::provider("acme")).await.unwrap();
    assert_eq!(status.counts[&JobStatus::Pending], 1);
    assert_eq!(status.open[0].id, paused.id);
}

#[tokio::test]
async fn operations_validate_their_input_and_change_nothing_on_error() {
    let (queue, store, jobs) = setup().await;
    let kinds = [
        jobs.trigger(&Trigger::new("acme", "nobody"))
            .await
            .unwrap_err()
            .kind(),
        jobs.trigger(&Trigger::new("acme", "t1").with_streams(["nope"]))
            .await
            .unwrap_err()
            .kind(),
        jobs.trigger(&Trigger::new("ac/me", "t1"))
            .await
            .unwrap_err()
            .kind(),
        jobs.reset(&key(), "yes").await.unwrap_err().kind(),
        jobs.replay(
            &key(),
            sync_core::Window::new(sync_core::SequenceNo(0), sync_core::SequenceNo(4)).unwrap(),
        )
        .await
        .unwrap_err()
        .kind(),
    ];
    assert_eq!(
        kinds,
        [
            ErrorKind::NotFound,
            ErrorKind::NotFound,
            ErrorKind::InvalidInput,
            ErrorKind::InvalidInput,
            ErrorKind::NotFound
        ]
    );
    let mut disabled = queue.integration("acme", "t1").await.unwrap().unwrap();
    disabled.enabled = false;
    jobs.put_integration(&disabled).await.unwrap();
    assert_eq!(
        jobs.trigger(&Trigger::new("acme", "t1"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    assert_eq!(
        queue
            .counts(&JobScope::all())
            .await
            .unwrap()
            .values()
            .sum::<u64>(),
        0
    );
    // A confirmed reset of an idle stream deletes its checkpoint.
    disabled.enabled = true;
    jobs.put_integration(&disabled).await.unwrap();
    let worker = Worker::new(
        queue.clone(),
        runner(source_with_items(), store.clone()),
        config("w"),
    )
    .unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    worker.run_one().await.unwrap();
    let before = jobs.status(&JobScope::provider("acme")).await.unwrap();
    assert!(before.streams[0].position.is_some());
    jobs.reset(&key(), "acme/t1/items").await.unwrap();
    let after = jobs.status(&JobScope::provider("acme")).await.unwrap();
    assert_eq!(after.streams[0].position, None);
    assert!(matches!(
        queue
            .jobs(&sync_core::jobs::JobFilter::new(JobScope::all(), 1))
            .await
            .unwrap()[0]
            .action,
        JobAction::Sync { .. }
    ));
}
