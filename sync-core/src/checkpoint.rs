//! The `Checkpoint` trait: per-sync state with compare-and-set and fencing, the window ledger
//! (history) and the sync log.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::position::{CheckpointDelta, Position};
use crate::strategy::StrategyKind;

/// The current on-disk format of [`CheckpointState`].
pub const CHECKPOINT_FORMAT: u32 = 2;

/// What a strategy persists between runs. Stores keep it as the JSON text of
/// [`CheckpointState::to_stored`] and read it back with [`CheckpointState::from_stored`], which
/// migrates older formats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    /// Everything up to this position is durably promoted.
    pub position: Position,
    /// Everything up to this position was confirmed by the sink (pipelines with a sink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Position>,
    /// Strategy-specific constant-size extras (offset strategy: last key, total).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct StoredEnvelope {
    format: u32,
    #[serde(flatten)]
    body: serde_json::Map<String, serde_json::Value>,
}

impl CheckpointState {
    /// State at `position` with no extras.
    pub fn at(position: Position) -> Self {
        CheckpointState {
            position,
            delivered: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The stored JSON text, tagged with [`CHECKPOINT_FORMAT`].
    pub fn to_stored(&self) -> String {
        let mut v = serde_json::to_value(self).expect("checkpoint state serializes");
        v.as_object_mut()
            .expect("object")
            .insert("format".into(), CHECKPOINT_FORMAT.into());
        v.to_string()
    }

    /// Parses stored text, migrating format 1 (`{"format":1,"position":..,"delivered_to":..}`)
    /// to the current format. Malformed text or a format newer than this library is a
    /// [`ErrorKind::CorruptState`] error.
    pub fn from_stored(text: &str) -> Result<Self> {
        let corrupt = |msg: &str| Error::new(ErrorKind::CorruptState, msg.to_string());
        let env: StoredEnvelope = serde_json::from_str(text)
            .map_err(|e| corrupt("malformed checkpoint state").with_source(e))?;
        let mut body = env.body;
        match env.format {
            1 => {
                // Format 1 named the sink position `delivered_to` and had no extras.
                if let Some(d) = body.remove("delivered_to") {
                    body.insert("delivered".into(), d);
                }
            }
            CHECKPOINT_FORMAT => {}
            f if f > CHECKPOINT_FORMAT => {
                return Err(
                    corrupt("checkpoint was written by a newer library").with_context("format", f)
                );
            }
            f => return Err(corrupt("unknown checkpoint format").with_context("format", f)),
        }
        serde_json::from_value(serde_json::Value::Object(body))
            .map_err(|e| corrupt("malformed checkpoint state").with_source(e))
    }
}

/// A fencing token: issued in increasing order per sync by [`Checkpoint::acquire_fence`].
/// Writes carrying an older token than the latest issued are rejected with
/// [`ErrorKind::Fenced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FenceToken(pub u64);

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// The sync it belongs to.
    pub sync: String,
    /// The state.
    pub state: CheckpointState,
    /// Incremented by every successful commit; the compare-and-set operand.
    pub version: u64,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

/// Outcome of a ledger row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Rows promoted and checkpoint advanced.
    Committed,
    /// The sink confirmed delivery of the window.
    Delivered,
    /// A past window was applied again on request.
    Replayed,
}

/// One row of the window ledger (history): what one committed window did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The sync.
    pub sync: String,
    /// The run that wrote it.
    pub run_id: String,
    /// The strategy.
    pub strategy: StrategyKind,
    /// Exclusive lower bound of the window.
    pub low: Position,
    /// Inclusive upper bound of the window.
    pub high: Position,
    /// Records fetched from the source for this window.
    pub rows_read: u64,
    /// Records inserted, updated or deleted in the target.
    pub rows_written: u64,
    /// Records quarantined by validation.
    pub rows_rejected: u64,
    /// Wall time spent on the window.
    pub duration_ms: u64,
    /// Outcome.
    pub status: LedgerStatus,
    /// Commit time.
    pub committed_at: DateTime<Utc>,
}

/// Severity of a sync-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Normal progress.
    Info,
    /// Something recovered or skipped.
    Warn,
    /// A failure.
    Error,
}

/// One sync-log entry: run started, finished, failed, drift detected, etc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncLogEntry {
    /// The sync.
    pub sync: String,
    /// The run.
    pub run_id: String,
    /// Time.
    pub at: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// Machine-readable event name (`run_started`, `run_finished`, `run_failed`, `drift`).
    pub event: String,
    /// Human-readable message; never contains secrets.
    pub message: String,
}

