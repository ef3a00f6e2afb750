//! What `opportunity-batches` prints: aligned lines, no debug dumps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sync_examples::opportunity_batches::{
    BatchListener, BatchPipeline, BatchPromoted, BatchRun, DemoEvent, SourceSettings, SyncState,
    STREAM, SYNC_NAME,
};

/// Tells the demo's steps as they happen.
pub(crate) fn demo_observer() -> Arc<dyn Fn(&DemoEvent) + Send + Sync> {
    let batches = printing_listener(0);
    Arc::new(move |event: &DemoEvent| match event {
        DemoEvent::Batch(b) => batches(b),
        DemoEvent::StopRequested(n) => {
            println!("  -- stop requested after batch {n}: the batch in flight is finished first")
        }
        DemoEvent::Stopped(run, state) => {
            println!(
                "  stopped at offset {} after {} batches",
                run.offset, run.batches
            );
            print_state(state);
        }
        DemoEvent::Shifted {
            imported,
            updated,
            naive,
        } => {
            println!(
                "2. between the runs: {} back-dated opportunities imported, {} synced ones updated (they move to the end)",
                imported.len(),
                updated.len()
            );
            println!(
                "   the seed's resume (offset {} then += batch size) would never read {} of them and read {} synced ones again",
                naive.offset,
                naive.skipped.len(),
                naive.read_again
            );
            println!("3. the resumed run checks the record before its offset");
        }
        DemoEvent::Resumed(run) => {
            print_drift(run);
            println!(
                "  complete at offset {} after {} batches, {} rows written",
                run.offset, run.batches, run.report.rows_written
            );
        }
        DemoEvent::Finished(state, check) => {
            println!("4. the end");
            print_state(state);
            println!("target == source: {}", check.summary());
        }
    })
}

pub(crate) fn describe(pipeline: &BatchPipeline, settings: SourceSettings) {
    let delay = settings.delay.map_or_else(String::new, |d| {
        format!(", {} ms per answer", d.as_millis())
    });
    println!(
        "  source:    {} opportunities (seed {}) at {}/opportunities{delay}",
        pipeline.source().len(),
        settings.seed,
        pipeline.source().base_url()
    );
    println!("  database:  {}", pipeline.database().description());
}

pub(crate) fn batch_line(b: &BatchPromoted) -> String {
    let total = b.total.map_or_else(|| "?".to_owned(), |t| t.to_string());
    format!(
        "  batch {:>4}  offset {:>6} -> {:>6}  rows {:>4}  written {:>4}  synced {:>6} of {total}{}",
        b.number,
        b.from,
        b.to,
        b.rows,
        b.written,
        b.to,
        if b.complete { "  (end)" } else { "" }
    )
}

/// Prints every batch, and a note when a batch starts below the offset before it: the run
/// found the source shifted and rescans.
pub(crate) fn printing_listener(start: u64) -> BatchListener {
    let last = AtomicU64::new(start);
    Arc::new(move |b: &BatchPromoted| {
        let before = last.swap(b.to, Ordering::SeqCst);
        if b.from < before {
            println!(
                "  -- drift: the source shifted before offset {before}; rescanning from {}",
                b.from
            );
        }
        println!("{}", batch_line(b));
    })
}

pub(crate) fn print_drift(run: &BatchRun) {
    for reason in &run.drift {
        println!("drift:     {reason}");
    }
}

pub(crate) fn print_state(state: &SyncState) {
    let last = state.last_sync_at.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    let total = state
        .source_total
        .map_or_else(|| "-".to_owned(), |t| t.to_string());
    println!("sync_state {}", state.sync_name);
    println!("  current_offset  {}", state.current_offset);
    println!("  total_synced    {}", state.total_synced);
    println!("  last_sync_at    {last}");
    println!("  is_complete     {}", state.is_complete);
    println!(
        "  last_opty_id    {}",
        state.last_key.as_deref().unwrap_or("-")
    );
    println!("  source_total    {total}");
    println!("  target_rows     {}", state.target_rows);
    println!("  ledger_windows  {}", state.ledger_windows);
}

pub(crate) fn look_inside(url: &str) {
    let Some(path) = sync_examples::store::DatabaseUrl::sqlite_file(url) else {
        return;
    };
    println!("look inside:");
    println!("  sqlite3 {path} \"SELECT sync, state, updated_at FROM _sync_checkpoints\"");
    println!("  sqlite3 {path} \"SELECT low, high, rows_read, rows_written, committed_at FROM _sync_ledger WHERE sync = '{SYNC_NAME}' ORDER BY id DESC LIMIT 5\"");
    println!(
        "  sqlite3 {path} \"SELECT count(*), count(DISTINCT opty_id), sum(revenue) FROM {STREAM}\""
    );
}
