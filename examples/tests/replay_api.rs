//! `POST /{provider}/sync/replay` end to end: the admin API over real HTTP on 127.0.0.1, the
//! job queue, checkpoints, change queue and target in one SQLite file, and a worker whose
//! runner routes the change-queue provider to the sequence-window runner and every other
//! provider to the REST runner. A replay job applies a committed window again: the target
//! and the sink get the latest state of its ids, the ledger a `replayed` row, and the
//! checkpoint stays where it was.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use sync_connectors::http::HttpConfig;
use sync_core::jobs::{
    Integration, JobKey, JobRunner, JobStatus, RunnerByProvider, SequenceWindowRunner,
    SequenceWindowStreams, SyncJobs, Worker, WorkerConfig,
};
use sync_core::memory::{MemorySource, MemoryStore};
use sync_core::testkit::{item, key, keyed_schema};
use sync_core::{
    ChangeQueue, Checkpoint, Error, ErrorKind, LedgerStatus, Position, Result, RetryPolicy,
    SequenceNo, SequenceWindowConfig, SequenceWindowStrategy, Stager, StrategyKind, SyncContext,
};
use sync_examples::admin::{self, AdminState};
use sync_examples::engine::{Catalog, RestJobRunner};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

const TOKEN: &str = "test-token-0123456789";

/// The `contacts` stream of the `crm` provider: a source with `fetch_latest`, the SQLite
/// store (stager, checkpoints, change queue `contacts`) and a sink that keeps what it got.
#[derive(Debug)]
struct CrmStreams {
    source: Arc<MemorySource>,
    store: Arc<SqliteStore>,
    sink: Arc<MemoryStore>,
}

#[async_trait]
impl SequenceWindowStreams for CrmStreams {
    async fn stream(&self, job: &JobKey) -> Result<(SyncContext, SequenceWindowStrategy)> {
        if job.stream != "contacts" {
            return Err(Error::new(ErrorKind::NotFound, "no such crm stream"));
        }
        let ctx = SyncContext::new(
            job.sync_name(),
            self.source.clone(),
            self.store.clone(),
            self.store.clone(),
        )
        .with_queue(self.store.clone())
        .with_sink(self.sink.clone())
        .with_retry(RetryPolicy::none());
        let strategy =
            SequenceWindowStrategy::new(SequenceWindowConfig::new("contacts", "contacts"))?;
        Ok((ctx, strategy))
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let resp = http
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_requested_over_http_runs_on_the_sequence_window_runner() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.path().join("replay.db")))
            .await
            .unwrap(),
    );
    let queue = Arc::new(store.job_queue());
    let source = Arc::new(MemorySource::new((*keyed_schema("contacts")).clone()));
    let sink = Arc::new(MemoryStore::new());
    let catalog = Arc::new(Catalog::new(HttpConfig::default()).unwrap());
    let crm: Arc<dyn JobRunner> = Arc::new(SequenceWindowRunner::new(Arc::new(CrmStreams {
        source: source.clone(),
        store: store.clone(),
        sink: sink.clone(),
    })));
    let rest = Arc::new(RestJobRunner::new(
        catalog.clone(),
        queue.clone(),
        store.clone(),
        store.clone(),
    ));
    let runner = RunnerByProvider::new().with("crm", crm).otherwise(rest);
    let worker = Worker::new(queue.clone(), Arc::new(runner), WorkerConfig::new("w1")).unwrap();
    let jobs = SyncJobs::new(queue.clone(), store.clone());
    // The admin API's integration route checks the REST catalog; a change-queue provider's
    // integration is written by the service itself.
    jobs.put_integration(&Integration::new(
        "crm",
        "t1",
        StrategyKind::SequenceWindow,
        ["contacts"],
    ))
    .await
    .unwrap();
    let state = AdminState::new(jobs, catalog, store.clone(), TOKEN).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, admin::router(state)).await });
    let http = reqwest::Client::new();

    for id in ["c1", "c2", "c3"] {
        source.upsert(item(id, 1, None).values().to_vec());
        store.append("contacts", &[key(id)]).await.unwrap();
    }
    let (status, body) = post(&http, format!("{base}/crm/sync"), json!({ "tenant": "t1" })).await;
    assert_eq!(status, 202, "{body}");
    let synced = worker.run_one().await.unwrap().unwrap();
    assert_eq!(synced.status, JobStatus::Completed, "{synced:?}");

    // `c2` changed without a queue entry (its producer lost it): replaying the window
    // brings the target and the sink up to date.
    source.upsert(item("c2", 2, None).values().to_vec());
    let (status, body) = post(
        &http,
        format!("{base}/crm/sync/replay"),
        json!({ "tenant": "t1", "stream": "contacts", "low": 0, "high": 3 }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["jobs"][0]["job"]["action"]["type"], "replay", "{body}");
    let replayed = worker.run_one().await.unwrap().unwrap();
    assert_eq!(replayed.status, JobStatus::Completed, "{replayed:?}");

    let sync = "crm/t1/contacts";
    let ledger = store.ledger(sync).await.unwrap();
    let last = ledger.last().unwrap();
    let seq = |n| Position::Sequence(SequenceNo(n));
    assert_eq!(
        (last.status, last.low.clone(), last.high.clone()),
        (LedgerStatus::Replayed, seq(0), seq(3))
    );
    assert_eq!(
        store.read_target("contacts").await.unwrap(),
        source.rows("contacts")
    );
    assert_eq!(sink.destination_rows("contacts"), source.rows("contacts"));
    let stored = store.load(sync).await.unwrap().unwrap();
    assert_eq!(stored.state.position, seq(3));

    // A window the ledger does not hold is refused before anything is enqueued.
    let (status, body) = post(
        &http,
        format!("{base}/crm/sync/replay"),
        json!({ "tenant": "t1", "stream": "contacts", "low": 1, "high": 3 }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(worker.run_one().await.unwrap().is_none());
}
