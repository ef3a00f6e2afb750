//! The sequence-window job runner through a worker: a sync job runs the next windows, a
//! replay job (as `SyncJobs::replay` enqueues it) applies a committed window again without
//! moving the checkpoint, and jobs the runner cannot serve fail permanently at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::put;
use sync_core::jobs::{
    Integration, JobAction, JobKey, JobRunner, JobStatus, RunnerByProvider, SequenceWindowRunner,
    SequenceWindowStreams, SyncJobs, Trigger, Worker, WorkerConfig,
};
use sync_core::memory::{MemoryJobQueue, MemorySource, MemoryStore};
use sync_core::testkit::{key, keyed_schema};
use sync_core::{
    ChangeQueue, Checkpoint, Error, ErrorKind, LedgerStatus, Position, Result, RetryPolicy,
    SequenceNo, SequenceWindowConfig, SequenceWindowStrategy, StrategyKind, SyncContext, Window,
};

/// The `orders` stream of every tenant of `crm`: one source, one store (stager, checkpoints,
/// change queue `q` and sink alike).
#[derive(Debug)]
struct Streams {
    source: Arc<MemorySource>,
    store: Arc<MemoryStore>,
    /// The sync name the context gets (`None`: the job's, as the contract says).
    sync_name: Option<String>,
}

#[async_trait]
impl SequenceWindowStreams for Streams {
    async fn stream(&self, key: &JobKey) -> Result<(SyncContext, SequenceWindowStrategy)> {
        if key.stream != "orders" {
            return Err(Error::new(ErrorKind::NotFound, "no such stream"));
        }
        let sync = self.sync_name.clone().unwrap_or_else(|| key.sync_name());
        let ctx = SyncContext::new(
            sync,
            self.source.clone(),
            self.store.clone(),
            self.store.clone(),
        )
        .with_queue(self.store.clone())
        .with_sink(self.store.clone())
        .with_retry(RetryPolicy::none());
        Ok((
            ctx,
            SequenceWindowStrategy::new(SequenceWindowConfig::new("orders", "q"))?,
        ))
    }
}

struct Setup {
    source: Arc<MemorySource>,
    store: Arc<MemoryStore>,
    jobs: SyncJobs,
    worker: Worker,
}

async fn setup(sync_name: Option<&str>) -> Setup {
    let queue = Arc::new(MemoryJobQueue::new());
    let store = Arc::new(MemoryStore::new());
    let source = Arc::new(MemorySource::new((*keyed_schema("orders")).clone()));
    let jobs = SyncJobs::new(queue.clone(), store.clone());
    for provider in ["crm", "erp"] {
        jobs.put_integration(&Integration::new(
            provider,
            "t1",
            StrategyKind::SequenceWindow,
            ["orders"],
        ))
        .await
        .unwrap();
    }
    let streams = Arc::new(Streams {
        source: source.clone(),
        store: store.clone(),
        sync_name: sync_name.map(str::to_string),
    });
    let runner: Arc<dyn JobRunner> = Arc::new(SequenceWindowRunner::new(streams));
    let routed = Arc::new(RunnerByProvider::new().with("crm", runner));
    let mut config = WorkerConfig::new("w1");
    config.heartbeat = Duration::from_secs(10);
    let worker = Worker::new(queue, routed, config).unwrap();
    Setup {
        source,
        store,
        jobs,
        worker,
    }
}

fn orders() -> JobKey {
    JobKey::new("crm", "t1", "orders").unwrap()
}

fn statuses(ledger: &[sync_core::LedgerEntry]) -> Vec<(LedgerStatus, Position, Position)> {
    ledger
        .iter()
        .map(|e| (e.status, e.low.clone(), e.high.clone()))
        .collect()
}

#[tokio::test]
async fn a_replay_job_applies_its_window_again_and_leaves_the_checkpoint() {
    let s = setup(None).await;
    for id in ["a", "b"] {
        put(&s.source, id, 1, None);
        s.store.append("q", &[key(id)]).await.unwrap();
    }
    s.jobs
        .trigger(&Trigger::new("crm", "t1").with_streams(["orders"]))
        .await
        .unwrap();
    let synced = s.worker.run_one().await.unwrap().unwrap();
    assert_eq!(synced.status, JobStatus::Completed, "{synced:?}");
    let sync = orders().sync_name();
    let seq = |n| Position::Sequence(SequenceNo(n));
    assert_eq!(
        statuses(&s.store.ledger(&sync).await.unwrap()),
        [
            (LedgerStatus::Committed, seq(0), seq(2)),
            (LedgerStatus::Delivered, seq(0), seq(2))
        ]
    );

    // The source moved on for `a` without a queue entry (a change the producer lost): the
    // replay of the window fetches the latest state of its ids and delivers it again.
    put(&s.source, "a", 2, None);
    s.jobs
        .replay(
            &orders(),
            Window::new(SequenceNo(0), SequenceNo(2)).unwrap(),
        )
        .await
        .unwrap();
    let replayed = s.worker.run_one().await.unwrap().unwrap();
    assert_eq!(replayed.status, JobStatus::Completed, "{replayed:?}");
    let ledger = s.store.ledger(&sync).await.unwrap();
    assert_eq!(
        statuses(&ledger).last().unwrap(),
        &(LedgerStatus::Replayed, seq(0), seq(2))
    );
    assert_eq!(s.store.target_rows("orders"), s.source.rows("orders"));
    assert_eq!(s.store.destination_rows("orders"), s.source.rows("orders"));
    let stored = s.store.load(&sync).await.unwrap().unwrap();
    assert_eq!(
        stored.state.position,
        seq(2),
        "a replay never moves the checkpoint"
    );
}

#[tokio::test]
async fn jobs_the_runner_cannot_serve_fail_at_once_and_run_nothing() {
    let s = setup(None).await;
    put(&s.source, "a", 1, None);
    s.store.append("q", &[key("a")]).await.unwrap();

    // Another strategy forced on a change-queue stream.
    s.jobs
        .trigger(
            &Trigger::new("crm", "t1")
                .with_streams(["orders"])
                .with_action(JobAction::Sync {
                    strategy: Some(StrategyKind::Full),
                }),
        )
        .await
        .unwrap();
    let forced = s.worker.run_one().await.unwrap().unwrap();
    assert_eq!((forced.status, forced.attempts), (JobStatus::Failed, 1));
    assert!(forced.last_error.unwrap().contains("full"));

    // A provider no runner is registered for.
    s.jobs.trigger(&Trigger::new("erp", "t1")).await.unwrap();
    let unrouted = s.worker.run_one().await.unwrap().unwrap();
    assert_eq!(unrouted.status, JobStatus::Failed);
    assert!(unrouted.last_error.unwrap().contains("no runner"));

    assert!(s.store.target_rows("orders").is_empty());
    assert!(s.store.load(&orders().sync_name()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_context_under_another_sync_name_is_refused() {
    let s = setup(Some("crm/t1/someone-else")).await;
    put(&s.source, "a", 1, None);
    s.store.append("q", &[key("a")]).await.unwrap();
    s.jobs.trigger(&Trigger::new("crm", "t1")).await.unwrap();
    let job = s.worker.run_one().await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.last_error.unwrap().contains("another sync"));
    assert!(s.store.target_rows("orders").is_empty());
}
