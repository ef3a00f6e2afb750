//! Seed 000 end to end through the example's library entry point, on a real SQLite file and,
//! when `SYNC_TEST_POSTGRES_URL` is set, on PostgreSQL in a schema of its own: the target
//! against the core API, Dataverse against the core API and the queue, the history windows,
//! the sink failure and its redelivery, the replay, and the late-commit race.

use std::collections::BTreeSet;
use std::sync::Arc;

use sync_core::{LedgerStatus, SequenceNo};
use sync_examples::restaurant_delta::{
    dataverse_key, open_fresh, Backend, Producer, Report, RestaurantDelta, Step, ENTITY_SET, QUEUE,
    RACE_QUEUE, RACE_SYNC, SNAPSHOT_IDS, SNAPSHOT_SIZE, STREAM, SYNC,
};
use sync_examples::store::EngineStore;
use sync_store_postgres::{PostgresConfig, PostgresStore};

const SEED_QUEUE: [&str; 9] = [
    "828", "834", "383", "674", "896", "235", "856", "591", "859",
];

async fn play(store: EngineStore, backend: Backend) -> (RestaurantDelta, Report, usize) {
    let mut demo = RestaurantDelta::start(store, backend).await.unwrap();
    let mut printed = 0;
    let report = demo.run(&mut |_| printed += 1).await.unwrap();
    (demo, report, printed)
}

