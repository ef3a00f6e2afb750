//! Scale-out: four worker processes (this test binary run again, see `scale_out/worker.rs`)
//! share one schema and 10,000 jobs, with no coordinator but PostgreSQL. One worker is
//! killed with SIGKILL while its runner is inside a job; the queue is paused and resumed
//! half-way. Then:
//!
//! - every job completed, exactly once: its summary names the run that completed it, and that
//!   run holds the job's final fence;
//! - no claim was handed out twice ((job, fence) is unique), and runs of one job overlap only
//!   where the earlier one's lease was rescued (the killed worker's);
//! - the killed worker's jobs were rescued within lease + sweep interval and completed by
//!   another worker;
//! - while paused, no claim succeeded and no run started, though every worker kept polling.

#![cfg(unix)]

#[path = "scale_out/checks.rs"]
mod checks;
mod support;
#[path = "scale_out/worker.rs"]
mod worker;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sync_core::jobs::{EnqueueRequest, JobKey, JobQueue, JobScope, JobStatus, StopIntent};
use sync_store_postgres::PostgresJobQueue;

const JOBS: usize = 10_000;
const WORKERS: usize = 4;
/// The killed worker holds its 150th run.
const HOLD_AT: usize = 150;
const BATCH: usize = 500;
const ENQUEUERS: usize = 4;

#[test]
fn scale_out_worker() {
    worker::run_if_child();
}

/// The worker processes; killed (and reaped) when dropped, so a failing test leaves none.
struct Workers {
    children: Vec<(String, Option<Child>)>,
}

