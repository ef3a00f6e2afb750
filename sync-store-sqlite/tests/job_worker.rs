//! The worker runtime of `sync-core` over the SQLite job queue, running real incremental
//! syncs from a memory source into the same SQLite file: a triggered job completes with the
//! target equal to the source and the next one syncs only the changes; worker loops on two
//! stores of one file complete every stream once; a worker that lost its lease is fenced.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sync_core::jobs::{
    Integration, Job, JobKey, JobQueue, JobRunner, JobScope, JobStatus, SyncJobs, Trigger, Worker,
    WorkerConfig,
};
use sync_core::memory::MemorySource;
use sync_core::testkit::{ids, item, items_schema, GatedSource};
use sync_core::{
    ErrorKind, IncrementalConfig, IncrementalStrategy, Result, RetryPolicy, RunReport, Source,
    Stager, StopSignal, Strategy, StrategyKind, SyncContext, Value,
};
use sync_store_sqlite::{SqliteConfig, SqliteJobQueue, SqliteStore};

const ITEMS: i64 = 50;

/// Runs each job as an incremental sync of its stream, pages of 10, into `store`; records
/// how each run ended.
#[derive(Debug)]
struct IncrementalRunner {
    source: Arc<dyn Source>,
    store: SqliteStore,
    ended: Mutex<Vec<std::result::Result<u64, ErrorKind>>>,
}

#[async_trait]
impl JobRunner for IncrementalRunner {
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport> {
        let store = Arc::new(self.store.clone());
        let ctx = SyncContext::new(
            job.key.sync_name(),
            self.source.clone(),
            store.clone(),
            store,
        )
        .with_retry(RetryPolicy::none())
        .with_stop(stop);
        let mut config = IncrementalConfig::new(&job.key.stream);
        config.page_size = 10;
        let result = IncrementalStrategy::new(config)?.run(&ctx).await;
        let ended = result
            .as_ref()
            .map(|r| r.rows_written)
            .map_err(|e| e.kind());
        self.ended.lock().unwrap().push(ended);
        result
    }
}

/// A source whose streams `streams` each hold items `k000..` updated at their index.
fn source(streams: &[&str]) -> Arc<MemorySource> {
    let mut source = MemorySource::new((*items_schema(streams[0])).clone());
    for s in &streams[1..] {
        source = source.with_stream((*items_schema(s)).clone());
    }
    source.with_data(|d| {
        for s in streams {
            for i in 0..ITEMS {
                d.upsert(s, item(&format!("k{i:03}"), 1, Some(i)).values().to_vec());
            }
        }
    });
    for s in streams {
        source.set_high_watermark(s, Some(vec![Value::from(ITEMS)]));
    }
    Arc::new(source)
}

fn config(id: &str) -> WorkerConfig {
    let mut c = WorkerConfig::new(id);
    c.poll = Duration::from_millis(20);
    c.sweep = Duration::from_millis(200);
    c
}

async fn open(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(SqliteConfig::new(path)).await.unwrap()
}

/// A store in a fresh file with the integration `acme/t1` of `streams`, and its operations.
async fn setup(streams: &[&str]) -> (std::path::PathBuf, SqliteStore, SyncJobs) {
    let path = tempfile::tempdir().unwrap().keep().join("jobs.db");
    let store = open(&path).await;
    let jobs = SyncJobs::new(Arc::new(store.job_queue()), Arc::new(store.clone()));
    let integration = Integration::new("acme", "t1", StrategyKind::Incremental, streams.to_vec());
    jobs.put_integration(&integration).await.unwrap();
    (path, store, jobs)
}

