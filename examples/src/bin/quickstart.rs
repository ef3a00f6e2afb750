//! Quickstart: a full sync, a crash in the middle of an incremental sync, and the resume,
//! on the in-memory reference store (the SQLite store replaces it when it lands).
//!
//! Run: `cargo run --release -p sync-examples --bin quickstart`

use std::sync::Arc;

use sync_core::memory::{MemorySource, MemoryStore};
use sync_core::{
    Checkpoint, Column, ColumnType, FaultAction, FaultPoint, Faults, FullConfig, FullStrategy,
    IncrementalConfig, IncrementalStrategy, Strategy, StreamSchema, SyncContext, Value,
};

const RECORDS: i64 = 10_000;

fn schema() -> sync_core::Result<StreamSchema> {
    StreamSchema::builder("items")
        .with_column(Column::required("id", ColumnType::Text))
        .with_column(Column::required("updated_at", ColumnType::Integer))
        .with_column(Column::required("version", ColumnType::Integer))
        .with_column(Column::required("name", ColumnType::Text))
        .with_column(Column::required(
            "price",
            ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
        ))
        .with_primary_key(["id"])
        .with_cursor(["updated_at"])
        .with_version("version")
        .build()
}

fn record(i: i64, version: i64, updated_at: i64) -> Vec<Value> {
    vec![
        Value::from(format!("itm-{i:010}")),
        Value::from(updated_at),
        Value::from(version),
        Value::from(format!("item {i} v{version}")),
        Value::Decimal(rust_decimal::Decimal::new(i * 100 + version, 2)),
    ]
}

#[tokio::main]
async fn main() -> sync_core::Result<()> {
    let faults = Faults::new();
    let source = Arc::new(MemorySource::new(schema()?).with_faults(faults.clone()));
    for i in 0..RECORDS {
        source.upsert(record(i, 1, i));
    }
    source.set_high_watermark("items", Some(vec![Value::from(RECORDS)]));
    let store = Arc::new(MemoryStore::with_faults(faults.clone()));
    let ctx = SyncContext::new(
        "quickstart/items",
        source.clone(),
        store.clone(),
        store.clone(),
    );

    let full = FullStrategy::new(FullConfig {
        page_size: 1000,
        ..FullConfig::new("items")
    })?
    .run(&ctx)
    .await?;
    println!(
        "full sync:        {} records in {} pages, {} written",
        full.rows_read, full.pages, full.rows_written
    );

    // 1% of the records change.
    for i in (0..RECORDS).step_by(100) {
        source.upsert(record(i, 2, RECORDS + i));
    }
    source.set_high_watermark("items", Some(vec![Value::from(2 * RECORDS)]));
    let incremental = IncrementalStrategy::new(IncrementalConfig {
        page_size: 25,
        ..IncrementalConfig::new("items")
    })?;

    // The process "crashes" inside the third promotion's commit: nothing of it is applied.
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
    println!(
        "incremental sync: crashed ({crash}); checkpoint stays at {}",
        at.unwrap_or_default()
    );

    let resumed = incremental.run(&ctx).await?;
    println!(
        "resumed:          promoted the batch staged before the crash, read {} more records, {} written in all",
        resumed.rows_read, resumed.rows_written
    );

    let target = store.target_rows("items");
    let changed = target
        .iter()
        .filter(|r| r.get(2) == &Value::from(2))
        .count();
    assert_eq!(target, source.rows("items"), "target equals source");
    println!(
        "target:           {} rows, {changed} at version 2, equal to the source",
        target.len()
    );
    for entry in ctx
        .checkpoints
        .ledger("quickstart/items")
        .await?
        .iter()
        .rev()
        .take(3)
        .rev()
    {
        println!(
            "ledger:           {} ({} .. {}] read {} written {}",
            entry.strategy, entry.low, entry.high, entry.rows_read, entry.rows_written
        );
    }
    Ok(())
}
