//! Model-based tests of the four strategies on the in-memory store: at least 1,000 cases each
//! (`PROPTEST_CASES` raises it). Failures shrink and are kept in `proptest-regressions/`.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use sync_core::testkit::{memory_store, model};

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/model_strategies.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn full_strategy_matches_model(paging in model::full::paging(), ops in model::full::ops()) {
        model::full::check(memory_store, paging, ops);
    }

    #[test]
    fn incremental_strategy_matches_model(case in model::incremental::ops()) {
        model::incremental::check(memory_store, case);
    }

    #[test]
    fn offset_strategy_matches_model(case in model::offset::ops()) {
        model::offset::check(memory_store, case);
    }

    #[test]
    fn sequence_window_strategy_matches_model(ops in model::sequence_window::ops()) {
        model::sequence_window::check(ops);
    }
}