/// A worker on `queue` running incremental syncs from `source` into `store`, and its runner.
fn worker(
    queue: SqliteJobQueue,
    source: Arc<dyn Source>,
    id: &str,
) -> (Worker, Arc<IncrementalRunner>) {
    let runner = Arc::new(IncrementalRunner {
        source,
        store: queue.store().clone(),
        ended: Mutex::new(vec![]),
    });
    let worker = Worker::new(Arc::new(queue), runner.clone(), config(id)).unwrap();
    (worker, runner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triggered_job_syncs_to_completion_then_the_next_one_syncs_the_changes() {
    let (_, store, jobs) = setup(&["items"]).await;
    let source = source(&["items"]);
    let (worker, _) = worker(store.job_queue(), source.clone(), "w1");
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let first = worker.run_one().await.unwrap().unwrap();
    assert_eq!((first.status, first.attempts), (JobStatus::Completed, 1));
    let summary = first.summary.unwrap();
    assert_eq!(
        (
            summary["rows_written"].as_i64(),
            summary["complete"].as_bool()
        ),
        (Some(ITEMS), Some(true))
    );
    assert_eq!(
        store.read_target("items").await.unwrap(),
        source.rows("items")
    );
    assert!(
        worker.run_one().await.unwrap().is_none(),
        "nothing else is due"
    );

    // Five items change and five arrive; the next job writes those ten and nothing else.
    for i in 0..5 {
        source.upsert(
            item(&format!("k{i:03}"), 2, Some(ITEMS + i))
                .values()
                .to_vec(),
        );
        source.upsert(
            item(&format!("n{i:03}"), 1, Some(ITEMS + 5 + i))
                .values()
                .to_vec(),
        );
    }
    source.set_high_watermark("items", Some(vec![Value::from(ITEMS + 10)]));
    let again = jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    assert!(again[0].created && again[0].job.id != first.id);
    let second = worker.run_one().await.unwrap().unwrap();
    assert_eq!(second.status, JobStatus::Completed);
    assert_eq!(second.summary.unwrap()["rows_written"].as_i64(), Some(10));
    assert_eq!(
        store.read_target("items").await.unwrap(),
        source.rows("items")
    );
    let history = jobs
        .history(&JobKey::new("acme", "t1", "items").unwrap(), 10)
        .await
        .unwrap();
    assert!(history.ledger.len() >= 2);
    assert!(history.log.iter().any(|e| e.event == "run_finished"));
    assert_eq!(
        history.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_loops_on_two_stores_of_one_file_complete_every_stream_once() {
    let streams = ["s0", "s1", "s2", "s3", "s4", "s5"];
    let (path, store, jobs) = setup(&streams).await;
    let other = open(&path).await;
    let source = source(&streams);
    let shutdown = StopSignal::new();
    let loops: Vec<_> = [(&store, "w1"), (&other, "w2")]
        .into_iter()
        .map(|(s, id)| {
            let (w, _) = worker(s.job_queue(), source.clone(), id);
            let shutdown = shutdown.clone();
            tokio::spawn(async move { w.run(shutdown).await })
        })
        .collect();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let queue = store.job_queue();
    for _ in 0..1500 {
        let counts = queue.counts(&JobScope::all()).await.unwrap();
        if counts[&JobStatus::Completed] == streams.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.stop();
    for l in loops {
        l.await.unwrap().unwrap();
    }
    let done = queue
        .jobs(&sync_core::jobs::JobFilter::new(JobScope::all(), 100))
        .await
        .unwrap();
    assert_eq!(done.len(), streams.len());
    for job in &done {
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Completed, 1),
            "{job:?}"
        );
    }
    for s in streams {
        assert_eq!(
            ids(&other.read_target(s).await.unwrap()),
            ids(&source.rows(s))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_is_fenced_and_the_rescuer_completes_the_job() {
    let (_, store, jobs) = setup(&["items"]).await;
    let inner = source(&["items"]);
    let gated = GatedSource::over(inner.clone());
    let (old, old_runner) = worker(store.job_queue(), gated.clone(), "old");
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    let stuck = tokio::spawn(async move { old.run_one().await });
    gated.reached().await;
    // The old worker hangs past its lease: on a clock 31 s ahead the lease has expired, a
    // sweep rescues the job and the new worker runs it to the end.
    let late = store.job_queue();
    late.advance(Duration::from_secs(31));
    let (new, _) = worker(late.clone(), gated.clone(), "new");
    assert_eq!(new.sweep().await.unwrap().rescued, 1);
    let done = new.run_one().await.unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Completed, 2));
    // The old worker wakes up: its promotion is rejected and it reports nothing.
    gated.release();
    let returned = stuck.await.unwrap().unwrap().unwrap();
    assert_eq!(
        returned.status,
        JobStatus::Processing,
        "the old worker's view, unchanged"
    );
    let old_ended = old_runner.ended.lock().unwrap().clone();
    assert!(
        matches!(
            old_ended[..],
            [Err(ErrorKind::Fenced | ErrorKind::NotFound)]
        ),
        "{old_ended:?}"
    );
    let job = late.job(done.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.fence), (JobStatus::Completed, 2));
    assert_eq!(
        store.read_target("items").await.unwrap(),
        inner.rows("items")
    );
}
