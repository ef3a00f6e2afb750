//! Seed 000 end to end: the sequence-window strategy over `MemorySource` and `MemoryStore`
//! delivering each promoted window to `DataverseSink` against the loopback fake.

mod dataverse_support;

use std::sync::Arc;

use dataverse_support::{builder, fixture, restaurants, start, Failure};
use sync_connectors::dataverse::DataverseSink;
use sync_core::memory::{MemorySource, MemoryStore};
use sync_core::{
    ChangeQueue, Checkpoint, Column, ColumnType, ErrorKind, Key, LedgerStatus, Position,
    RetryPolicy, SequenceNo, SequenceWindowConfig, SequenceWindowStrategy, Strategy, StreamSchema,
    SyncContext, Value,
};

const SET: &str = "tr_restaurants";
const KEYS: &[(&str, &[&str])] = &[("tr_restaurants", &["tr_restaurantid"])];
const SYNC: &str = "tr/restaurants";

fn schema() -> StreamSchema {
    StreamSchema::builder("restaurants")
        .with_column(Column::required("id", ColumnType::Text))
        .with_column(Column::new("name", ColumnType::Text))
        .with_column(Column::new("seats", ColumnType::Integer))
        .with_column(Column::required("version", ColumnType::Integer))
        .with_primary_key(["id"])
        .with_version("version")
        .build()
        .unwrap()
}

fn put(source: &MemorySource, id: &str, seats: i64, version: i64) {
    source.upsert(vec![
        Value::from(id),
        Value::from(format!("Restaurant {id}")),
        Value::from(seats),
        Value::from(version),
    ]);
}

struct Setup {
    source: Arc<MemorySource>,
    store: Arc<MemoryStore>,
    ctx: SyncContext,
}

async fn setup(server: &wiremock::MockServer) -> Setup {
    let source = Arc::new(MemorySource::new(schema()));
    let store = Arc::new(MemoryStore::new());
    let sink =
        DataverseSink::new(builder(server).with_entity(restaurants()).build().unwrap()).unwrap();
    let ctx = SyncContext::new(SYNC, source.clone(), store.clone(), store.clone())
        .with_queue(store.clone())
        .with_sink(Arc::new(sink))
        .with_retry(RetryPolicy::none());
    Setup { source, store, ctx }
}

fn strategy() -> SequenceWindowStrategy {
    SequenceWindowStrategy::new(SequenceWindowConfig::new("restaurants", "sync_queue")).unwrap()
}

async fn enqueue(s: &Setup, ids: &[&str]) {
    for id in ids {
        s.store
            .append("sync_queue", &[Key::text(*id)])
            .await
            .unwrap();
    }
}

async fn positions(store: &MemoryStore) -> (Position, Option<Position>) {
    let state = store.load(SYNC).await.unwrap().unwrap().state;
    (state.position, state.delivered)
}

fn seq(n: u128) -> Position {
    Position::Sequence(SequenceNo(n))
}

#[tokio::test]
async fn each_window_of_the_seed_is_delivered_to_dataverse() {
    let (server, fake) = start(KEYS).await;
    let s = setup(&server).await;
    for id in ["456", "945", "674", "125", "828", "834", "383"] {
        put(&s.source, id, 10, 1);
    }
    enqueue(&s, &["828", "834", "383", "674"]).await;
    strategy().run(&s.ctx).await.unwrap();
    assert_eq!(positions(&s.store).await, (seq(4), Some(seq(4))));
    assert_eq!(fake.keys(SET).len(), 4);

    for id in ["896", "235", "856", "591", "859"] {
        put(&s.source, id, 20, 1);
    }
    put(&s.source, "674", 99, 2);
    enqueue(&s, &["896", "235", "856", "591", "859", "674"]).await;
    strategy().run(&s.ctx).await.unwrap();
    assert_eq!(positions(&s.store).await, (seq(10), Some(seq(10))));
    let keys = fake.keys(SET);
    assert_eq!(keys.len(), 9, "{keys:?}");
    assert_eq!(
        fake.record(SET, "tr_restaurantid=674").unwrap()["tr_seats"],
        serde_json::json!(99)
    );
    let delivered: Vec<_> = s
        .store
        .ledger(SYNC)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.status == LedgerStatus::Delivered)
        .map(|e| (e.low, e.high, e.rows_written))
        .collect();
    assert_eq!(delivered, [(seq(0), seq(4), 4), (seq(4), seq(10), 6)]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_record_dataverse_refuses_keeps_the_window_undelivered_until_it_is_accepted() {
    let (server, fake) = start(KEYS).await;
    let s = setup(&server).await;
    for id in ["1", "2", "3"] {
        put(&s.source, id, 5, 1);
    }
    fake.state().fail.insert(
        "tr_restaurantid=2".into(),
        Failure {
            status: 400,
            body: fixture("error_validation.json"),
        },
    );
    enqueue(&s, &["1", "2", "3"]).await;
    let err = strategy().run(&s.ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert!(
        err.context_value("records").unwrap().contains("'2'"),
        "{err}"
    );
    // Promoted, not delivered: the target holds the window, the checkpoint says so.
    assert_eq!(positions(&s.store).await, (seq(3), None));
    assert_eq!(s.store.target_rows("restaurants").len(), 3);

    fake.state().fail.clear();
    strategy().run(&s.ctx).await.unwrap();
    assert_eq!(positions(&s.store).await, (seq(3), Some(seq(3))));
    assert_eq!(fake.keys(SET).len(), 3);
}

#[tokio::test]
async fn a_malformed_batch_response_moves_no_delivered_position() {
    let (server, fake) = start(KEYS).await;
    let s = setup(&server).await;
    put(&s.source, "1", 5, 1);
    enqueue(&s, &["1"]).await;
    strategy().run(&s.ctx).await.unwrap();
    assert_eq!(positions(&s.store).await, (seq(1), Some(seq(1))));

    put(&s.source, "2", 5, 1);
    enqueue(&s, &["2"]).await;
    fake.state().canned.push_back((
        200,
        "text/html; charset=utf-8".into(),
        "<html><head><title>Service Unavailable</title></head></html>".into(),
    ));
    let err = strategy().run(&s.ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(positions(&s.store).await, (seq(2), Some(seq(1))));
    assert_eq!(
        s.store.target_rows("restaurants").len(),
        2,
        "promotion is kept"
    );

    strategy().run(&s.ctx).await.unwrap();
    assert_eq!(positions(&s.store).await, (seq(2), Some(seq(2))));
    assert_eq!(fake.keys(SET).len(), 2);
}

#[tokio::test]
async fn ids_gone_from_the_source_are_deleted_in_dataverse() {
    let (server, fake) = start(KEYS).await;
    let s = setup(&server).await;
    put(&s.source, "1", 5, 1);
    put(&s.source, "2", 5, 1);
    enqueue(&s, &["1", "2"]).await;
    strategy().run(&s.ctx).await.unwrap();
    s.source.delete(&Key::text("2"));
    enqueue(&s, &["2"]).await;
    strategy().run(&s.ctx).await.unwrap();
    assert_eq!(fake.keys(SET), ["tr_restaurantid=1"]);
}
