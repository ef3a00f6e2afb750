//! `PostgresJobQueue` on a real PostgreSQL: the whole job queue conformance suite, enqueue
//! inside a caller's transaction, and batches of enqueues (`enqueue_all_in`) answering as the
//! reference queue does one enqueue after another. Each test has a schema of its own; without
//! `SYNC_TEST_POSTGRES_URL` the tests are skipped.

mod support;

use std::sync::Arc;
use std::time::Duration;

use sync_core::jobs::{
    EnqueueRequest, Enqueued, JobKey, JobQueue, JobScope, JobStatus, StopIntent,
};
use sync_core::memory::MemoryJobQueue;
use sync_core::ErrorKind;
use sync_store_postgres::PostgresJobQueue;

async fn make_queue() -> Arc<dyn JobQueue> {
    Arc::new(support::fresh_store(4).await.job_queue())
}

sync_core::job_queue_suite!(make_queue, enabled = support::url().is_some());

fn key(stream: &str) -> JobKey {
    JobKey::new("acme", "t1", stream).unwrap()
}

/// A queue and a connection of the caller's own with an `orders` table in the queue's schema;
/// `None` (the test is skipped) without a test server.
async fn queue_and_caller() -> Option<(PostgresJobQueue, tokio_postgres::Client, String)> {
    if support::url().is_none() {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return None;
    }
    let store = support::fresh_store(4).await;
    let orders = format!("\"{}\".orders", store.schema_name());
    let caller = support::connect().await;
    caller
        .batch_execute(&format!("CREATE TABLE {orders} (id bigint PRIMARY KEY)"))
        .await
        .unwrap();
    Some((store.job_queue(), caller, orders))
}

/// In the caller's transaction: its own write (order 1), then the enqueue of `request`.
async fn order_with_job(
    queue: &PostgresJobQueue,
    tx: &tokio_postgres::Transaction<'_>,
    orders: &str,
    request: &EnqueueRequest,
) -> Enqueued {
    tx.execute(&format!("INSERT INTO {orders} VALUES (1)"), &[])
        .await
        .unwrap();
    queue.enqueue_in(tx, request).await.unwrap()
}