/// An atomic checkpoint advance: compare-and-set plus its ledger row and log entries.
#[derive(Debug, Clone)]
pub struct CheckpointCommit {
    /// The sync.
    pub sync: String,
    /// The stored version the writer read (`None`: no checkpoint exists yet).
    pub expected_version: Option<u64>,
    /// The writer's fencing token.
    pub fence: FenceToken,
    /// `(from, to]`: `from` must equal the stored position (`Start` when none).
    pub delta: CheckpointDelta,
    /// The new state; `state.position` must equal `delta.to`.
    pub state: CheckpointState,
    /// The ledger row written in the same transaction.
    pub ledger: Option<LedgerEntry>,
    /// Log entries written in the same transaction.
    pub log: Vec<SyncLogEntry>,
}

impl CheckpointCommit {
    /// Checks this commit against what is stored; every store calls it inside its
    /// transaction, after reading the stored row (`None` if absent) and the latest fence.
    ///
    /// Fails with [`ErrorKind::Fenced`] for a stale token, [`ErrorKind::Conflict`] when the
    /// version differs, and [`ErrorKind::CheckpointDelta`] when the delta does not continue
    /// from the stored position, goes backwards, or disagrees with `state.position`.
    pub fn check(
        &self,
        stored: Option<&StoredCheckpoint>,
        latest_fence: Option<FenceToken>,
    ) -> Result<()> {
        if latest_fence != Some(self.fence) {
            return Err(Error::new(ErrorKind::Fenced, "fencing token is stale")
                .with_context("sync", &self.sync)
                .with_context("fence", self.fence.0));
        }
        let stored_version = stored.map(|s| s.version);
        if stored_version != self.expected_version {
            return Err(
                Error::new(ErrorKind::Conflict, "checkpoint version changed")
                    .with_context("sync", &self.sync)
                    .with_context("expected", format!("{:?}", self.expected_version))
                    .with_context("found", format!("{stored_version:?}")),
            );
        }
        let current = stored.map_or(&Position::Start, |s| &s.state.position);
        let to = self
            .delta
            .try_apply(current)
            .map_err(|e| e.with_context("sync", &self.sync))?;
        if to != self.state.position {
            return Err(Error::new(
                ErrorKind::CheckpointDelta,
                "state position differs from the delta end",
            )
            .with_context("sync", &self.sync));
        }
        Ok(())
    }
}

/// Durable per-sync state.
///
/// # Contract
/// - `load` MUST return `None` for a sync never committed, and the last committed state
///   otherwise; stored text that cannot be parsed MUST give [`ErrorKind::CorruptState`].
/// - `acquire_fence` MUST return a token greater than every token issued before for that sync.
/// - `commit` MUST apply [`CheckpointCommit::check`] and, only if it passes, store the state
///   with `version = expected + 1` (1 for the first commit), the ledger row and the log
///   entries atomically; on any error nothing MUST change.
/// - `ledger` MUST return rows in commit order; `sync_log` the newest `limit` entries, oldest first.
/// - `reset` MUST delete the checkpoint (fenced) so the next run starts from `Start`, keeping
///   ledger and log.
/// - `release_fence` MUST free whatever `fence` holds on the sync (a store with run leases:
///   the lease), so that the next `acquire_fence` need not wait for it; it MUST NOT free or
///   invalidate what a newer token holds (a stale token's release is a no-op), MUST NOT make
///   later tokens smaller, and MUST be idempotent. A store without leases keeps the default,
///   which does nothing. The strategies release their fence when a run ends, failed or not.
#[async_trait]
pub trait Checkpoint: Debug + Send + Sync + 'static {
    /// Loads the checkpoint of `sync`.
    async fn load(&self, sync: &str) -> Result<Option<StoredCheckpoint>>;
    /// Issues a new fencing token for `sync`, fencing out every earlier holder.
    async fn acquire_fence(&self, sync: &str) -> Result<FenceToken>;
    /// Compare-and-set with ledger row and log entries; returns the new version.
    async fn commit(&self, commit: &CheckpointCommit) -> Result<u64>;
    /// The window ledger of `sync`, in commit order.
    async fn ledger(&self, sync: &str) -> Result<Vec<LedgerEntry>>;
    /// Appends a log entry outside any commit (run started, run failed).
    async fn append_log(&self, entry: &SyncLogEntry) -> Result<()>;
    /// The newest `limit` log entries of `sync`, oldest first.
    async fn sync_log(&self, sync: &str, limit: usize) -> Result<Vec<SyncLogEntry>>;
    /// Deletes the checkpoint of `sync` (fenced).
    async fn reset(&self, sync: &str, fence: FenceToken) -> Result<()>;
    /// Frees what `fence` holds on `sync` (a run lease); the default does nothing.
    async fn release_fence(&self, sync: &str, fence: FenceToken) -> Result<()> {
        let _ = (sync, fence);
        Ok(())
    }
}

