//! Seed 001's `rollback_sync`: "restore from backup, reset sync_state, log the rollback
//! reason", made consistent. Before every sync the targets and their checkpoints are backed
//! up together ([`take_backup`]); a rollback restores both in one transaction, so every
//! table's checkpoint again describes exactly the rows it has, and writes a sync-log entry
//! with the reason for every table in that same transaction (a crash never leaves a
//! rollback unlogged, nor a logged one undone). The next incremental sync reads from the
//! restored checkpoints and brings the targets back to the source.

use chrono::{DateTime, Utc};
use sync_core::{LogLevel, Result, SyncLogEntry};

use super::backup::SquareTargets;
use super::run::{sync_state, SyncStateRow};
use super::tables::synced_tables;

/// The log event of a rollback.
pub const ROLLBACK_EVENT: &str = "rollback";

/// What a rollback did.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackReport {
    /// Why, as logged.
    pub reason: String,
    /// Where the backup came from.
    pub backup: String,
    /// When the backup restored was taken.
    pub backup_taken_at: Option<DateTime<Utc>>,
    /// Tables restored (each with its checkpoint).
    pub tables: usize,
    /// The checkpoints after the rollback.
    pub state: Vec<SyncStateRow>,
}

/// The synced target tables and their sync names.
fn names() -> (Vec<String>, Vec<String>) {
    synced_tables()
        .iter()
        .map(|t| (t.stream.to_owned(), t.sync_name()))
        .unzip()
}

/// Backs up every synced table and its checkpoint as of now (before a sync).
pub async fn take_backup(targets: &SquareTargets) -> Result<()> {
    let (streams, syncs) = names();
    targets.backup.snapshot(&streams, &syncs).await
}

/// Restores the last backup (targets and checkpoints) and logs `reason` in every table's
/// sync log, in one transaction.
pub async fn rollback_last_sync(
    targets: &SquareTargets,
    reason: &str,
    backup_taken_at: Option<DateTime<Utc>>,
) -> Result<RollbackReport> {
    let (streams, syncs) = names();
    let at = Utc::now();
    let run_id = format!("rollback-{}", at.timestamp_millis());
    let log: Vec<SyncLogEntry> = syncs
        .iter()
        .map(|sync| SyncLogEntry {
            sync: sync.clone(),
            run_id: run_id.clone(),
            at,
            level: LogLevel::Warn,
            event: ROLLBACK_EVENT.to_owned(),
            message: format!("rolled back to the backup taken before the last sync: {reason}"),
        })
        .collect();
    targets.backup.restore(&streams, &syncs, &log).await?;
    Ok(RollbackReport {
        reason: reason.to_owned(),
        backup: targets.backup.location(),
        backup_taken_at,
        tables: streams.len(),
        state: sync_state(targets).await?,
    })
}
