//! Quickstart: an in-process demo REST API on 127.0.0.1 serves 100,000 records (the shape of
//! the shared benchmark: id, updated_at, version, name, price, payload JSON) with offset
//! paging and an `updated_since` filter. The generic REST source syncs them into
//! `./quickstart.db` (SQLite, the embedded default): a full sync, 1% of the records changed,
//! an incremental sync that crashes inside its third commit, and the resume. At the end the
//! target equals the API's records, row for row.
//!
//! Run: `cargo run --release -p sync-examples --bin quickstart`

use std::sync::Arc;
use std::time::Instant;

use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::RestSource;
use sync_core::{
    Checkpoint, FaultAction, FaultPoint, Faults, FullConfig, FullStrategy, IncrementalConfig,
    IncrementalStrategy, RunReport, Stager, Strategy, SyncContext,
};
use sync_examples::demo_api::{items_stream, DemoApi};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

const RECORDS: usize = 100_000;
const DB: &str = "quickstart.db";
const SYNC: &str = "quickstart/items";

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One line about a run: what it read and wrote, in how many pages, how fast.
fn rate(report: &RunReport, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!(
        "{} read in {} pages, {} written, {} windows, {:.2} s, {:.0} records/s",
        report.rows_read,
        report.pages,
        report.rows_written,
        report.windows,
        secs,
        report.rows_read as f64 / secs.max(1e-9)
    )
}

/// Rows of the target at version 2 or more: the changed records that landed.
fn changed(target: &[sync_core::Row]) -> usize {
    target
        .iter()
        .filter(|r| r.get(2).as_i64().is_some_and(|v| v > 1))
        .count()
}

/// Checks that the target equals the demo API's records: the count, `sum(version)`, and
/// every row. Returns a line saying so.
async fn target_equals_source(store: &SqliteStore, api: &DemoApi) -> AnyResult<String> {
    let target = store.read_target("items").await?;
    let sum: i64 = target.iter().filter_map(|r| r.get(2).as_i64()).sum();
    if target.len() != api.records() || sum != api.expected_version_sum() {
        return Err(format!(
            "the target has {} rows with sum(version) {sum}; the api has {} with {}",
            target.len(),
            api.records(),
            api.expected_version_sum()
        )
        .into());
    }
    let source = api.rows();
    if let Some((got, want)) = target.iter().zip(&source).find(|(t, s)| t != s) {
        return Err(format!("the target differs from the api: {got:?} is {want:?} there").into());
    }
    Ok(format!(
        "{} rows, sum(version) {sum}, {} changed; equal to the api's records, row for row",
        target.len(),
        changed(&target)
    ))
}

#[tokio::main]
async fn main() -> AnyResult<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{DB}{suffix}"));
    }
    let started = Instant::now();
    let api = DemoApi::start(RECORDS)?;
    println!(
        "demo api:         {} records at {}/items, built in {:.2} s",
        api.records(),
        api.url(),
        started.elapsed().as_secs_f64()
    );

    // The stream is data: URL, records path, offset paging stopped by `has_more`, the cursor
    // `updated_at` sent as `updated_since`, key, version guard and columns.
    let source = RestSource::new(
        items_stream(api.url()),
        HttpClient::new(HttpConfig::default())?,
    )?;
    let faults = Faults::new();
    let store =
        Arc::new(SqliteStore::open_with_faults(SqliteConfig::new(DB), faults.clone()).await?);
    let ctx = SyncContext::new(SYNC, Arc::new(source), store.clone(), store.clone());

    let started = Instant::now();
    let full = FullStrategy::new(FullConfig {
        page_size: 1000,
        ..FullConfig::new("items")
    })?
    .run(&ctx)
    .await?;
    println!("full sync:        {}", rate(&full, started));
    println!(
        "                  {}",
        target_equals_source(&store, &api).await?
    );

    // 1% of the records change a day later and move to the end of the API's order.
    let mutated = api.mutate(0.01);
    println!(
        "mutated:          {mutated} records ({}%) to version 2",
        mutated * 100 / api.records()
    );
    let incremental = IncrementalStrategy::new(IncrementalConfig {
        page_size: 250,
        ..IncrementalConfig::new("items")
    })?;

    // The sync "crashes" inside its third commit: nothing of that batch is applied, and the
    // checkpoint stays where the second commit left it.
    faults.arm_after(FaultPoint::DuringCommit, FaultAction::Error, 2);
    let crash = match incremental.run(&ctx).await {
        Err(e) => e,
        Ok(report) => return Err(format!("the armed fault did not fire: {report:?}").into()),
    };
    let at = ctx
        .checkpoints
        .load(SYNC)
        .await?
        .map(|c| c.state.position.to_string());
    let landed = changed(&store.read_target("items").await?);
    println!("incremental sync: crashed inside its third commit ({crash})");
    println!(
        "                  the checkpoint stayed at {}, the last commit before the crash",
        at.unwrap_or_default()
    );
    println!(
        "                  {landed} of the {mutated} changes landed, nothing of the failed batch"
    );

    let started = Instant::now();
    let resumed = incremental.run(&ctx).await?;
    println!("resumed:          {}", rate(&resumed, started));
    println!(
        "target == source: {}",
        target_equals_source(&store, &api).await?
    );

    let ledger = ctx.checkpoints.ledger(SYNC).await?;
    println!(
        "ledger:           {} windows committed; the last three:",
        ledger.len()
    );
    for entry in ledger.iter().rev().take(3).rev() {
        println!(
            "                  {} ({} .. {}] read {} written {}",
            entry.strategy, entry.low, entry.high, entry.rows_read, entry.rows_written
        );
    }
    println!("look inside:      sqlite3 {DB} 'SELECT strategy, low, high, rows_written FROM _sync_ledger'");
    println!("                  sqlite3 {DB} 'SELECT count(*), sum(version) FROM items WHERE version > 1'");
    Ok(())
}
