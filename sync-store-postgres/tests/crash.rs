//! Crash tests on a real PostgreSQL: the test kit's SIGKILL matrix (see
//! `sync_core::testkit::crash`), each case in its own schema.

#![cfg(unix)]

use std::sync::Arc;

use sync_core::testkit::{crash, StoreHandles};
use sync_core::Faults;
use sync_store_postgres::{PostgresConfig, PostgresStore};

fn url() -> Option<String> {
    std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

async fn store(schema: &str, faults: Faults) -> PostgresStore {
    let config = PostgresConfig::new(url().expect("SYNC_TEST_POSTGRES_URL"))
        .with_schema(schema)
        .with_pool_size(2);
    PostgresStore::open_with_faults(config, faults)
        .await
        .expect("the test database is reachable")
}

async fn open(schema: String, faults: Faults) -> StoreHandles {
    StoreHandles::of(Arc::new(store(&schema, faults.clone()).await), faults)
}

#[test]
fn crash_child() {
    crash::child(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_at_any_fault_point_loses_and_duplicates_nothing() {
    if std::env::var("CRASH_DB").is_ok() {
        return;
    }
    if url().is_none() {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    }
    let pid = std::process::id();
    let new_db = move |case: &str| format!("sync_crash_{pid}_{case}");
    let dispose = |schema: String| async move {
        store(&schema, Faults::new())
            .await
            .drop_schema()
            .await
            .expect("schema drops")
    };
    let kills = crash::matrix(new_db, open, dispose).await;
    assert_eq!(
        kills, 27,
        "every reachable fault point kills the child (a full sync promotes once)"
    );
}