/// Every check of the seed, against the services and the database directly.
async fn check(demo: &RestaurantDelta, report: &Report, printed: usize) {
    assert_eq!(
        printed,
        report.steps.len(),
        "every step reported as it happened"
    );
    assert!(report.integrity.is_ok(), "{:?}", report.integrity.problems);
    let store = demo.store();

    // The queue holds the seed's entries 1..9, in order.
    let entries = store
        .changes
        .read_window(
            QUEUE,
            sync_core::Window::new(SequenceNo(0), SequenceNo(100)).unwrap(),
        )
        .await
        .unwrap();
    let seen: Vec<(u128, String)> = entries
        .iter()
        .map(|e| (e.seq.0, e.entity.0[0].to_string()))
        .collect();
    let want: Vec<(u128, String)> = (1..).zip(SEED_QUEUE.map(String::from)).collect();
    assert_eq!(seen, want);
    // 856's notification came twice (its first delete failed) and was appended once.
    let redelivered: Vec<(&str, usize)> = report
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Enqueued(entries) => Some(entries),
            _ => None,
        })
        .flatten()
        .filter(|e| e.via == Producer::SnsRedelivered)
        .map(|e| (e.id.as_str(), e.duplicates))
        .collect();
    assert_eq!(redelivered, [("856", 1)]);

    // The target equals the core API's latest state, row for row: the snapshot and every
    // restaurant the queue named (828 included, changed after its window without an entry
    // and repaired by the replay).
    let target = store.stager.read_target(STREAM).await.unwrap();
    let core = demo.core().rows();
    assert_eq!(target.len(), SNAPSHOT_SIZE + 8);
    assert_eq!(target, core);
    let ids: BTreeSet<String> = target.iter().map(|r| r.get(0).to_string()).collect();
    for id in SNAPSHOT_IDS.iter().chain(&SEED_QUEUE) {
        assert!(ids.contains(*id), "{id} is in the target");
    }
    assert_eq!(demo.core().restaurant("828").unwrap().seats, 96);

    // Dataverse: exactly one record per queued restaurant, with the latest values.
    let dataverse = demo.dataverse();
    let mut keys: Vec<String> = SEED_QUEUE.iter().map(|id| dataverse_key(id)).collect();
    keys.sort();
    assert_eq!(dataverse.keys(ENTITY_SET), keys);
    for id in SEED_QUEUE {
        let r = demo.core().restaurant(id).unwrap();
        let record = dataverse.record(ENTITY_SET, &dataverse_key(id)).unwrap();
        assert_eq!(record["tr_seats"], serde_json::json!(r.seats), "{id}");
        assert_eq!(record["tr_version"], serde_json::json!(r.version), "{id}");
        assert_eq!(record["tr_name"], serde_json::json!(r.name), "{id}");
    }
    assert!(
        dataverse.violations().is_empty(),
        "{:?}",
        dataverse.violations()
    );

    // The history: committed (1, 4) and (5, 9), the replay of (1, 4) marked as such, each
    // window delivered once it was confirmed, (5, 9) only by the redelivery run.
    let ledger = store.checkpoints.ledger(SYNC).await.unwrap();
    let rows = |status| -> Vec<(String, String)> {
        ledger
            .iter()
            .filter(|e| e.status == status)
            .map(|e| (e.low.to_string(), e.high.to_string()))
            .collect()
    };
    let windows = |pairs: &[(u128, u128)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| {
                (
                    sync_core::Position::Sequence(SequenceNo(*a)).to_string(),
                    sync_core::Position::Sequence(SequenceNo(*b)).to_string(),
                )
            })
            .collect()
    };
    assert_eq!(rows(LedgerStatus::Committed), windows(&[(0, 4), (4, 9)]));
    assert_eq!(rows(LedgerStatus::Replayed), windows(&[(0, 4)]));
    assert_eq!(rows(LedgerStatus::Delivered), windows(&[(0, 4), (4, 9)]));
    assert_eq!(report.integrity.committed, [(1, 4), (5, 9)]);
    assert_eq!(report.integrity.replayed, [(1, 4)]);
    let state = store.checkpoints.load(SYNC).await.unwrap().unwrap().state;
    assert_eq!(state.position, state.delivered.unwrap());

    let runs: Vec<_> = report
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Run(r) | Step::Replay(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 4);
    // Run 1: window (0, 4], one look-up per distinct restaurant, delivered.
    assert_eq!((runs[0].promoted, runs[0].delivered), ((0, 4), (0, 4)));
    assert_eq!(runs[0].lookups, 4);
    assert!(runs[0].error.is_none());
    // Run 2: promoted (4, 9], Dataverse throttled: delivered stays at 4, the run fails.
    assert_eq!((runs[1].promoted, runs[1].delivered), ((4, 9), (4, 4)));
    assert_eq!(runs[1].lookups, 5);
    assert!(
        runs[1].error.as_deref().unwrap().contains("429"),
        "{:?}",
        runs[1].error
    );
    assert_eq!(runs[1].dataverse_records, 4);
    // Run 3: no new window, the redelivery catches `delivered` up; nothing fetched again.
    assert_eq!((runs[2].promoted, runs[2].delivered), ((9, 9), (4, 9)));
    assert_eq!(runs[2].lookups, 0);
    assert_eq!(runs[2].dataverse_records, 9);
    // The replay of (0, 4] fetches its four restaurants again and leaves both positions.
    assert_eq!((runs[3].promoted, runs[3].delivered), ((9, 9), (9, 9)));
    assert_eq!(runs[3].lookups, 4);
    assert_eq!(runs[3].dataverse_records, 9);

    // The late commit: nothing skipped, the window after the commit holds both.
    let hwm = report
        .steps
        .iter()
        .find_map(|s| match s {
            Step::HighWaterMark(h) => Some(h),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        hwm.naive_sees,
        [hwm.fast.0],
        "the naive reader misses the open number"
    );
    assert_eq!(hwm.mark_while_open, SequenceNo(0));
    assert_eq!(hwm.position_while_open, 0);
    assert_eq!(hwm.window_after, (0, 2));
    assert_eq!(hwm.promoted_after, ["125", "945"]);

    // Racing producers on the database's own queue: every entry in exactly one window.
    let race = report
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Race(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(race.entries, race.producers * race.entries_each);
    assert!(race.covered_once, "{:?}", race.windows);
    let raced = store
        .changes
        .read_window(
            RACE_QUEUE,
            sync_core::Window::new(SequenceNo(0), SequenceNo(1_000)).unwrap(),
        )
        .await
        .unwrap();
    let numbers: Vec<u128> = raced.iter().map(|e| e.seq.0).collect();
    assert_eq!(numbers, (1..=race.entries as u128).collect::<Vec<_>>());
    let state = store
        .checkpoints
        .load(RACE_SYNC)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(
        state.position,
        sync_core::Position::Sequence(SequenceNo(race.entries as u128))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("restaurant-delta.db").display()
    );
    let (store, backend) = open_fresh(&url).await.unwrap();
    assert_eq!(backend, Backend::Sqlite);
    let (demo, report, printed) = play(store, backend).await;
    check(&demo, &report, printed).await;

    // The same database again, not emptied, is refused: its queue holds this flow.
    drop(demo);
    let again = sync_examples::store::open_engine_store(&url).await.unwrap();
    let err = RestaurantDelta::start(again, Backend::Sqlite)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), sync_core::ErrorKind::Config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_on_postgres() {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("sync_test_{}_restaurant_delta", std::process::id());
    let config = PostgresConfig::new(url).with_schema(schema);
    let store = Arc::new(PostgresStore::open(config.clone()).await.unwrap());
    let (demo, report, printed) = play(EngineStore::postgres(store), Backend::Postgres).await;
    check(&demo, &report, printed).await;
    drop(demo);
    PostgresStore::open(config)
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}