async fn order_count(caller: &tokio_postgres::Client, orders: &str) -> i64 {
    let row = caller
        .query_one(&format!("SELECT count(*) FROM {orders}"), &[])
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_in_a_rolled_back_transaction_leaves_no_job() {
    let Some((queue, mut caller, orders)) = queue_and_caller().await else {
        return;
    };
    let tx = caller.transaction().await.unwrap();
    let request = EnqueueRequest::sync(key("a")).with_idempotency_key("order-1");
    let inside = order_with_job(&queue, &tx, &orders, &request).await;
    assert!(inside.created);
    assert_eq!(inside.job.status, JobStatus::Pending);
    // Not visible outside before the caller commits.
    assert!(queue.job(inside.job.id).await.unwrap().is_none());
    tx.rollback().await.unwrap();

    assert!(queue.job(inside.job.id).await.unwrap().is_none());
    assert_eq!(order_count(&caller, &orders).await, 0);
    let counts = queue.counts(&JobScope::all()).await.unwrap();
    assert!(counts.values().all(|n| *n == 0), "{counts:?}");
    // Neither the key's open-job slot nor the idempotency key stayed taken.
    let again = queue.enqueue(&request).await.unwrap();
    assert!(again.created && again.job.id != inside.job.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_in_a_committed_transaction_commits_the_job_with_the_callers_writes() {
    let Some((queue, mut caller, orders)) = queue_and_caller().await else {
        return;
    };
    let tx = caller.transaction().await.unwrap();
    let request = EnqueueRequest::sync(key("a")).with_idempotency_key("order-1");
    let inside = order_with_job(&queue, &tx, &orders, &request).await;
    // The same transaction sees its own job: a second enqueue in it deduplicates.
    let twice = queue
        .enqueue_in(&tx, &EnqueueRequest::sync(key("a")))
        .await
        .unwrap();
    assert_eq!((twice.job.id, twice.created), (inside.job.id, false));
    // An enqueue of the key from outside waits for the caller, then finds its job.
    let outside = {
        let queue = queue.clone();
        tokio::spawn(async move {
            queue
                .enqueue(&EnqueueRequest::sync(key("a")))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !outside.is_finished(),
        "the outside enqueue waits for the caller's commit"
    );
    tx.commit().await.unwrap();

    let outside = outside.await.unwrap();
    assert_eq!((outside.job.id, outside.created), (inside.job.id, false));
    assert_eq!(order_count(&caller, &orders).await, 1);
    let stored = queue.job(inside.job.id).await.unwrap().unwrap();
    assert_eq!(stored, inside.job);
    let replay = queue.enqueue(&request).await.unwrap();
    assert_eq!((replay.job.id, replay.created), (inside.job.id, false));
    let claimed = queue.claim("w", Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.map(|j| j.id), Some(inside.job.id));
}

/// What an enqueue answered, with job ids replaced by their order of first appearance (the
/// two queues number jobs differently).
fn shapes(answers: &[Enqueued]) -> Vec<(bool, JobKey, JobStatus, Option<String>, usize)> {
    let mut seen = Vec::new();
    answers
        .iter()
        .map(|e| {
            let n = seen
                .iter()
                .position(|id| *id == e.job.id)
                .unwrap_or_else(|| {
                    seen.push(e.job.id);
                    seen.len() - 1
                });
            let job = &e.job;
            (
                e.created,
                job.key.clone(),
                job.status,
                job.idempotency_key.clone(),
                n,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_all_in_answers_as_one_enqueue_after_another_would() {
    let Some((queue, mut caller, _)) = queue_and_caller().await else {
        return;
    };
    let reference = MemoryJobQueue::new();
    let paused = JobKey::new("held", "t1", "x").unwrap();
    for q in [&queue as &dyn JobQueue, &reference] {
        q.enqueue(&EnqueueRequest::sync(key("open"))).await.unwrap();
        q.enqueue(&EnqueueRequest::sync(key("keyed")).with_idempotency_key("seen"))
            .await
            .unwrap();
        q.request_stop(&JobScope::provider("held"), StopIntent::Pause)
            .await
            .unwrap();
    }
    let requests = vec![
        EnqueueRequest::sync(key("a")),
        EnqueueRequest::sync(key("b")).with_priority(5),
        EnqueueRequest::sync(key("a")), // the job the first request created
        EnqueueRequest::sync(key("open")), // an open job from before
        EnqueueRequest::sync(key("c")).with_idempotency_key("seen"), // the key's job
        EnqueueRequest::sync(key("b")).with_idempotency_key("new"), // b's job, remembered
        EnqueueRequest::sync(key("d")).with_idempotency_key("new"),
        EnqueueRequest::sync(paused.clone()),
        EnqueueRequest::sync(key("e")),
    ];
    let mut expected = Vec::new();
    for r in &requests {
        expected.push(reference.enqueue(r).await.unwrap());
    }
    let tx = caller.transaction().await.unwrap();
    let got = queue.enqueue_all_in(&tx, &requests).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(shapes(&got), shapes(&expected));
    assert_eq!(got[7].job.status, JobStatus::Paused);
    // Ids follow the requests, so claims take equal jobs in request order.
    assert!(got[0].job.id < got[1].job.id && got[1].job.id < got[8].job.id);
    for e in &got {
        assert_eq!(queue.job(e.job.id).await.unwrap().as_ref(), Some(&e.job));
    }

    // One invalid request and nothing is written.
    let bad = vec![
        EnqueueRequest::sync(key("f")),
        EnqueueRequest::sync(key("g")).with_max_attempts(0),
    ];
    let before = queue.counts(&JobScope::all()).await.unwrap();
    let tx = caller.transaction().await.unwrap();
    let err = queue.enqueue_all_in(&tx, &bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    tx.commit().await.unwrap();
    assert_eq!(queue.counts(&JobScope::all()).await.unwrap(), before);
}
