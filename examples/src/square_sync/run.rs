//! One sync of every table: each synced table runs its own strategy under its own sync name,
//! so each keeps its own checkpoint (seed 001's "`sync_state` row per table"), committed with
//! its promoted rows in one transaction. The export is rebuilt last, from the catalog just
//! promoted.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sync_core::{Result, Source, SyncContext};

use super::backup::SquareTargets;
use super::export::{export_rows, export_schema, export_source, CatalogRows};
use super::rows::NamedRows;
use super::tables::{synced_tables, Detection, SyncedTable, EXPORT_TABLE};

/// What one table's run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRun {
    /// The table.
    pub table: SyncedTable,
    /// Records read from the source.
    pub rows_read: u64,
    /// Records inserted, updated or deleted in the target: the changes found.
    pub rows_written: u64,
    /// Wall time of the run.
    pub duration_ms: u64,
}

/// What one sync of every table did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// One entry per synced table, in run order.
    pub tables: Vec<TableRun>,
    /// The checkpoints after the sync.
    pub state: Vec<SyncStateRow>,
    /// Wall time of the whole sync.
    pub duration_ms: u64,
}

impl SyncReport {
    /// Rows written over every table.
    pub fn rows_written(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_written).sum()
    }

    /// The run of `stream`.
    pub fn table(&self, stream: &str) -> Option<&TableRun> {
        self.tables.iter().find(|t| t.table.stream == stream)
    }
}

/// One table's checkpoint: seed 001's `sync_state` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncStateRow {
    /// The table.
    pub table: SyncedTable,
    /// The checkpoint position (`last_sync_timestamp` / `last_sync_version`): the
    /// `(updated_at, key)` reached for incremental tables, the fill's start for full ones;
    /// `None` before the first sync.
    pub position: Option<String>,
    /// The checkpoint's version: commits made to it.
    pub commits: Option<u64>,
    /// When it was last committed.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Reads every table's checkpoint.
pub async fn sync_state(targets: &SquareTargets) -> Result<Vec<SyncStateRow>> {
    let mut out = Vec::new();
    for table in synced_tables() {
        let stored = targets.checkpoints.load(&table.sync_name()).await?;
        out.push(SyncStateRow {
            position: stored.as_ref().map(|c| c.state.position.to_string()),
            commits: stored.as_ref().map(|c| c.version),
            updated_at: stored.map(|c| c.updated_at),
            table,
        });
    }
    Ok(out)
}

/// Reads the synced catalog back from the target.
pub async fn target_catalog(targets: &SquareTargets, source: &dyn Source) -> Result<CatalogRows> {
    let read = |stream: &'static str| async move {
        NamedRows::of_target(targets.stager.as_ref(), source.schema(stream)?).await
    };
    Ok(CatalogRows {
        items: read("catalog_items").await?,
        variations: read("catalog_item_variations").await?,
        categories: read("catalog_categories").await?,
        vendor_info: read("catalog_vendor_info").await?,
        availability: read("catalog_item_location_availability").await?,
        vendors: read("vendors").await?,
    })
}

/// Runs every synced table once (the first run of a table is its full foundation sync:
/// an incremental strategy without a checkpoint reads everything), then rebuilds the export.
pub async fn sync_all(targets: &SquareTargets, source: Arc<dyn Source>) -> Result<SyncReport> {
    let started = Instant::now();
    let mut tables = Vec::new();
    for table in synced_tables() {
        let run_started = Instant::now();
        let table_source: Arc<dyn Source> = if table.detection == Detection::FullRebuild {
            let catalog = target_catalog(targets, source.as_ref()).await?;
            export_source(export_rows(&catalog))?
        } else {
            source.clone()
        };
        let ctx = SyncContext::new(
            table.sync_name(),
            table_source,
            targets.stager.clone(),
            targets.checkpoints.clone(),
        );
        let report = table
            .strategy()?
            .run(&ctx)
            .await
            .map_err(|e| e.with_context("table", table.stream))?;
        tables.push(TableRun {
            table,
            rows_read: report.rows_read,
            rows_written: report.rows_written,
            duration_ms: run_started.elapsed().as_millis() as u64,
        });
    }
    Ok(SyncReport {
        tables,
        state: sync_state(targets).await?,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// The schema of a synced table's target.
pub fn schema_of(source: &dyn Source, stream: &str) -> Result<Arc<sync_core::StreamSchema>> {
    if stream == EXPORT_TABLE {
        return Ok(Arc::new(export_schema()?));
    }
    source.schema(stream)
}
