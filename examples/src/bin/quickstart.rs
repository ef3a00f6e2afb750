//! Quickstart: a full sync of 100,000 records into `./quickstart.db` (SQLite, the embedded
//! default), 1% of the records changed, a crash in the middle of the incremental sync, and the
//! resume. The records have the shape of the shared benchmark (id, updated_at, version, name,
//! price, payload JSON); until the REST connector lands they come from the in-memory source.
//!
//! Run: `cargo run --release -p sync-examples --bin quickstart`

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use sync_core::memory::MemorySource;
use sync_core::{
    Checkpoint, Column, ColumnType, FaultAction, FaultPoint, Faults, FullConfig, FullStrategy,
    IncrementalConfig, IncrementalStrategy, RunReport, Strategy, StreamSchema, SyncContext, Value,
};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

const RECORDS: i64 = 100_000;
const DB: &str = "quickstart.db";

fn schema() -> sync_core::Result<StreamSchema> {
    StreamSchema::builder("items")
        .with_column(Column::required("id", ColumnType::Text))
        .with_column(Column::required("updated_at", ColumnType::Timestamp))
        .with_column(Column::required("version", ColumnType::Integer))
        .with_column(Column::required("name", ColumnType::Text))
        .with_column(Column::required(
            "price",
            ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
        ))
        .with_column(Column::required("payload", ColumnType::Json))
        .with_primary_key(["id"])
        .with_cursor(["updated_at"])
        .with_version("version")
        .build()
}

fn t0() -> DateTime<Utc> {
    "2024-01-01T00:00:00Z".parse().expect("a valid instant")
}

fn record(i: i64, version: i64, updated_at: DateTime<Utc>) -> Vec<Value> {
    let payload = format!(
        r#"{{"sku":"SKU-{i:08X}","category":"cat-{:02}","tags":["quebec","harbor"],"stock":{},"active":{}}}"#,
        i % 40,
        (i * 7919) % 100_000,
        i % 2 == 0
    );
    vec![
        Value::from(format!("itm-{i:010}")),
        Value::Timestamp(updated_at),
        Value::from(version),
        Value::from(format!("item {i} v{version}")),
        Value::Decimal(rust_decimal::Decimal::new(
            (i * 7 + version) % 10_000_000,
            2,
        )),
        Value::Json(payload.into_boxed_str()),
    ]
}

fn rate(report: &RunReport, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!(
        "{} read in {} pages, {} written, {:.2} s, {:.0} records/s",
        report.rows_read,
        report.pages,
        report.rows_written,
        secs,
        report.rows_read as f64 / secs.max(1e-9)
    )
}

#[tokio::main]
async fn main() -> sync_core::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{DB}{suffix}"));
    }
    let faults = Faults::new();
    let source = Arc::new(MemorySource::new(schema()?).with_faults(faults.clone()));
    for i in 0..RECORDS {
        source.upsert(record(i, 1, t0() + Duration::milliseconds(i)));
    }
    source.set_high_watermark(
        "items",
        Some(vec![Value::Timestamp(t0() + Duration::days(1))]),
    );
    let store =
        Arc::new(SqliteStore::open_with_faults(SqliteConfig::new(DB), faults.clone()).await?);
    let ctx = SyncContext::new(
        "quickstart/items",
        source.clone(),
        store.clone(),
        store.clone(),
    );

    let started = Instant::now();
    let full = FullStrategy::new(FullConfig {
        page_size: 1000,
        ..FullConfig::new("items")
    })?
    .run(&ctx)
    .await?;
    println!("full sync:        {}", rate(&full, started));

    // 1% of the records change a day later.
    for i in (0..RECORDS).step_by(100) {
        source.upsert(record(
            i,
            2,
            t0() + Duration::days(2) + Duration::milliseconds(i),
        ));
    }
    source.set_high_watermark(
        "items",
        Some(vec![Value::Timestamp(t0() + Duration::days(3))]),
    );
    let incremental = IncrementalStrategy::new(IncrementalConfig {
        page_size: 250,
        ..IncrementalConfig::new("items")
    })?;

    // The sync "crashes" inside its third commit: nothing of that batch is applied.
    faults.arm_after(FaultPoint::DuringCommit, FaultAction::Error, 2);
    let crash = incremental
        .run(&ctx)
        .await
        .expect_err("the armed fault fires");
    let at = ctx
        .checkpoints
        .load("quickstart/items")
        .await?
        .map(|c| c.state.position.to_string());
    println!("incremental sync: crashed ({crash})");
    println!(
        "                  the checkpoint stayed at {}",
        at.unwrap_or_default()
    );

    let started = Instant::now();
    let resumed = incremental.run(&ctx).await?;
    println!("resumed:          {}", rate(&resumed, started));

    let target = sync_core::Stager::read_target(store.as_ref(), "items").await?;
    let changed = target
        .iter()
        .filter(|r| r.get(2) == &Value::from(2))
        .count();
    assert_eq!(target, source.rows("items"), "target equals source");
    println!(
        "target:           {} rows, {changed} at version 2, equal to the source",
        target.len()
    );
    let ledger = ctx.checkpoints.ledger("quickstart/items").await?;
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
    Ok(())
}
