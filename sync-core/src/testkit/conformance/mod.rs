//! The conformance suite: one async function per contract clause of `Checkpoint`, `Stager`
//! and `ChangeQueue`, and [`conformance_suite!`](crate::conformance_suite) to expand them into
//! named tests. Each function takes fresh [`StoreHandles`](super::StoreHandles) and panics
//! when the store breaks the clause. `docs/contracts.md` maps every clause to its function.

mod checkpoint;
mod queue;
mod stager;

pub use checkpoint::*;
pub use queue::*;
pub use stager::*;

/// Expands the whole conformance suite into one `#[tokio::test]` per clause. The argument is
/// an async function returning fresh, isolated [`StoreHandles`](crate::testkit::StoreHandles).
///
/// `conformance_suite!(make, enabled = expr)` runs each test only when `expr` is true (for
/// stores that need a server a developer may not have; CI makes it true).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!($make, enabled = true);
    };
    ($make:path, enabled = $enabled:expr) => {
        $crate::conformance_suite!(@tests $make, $enabled;
            checkpoint_load_absent_is_none,
            checkpoint_fences_increase,
            checkpoint_first_commit_round_trips,
            checkpoint_stale_version_conflicts,
            checkpoint_stale_fence_is_rejected,
            checkpoint_release_fence_frees_only_its_own_hold,
            checkpoint_bad_delta_is_rejected,
            checkpoint_ledger_in_commit_order,
            checkpoint_sync_log_newest_first_limit,
            checkpoint_sync_log_unbounded_limit,
            checkpoint_reset_keeps_ledger,
            stager_schema_evolution_adds_columns,
            stager_begin_resumes_open_run,
            stager_a_fenced_out_writer_cannot_touch_the_run,
            stager_stage_rejects_discontinuous_delta,
            stager_validate_keeps_newest_duplicate,
            stager_dedupe_treats_null_version_as_oldest,
            stager_validate_quarantines_with_reason,
            stager_promote_refuses_unvalidated,
            stager_rows_after_an_open_promotion_are_validated,
            stager_upsert_never_replaces_newer,
            stager_composite_guard_treats_null_as_oldest,
            stager_replace_deletes_missing_within_scope,
            stager_replace_keeps_keys_of_quarantined_rows,
            stager_failed_commit_changes_nothing,
            stager_commit_faults_are_atomic,
            stager_abort_discards_staged,
            stager_read_target_by_key,
            stager_hostile_identifiers_round_trip,
            queue_append_increases,
            queue_read_window_is_half_open,
            queue_high_water_mark_covers_appends
        );
    };
    (@tests $make:path, $enabled:expr; $($clause:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $clause() {
                if !$enabled {
                    eprintln!("skipped: the store under test is not configured");
                    return;
                }
                $crate::testkit::conformance::$clause($make().await).await;
            }
        )*
    };
}
