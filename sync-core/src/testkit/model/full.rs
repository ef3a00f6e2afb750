//! Model test of the full strategy: hard deletes, keyset-paged fills interrupted at every
//! fault point and by page limits, resumed later.
//!
//! Promise checked: after every run that completes without source changes during its fill,
//! the target equals the source exactly (deleted rows removed); the checkpoint never moves
//! backwards; no key is duplicated; a final clean pair of runs always converges.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;

use super::{
    assert_unique_keys, attempt, block_on, context, position, run_kind, Monotone, RunKind,
};
use crate::fault::FaultPoint;
use crate::memory::{MemoryPaging, MemorySource};
use crate::strategy::{FullConfig, FullStrategy};
use crate::testkit::{item, key, keyed_schema, StoreHandles};

/// One step.
#[derive(Debug, Clone)]
pub enum FullOp {
    /// Insert or update key `k` (version + 1).
    Upsert(u8),
    /// Delete key `k` from the source.
    Delete(u8),
    /// Run the strategy.
    Run {
        /// How.
        kind: RunKind,
        /// Page size.
        page_size: u32,
    },
}

const POINTS: &[FaultPoint] = &[
    FaultPoint::AfterStage,
    FaultPoint::BeforePromote,
    FaultPoint::DuringCommit,
    FaultPoint::AfterCommit,
    FaultPoint::MidPage,
];

/// Random operation sequences.
pub fn ops() -> impl Strategy<Value = Vec<FullOp>> {
    let op = prop_oneof![
        4 => (0u8..12).prop_map(FullOp::Upsert),
        2 => (0u8..12).prop_map(FullOp::Delete),
        3 => (run_kind(POINTS), 1u32..5).prop_map(|(kind, page_size)| FullOp::Run { kind, page_size }),
    ];
    proptest::collection::vec(op, 1..40)
}

/// Runs `ops` against a fresh store from `make`.
pub fn check<F, Fut>(make: F, ops: Vec<FullOp>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = StoreHandles>,
{
    block_on(async {
        let h = make().await;
        let schema = keyed_schema("full_items");
        let source = Arc::new(
            MemorySource::new((*schema).clone())
                .with_paging(MemoryPaging::Token)
                .with_faults(h.faults.clone()),
        );
        let ctx = context("model/full", source.clone(), &h);
        let mut versions: BTreeMap<u8, i64> = BTreeMap::new();
        let (mut fill_open, mut dirty, mut mono) = (false, false, Monotone::default());
        for op in ops {
            match op {
                FullOp::Upsert(k) => {
                    let v = versions.entry(k).or_insert(0);
                    *v += 1;
                    source.upsert(item(&format!("k{k:02}"), *v, None).values().to_vec());
                    dirty |= fill_open;
                }
                FullOp::Delete(k) => {
                    source.delete(&key(&format!("k{k:02}")));
                    dirty |= fill_open;
                }
                FullOp::Run { kind, page_size } => {
                    let strategy = FullStrategy::new(FullConfig {
                        page_size,
                        ..FullConfig::new("full_items")
                    })
                    .unwrap();
                    let report = attempt(&strategy, &ctx, &h.faults, &kind).await;
                    let target = h.stager.read_target("full_items").await.unwrap();
                    assert_unique_keys(&schema, &target);
                    if report.is_some_and(|r| r.complete) {
                        if !dirty {
                            assert_eq!(
                                target,
                                source.rows("full_items"),
                                "target differs from source after a full run"
                            );
                        }
                        (fill_open, dirty) = (false, false);
                    } else {
                        fill_open = true;
                    }
                    mono.observe(position(&h, "model/full").await.as_ref());
                }
            }
        }
        let strategy = FullStrategy::new(FullConfig::new("full_items")).unwrap();
        for _ in 0..2 {
            let report = attempt(&strategy, &ctx, &h.faults, &RunKind::Clean)
                .await
                .expect("clean run");
            assert!(report.complete);
        }
        assert_eq!(
            h.stager.read_target("full_items").await.unwrap(),
            source.rows("full_items")
        );
    });
}
