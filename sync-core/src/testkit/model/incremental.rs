//! Model test of the incremental strategy: inserts, updates and soft deletes whose cursor
//! values tie and arrive late (visible up to `settle_lag - 1` units after their cursor
//! value), runs with small pages (ties straddle page boundaries), crashes at every fault
//! point, page limits, lookback, records that move to the end of the order while a run
//! pages, and sources ordered (with and without keyset paging) or unordered.
//!
//! Promise checked after every run: the checkpoint never moves backwards; every source record
//! at or before the checkpoint's (cursor, key) is in the target at its current version (the
//! checkpoint is never ahead of promoted data); after a complete run every record with a
//! cursor at or below the run's upper bound is in the target exactly, and no target row is
//! newer than the source; no key is duplicated. Finally, once the lag has passed, one clean
//! run makes the target equal to the source.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;

use super::{
    assert_unique_keys, attempt, block_on, context, position, run_kind, Monotone, RunKind,
};
use crate::fault::FaultPoint;
use crate::memory::{MemoryPaging, MemorySource};
use crate::position::Position;
use crate::source::{SourceCapabilities, SourceOrdering};
use crate::strategy::{IncrementalConfig, IncrementalStrategy};
use crate::testkit::{item, items_schema, StoreHandles};
use crate::value::Value;

/// One step.
#[derive(Debug, Clone)]
pub enum IncrementalOp {
    /// Insert or update key `k`; its cursor lags the clock by `delay` (late arrival).
    Upsert {
        /// Key.
        k: u8,
        /// Visibility delay (taken modulo the settle lag).
        delay: i64,
    },
    /// Soft-delete key `k` (a tombstone update).
    SoftDelete {
        /// Key.
        k: u8,
        /// Visibility delay.
        delay: i64,
    },
    /// Advance the source clock.
    Tick(i64),
    /// Run the strategy.
    Run {
        /// How.
        kind: RunKind,
        /// Page size.
        page_size: u32,
    },
    /// Run the strategy while key `k` is updated right after the run's first page: the
    /// record moves to the end of the order mid-read.
    RunWithMove {
        /// How.
        kind: RunKind,
        /// Page size.
        page_size: u32,
        /// The key that moves.
        k: u8,
    },
}

/// Case parameters.
#[derive(Debug, Clone)]
pub struct IncrementalCase {
    /// Settle lag in cursor units (at least 1).
    pub settle_lag: i64,
    /// Lookback in cursor units.
    pub lookback: i64,
    /// Whether the source serves keyset (`After`) paging.
    pub keyset: bool,
    /// Whether the source declares no order (the run is one window).
    pub unordered: bool,
    /// Pages per promotion of an ordered source.
    pub pages_per_window: u32,
    /// The steps.
    pub ops: Vec<IncrementalOp>,
}

const POINTS: &[FaultPoint] = &[
    FaultPoint::AfterStage,
    FaultPoint::BeforePromote,
    FaultPoint::DuringCommit,
    FaultPoint::AfterCommit,
    FaultPoint::MidPage,
];

/// Random cases.
pub fn ops() -> impl Strategy<Value = IncrementalCase> {
    let op = prop_oneof![
        5 => (0u8..10, 0i64..4).prop_map(|(k, delay)| IncrementalOp::Upsert { k, delay }),
        1 => (0u8..10, 0i64..4).prop_map(|(k, delay)| IncrementalOp::SoftDelete { k, delay }),
        1 => (0i64..4).prop_map(IncrementalOp::Tick),
        3 => (run_kind(POINTS), 1u32..4).prop_map(|(kind, page_size)| IncrementalOp::Run { kind, page_size }),
        1 => (run_kind(POINTS), 1u32..4, 0u8..10)
            .prop_map(|(kind, page_size, k)| IncrementalOp::RunWithMove { kind, page_size, k }),
    ];
    (
        1i64..4,
        prop_oneof![Just(0i64), Just(2i64)],
        any::<bool>(),
        any::<bool>(),
        1u32..4,
        proptest::collection::vec(op, 1..40),
    )
        .prop_map(
            |(settle_lag, lookback, keyset, unordered, pages_per_window, ops)| IncrementalCase {
                settle_lag,
                lookback,
                keyset,
                unordered,
                pages_per_window,
                ops,
            },
        )
}

