//! The seed's `sync_state` view (current offset, total synced, last sync time, is complete),
//! read from the checkpoint and the ledger, and the reset.

use chrono::{DateTime, Utc};
use sync_core::{LedgerStatus, Position, Result, StopSignal, StrategyKind};

use super::{BatchPipeline, STREAM, SYNC_NAME};

/// Where the sync stands, as the seed's `sync_state` row shows it, plus what the database
/// holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// The seed's `sync_name`.
    pub sync_name: String,
    /// The offset the next run starts from (0 when never run or reset).
    pub current_offset: u64,
    /// Records promoted since the scan last started from offset 0, summed from the ledger
    /// (equal to the offset: it advances by the records received).
    pub total_synced: u64,
    /// When the checkpoint was last committed.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// True once a run reached the end of the source.
    pub is_complete: bool,
    /// `OptyId` of the last record promoted (the record the next batch checks before its
    /// offset).
    pub last_key: Option<String>,
    /// The source's `totalResults` at the last batch.
    pub source_total: Option<u64>,
    /// Distinct opportunities in the target table.
    pub target_rows: u64,
    /// Batches committed, over every run (the ledger keeps them across resets).
    pub ledger_windows: u64,
}

impl BatchPipeline {
    /// The `sync_state` view; reads only.
    pub async fn status(&self) -> Result<SyncState> {
        let ctx = self.context(self.database().stager.clone(), StopSignal::new())?;
        let offset = self.strategy().status(&ctx).await?;
        let ledger = self.database().checkpoints.ledger(SYNC_NAME).await?;
        let mut pass = 0;
        let mut windows = 0;
        for entry in ledger
            .iter()
            .filter(|e| e.strategy == StrategyKind::Offset && e.status == LedgerStatus::Committed)
        {
            windows += 1;
            if matches!(entry.low, Position::Start | Position::Offset(0)) {
                pass = 0;
            }
            pass += entry.rows_read;
        }
        let checkpointed = offset.updated_at.is_some();
        let target = self.database().stager.read_target(STREAM).await?;
        Ok(SyncState {
            sync_name: SYNC_NAME.into(),
            current_offset: offset.offset,
            total_synced: if checkpointed { pass } else { 0 },
            last_sync_at: offset.updated_at,
            is_complete: offset.complete,
            last_key: offset.last_key.map(|k| k.to_string()),
            source_total: offset.total,
            target_rows: target.len() as u64,
            ledger_windows: windows,
        })
    }

    /// Starts the sync over: the next run reads from offset 0 (the target keeps its rows,
    /// which the rescan upserts; the ledger and the log keep their history). A run in
    /// progress elsewhere is fenced out: its next commit is refused.
    pub async fn reset(&self) -> Result<()> {
        let ctx = self.context(self.database().stager.clone(), StopSignal::new())?;
        self.strategy().reset(&ctx).await
    }
}
