//! What the job queue tests share: the server from `SYNC_TEST_POSTGRES_URL` and a store in a
//! schema of its own per test.
//!
//! Schemas are named `sync_jobs_test_<unix seconds>_<pid>_<n>`; each new test process drops
//! those older than an hour (left by failed or interrupted runs), never a live run's, even one
//! of another checkout sharing the server.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sync_store_postgres::{PostgresConfig, PostgresStore};

const PREFIX: &str = "sync_jobs_test_";

/// The test server's URL, `None` when the tests are to be skipped.
pub(crate) fn url() -> Option<String> {
    std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A connection of its own (the caller's transactions, the tests' bookkeeping tables).
pub(crate) async fn connect() -> tokio_postgres::Client {
    connect_as("sync-jobs-test").await
}

/// [`connect`] with the session's `application_name`, which `pg_stat_activity` shows.
pub(crate) async fn connect_as(name: &str) -> tokio_postgres::Client {
    let url = url().expect("SYNC_TEST_POSTGRES_URL is set");
    let mut config: tokio_postgres::Config = url.parse().expect("a valid URL");
    config.application_name(name);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("the test database is reachable");
    tokio::spawn(connection);
    client
}

async fn drop_stale_schemas() {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let client = connect().await;
        let rows = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)",
                &[&PREFIX],
            )
            .await
            .expect("list schemas");
        let hour_ago = unix_seconds().saturating_sub(3600);
        for row in rows {
            let name: String = row.get(0);
            let born = name[PREFIX.len()..]
                .split('_')
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            if born.is_some_and(|t| t < hour_ago) {
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await;
            }
        }
    })
    .await;
}

/// A store (run leases off) in a fresh schema, with `pool_size` connections.
pub(crate) async fn fresh_store(pool_size: usize) -> PostgresStore {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    drop_stale_schemas().await;
    let schema = format!(
        "{PREFIX}{}_{}_{}",
        unix_seconds(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    open_store(&schema, pool_size).await
}

/// A store (run leases off) on an existing or new `schema`.
pub(crate) async fn open_store(schema: &str, pool_size: usize) -> PostgresStore {
    let config = PostgresConfig::new(url().expect("SYNC_TEST_POSTGRES_URL is set"))
        .with_schema(schema)
        .with_pool_size(pool_size)
        .with_run_lease(None);
    PostgresStore::open(config)
        .await
        .expect("the test database is reachable")
}
