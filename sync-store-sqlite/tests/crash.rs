//! Crash tests on a real SQLite file: the test kit's SIGKILL matrix (see
//! `sync_core::testkit::crash`).

#![cfg(unix)]

use std::sync::Arc;

use sync_core::testkit::{crash, StoreHandles};
use sync_core::Faults;
use sync_store_sqlite::{Durability, SqliteConfig, SqliteStore};

/// Databases whose file name ends in `.normal.db` promote at `Durability::Normal` (the
/// child process opens the same path, so it picks the same setting).
async fn open(db: String, faults: Faults) -> StoreHandles {
    let durability = if db.ends_with(".normal.db") {
        Durability::Normal
    } else {
        Durability::Full
    };
    let config = SqliteConfig::new(db).with_durability(durability);
    let store = SqliteStore::open_with_faults(config, faults.clone())
        .await
        .expect("store opens");
    StoreHandles::of(Arc::new(store), faults)
}

#[test]
fn crash_child() {
    crash::child(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_at_any_fault_point_loses_and_duplicates_nothing() {
    sigkill_matrix("db").await;
}

/// `Durability::Normal` relaxes only the sync of the log, which a process crash never needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_with_normal_durability_loses_and_duplicates_nothing() {
    sigkill_matrix("normal.db").await;
}

async fn sigkill_matrix(extension: &'static str) {
    if std::env::var("CRASH_DB").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let new_db = move |case: &str| {
        root.join(format!("{case}.{extension}"))
            .display()
            .to_string()
    };
    let dispose = |db: String| async move {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{db}{suffix}"));
        }
    };
    let kills = crash::matrix(new_db, open, dispose).await;
    assert_eq!(
        kills, 27,
        "every reachable fault point kills the child (a full sync promotes once)"
    );
}
