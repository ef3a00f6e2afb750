//! Behaviour of the sequence-window strategy, following seed 000's history table.

mod common;

use common::{put, setup};
use sync_core::strategy::check_history;
use sync_core::testkit::{ids, key, keyed_schema};
use sync_core::{
    ChangeQueue, Checkpoint, FaultAction, FaultPoint, LedgerStatus, Position, SequenceNo,
    SequenceWindowConfig, SequenceWindowStrategy, Strategy, Window,
};

fn strategy() -> SequenceWindowStrategy {
    SequenceWindowStrategy::new(SequenceWindowConfig::new("t", "q")).unwrap()
}

fn windows(ledger: &[sync_core::LedgerEntry], status: LedgerStatus) -> Vec<(Position, Position)> {
    ledger
        .iter()
        .filter(|e| e.status == status)
        .map(|e| (e.low.clone(), e.high.clone()))
        .collect()
}

#[tokio::test]
async fn history_grows_window_by_window_as_in_the_seed() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    let ctx = ctx.with_sink(store.clone());
    for id in ["828", "834", "383", "674"] {
        put(&source, id, 1, None);
        store.append("q", &[key(id)]).await.unwrap();
    }
    strategy().run(&ctx).await.unwrap();
    for id in ["896", "235", "856", "591", "859"] {
        put(&source, id, 1, None);
        store.append("q", &[key(id)]).await.unwrap();
    }
    strategy().run(&ctx).await.unwrap();
    let ledger = store.ledger("test/sync").await.unwrap();
    let seq = |n| Position::Sequence(SequenceNo(n));
    assert_eq!(
        windows(&ledger, LedgerStatus::Committed),
        vec![(seq(0), seq(4)), (seq(4), seq(9))]
    );
    assert_eq!(
        windows(&ledger, LedgerStatus::Delivered),
        vec![(seq(0), seq(4)), (seq(4), seq(9))]
    );
    assert!(check_history(&ledger).unwrap().is_contiguous());
    assert_eq!(store.target_rows("t").len(), 9);
    assert_eq!(store.destination_rows("t"), store.target_rows("t"));
}

#[tokio::test]
async fn latest_state_is_fetched_once_per_distinct_id() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 3, None);
    for id in ["a", "a", "a"] {
        store.append("q", &[key(id)]).await.unwrap();
    }
    let report = strategy().run(&ctx).await.unwrap();
    assert_eq!((report.rows_read, report.pages), (1, 1));
    assert_eq!(
        store.target_rows("t"),
        vec![sync_core::testkit::item("a", 3, None)]
    );
}

#[tokio::test]
async fn the_window_stops_below_numbers_not_yet_visible() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, None);
    put(&source, "c", 1, None);
    store.append("q", &[key("a")]).await.unwrap();
    let open = store.reserve("q", 1)[0];
    store.append("q", &[key("c")]).await.unwrap();
    strategy().run(&ctx).await.unwrap();
    assert_eq!(
        ids(&store.target_rows("t")),
        ["a"],
        "seq 3 is visible but seq 2 may still commit"
    );
    put(&source, "b", 1, None);
    store.commit_reserved("q", open, key("b")).unwrap();
    strategy().run(&ctx).await.unwrap();
    assert_eq!(ids(&store.target_rows("t")), ["a", "b", "c"]);
}

#[tokio::test]
async fn ids_gone_from_the_source_are_deleted_in_target_and_sink() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    let ctx = ctx.with_sink(store.clone());
    put(&source, "a", 1, None);
    store.append("q", &[key("a")]).await.unwrap();
    strategy().run(&ctx).await.unwrap();
    source.delete(&key("a"));
    store.append("q", &[key("a")]).await.unwrap();
    strategy().run(&ctx).await.unwrap();
    assert!(store.target_rows("t").is_empty() && store.destination_rows("t").is_empty());
}

#[tokio::test]
async fn delivery_advances_only_after_the_sink_confirms_and_is_retried_next_run() {
    let schema = keyed_schema("t");
    let (source, store, ctx, faults) = setup(&schema);
    let ctx = ctx.with_sink(store.clone());
    put(&source, "a", 1, None);
    store.append("q", &[key("a")]).await.unwrap();
    faults.arm(FaultPoint::BeforeDeliver, FaultAction::Error);
    assert!(strategy().run(&ctx).await.is_err());
    let state = store.load("test/sync").await.unwrap().unwrap().state;
    assert_eq!(
        (state.position, state.delivered),
        (Position::Sequence(SequenceNo(1)), None)
    );
    assert!(store.destination_rows("t").is_empty());
    strategy().run(&ctx).await.unwrap();
    let state = store.load("test/sync").await.unwrap().unwrap().state;
    assert_eq!(state.delivered, Some(Position::Sequence(SequenceNo(1))));
    assert_eq!(ids(&store.destination_rows("t")), ["a"]);
}

#[tokio::test]
async fn a_past_window_can_be_replayed_without_moving_the_checkpoint() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, None);
    store.append("q", &[key("a")]).await.unwrap();
    strategy().run(&ctx).await.unwrap();
    put(&source, "a", 2, None);
    let window = Window::new(SequenceNo(0), SequenceNo(1)).unwrap();
    strategy().replay(&ctx, window).await.unwrap();
    assert_eq!(
        store.target_rows("t"),
        vec![sync_core::testkit::item("a", 2, None)]
    );
    let ledger = store.ledger("test/sync").await.unwrap();
    assert_eq!(ledger.last().unwrap().status, LedgerStatus::Replayed);
    assert_eq!(
        store
            .load("test/sync")
            .await
            .unwrap()
            .unwrap()
            .state
            .position,
        Position::Sequence(SequenceNo(1))
    );
    let beyond = strategy()
        .replay(&ctx, Window::new(SequenceNo(1), SequenceNo(5)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(beyond.kind(), sync_core::ErrorKind::InvalidInput);
    // A window built from its public fields with its bounds the wrong way round is refused
    // by the replay; a store reads nothing in it (the reference store panicked).
    let backwards = Window {
        low: SequenceNo(1),
        high: SequenceNo(0),
    };
    let err = strategy().replay(&ctx, backwards).await.unwrap_err();
    assert_eq!(err.kind(), sync_core::ErrorKind::CheckpointDelta);
    assert_eq!(store.read_window("q", backwards).await.unwrap(), Vec::new());
}

#[test]
fn history_check_reports_gaps_and_overlaps() {
    let row = |low: u128, high: u128| sync_core::LedgerEntry {
        sync: "s".into(),
        run_id: "r".into(),
        strategy: sync_core::StrategyKind::SequenceWindow,
        low: Position::Sequence(SequenceNo(low)),
        high: Position::Sequence(SequenceNo(high)),
        rows_read: 0,
        rows_written: 0,
        rows_rejected: 0,
        duration_ms: 0,
        status: LedgerStatus::Committed,
        committed_at: chrono::Utc::now(),
    };
    let report = check_history(&[row(0, 4), row(6, 9), row(8, 12)]).unwrap();
    assert_eq!(
        report.gaps,
        vec![Window::new(SequenceNo(4), SequenceNo(6)).unwrap()]
    );
    assert_eq!(report.overlaps.len(), 1);
    assert!(!report.is_contiguous());
}