#[async_trait]
impl<T: Checkpoint + ?Sized> Checkpoint for Arc<T> {
    async fn load(&self, sync: &str) -> Result<Option<StoredCheckpoint>> {
        (**self).load(sync).await
    }
    async fn acquire_fence(&self, sync: &str) -> Result<FenceToken> {
        (**self).acquire_fence(sync).await
    }
    async fn commit(&self, commit: &CheckpointCommit) -> Result<u64> {
        (**self).commit(commit).await
    }
    async fn ledger(&self, sync: &str) -> Result<Vec<LedgerEntry>> {
        (**self).ledger(sync).await
    }
    async fn append_log(&self, entry: &SyncLogEntry) -> Result<()> {
        (**self).append_log(entry).await
    }
    async fn sync_log(&self, sync: &str, limit: usize) -> Result<Vec<SyncLogEntry>> {
        (**self).sync_log(sync, limit).await
    }
    async fn reset(&self, sync: &str, fence: FenceToken) -> Result<()> {
        (**self).reset(sync, fence).await
    }
    async fn release_fence(&self, sync: &str, fence: FenceToken) -> Result<()> {
        (**self).release_fence(sync, fence).await
    }
}

/// Takes a new fence on `sync`, deletes its checkpoint with it (fencing out a running sync)
/// and releases the fence again: the one-off reset outside a run. The release is best effort
/// ([`release_fence_logged`]): the reset's own result is what counts.
pub async fn reset_checkpoint(checkpoints: &dyn Checkpoint, sync: &str) -> Result<()> {
    let fence = checkpoints.acquire_fence(sync).await?;
    let reset = checkpoints.reset(sync, fence).await;
    release_fence_logged(checkpoints, sync, fence).await;
    reset
}

/// Releases what `fence` holds on `sync`, best effort: what the fence was taken for is
/// already committed or failed, and an unreleased lease only delays the next holder until
/// its expiry, so a failure is logged, not returned.
pub(crate) async fn release_fence_logged(
    checkpoints: &dyn Checkpoint,
    sync: &str,
    fence: FenceToken,
) {
    if let Err(e) = checkpoints.release_fence(sync, fence).await {
        tracing::warn!(sync, fence = fence.0, error = %e, "could not release the fence; its lease expires instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_stored_form() {
        let mut s = CheckpointState::at(Position::Offset(42));
        s.extra.insert("total".into(), 100.into());
        let text = s.to_stored();
        assert!(text.contains("\"format\":2"));
        assert_eq!(CheckpointState::from_stored(&text).unwrap(), s);
    }

    #[test]
    fn format_1_migrates_and_newer_or_malformed_formats_are_corrupt() {
        let v1 = r#"{"format":1,"position":{"offset":7},"delivered_to":{"offset":5}}"#;
        let s = CheckpointState::from_stored(v1).unwrap();
        assert_eq!(s.position, Position::Offset(7));
        assert_eq!(s.delivered, Some(Position::Offset(5)));
        for bad in [
            r#"{"format":9,"position":"start"}"#,
            "{",
            r#"{"position":"start"}"#,
            r#"{"format":2,"position":{"nope":1}}"#,
        ] {
            assert_eq!(
                CheckpointState::from_stored(bad).unwrap_err().kind(),
                ErrorKind::CorruptState,
                "{bad}"
            );
        }
    }

    fn commit(expected: Option<u64>, fence: u64, from: Position, to: Position) -> CheckpointCommit {
        CheckpointCommit {
            sync: "s".into(),
            expected_version: expected,
            fence: FenceToken(fence),
            delta: CheckpointDelta {
                from,
                to: to.clone(),
            },
            state: CheckpointState::at(to),
            ledger: None,
            log: vec![],
        }
    }

    #[test]
    fn check_rejects_stale_fence_version_conflict_and_backwards_delta() {
        let stored = StoredCheckpoint {
            sync: "s".into(),
            state: CheckpointState::at(Position::Version(5)),
            version: 3,
            updated_at: Utc::now(),
        };
        let ok = commit(Some(3), 2, Position::Version(5), Position::Version(6));
        assert!(ok.check(Some(&stored), Some(FenceToken(2))).is_ok());
        assert_eq!(
            ok.check(Some(&stored), Some(FenceToken(3)))
                .unwrap_err()
                .kind(),
            ErrorKind::Fenced
        );
        let stale = commit(Some(2), 2, Position::Version(5), Position::Version(6));
        assert_eq!(
            stale
                .check(Some(&stored), Some(FenceToken(2)))
                .unwrap_err()
                .kind(),
            ErrorKind::Conflict
        );
        let back = commit(Some(3), 2, Position::Version(5), Position::Version(4));
        assert_eq!(
            back.check(Some(&stored), Some(FenceToken(2)))
                .unwrap_err()
                .kind(),
            ErrorKind::CheckpointDelta
        );
        let first = commit(None, 1, Position::Start, Position::Version(1));
        assert!(first.check(None, Some(FenceToken(1))).is_ok());
    }
}
