//! Crash tests: a child process runs a sync on a real PostgreSQL and is killed with SIGKILL
//! at a fault point; a second child resumes. After the kill the checkpoint is never ahead of
//! the target; after the resume the target equals the source with no key duplicated.
//!
//! The child is this test binary run again with `CRASH_CHILD=1`, filtered to `crash_child`.

#![cfg(unix)]

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::Arc;

use sync_core::memory::MemorySource;
use sync_core::testkit::{item, items_schema, keyed_schema};
use sync_core::{
    Checkpoint, FaultPoint, Faults, FullConfig, FullStrategy, IncrementalConfig,
    IncrementalStrategy, OffsetConfig, OffsetStrategy, Position, RetryPolicy, Row, Stager,
    Strategy, SyncContext, Value,
};
use sync_store_postgres::{PostgresConfig, PostgresStore};

const SYNC: &str = "crash/items";

/// The source data of a generation: generation 1 appends thirty records and, except for the
/// offset strategy (which by design reads each position once), changes every third record
/// (a newer version at a later cursor).
fn source_rows(strategy: &str, generation: i64) -> Vec<Row> {
    let n = if generation == 0 { 30 } else { 60 };
    (0..n)
        .map(|i| {
            let changed = generation == 1 && ((i % 3 == 0 && strategy != "offset") || i >= 30);
            let (version, cursor) = if changed { (2, 100 + i) } else { (1, i) };
            item(&format!("k{i:03}"), version, Some(cursor))
        })
        .collect()
}

fn strategy(name: &str) -> Box<dyn Strategy> {
    match name {
        "full" => Box::new(
            FullStrategy::new(FullConfig {
                page_size: 7,
                ..FullConfig::new("items")
            })
            .unwrap(),
        ),
        "incremental" => Box::new(
            IncrementalStrategy::new(IncrementalConfig {
                page_size: 7,
                ..IncrementalConfig::new("items")
            })
            .unwrap(),
        ),
        "offset" => Box::new(
            OffsetStrategy::new(OffsetConfig {
                page_size: 7,
                ..OffsetConfig::new("items")
            })
            .unwrap(),
        ),
        other => panic!("unknown strategy {other}"),
    }
}

fn schema_for(strategy: &str) -> sync_core::StreamSchema {
    let schema = if strategy == "incremental" {
        items_schema("items")
    } else {
        keyed_schema("items")
    };
    (*schema).clone()
}

/// The child: one sync run, with `SYNC_FAULT` armed in both the store and the source.
#[test]
fn crash_child() {
    let Ok(db) = std::env::var("CRASH_DB") else {
        return;
    };
    let url = std::env::var("SYNC_TEST_POSTGRES_URL").unwrap();
    let name = std::env::var("CRASH_STRATEGY").unwrap();
    let generation: i64 = std::env::var("CRASH_GEN").unwrap().parse().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let faults = Faults::from_env().unwrap();
            let store = Arc::new(
                PostgresStore::open_with_faults(
                    PostgresConfig::new(url).with_schema(db).with_pool_size(2),
                    faults.clone(),
                )
                .await
                .unwrap(),
            );
            let source = Arc::new(MemorySource::new(schema_for(&name)).with_faults(faults));
            for row in source_rows(&name, generation) {
                source.upsert(row.values().to_vec());
            }
            source.set_high_watermark("items", Some(vec![Value::from(1_000)]));
            let ctx = SyncContext::new(SYNC, source, store.clone(), store)
                .with_retry(RetryPolicy::none());
            strategy(&name).run(&ctx).await.unwrap();
        });
}

fn run_child(
    db: &str,
    strategy: &str,
    generation: i64,
    fault: Option<String>,
) -> std::process::ExitStatus {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("CRASH_DB", db)
        .env("CRASH_STRATEGY", strategy)
        .env("CRASH_GEN", generation.to_string())
        .env_remove("SYNC_FAULT");
    if let Some(f) = fault {
        cmd.env("SYNC_FAULT", f);
    }
    cmd.output().expect("child runs").status
}

