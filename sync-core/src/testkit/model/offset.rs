//! Model test of the offset strategy: inserts anywhere in the key order (which shift offsets),
//! updates, soft deletes, a server that silently clamps page sizes, crashes and page limits.
//!
//! Promise checked: a run that completes has every source key in the target (drift is
//! detected and the scan restarted, never a record skipped silently) at a version no newer
//! than the source's; the offset never passes the source's size and only moves back through
//! a logged drift restart; no key is duplicated; after a reset, a clean run makes the target
//! equal to the source. (An insert and a delete before the offset between two pages cancel
//! out and no offset reader can see them; this model's inserts and soft deletes never do.)

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;

use super::{
    assert_unique_keys, attempt, block_on, context, position, run_kind, Monotone, RunKind,
};
use crate::fault::FaultPoint;
use crate::memory::MemorySource;
use crate::strategy::{DriftPolicy, OffsetConfig, OffsetStrategy};
use crate::testkit::{ids, item, keyed_schema, StoreHandles};
use crate::value::Value;

/// One step.
#[derive(Debug, Clone)]
pub enum OffsetOp {
    /// Insert or update key `k`.
    Upsert(u8),
    /// Mark key `k` deleted (a soft delete: offsets cannot see hard deletes).
    SoftDelete(u8),
    /// Run the strategy.
    Run(RunKind),
}

const POINTS: &[FaultPoint] = &[
    FaultPoint::AfterStage,
    FaultPoint::BeforePromote,
    FaultPoint::DuringCommit,
    FaultPoint::AfterCommit,
    FaultPoint::MidPage,
];

/// Random (page size, silent server limit, operations).
pub fn ops() -> impl Strategy<Value = (u32, Option<u32>, Vec<OffsetOp>)> {
    let op = prop_oneof![
        4 => (0u8..16).prop_map(OffsetOp::Upsert),
        1 => (0u8..16).prop_map(OffsetOp::SoftDelete),
        3 => run_kind(POINTS).prop_map(OffsetOp::Run),
    ];
    (
        1u32..5,
        proptest::option::of(1u32..3),
        proptest::collection::vec(op, 1..40),
    )
}

/// Runs one case against a fresh store from `make`.
pub fn check<F, Fut>(make: F, case: (u32, Option<u32>, Vec<OffsetOp>))
where
    F: Fn() -> Fut,
    Fut: Future<Output = StoreHandles>,
{
    let (page_size, silent_limit, ops) = case;
    block_on(async {
        let h = make().await;
        let schema = keyed_schema("offset_items");
        let mut source = MemorySource::new((*schema).clone()).with_faults(h.faults.clone());
        if let Some(limit) = silent_limit {
            source = source.with_silent_page_limit(limit);
        }
        let source = Arc::new(source);
        let ctx = context("model/offset", source.clone(), &h);
        let strategy = OffsetStrategy::new(OffsetConfig {
            page_size,
            drift: DriftPolicy::Restart,
            ..OffsetConfig::new("offset_items")
        })
        .unwrap();
        let mut versions: BTreeMap<u8, i64> = BTreeMap::new();
        let (mut mono, mut drifts) = (Monotone::default(), 0);
        for op in ops {
            match op {
                OffsetOp::Upsert(k) | OffsetOp::SoftDelete(k) => {
                    let deleted = matches!(op, OffsetOp::SoftDelete(_));
                    if deleted && !versions.contains_key(&k) {
                        continue;
                    }
                    let v = versions.entry(k).or_insert(0);
                    *v += 1;
                    let mut row = item(&format!("k{k:02}"), *v, None);
                    row.values_mut()[3] = Value::Bool(deleted);
                    source.upsert(row.values().to_vec());
                }
                OffsetOp::Run(kind) => {
                    let report = attempt(&strategy, &ctx, &h.faults, &kind).await;
                    let target = h.stager.read_target("offset_items").await.unwrap();
                    assert_unique_keys(&schema, &target);
                    if report.is_some_and(|r| r.complete) {
                        let src = source.rows("offset_items");
                        assert_eq!(
                            ids(&target),
                            ids(&src),
                            "a completed offset scan skipped or invented a record"
                        );
                        for (t, s) in target.iter().zip(&src) {
                            assert!(
                                t.get(1).as_i64() <= s.get(1).as_i64(),
                                "target is newer than the source"
                            );
                        }
                    }
                    // The offset only moves back through a logged drift restart.
                    let log = h
                        .checkpoints
                        .sync_log("model/offset", 100_000)
                        .await
                        .unwrap();
                    let now_drifts = log.iter().filter(|e| e.event == "drift").count();
                    if now_drifts > drifts {
                        mono.reset();
                        drifts = now_drifts;
                    }
                    mono.observe(position(&h, "model/offset").await.as_ref());
                    let status = strategy.status(&ctx).await.unwrap();
                    assert!(
                        status.offset <= source.rows("offset_items").len() as u64,
                        "offset is ahead of the source"
                    );
                }
            }
        }
        strategy.reset(&ctx).await.unwrap();
        let report = attempt(&strategy, &ctx, &h.faults, &RunKind::Clean)
            .await
            .expect("clean run");
        assert!(report.complete);
        assert_eq!(
            h.stager.read_target("offset_items").await.unwrap(),
            source.rows("offset_items")
        );
    });
}
