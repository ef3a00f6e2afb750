//! The seed's pitfall, made impossible: a producer that took sequence number N but commits
//! after the one that took N + 1 is not skipped.
//!
//! The database stores cannot be made to show the race, because they rule it out by
//! construction: SQLite has one writer at a time and an append numbers its entries inside
//! its own write transaction; PostgreSQL numbers them from a counter row updated inside the
//! append's transaction, whose row lock makes the next producer wait for the commit (see
//! `sync-store-postgres/tests/queue_concurrency.rs` for racing producers). A plain database
//! sequence, as in the seed's `SynchronizationQueue`, hands out N at insert and shows it at
//! commit. The reference queue of sync-core (`MemoryStore`) models exactly that with
//! explicit reservations, so the race is shown there, against the same core API.

use std::sync::Arc;

use sync_core::memory::MemoryStore;
use sync_core::{
    ChangeQueue, Checkpoint, Key, Result, RetryPolicy, SequenceNo, SequenceWindowConfig,
    SequenceWindowStrategy, Source, Strategy, SyncContext, Window,
};

use super::report::{seq, HighWaterMarkStep};
use super::{QUEUE, STREAM, SYNC};

/// Which database the example runs on, for the explanation of its guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl Backend {
    /// How this store keeps queue numbers visible in commit order.
    pub fn guarantee(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "SQLite: one writer at a time, and an append numbers its entries inside its own \
                 BEGIN IMMEDIATE transaction, so N + 1 cannot be taken before N is committed"
            }
            Backend::Postgres => {
                "PostgreSQL: an append takes its number from a counter row inside its own \
                 transaction; the row lock holds the next producer until the first commits"
            }
        }
    }
}

/// Runs the race on the reference queue: the slow producer takes a number for `slow`, the
/// fast one appends `fast` and commits first; a run while the slow one is open, then a run
/// after it committed.
pub async fn show(
    source: Arc<dyn Source>,
    slow: &str,
    fast: &str,
    backend: Backend,
) -> Result<HighWaterMarkStep> {
    let queue = Arc::new(MemoryStore::new());
    let ctx = SyncContext::new(SYNC, source, queue.clone(), queue.clone())
        .with_queue(queue.clone())
        .with_retry(RetryPolicy::none());
    let strategy = SequenceWindowStrategy::new(SequenceWindowConfig::new(STREAM, QUEUE))?;

    let taken = queue.reserve(QUEUE, 1)[0];
    let committed = queue.append(QUEUE, &[Key::text(fast)]).await?[0];
    let naive_sees = queue
        .read_window(QUEUE, Window::new(SequenceNo(0), committed)?)
        .await?
        .into_iter()
        .map(|e| e.seq)
        .collect();
    let mark_while_open = queue.safe_high_water_mark(QUEUE).await?;
    strategy.run(&ctx).await?;
    let position_while_open = position(&queue).await?;

    queue.commit_reserved(QUEUE, taken, Key::text(slow))?;
    let mark_after = queue.safe_high_water_mark(QUEUE).await?;
    strategy.run(&ctx).await?;
    let position_after = position(&queue).await?;
    let promoted_after = queue
        .target_rows(STREAM)
        .iter()
        .map(|r| r.get(0).to_string())
        .collect();
    Ok(HighWaterMarkStep {
        slow: (taken, slow.to_owned()),
        fast: (committed, fast.to_owned()),
        naive_sees,
        mark_while_open,
        position_while_open,
        mark_after,
        window_after: (position_while_open, position_after),
        promoted_after,
        store_guarantee: backend.guarantee(),
    })
}

async fn position(store: &MemoryStore) -> Result<u128> {
    Ok(store
        .load(SYNC)
        .await?
        .map_or(0, |c| seq(&c.state.position)))
}
