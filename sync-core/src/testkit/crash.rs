//! The crash harness every store runs: a child process syncs into the store and is killed
//! with SIGKILL at a fault point; a second child resumes. After the kill the checkpoint is
//! never ahead of the target; after the resume the target equals the source, no key is
//! duplicated and the ledger windows chain.
//!
//! A store's test file holds two tests: `crash_child`, which calls [`child`] (and does nothing
//! unless `CRASH_DB` is set), and one that calls [`matrix`]. The child is that same test binary
//! run again, filtered to `crash_child`.

use std::future::Future;
use std::process::Command;
use std::sync::Arc;

use crate::fault::{FaultPoint, Faults};
use crate::memory::MemorySource;
use crate::position::Position;
use crate::record::Row;
use crate::retry::RetryPolicy;
use crate::schema::StreamSchema;
use crate::strategy::{
    FullConfig, FullStrategy, IncrementalConfig, IncrementalStrategy, OffsetConfig, OffsetStrategy,
    Strategy, SyncContext,
};
use crate::testkit::{item, items_schema, keyed_schema, StoreHandles};
use crate::value::Value;

/// The sync every child runs.
pub const SYNC: &str = "crash/items";

/// The source data of a generation: generation 1 appends thirty records and, except for the
/// offset strategy (which by design reads each position once), changes every third record (a
/// newer version at a later cursor).
pub fn source_rows(strategy: &str, generation: i64) -> Vec<Row> {
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
            // Two pages per staged batch: a kill between batches resumes mid-fill.
            FullStrategy::new(FullConfig {
                page_size: 7,
                batch_rows: 14,
                ..FullConfig::new("items")
            })
            .expect("config"),
        ),
        "incremental" => Box::new(
            IncrementalStrategy::new(IncrementalConfig {
                page_size: 7,
                ..IncrementalConfig::new("items")
            })
            .expect("config"),
        ),
        "offset" => Box::new(
            OffsetStrategy::new(OffsetConfig {
                page_size: 7,
                ..OffsetConfig::new("items")
            })
            .expect("config"),
        ),
        other => panic!("unknown strategy {other}"),
    }
}

fn schema_for(strategy: &str) -> StreamSchema {
    let schema = if strategy == "incremental" {
        items_schema("items")
    } else {
        keyed_schema("items")
    };
    (*schema).clone()
}

/// The child: one sync run into the store `open(CRASH_DB, faults)` returns, with `SYNC_FAULT`
/// armed in the store and the source. Returns at once when `CRASH_DB` is not set.
pub fn child<F, Fut>(open: F)
where
    F: Fn(String, Faults) -> Fut,
    Fut: Future<Output = StoreHandles>,
{
    let Ok(db) = std::env::var("CRASH_DB") else {
        return;
    };
    let name = std::env::var("CRASH_STRATEGY").expect("CRASH_STRATEGY");
    let generation: i64 = std::env::var("CRASH_GEN")
        .expect("CRASH_GEN")
        .parse()
        .expect("a generation");
    crate::testkit::model::block_on(async {
        let faults = Faults::from_env().expect("SYNC_FAULT parses");
        let h = open(db, faults.clone()).await;
        let source = Arc::new(MemorySource::new(schema_for(&name)).with_faults(faults));
        for row in source_rows(&name, generation) {
            source.upsert(row.values().to_vec());
        }
        source.set_high_watermark("items", Some(vec![Value::from(1_000)]));
        let ctx =
            SyncContext::new(SYNC, source, h.stager, h.checkpoints).with_retry(RetryPolicy::none());
        strategy(&name).run(&ctx).await.expect("the child's sync");
    });
}

fn run_child(
    db: &str,
    strategy: &str,
    generation: i64,
    fault: Option<String>,
) -> std::process::ExitStatus {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("CRASH_DB", db)
        .env("CRASH_STRATEGY", strategy)
        .env("CRASH_GEN", generation.to_string())
        .env_remove("SYNC_FAULT");
    if let Some(f) = fault {
        cmd.env("SYNC_FAULT", f);
    }
    cmd.output().expect("the child runs").status
}

/// The checkpoint is never ahead of the target.
async fn assert_checkpoint_not_ahead(h: &StoreHandles, strategy: &str, why: &str) {
    let Some(cp) = h.checkpoints.load(SYNC).await.expect("checkpoint loads") else {
        return;
    };
    let target = h.stager.read_target("items").await.expect("target reads");
    let schema = schema_for(strategy);
    let source = source_rows(strategy, 1);
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
                assert!(
                    target.iter().any(|t| t.get(0) == r.get(0)),
                    "{why}: offset {o} is ahead of {:?}",
                    r.get(0)
                );
            }
        }
        Position::Timestamp(_) => {
            // A full snapshot is all or nothing: the target is one generation or the other.
            assert!(
                target == source_rows(strategy, 0) || target == source,
                "{why}: a full snapshot was half applied"
            );
        }
        other => panic!("unexpected position {other}"),
    }
}

/// Runs the matrix: full, incremental and offset, killed at each of five fault points on
/// their first and third pass. `new_db(case)` names a fresh database for a case; `open`
/// opens it in this process; `dispose` removes it afterwards. Returns how many children were
/// killed (27 of 30: a full sync promotes once, so its later promote passes do not exist).
pub async fn matrix<F, Fut, D, DFut>(new_db: impl Fn(&str) -> String, open: F, dispose: D) -> u32
where
    F: Fn(String, Faults) -> Fut,
    Fut: Future<Output = StoreHandles>,
    D: Fn(String) -> DFut,
    DFut: Future<Output = ()>,
{
    #[cfg(unix)]
    use std::os::unix::process::ExitStatusExt;
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
                let case = format!("{strategy} {point} skip {skip}");
                let db = new_db(&format!("{strategy}_{point}_{skip}"));
                assert!(
                    run_child(&db, strategy, 0, None).success(),
                    "{case}: first sync"
                );
                let status = run_child(&db, strategy, 1, Some(format!("{point}:kill:{skip}")));
                #[cfg(unix)]
                let killed = status.signal() == Some(9);
                #[cfg(not(unix))]
                let killed = !status.success();
                if killed {
                    kills += 1;
                } else {
                    assert!(
                        status.success(),
                        "{case}: child neither finished nor was killed: {status}"
                    );
                    // Every point is passed at least once per run; later passes may not exist.
                    assert!(skip > 0, "{case}: the fault point was never reached");
                }
                let h = open(db.clone(), Faults::new()).await;
                assert_checkpoint_not_ahead(&h, strategy, &case).await;
                drop(h);
                assert!(
                    run_child(&db, strategy, 1, None).success(),
                    "{case}: resume"
                );
                let h = open(db.clone(), Faults::new()).await;
                let target = h.stager.read_target("items").await.expect("target reads");
                assert_eq!(
                    target,
                    source_rows(strategy, 1),
                    "{case}: target differs from the source"
                );
                let ledger = h.checkpoints.ledger(SYNC).await.expect("ledger reads");
                for pair in ledger.windows(2) {
                    assert_eq!(
                        pair[1].low, pair[0].high,
                        "{case}: ledger windows do not chain"
                    );
                }
                drop(h);
                dispose(db).await;
            }
        }
    }
    kills
}
