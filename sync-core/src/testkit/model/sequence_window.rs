//! Model test of the sequence-window strategy on the in-memory store: producers append ids,
//! some through transactions that reserve a sequence number and commit later (numbers become
//! visible out of order), hard deletes, runs with small windows, crashes at every fault point
//! (including before the sink), and replays of past windows.
//!
//! Promise checked after every step: for each id whose latest queue entry is at or below the
//! promoted position, the target equals the source; at or below the delivered position, the
//! sink's copy equals the source; delivered never passes promoted; the history of committed
//! windows is contiguous from 0 to the position; neither position ever moves backwards. Finally,
//! once every producer committed, one clean run makes target and sink equal to the source.
//! (Out-of-order visibility needs `MemoryStore::reserve`, so this model runs on the memory
//! store; database stores test their high-water mark with concurrent writers.)

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::{attempt, block_on, context, run_kind, Monotone, RunKind};
use crate::checkpoint::Checkpoint;
use crate::fault::{FaultPoint, Faults};
use crate::memory::{MemorySource, MemoryStore};
use crate::position::{Position, SequenceNo};
use crate::queue::ChangeQueue;
use crate::record::Key;
use crate::stager::Stager;
use crate::strategy::{check_history, SequenceWindowConfig, SequenceWindowStrategy};
use crate::testkit::{item, key, keyed_schema, StoreHandles};

/// One step.
#[derive(Debug, Clone)]
pub enum SequenceOp {
    /// Change key `k` (update, or delete) and append it, visible at once.
    Change {
        /// Key.
        k: u8,
        /// Delete instead of update.
        delete: bool,
    },
    /// A producer transaction reserves a number for key `k` without committing.
    Reserve {
        /// Key.
        k: u8,
        /// Delete instead of update when it commits.
        delete: bool,
    },
    /// The `i`-th open producer transaction (modulo their count) commits.
    CommitReserved(usize),
    /// Run the strategy with windows of at most `max_entries` entries.
    Run {
        /// How.
        kind: RunKind,
        /// Window size.
        max_entries: usize,
    },
    /// Replay the `i`-th committed window (modulo their count).
    Replay(usize),
}

const POINTS: &[FaultPoint] = &[
    FaultPoint::AfterStage,
    FaultPoint::BeforePromote,
    FaultPoint::DuringCommit,
    FaultPoint::AfterCommit,
    FaultPoint::MidPage,
    FaultPoint::BeforeDeliver,
];

/// Random operation sequences.
pub fn ops() -> impl Strategy<Value = Vec<SequenceOp>> {
    let op = prop_oneof![
        5 => (0u8..10, proptest::bool::weighted(0.2)).prop_map(|(k, delete)| SequenceOp::Change { k, delete }),
        2 => (0u8..10, proptest::bool::weighted(0.2)).prop_map(|(k, delete)| SequenceOp::Reserve { k, delete }),
        2 => (0usize..4).prop_map(SequenceOp::CommitReserved),
        3 => (run_kind(POINTS), 1usize..5).prop_map(|(kind, max_entries)| SequenceOp::Run { kind, max_entries }),
        1 => (0usize..8).prop_map(SequenceOp::Replay),
    ];
    proptest::collection::vec(op, 1..40)
}

struct Harness {
    store: Arc<MemoryStore>,
    source: Arc<MemorySource>,
    versions: BTreeMap<u8, i64>,
    latest: BTreeMap<u8, SequenceNo>,
}

impl Harness {
    fn mutate(&mut self, k: u8, delete: bool) {
        if delete {
            self.source.delete(&key(&format!("k{k:02}")));
        } else {
            let v = self.versions.entry(k).or_insert(0);
            *v += 1;
            self.source
                .upsert(item(&format!("k{k:02}"), *v, None).values().to_vec());
        }
    }

    fn entry(&mut self, k: u8, seq: SequenceNo) {
        let e = self.latest.entry(k).or_insert(seq);
        *e = (*e).max(seq);
    }
}

