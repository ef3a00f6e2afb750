//! Model-based tests of the four strategies: random sequences of source inserts, updates,
//! deletes, ties at the cursor, late arrivals, runs, crashes at every fault point and
//! resumes. After every step the target is compared with what the strategy promises, the
//! checkpoint never moves backwards and is never ahead of promoted data, and no key is
//! duplicated.
//!
//! Each module exposes `ops()` (a proptest strategy of operation sequences) and `check`,
//! which runs one sequence against a fresh store and panics on the first broken invariant.
//! Test files wrap them in `proptest!` so failures shrink and persist in
//! `proptest-regressions/`.

pub mod full;
pub mod incremental;
pub mod offset;
pub mod sequence_window;

use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;

use crate::error::Result;
use crate::fault::{FaultAction, FaultPoint, Faults};
use crate::position::Position;
use crate::record::{Key, Row};
use crate::retry::{RetryPolicy, RunLimits};
use crate::schema::StreamSchema;
use crate::strategy::{RunReport, Strategy as SyncStrategy, SyncContext};
use crate::testkit::StoreHandles;

/// Runs a future on a fresh current-thread runtime (proptest bodies are synchronous).
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(f)
}

/// How a run is attempted.
#[derive(Debug, Clone, PartialEq)]
pub enum RunKind {
    /// Run to the end.
    Clean,
    /// Arm `point` after `skip` passes, then run (a crash, if the point is reached).
    Crash {
        /// Where.
        point: FaultPoint,
        /// Passes before it fires.
        skip: u32,
    },
    /// Stop after this many pages (resumes next run).
    Limited(u64),
}

/// Crash points a strategy run can hit.
pub fn run_kind(
    points: &'static [FaultPoint],
) -> impl proptest::strategy::Strategy<Value = RunKind> {
    prop_oneof![
        3 => Just(RunKind::Clean),
        4 => (proptest::sample::select(points), 0u32..3).prop_map(|(point, skip)| RunKind::Crash { point, skip }),
        1 => (1u64..3).prop_map(RunKind::Limited),
    ]
}

/// Runs `strategy` once as `kind` says; disarms faults afterwards. Injected faults come back
/// as `Err`; anything else unexpected panics.
pub async fn attempt(
    strategy: &dyn SyncStrategy,
    ctx: &SyncContext,
    faults: &Faults,
    kind: &RunKind,
) -> Option<RunReport> {
    let mut ctx = ctx.clone();
    match kind {
        RunKind::Clean => {}
        RunKind::Crash { point, skip } => faults.arm_after(*point, FaultAction::Error, *skip),
        RunKind::Limited(pages) => {
            ctx.limits = RunLimits {
                max_pages: Some(*pages),
                max_errors: None,
            }
        }
    }
    let result: Result<RunReport> = strategy.run(&ctx).await;
    faults.clear();
    match result {
        Ok(report) => Some(report),
        Err(e) if e.kind() == crate::ErrorKind::InjectedFault => None,
        Err(e) => panic!("run failed unexpectedly: {e}"),
    }
}

/// A context over `handles` with no retries (injected faults are permanent anyway).
pub fn context(sync: &str, source: Arc<dyn crate::Source>, h: &StoreHandles) -> SyncContext {
    SyncContext::new(sync, source, h.stager.clone(), h.checkpoints.clone())
        .with_queue(h.queue.clone())
        .with_retry(RetryPolicy::none())
}

/// Asserts no key appears twice among `rows` (a store must never duplicate a key).
pub fn assert_unique_keys(schema: &StreamSchema, rows: &[Row]) {
    let mut keys: Vec<Key> = rows.iter().map(|r| r.key(schema)).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a key is duplicated in the target");
}

/// Tracks the checkpoint position across steps and asserts it never moves backwards.
#[derive(Debug, Default)]
pub struct Monotone {
    last: Option<Position>,
}

impl Monotone {
    /// Records `now`; panics if it is before the last position seen.
    pub fn observe(&mut self, now: Option<&Position>) {
        if let (Some(last), Some(now)) = (&self.last, now) {
            let ok = matches!(
                last.compare(now),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            );
            assert!(ok, "checkpoint moved backwards from {last} to {now}");
        }
        if let Some(now) = now {
            self.last = Some(now.clone());
        }
    }

    /// Forgets the last position (after an explicit reset).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// The stored checkpoint position of `sync`.
pub async fn position(h: &StoreHandles, sync: &str) -> Option<Position> {
    h.checkpoints
        .load(sync)
        .await
        .expect("checkpoint loads")
        .map(|s| s.state.position)
}
