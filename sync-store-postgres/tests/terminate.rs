//! `pg_terminate_backend` of the store's connection in the middle of a promotion: nothing of
//! it is applied, the error says the connection is gone, and the next run completes with the
//! target equal to the source.

use std::sync::Arc;

use sync_core::memory::MemorySource;
use sync_core::testkit::{item, keyed_schema};
use sync_core::{Checkpoint, FullConfig, FullStrategy, RetryPolicy, Stager, Strategy, SyncContext};
use sync_store_postgres::{PostgresConfig, PostgresStore};

const ROWS: usize = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_terminated_mid_promotion_applies_nothing_and_the_next_run_completes() {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema_name = format!("sync_test_{}_terminate", std::process::id());
    let config = PostgresConfig::new(url.clone())
        .with_schema(schema_name.clone())
        .with_pool_size(2);
    let store = Arc::new(PostgresStore::open(config).await.unwrap());
    let schema = keyed_schema("items");
    let source = Arc::new(MemorySource::new((*schema).clone()));
    for i in 0..ROWS {
        source.upsert(item(&format!("k{i:06}"), 1, None).values().to_vec());
    }
    let ctx = SyncContext::new("terminate", source.clone(), store.clone(), store.clone())
        .with_retry(RetryPolicy::none());
    let full = FullStrategy::new(FullConfig {
        page_size: 10_000,
        ..FullConfig::new("items")
    })
    .unwrap();

    // A watcher terminates the backend that runs the promotion's upsert into the target.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let pattern = format!("%INSERT INTO \"{schema_name}\".\"items\"%");
    let watcher = tokio::spawn(async move {
        for _ in 0..20_000 {
            let rows = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
                    &[&pattern],
                )
                .await
                .unwrap();
            if !rows.is_empty() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        false
    });
    let first = full.run(&ctx).await;
    let terminated = watcher.await.unwrap();
    assert!(terminated, "the watcher never saw the promotion run");
    let err = first.expect_err("the promotion's connection was terminated");
    assert!(err.is_transient(), "a lost connection is transient: {err}");
    assert!(
        store.read_target("items").await.unwrap().is_empty(),
        "nothing of the promotion is applied"
    );
    assert!(
        store.load("terminate").await.unwrap().is_none(),
        "the checkpoint did not move"
    );

    let second = full.run(&ctx).await.unwrap();
    assert!(second.complete);
    assert_eq!(
        second.pages, 0,
        "the staged fill is promoted without fetching again"
    );
    assert_eq!(
        store.read_target("items").await.unwrap(),
        source.rows("items")
    );
    (*store).clone().drop_schema().await.unwrap();
}