/// Runs `ops` on a fresh memory store.
pub fn check(ops: Vec<SequenceOp>) {
    block_on(async {
        let faults = Faults::new();
        let store = Arc::new(MemoryStore::with_faults(faults.clone()));
        let h = StoreHandles::of(store.clone(), faults.clone());
        let schema = keyed_schema("seq_items");
        let source = Arc::new(MemorySource::new((*schema).clone()).with_faults(faults.clone()));
        let ctx = context("model/sequence", source.clone(), &h).with_sink(store.clone());
        let mut hx = Harness {
            store: store.clone(),
            source,
            versions: BTreeMap::new(),
            latest: BTreeMap::new(),
        };
        let mut pending: Vec<(SequenceNo, u8, bool)> = Vec::new();
        let (mut mono, mut delivered_mono) = (Monotone::default(), Monotone::default());
        for op in ops {
            match op {
                SequenceOp::Change { k, delete } => {
                    hx.mutate(k, delete);
                    let seq = store
                        .append("q", &[key(&format!("k{k:02}"))])
                        .await
                        .unwrap()[0];
                    hx.entry(k, seq);
                }
                SequenceOp::Reserve { k, delete } => {
                    pending.push((store.reserve("q", 1)[0], k, delete))
                }
                SequenceOp::CommitReserved(i) if !pending.is_empty() => {
                    let (seq, k, delete) = pending.remove(i % pending.len());
                    hx.mutate(k, delete);
                    store
                        .commit_reserved("q", seq, key(&format!("k{k:02}")))
                        .unwrap();
                    hx.entry(k, seq);
                }
                SequenceOp::CommitReserved(_) => {}
                SequenceOp::Run { kind, max_entries } => {
                    let cfg = SequenceWindowConfig {
                        max_window_entries: max_entries,
                        ..SequenceWindowConfig::new("seq_items", "q")
                    };
                    attempt(
                        &SequenceWindowStrategy::new(cfg).unwrap(),
                        &ctx,
                        &faults,
                        &kind,
                    )
                    .await;
                }
                SequenceOp::Replay(i) => {
                    let history =
                        check_history(&store.ledger("model/sequence").await.unwrap()).unwrap();
                    if !history.windows.is_empty() {
                        let window = history.windows[i % history.windows.len()];
                        let strategy = SequenceWindowStrategy::new(SequenceWindowConfig::new(
                            "seq_items",
                            "q",
                        ))
                        .unwrap();
                        strategy
                            .replay(&ctx, window)
                            .await
                            .expect("replay of a committed window");
                    }
                }
            }
            verify(&hx, &mut mono, &mut delivered_mono).await;
        }
        for (seq, k, delete) in pending.drain(..) {
            hx.mutate(k, delete);
            store
                .commit_reserved("q", seq, key(&format!("k{k:02}")))
                .unwrap();
        }
        let strategy =
            SequenceWindowStrategy::new(SequenceWindowConfig::new("seq_items", "q")).unwrap();
        let report = attempt(&strategy, &ctx, &faults, &RunKind::Clean)
            .await
            .expect("clean run");
        assert!(report.complete);
        let expected = hx.source.rows("seq_items");
        assert_eq!(store.target_rows("seq_items"), expected);
        assert_eq!(store.destination_rows("seq_items"), expected);
    });
}

async fn verify(hx: &Harness, mono: &mut Monotone, delivered_mono: &mut Monotone) {
    let schema = keyed_schema("seq_items");
    let stored = hx.store.load("model/sequence").await.unwrap();
    let seq = |p: Option<&Position>| match p {
        Some(Position::Sequence(s)) => *s,
        _ => SequenceNo(0),
    };
    let promoted = seq(stored.as_ref().map(|s| &s.state.position));
    let delivered = seq(stored.as_ref().and_then(|s| s.state.delivered.as_ref()));
    mono.observe(stored.as_ref().map(|s| &s.state.position));
    delivered_mono.observe(stored.as_ref().and_then(|s| s.state.delivered.as_ref()));
    assert!(
        delivered <= promoted,
        "delivered {delivered} passed promoted {promoted}"
    );
    let by_key = |rows: Vec<crate::Row>| -> BTreeMap<Key, crate::Row> {
        rows.into_iter().map(|r| (r.key(&schema), r)).collect()
    };
    let source = by_key(hx.source.rows("seq_items"));
    let target = by_key(hx.store.read_target("seq_items").await.unwrap());
    let sink = by_key(hx.store.destination_rows("seq_items"));
    for (k, latest) in &hx.latest {
        let id = key(&format!("k{k:02}"));
        if *latest <= promoted {
            assert_eq!(
                target.get(&id),
                source.get(&id),
                "promoted window missed the latest state of {id}"
            );
        }
        if *latest <= delivered {
            assert_eq!(
                sink.get(&id),
                source.get(&id),
                "delivered window missed the latest state of {id}"
            );
        }
    }
    let history = check_history(&hx.store.ledger("model/sequence").await.unwrap()).unwrap();
    assert!(
        history.is_contiguous(),
        "history has gaps or overlaps: {history:?}"
    );
    if let (Some(first), Some(last)) = (history.windows.first(), history.windows.last()) {
        assert_eq!(
            (first.low, last.high),
            (SequenceNo(0), promoted),
            "history does not cover (0, position]"
        );
    }
}
