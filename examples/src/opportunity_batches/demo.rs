//! The whole seed in one process: a run stopped after a few batches (as Ctrl+C stops it),
//! its `sync_state`, the source shifting before the offset (a back-dated import and updates
//! of records already synced), what the seed's `offset += batchSize` resume would do with
//! that, the resume that notices and rescans, and the target checked against the source.

use std::collections::BTreeSet;
use std::sync::Arc;

use sync_core::{Result, StopSignal, Value};

use super::pipeline::BatchListener;
use super::{BatchPipeline, BatchPromoted, BatchRun, SyncState, TargetCheck, STREAM};

/// What the demo does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Batches the first run promotes before it is stopped.
    pub stop_after: u64,
    /// Back-dated opportunities imported between the runs (before the offset).
    pub imported: usize,
    /// Places (in `LastUpdateDate` order, before the offset) of records updated between the
    /// runs.
    pub updated: Vec<usize>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            stop_after: 5,
            imported: 25,
            updated: vec![3, 40],
        }
    }
}

/// What the seed's loop would do when resumed at the stored offset over the shifted source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaiveResume {
    /// The offset it would resume at.
    pub offset: u64,
    /// Records now before that offset that were never synced: never read by the resume.
    pub skipped: Vec<i64>,
    /// Records at or after the offset that were synced already: read (saved) a second time.
    pub read_again: usize,
}

/// One step of the demo, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum DemoEvent {
    /// A batch was promoted with its offset.
    Batch(BatchPromoted),
    /// The stop signal was raised after this many batches.
    StopRequested(u64),
    /// The first run stopped; the `sync_state` it left.
    Stopped(BatchRun, SyncState),
    /// The source shifted between the runs.
    Shifted {
        /// `OptyId`s of the back-dated imports.
        imported: Vec<i64>,
        /// `OptyId`s of the records updated.
        updated: Vec<i64>,
        /// What the seed's resume would do now.
        naive: NaiveResume,
    },
    /// The resumed run ended.
    Resumed(BatchRun),
    /// The final `sync_state` and the target against the source.
    Finished(SyncState, TargetCheck),
}

/// What the demo did.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// The first run (stopped).
    pub stopped: BatchRun,
    /// The `sync_state` after it.
    pub state_after_stop: SyncState,
    /// What the seed's resume would have done over the shifted source.
    pub naive: NaiveResume,
    /// The resumed run.
    pub resumed: BatchRun,
    /// The final `sync_state`.
    pub state: SyncState,
    /// The target against the source at the end.
    pub check: TargetCheck,
}

/// Runs the demo on `pipeline` from offset 0 (it resets the sync first), telling `observe`
/// about every step.
pub async fn run_demo(
    pipeline: &BatchPipeline,
    options: &DemoOptions,
    observe: Arc<dyn Fn(&DemoEvent) + Send + Sync>,
) -> Result<DemoReport> {
    pipeline.reset().await?;

    // Run 1, stopped after a few batches exactly as Ctrl+C stops `run`: the signal is raised
    // and the batch in flight is promoted with its offset before the run returns.
    let stop = StopSignal::new();
    let listener: BatchListener = {
        let (stop, observe, after) = (stop.clone(), observe.clone(), options.stop_after);
        Arc::new(move |b: &BatchPromoted| {
            observe(&DemoEvent::Batch(*b));
            if b.number == after {
                stop.stop();
                observe(&DemoEvent::StopRequested(after));
            }
        })
    };
    let stopped = pipeline.run(stop, listener).await?;
    let state_after_stop = pipeline.status().await?;
    observe(&DemoEvent::Stopped(
        stopped.clone(),
        state_after_stop.clone(),
    ));

    // Between the runs the source shifts before the offset: records already synced are
    // updated (they leave their place for the end) and back-dated records are imported.
    let source = pipeline.source();
    let updated = source.update_at(&options.updated);
    let before: BTreeSet<i64> = source
        .fake()
        .opportunities()
        .iter()
        .map(|o| o.opty_id)
        .collect();
    source.import_backdated(options.imported);
    let imported: Vec<i64> = source
        .fake()
        .opportunities()
        .iter()
        .map(|o| o.opty_id)
        .filter(|id| !before.contains(id))
        .collect();
    let naive = naive_resume(pipeline, state_after_stop.current_offset).await?;
    observe(&DemoEvent::Shifted {
        imported,
        updated,
        naive: naive.clone(),
    });

    // Run 2 resumes from the stored offset, notices the shift and rescans.
    let listener: BatchListener = {
        let observe = observe.clone();
        Arc::new(move |b: &BatchPromoted| observe(&DemoEvent::Batch(*b)))
    };
    let resumed = pipeline.run(StopSignal::new(), listener).await?;
    observe(&DemoEvent::Resumed(resumed.clone()));

    let state = pipeline.status().await?;
    let check = pipeline.verify().await?;
    observe(&DemoEvent::Finished(state.clone(), check.clone()));
    Ok(DemoReport {
        stopped,
        state_after_stop,
        naive,
        resumed,
        state,
        check,
    })
}

/// Works out what `offset += batchSize` from `offset` would do over the source as it is now,
/// given what the target holds.
pub async fn naive_resume(pipeline: &BatchPipeline, offset: u64) -> Result<NaiveResume> {
    let synced: BTreeSet<i64> = pipeline
        .database()
        .stager
        .read_target(STREAM)
        .await?
        .iter()
        .filter_map(|r| match r.get(0) {
            Value::Integer(i) => Some(*i),
            _ => None,
        })
        .collect();
    let mut order = pipeline.source().fake().opportunities();
    order.sort_by_key(|o| (o.updated, o.opty_id));
    let at = (offset as usize).min(order.len());
    Ok(NaiveResume {
        offset,
        skipped: order[..at]
            .iter()
            .map(|o| o.opty_id)
            .filter(|id| !synced.contains(id))
            .collect(),
        read_again: order[at..]
            .iter()
            .filter(|o| synced.contains(&o.opty_id))
            .count(),
    })
}
