//! Seed 000 end to end from the producer side: SNS notifications through the SQS fake into
//! `MemoryStore` as the change queue, read by the sequence-window strategy.

mod sqs_support;

use std::sync::Arc;

use sqs_support::{builder, change, start};
use sync_connectors::sqs::SqsChangeFeed;
use sync_core::memory::{MemorySource, MemoryStore};
use sync_core::strategy::check_history;
use sync_core::{
    ChangeQueue, Checkpoint, Column, ColumnType, FaultAction, FaultPoint, Faults, Key,
    LedgerStatus, Position, RetryPolicy, SequenceNo, SequenceWindowConfig, SequenceWindowStrategy,
    Strategy, StreamSchema, SyncContext, Value, Window,
};

const Q: &str = "restaurant_changes";

fn schema() -> StreamSchema {
    StreamSchema::builder("restaurants")
        .with_column(Column::required("id", ColumnType::Text))
        .with_column(Column::required("version", ColumnType::Integer))
        .with_primary_key(["id"])
        .with_version("version")
        .build()
        .unwrap()
}

fn put(source: &MemorySource, id: &str, version: i64) {
    source.upsert(vec![Value::from(id), Value::from(version)]);
}

fn ids(store: &MemoryStore) -> Vec<String> {
    store
        .target_rows("restaurants")
        .iter()
        .map(|r| r.get(0).as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn notifications_become_windows_of_the_history_table() {
    let (server, fake) = start().await;
    let source = Arc::new(MemorySource::new(schema()));
    let store = Arc::new(MemoryStore::new());
    let feed = SqsChangeFeed::new(
        builder(&server, Q).build().unwrap(),
        store.clone(),
        store.clone(),
    )
    .unwrap();
    let ctx = SyncContext::new(
        "tr/restaurants",
        source.clone(),
        store.clone(),
        store.clone(),
    )
    .with_queue(store.clone())
    .with_retry(RetryPolicy::none());
    let strategy =
        SequenceWindowStrategy::new(SequenceWindowConfig::new("restaurants", Q)).unwrap();

    for id in ["828", "834", "383", "674"] {
        put(&source, id, 1);
        fake.publish(id, change(id));
    }
    assert_eq!(feed.drain(5).await.unwrap().appended.len(), 4);
    strategy.run(&ctx).await.unwrap();

    for id in ["896", "235", "856", "591", "859"] {
        put(&source, id, 1);
        fake.publish(id, change(id));
    }
    feed.drain(5).await.unwrap();
    strategy.run(&ctx).await.unwrap();

    let ledger = store.ledger("tr/restaurants").await.unwrap();
    let seq = |n| Position::Sequence(SequenceNo(n));
    let windows: Vec<_> = ledger
        .iter()
        .filter(|e| e.status == LedgerStatus::Committed)
        .map(|e| (e.low.clone(), e.high.clone()))
        .collect();
    assert_eq!(windows, [(seq(0), seq(4)), (seq(4), seq(9))]);
    assert!(check_history(&ledger).unwrap().is_contiguous());
    assert_eq!(ids(&store).len(), 9);
}

#[tokio::test]
async fn a_feed_crash_between_append_and_delete_neither_loses_nor_doubles_a_change() {
    let (server, fake) = start().await;
    let source = Arc::new(MemorySource::new(schema()));
    let faults = Faults::new();
    let store = Arc::new(MemoryStore::with_faults(faults.clone()));
    let ctx = SyncContext::new(
        "tr/restaurants",
        source.clone(),
        store.clone(),
        store.clone(),
    )
    .with_queue(store.clone())
    .with_retry(RetryPolicy::none());
    let strategy =
        SequenceWindowStrategy::new(SequenceWindowConfig::new("restaurants", Q)).unwrap();
    for id in ["1", "2", "3"] {
        put(&source, id, 1);
        fake.publish(id, change(id));
    }
    // The first delete fails for every entry (as after a crash: the messages come back).
    fake.state().fail_next_deletes = true;
    let first = SqsChangeFeed::new(
        builder(&server, Q).build().unwrap(),
        store.clone(),
        store.clone(),
    )
    .unwrap();
    assert_eq!(first.poll().await.unwrap().delete_failed.len(), 3);
    drop(first);

    // A new process: a new feed on the same journal.
    fake.advance(31);
    let feed = SqsChangeFeed::new(
        builder(&server, Q).build().unwrap(),
        store.clone(),
        store.clone(),
    )
    .unwrap();
    let report = feed.drain(5).await.unwrap();
    assert_eq!((report.duplicates, report.appended.len()), (3, 0));
    let all = store
        .read_window(Q, Window::new(SequenceNo(0), SequenceNo(100)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.entity.clone()).collect::<Vec<_>>(),
        [Key::text("1"), Key::text("2"), Key::text("3")]
    );

    // A strategy crash before promotion changes nothing either; the next run catches up.
    faults.arm(FaultPoint::BeforePromote, FaultAction::Error);
    assert!(strategy.run(&ctx).await.is_err());
    assert!(ids(&store).is_empty());
    strategy.run(&ctx).await.unwrap();
    assert_eq!(ids(&store), ["1", "2", "3"]);
    assert_eq!(fake.in_queue(), 0);
}