impl Workers {
    fn spawn(schema: &str) -> Self {
        let exe = std::env::current_exe().expect("the test binary");
        let children = (0..WORKERS)
            .map(|n| {
                let name = format!("w{n}");
                let mut cmd = Command::new(&exe);
                cmd.args([
                    "--exact",
                    "scale_out_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(worker::SCHEMA_VAR, schema)
                .env(worker::WORKER_VAR, &name)
                .stdin(Stdio::piped())
                .stdout(Stdio::null());
                if n == 0 {
                    cmd.env(worker::HOLD_VAR, HOLD_AT.to_string());
                }
                (name, Some(cmd.spawn().expect("a worker process starts")))
            })
            .collect();
        Workers { children }
    }

    fn kill(&mut self, name: &str) {
        let (_, slot) = self.children.iter_mut().find(|(n, _)| n == name).unwrap();
        let mut child = slot.take().expect("alive");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Closes every live worker's stdin (a graceful stop) and waits for them to exit.
    async fn stop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            if let Some(child) = child {
                drop(child.stdin.take());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (name, slot) in self.children.iter_mut() {
            let Some(child) = slot.as_mut() else { continue };
            let status = loop {
                if let Some(status) = child.try_wait().expect("a status") {
                    break status;
                }
                assert!(Instant::now() < deadline, "{name} did not stop");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert!(status.success(), "{name} exited with {status}");
            *slot = None;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, slot) in self.children.iter_mut() {
            if let Some(mut child) = slot.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Waits (polling) until `condition` holds; fails after `limit`.
async fn wait_for<F, Fut>(what: &str, limit: Duration, condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(queue: &PostgresJobQueue, status: JobStatus) -> u64 {
    queue.counts(&JobScope::all()).await.unwrap()[&status]
}

/// 10,000 jobs, by four connections at once, 500 per transaction (`enqueue_all_in`).
async fn enqueue_all(queue: &PostgresJobQueue) {
    let tasks: Vec<_> = (0..ENQUEUERS)
        .map(|e| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut client = support::connect().await;
                for batch in (e..JOBS / BATCH).step_by(ENQUEUERS) {
                    let requests: Vec<_> = (batch * BATCH..(batch + 1) * BATCH)
                        .map(|i| {
                            let (tenant, stream) =
                                (format!("t{:03}", i / 100), format!("s{:02}", i % 100));
                            EnqueueRequest::sync(JobKey::new("scale", tenant, stream).unwrap())
                        })
                        .collect();
                    let tx = client.transaction().await.unwrap();
                    let enqueued = queue.enqueue_all_in(&tx, &requests).await.unwrap();
                    assert!(enqueued.iter().all(|e| e.created));
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_worker_processes_run_ten_thousand_jobs_exactly_once() {
    if support::url().is_none() {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    }
    let began = Instant::now();
    let store = support::fresh_store(4).await;
    let schema = store.schema_name().to_string();
    let queue = store.job_queue();
    let db = checks::Db::new(&schema).await;
    db.create_tables().await;

    enqueue_all(&queue).await;
    let enqueued_in = began.elapsed();
    assert_eq!(count(&queue, JobStatus::Pending).await, JOBS as u64);

    let mut workers = Workers::spawn(&schema);
    let started = Instant::now();

    // Kill w0 while its runner is inside a job.
    wait_for("w0 holds a job", Duration::from_secs(60), || {
        db.holding("w0")
    })
    .await;
    workers.kill("w0");
    let killed_at = db.now().await;
    wait_for(
        "the server ends w0's sessions",
        Duration::from_secs(10),
        || db.session_gone("w0"),
    )
    .await;
    let orphans = db.open_runs_of("w0").await;
    let kill_after = started.elapsed();
    assert!(!orphans.is_empty(), "w0 died inside a job");
    let bound = worker::LEASE + worker::SWEEP;
    // Rescued (pending again) within the bound; they are run once their turn comes, as a
    // rescued job is due from its rescue on.
    wait_for(
        "the killed worker's jobs are rescued",
        bound + Duration::from_secs(5),
        || db.all_rescued_since(&orphans, killed_at),
    )
    .await;

    // Pause half-way: nothing may start until the resume.
    wait_for(
        "half the jobs complete",
        Duration::from_secs(120),
        || async { count(&queue, JobStatus::Completed).await >= (JOBS / 2) as u64 },
    )
    .await;
    let paused_jobs = queue
        .request_stop(&JobScope::all(), StopIntent::Pause)
        .await
        .unwrap();
    let paused_at = db.now().await;
    let pause_after = started.elapsed();
    wait_for(
        "the runs in flight end",
        Duration::from_secs(10),
        || async { count(&queue, JobStatus::Processing).await == 0 },
    )
    .await;
    let quiet_at = db.now().await;
    let polls = db.idle_polls().await;
    wait_for(
        "every live worker polled ten times more",
        Duration::from_secs(20),
        || async {
            let now = db.idle_polls().await;
            polls.iter().all(|(w, n)| w == "w0" || now[w] >= n + 10)
        },
    )
    .await;
    let held = queue.counts(&JobScope::all()).await.unwrap();
    assert_eq!(
        (held[&JobStatus::Pending], held[&JobStatus::Processing]),
        (0, 0)
    );
    assert!(held[&JobStatus::Paused] > 0, "{held:?}");
    assert_eq!(
        db.runs_claimed_or_started_after(paused_at, quiet_at).await,
        0
    );
    let resumed = queue.resume(&JobScope::all()).await.unwrap();
    assert_eq!(resumed, held[&JobStatus::Paused]);

    wait_for("every job completes", Duration::from_secs(180), || async {
        count(&queue, JobStatus::Completed).await == JOBS as u64
    })
    .await;
    let ran_in = started.elapsed();
    workers.stop().await;
    let rescue = db.rescue_delays(&orphans, killed_at).await;

    let report = checks::verify(&queue, &db, "w0", &orphans).await;
    println!(
        "scale-out: {JOBS} jobs enqueued in {enqueued_in:.2?}, run by {WORKERS} processes in {ran_in:.2?} \
         ({:.0} jobs/s); killed w0 after {kill_after:.2?} inside {} jobs, rescued after {:.2?} at most (bound {bound:?}), \
         completed elsewhere after {:.2?} at most; paused {paused_jobs} jobs after {pause_after:.2?} ({} held) and resumed \
         {resumed}; {report}; total {:.2?}",
        JOBS as f64 / ran_in.as_secs_f64(),
        orphans.len(),
        rescue.rescued,
        rescue.rerun,
        held[&JobStatus::Paused],
        began.elapsed(),
    );
    assert!(
        rescue.rescued <= bound + Duration::from_millis(500),
        "rescued after {:?}, bound {bound:?}",
        rescue.rescued
    );
    drop(workers);
    store.drop_schema().await.unwrap();
}

/// How long after a time the database's clock says, as a `Duration`.
pub(crate) fn since(at: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - at).to_std().unwrap_or_default()
}
