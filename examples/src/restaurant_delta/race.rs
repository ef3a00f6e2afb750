//! Producers racing on the database's own change queue while the sequence-window strategy
//! follows it: every entry lands in exactly one committed window, none is skipped.
//!
//! This is the real store under real concurrency (on PostgreSQL, concurrent transactions
//! from a connection pool; on SQLite, the one writer taking turns), with a sync and a queue
//! of its own and no sink, so the seed's history and Dataverse stay as the story left them.

use std::sync::Arc;

use sync_core::strategy::check_history;
use sync_core::{
    Error, Key, LedgerStatus, Result, SequenceNo, SequenceWindowConfig, SequenceWindowStrategy,
    Source, Strategy, SyncContext, Window,
};

use super::flow::fast_retry;
use super::report::{seq, RaceStep};
use super::{RACE_QUEUE, RACE_SYNC, STREAM};
use crate::store::EngineStore;

/// Concurrent producers.
const PRODUCERS: usize = 4;
/// Entries per producer.
const EACH: usize = 10;

/// Starts the producers (each appends `EACH` restaurant ids of `ids`, one append at a
/// time), runs the strategy until they are done and once more, and reports the windows.
pub(super) async fn race(
    store: &EngineStore,
    source: Arc<dyn Source>,
    ids: &[String],
) -> Result<RaceStep> {
    if ids.is_empty() {
        return Err(Error::invalid_input("the race needs restaurant ids"));
    }
    let ctx = SyncContext::new(
        RACE_SYNC,
        source,
        store.stager.clone(),
        store.checkpoints.clone(),
    )
    .with_queue(store.changes.clone())
    .with_retry(fast_retry());
    let strategy = SequenceWindowStrategy::new(SequenceWindowConfig::new(STREAM, RACE_QUEUE))?;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let changes = store.changes.clone();
            let mine: Vec<Key> = (0..EACH)
                .map(|i| Key::text(ids[(p * EACH + i) % ids.len()].as_str()))
                .collect();
            tokio::spawn(async move {
                for id in mine {
                    changes.append(RACE_QUEUE, &[id]).await?;
                    tokio::task::yield_now().await;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    let mut runs = 0;
    loop {
        // Producers seen finished before a run: that run's mark covers all their appends.
        let finished = producers.iter().all(|p| p.is_finished());
        strategy.run(&ctx).await?;
        runs += 1;
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    for p in producers {
        p.await
            .map_err(|e| Error::internal("a producer task failed").with_source(e))??;
    }
    let ledger = store.checkpoints.ledger(RACE_SYNC).await?;
    let windows: Vec<(u128, u128)> = ledger
        .iter()
        .filter(|e| e.status == LedgerStatus::Committed)
        .map(|e| (seq(&e.low), seq(&e.high)))
        .collect();
    let high = store.changes.safe_high_water_mark(RACE_QUEUE).await?;
    let entries = store
        .changes
        .read_window(RACE_QUEUE, Window::new(SequenceNo(0), high)?)
        .await?
        .len();
    let chained = windows
        .iter()
        .zip(windows.iter().skip(1))
        .all(|(a, b)| a.1 == b.0);
    let covered_once = check_history(&ledger)?.is_contiguous()
        && chained
        && windows.first().map(|w| w.0) == Some(0)
        && windows.last().map(|w| w.1) == Some(entries as u128)
        && high.0 == entries as u128;
    Ok(RaceStep {
        producers: PRODUCERS,
        entries_each: EACH,
        runs,
        windows,
        entries,
        covered_once,
    })
}