/// Runs one case against a fresh store from `make`.
pub fn check<F, Fut>(make: F, case: IncrementalCase)
where
    F: Fn() -> Fut,
    Fut: Future<Output = StoreHandles>,
{
    block_on(async {
        let h = make().await;
        let schema = items_schema("inc_items");
        // An unordered source pages with a continuation token: with offsets over a filtered,
        // changing set no strategy could read it without loss.
        let base = MemorySource::new((*schema).clone()).with_paging(if case.unordered {
            MemoryPaging::Token
        } else {
            MemoryPaging::Offset
        });
        let ordering = if case.unordered {
            SourceOrdering::Unordered
        } else {
            SourceOrdering::ByCursorThenKey
        };
        let caps = SourceCapabilities {
            keyset: case.keyset,
            ordering,
            ..crate::Source::capabilities(&base)
        };
        let source = Arc::new(base.with_capabilities(caps).with_faults(h.faults.clone()));
        let ctx = context("model/incremental", source.clone(), &h);
        let config = |page_size| IncrementalConfig {
            page_size,
            lookback: case.lookback,
            settle_lag: case.settle_lag,
            pages_per_window: case.pages_per_window,
            ..IncrementalConfig::new("inc_items")
        };
        let (mut now, mut mono) = (0i64, Monotone::default());
        let mut keys: BTreeMap<u8, (i64, i64)> = BTreeMap::new(); // version, cursor
        source.set_high_watermark("inc_items", Some(vec![Value::from(now)]));
        for op in case.ops {
            match op {
                IncrementalOp::Upsert { k, delay } | IncrementalOp::SoftDelete { k, delay } => {
                    let deleted = matches!(op, IncrementalOp::SoftDelete { .. });
                    if deleted && !keys.contains_key(&k) {
                        continue;
                    }
                    now += 1;
                    let (version, cursor) = keys.entry(k).or_insert((0, i64::MIN));
                    *version += 1;
                    *cursor = (now - delay % case.settle_lag).max(cursor.saturating_add(1));
                    let mut row = item(&format!("k{k:02}"), *version, Some(*cursor));
                    row.values_mut()[3] = Value::Bool(deleted);
                    source.upsert(row.values().to_vec());
                }
                IncrementalOp::Tick(n) => now += n,
                IncrementalOp::RunWithMove { kind, page_size, k } => {
                    // The run starts at `now`; the update happens during it, one tick later.
                    source.set_high_watermark("inc_items", Some(vec![Value::from(now)]));
                    let started = now;
                    if let Some((version, cursor)) = keys.get_mut(&k) {
                        now += 1;
                        *version += 1;
                        *cursor = now.max(cursor.saturating_add(1));
                        let row = item(&format!("k{k:02}"), *version, Some(*cursor));
                        let served = source.pages_served();
                        source.mutate_after_page(
                            served + 1,
                            Box::new(move |d| d.upsert("inc_items", row.values().to_vec())),
                        );
                    }
                    let strategy = IncrementalStrategy::new(config(page_size)).unwrap();
                    let report = attempt(&strategy, &ctx, &h.faults, &kind).await;
                    source.flush_mutations();
                    let upper = report
                        .is_some_and(|r| r.complete)
                        .then_some(started - case.settle_lag);
                    verify(&h, &source, &mut mono, upper).await;
                }
                IncrementalOp::Run { kind, page_size } => {
                    let strategy = IncrementalStrategy::new(config(page_size)).unwrap();
                    let report = attempt(&strategy, &ctx, &h.faults, &kind).await;
                    verify(
                        &h,
                        &source,
                        &mut mono,
                        report
                            .is_some_and(|r| r.complete)
                            .then_some(now - case.settle_lag),
                    )
                    .await;
                }
            }
            source.set_high_watermark("inc_items", Some(vec![Value::from(now)]));
        }
        now += case.settle_lag;
        source.set_high_watermark("inc_items", Some(vec![Value::from(now)]));
        let strategy = IncrementalStrategy::new(config(3)).unwrap();
        let report = attempt(&strategy, &ctx, &h.faults, &RunKind::Clean)
            .await
            .expect("clean run");
        assert!(report.complete);
        assert_eq!(
            h.stager.read_target("inc_items").await.unwrap(),
            source.rows("inc_items")
        );
    });
}

async fn verify(
    h: &StoreHandles,
    source: &MemorySource,
    mono: &mut Monotone,
    complete_upper: Option<i64>,
) {
    let schema = items_schema("inc_items");
    let raw = h.stager.read_target("inc_items").await.unwrap();
    assert_unique_keys(&schema, &raw);
    let target: BTreeMap<_, _> = raw.into_iter().map(|r| (r.key(&schema), r)).collect();
    let rows = source.rows("inc_items");
    let pos = position(h, "model/incremental").await;
    mono.observe(pos.as_ref());
    if let Some(Position::CursorKey(cp)) = &pos {
        for r in &rows {
            if r.cursor_key(&schema).compare(cp).is_some_and(|o| o.is_le()) {
                assert_eq!(
                    target.get(&r.key(&schema)),
                    Some(r),
                    "checkpoint {cp:?} is ahead of promoted data"
                );
            }
        }
    }
    let source_by_key: BTreeMap<_, _> = rows.iter().map(|r| (r.key(&schema), r)).collect();
    for (k, t) in &target {
        let s = source_by_key
            .get(k)
            .expect("target holds a key the source never had");
        assert!(
            t.get(1).as_i64() <= s.get(1).as_i64(),
            "target is newer than the source"
        );
    }
    if let Some(upper) = complete_upper {
        for r in &rows {
            if r.get(2).as_i64().is_some_and(|c| c <= upper) {
                assert_eq!(
                    target.get(&r.key(&schema)),
                    Some(r),
                    "a settled record is missing after a complete run"
                );
            }
        }
    }
}
