//! The sync-core conformance suite and the strategy models on a real SQLite file.

use std::sync::Arc;

use sync_core::testkit::StoreHandles;
use sync_core::Faults;
use sync_store_sqlite::{SqliteConfig, SqliteStore};

/// A fresh store in its own temporary directory (kept until the process exits).
async fn make_store() -> StoreHandles {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let faults = Faults::new();
    let store =
        SqliteStore::open_with_faults(SqliteConfig::new(dir.join("store.db")), faults.clone())
            .await
            .expect("store opens");
    StoreHandles::of(Arc::new(store), faults)
}

sync_core::conformance_suite!(make_store);

mod models {
    use proptest::prelude::*;
    use sync_core::testkit::model;

    use super::make_store;

    fn cases() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64);
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(cases())]

        #[test]
        fn full_strategy_matches_model_on_sqlite(paging in model::full::paging(), ops in model::full::ops()) {
            model::full::check(make_store, paging, ops);
        }

        #[test]
        fn incremental_strategy_matches_model_on_sqlite(case in model::incremental::ops()) {
            model::incremental::check(make_store, case);
        }

        #[test]
        fn offset_strategy_matches_model_on_sqlite(case in model::offset::ops()) {
            model::offset::check(make_store, case);
        }
    }
}
