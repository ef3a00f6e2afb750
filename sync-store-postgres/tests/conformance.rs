//! The sync-core conformance suite and the strategy models on a real PostgreSQL, each test in
//! its own schema. The server comes from `SYNC_TEST_POSTGRES_URL`; without it the tests are
//! skipped (CI always sets it, and then an unreachable server fails them).
//!
//! The suite's fence clauses acquire two tokens in a row from one caller to check that the
//! newer one takes over, which run leases refuse by design; so the suite runs with leases off
//! (fencing only), and the strategy models, whose runs must each release their lease for the
//! next to start, run with the default lease.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use sync_core::testkit::StoreHandles;
use sync_core::Faults;
use sync_store_postgres::{PostgresConfig, PostgresStore};

fn url() -> Option<String> {
    std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Drops the schemas earlier test processes left behind (once per process).
async fn drop_stale_schemas(url: &str) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("test database");
        tokio::spawn(connection);
        let mine = format!("sync_test_{}_", std::process::id());
        let rows = client
            .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sync\\_test\\_%' OR nspname LIKE 'sync\\_crash\\_%'", &[])
            .await
            .expect("list schemas");
        for row in rows {
            let name: String = row.get(0);
            if !name.starts_with(&mine) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await;
            }
        }
    })
    .await;
}

/// A fresh store in a schema of its own, with run leases off.
async fn make_store() -> StoreHandles {
    open_store(
        PostgresConfig::new(url().expect("SYNC_TEST_POSTGRES_URL is set")).with_run_lease(None),
    )
    .await
}

/// A fresh store in a schema of its own, with the default run lease.
async fn make_leased_store() -> StoreHandles {
    open_store(PostgresConfig::new(
        url().expect("SYNC_TEST_POSTGRES_URL is set"),
    ))
    .await
}

async fn open_store(config: PostgresConfig) -> StoreHandles {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    drop_stale_schemas(&config.url).await;
    let schema = format!(
        "sync_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand_suffix()
    );
    let faults = Faults::new();
    let store = PostgresStore::open_with_faults(
        config.with_schema(schema).with_pool_size(2),
        faults.clone(),
    )
    .await
    .expect("the test database is reachable");
    StoreHandles::of(Arc::new(store), faults)
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
}

sync_core::conformance_suite!(make_store, enabled = url().is_some());

mod models {
    use proptest::prelude::*;
    use sync_core::testkit::model;

    use super::{make_leased_store, url};

    fn cases() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(24);
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(cases())]

        #[test]
        fn full_strategy_matches_model_on_postgres(paging in model::full::paging(), ops in model::full::ops()) {
            if url().is_some() {
                model::full::check(make_leased_store, paging, ops);
            }
        }

        #[test]
        fn incremental_strategy_matches_model_on_postgres(case in model::incremental::ops()) {
            if url().is_some() {
                model::incremental::check(make_leased_store, case);
            }
        }

        #[test]
        fn offset_strategy_matches_model_on_postgres(case in model::offset::ops()) {
            if url().is_some() {
                model::offset::check(make_leased_store, case);
            }
        }
    }
}