async fn open(db: &str) -> PostgresStore {
    let url = std::env::var("SYNC_TEST_POSTGRES_URL").unwrap();
    PostgresStore::open(PostgresConfig::new(url).with_schema(db).with_pool_size(2))
        .await
        .unwrap()
}

/// The checkpoint is never ahead of the target.
async fn assert_checkpoint_not_ahead(
    store: &PostgresStore,
    strategy: &str,
    generation: i64,
    why: &str,
) {
    let Some(cp) = store.load(SYNC).await.unwrap() else {
        return;
    };
    let target = store.read_target("items").await.unwrap();
    let schema = schema_for(strategy);
    let source = source_rows(strategy, generation);
    match &cp.state.position {
        Position::CursorKey(ck) => {
            for r in source
                .iter()
                .filter(|r| r.cursor_key(&schema).compare(ck).is_some_and(|o| o.is_le()))
            {
                assert!(
                    target.contains(r),
                    "{why}: checkpoint {} is ahead of {:?}",
                    cp.state.position,
                    r.get(0)
                );
            }
        }
        Position::Offset(o) => {
            for r in source.iter().take(*o as usize) {
                let found = target.iter().any(|t| t.get(0) == r.get(0));
                assert!(found, "{why}: offset {o} is ahead of {:?}", r.get(0));
            }
        }
        Position::Timestamp(_) => {
            // A full snapshot is all or nothing: the target is one generation or the other.
            let before = source_rows(strategy, 0);
            assert!(
                target == before || target == source,
                "{why}: a full snapshot was half applied"
            );
        }
        other => panic!("unexpected position {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_at_any_fault_point_loses_and_duplicates_nothing() {
    if std::env::var("CRASH_DB").is_ok() {
        return;
    }
    if std::env::var("SYNC_TEST_POSTGRES_URL").map_or(true, |u| u.is_empty()) {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    }
    let points = [
        FaultPoint::AfterStage,
        FaultPoint::BeforePromote,
        FaultPoint::DuringCommit,
        FaultPoint::AfterCommit,
        FaultPoint::MidPage,
    ];
    let mut kills = 0;
    for strategy in ["full", "incremental", "offset"] {
        for point in points {
            for skip in [0, 2] {
                let db = format!(
                    "sync_crash_{}_{strategy}_{point}_{skip}",
                    std::process::id()
                );
                let db = db.as_str();
                let case = format!("{strategy} {point} skip {skip}");
                assert!(
                    run_child(db, strategy, 0, None).success(),
                    "{case}: first sync"
                );
                let status = run_child(db, strategy, 1, Some(format!("{point}:kill:{skip}")));
                if status.signal() == Some(9) {
                    kills += 1;
                } else {
                    assert!(
                        status.success(),
                        "{case}: child neither finished nor was killed: {status}"
                    );
                    // Every point is passed at least once per run; later passes may not exist
                    // (a full sync promotes once).
                    assert!(skip > 0, "{case}: the fault point was never reached");
                    eprintln!("{case}: not reached");
                }
                let store = open(db).await;
                assert_checkpoint_not_ahead(&store, strategy, 1, &case).await;
                drop(store);
                assert!(run_child(db, strategy, 1, None).success(), "{case}: resume");
                let store = open(db).await;
                let expected = source_rows(strategy, 1);
                assert_eq!(
                    store.read_target("items").await.unwrap(),
                    expected,
                    "{case}: target differs"
                );
                let ledger = store.ledger(SYNC).await.unwrap();
                for pair in ledger.windows(2) {
                    assert_eq!(
                        pair[1].low, pair[0].high,
                        "{case}: ledger windows do not chain"
                    );
                }
            }
        }
    }
    assert_eq!(
        kills, 27,
        "every reachable fault point kills the child (a full sync promotes once)"
    );
}
