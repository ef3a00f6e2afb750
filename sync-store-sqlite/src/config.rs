//! Configuration of a SQLite store: serde data with a builder; `build` validates and does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::{Error, Result};

/// How hard SQLite syncs to disk what a sync run writes.
///
/// This applies to promotions (the upsert or replace of a window together with its
/// checkpoint, ledger row and log entries), the start and end of a staging run and the sync
/// log: what a later run rebuilds from the source. Every commit that records a fact a later
/// run cannot rebuild is `synchronous=FULL` whatever this says: bare checkpoint commits (the
/// SQS feed's journal among them), fences and leases, the job queue, the change queue (a
/// producer, or the SQS feed before it deletes a message, relies on an append being on disk)
/// and schema changes. Staged batches and validation always commit at `NORMAL` (see
/// `store::Commit::Staging`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=FULL`: a promotion is on disk when it returns. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL` for what a run writes, the setting `shared/bench`'s
    /// `e2e_ceiling` runs with: a promotion survives a process crash when it returns, and
    /// reaches the disk with the next commit that syncs (any of the `FULL` ones above: in WAL
    /// mode a sync of the log makes every frame before it durable) or the next WAL
    /// checkpoint, which the store runs on its own thread once the log has grown by 8,000
    /// pages, and when it closes.
    ///
    /// Why the promise still holds: after a power loss SQLite recovers a prefix of the
    /// commits, and a promotion's rows and its checkpoint are one commit, so they are both
    /// there or both gone. The checkpoint is never ahead of the data; the next run starts from
    /// the checkpoint that survived and reads the lost windows from the source again, which
    /// every strategy whose source can be read again does (REST, offset, sequence window).
    /// What cannot be read again never depends on a promotion alone: the SQS feed deletes a
    /// message only after its change-queue append, a `FULL` commit, and that commit makes the
    /// promotions before it durable too. What `Normal` gives up is that a reader of the target
    /// may, after a power loss, miss rows (and log entries) it saw before, until the next run
    /// brings them back. A lost suffix of these commits leaves the state a process crash at
    /// that point would have left, which every strategy resumes from. One external effect
    /// can precede the sync: the sequence-window strategy delivers a promoted window to its
    /// sink before it commits the delivery (a `FULL` commit); a power loss in between takes
    /// the promotion and the window is delivered again, as after a crash between a delivery
    /// and its record (the strategy already redelivers then; a sink of upserts by key
    /// absorbs it).
    ///
    /// It saves the sync of the log at the end of every promotion: for an incremental window
    /// of 10,000 changed rows in a 1M-row table, ~40 MiB of log, about a third of the run's
    /// time on the benchmark machine (see BENCHMARKS.md).
    Normal,
}

/// Configuration of a [`crate::SqliteStore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file (created when missing).
    pub path: PathBuf,
    /// How long a statement waits for a lock held by another connection.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// Commit durability.
    #[serde(default)]
    pub durability: Durability,
    /// Page cache size in KiB (bounds memory whatever the table sizes).
    #[serde(default = "default_cache_kib")]
    pub cache_kib: u32,
    /// Attempts of a transaction that keeps failing with BUSY or LOCKED.
    #[serde(default = "default_busy_retries")]
    pub busy_retries: u32,
}

fn default_busy_timeout_ms() -> u64 {
    5_000
}
fn default_cache_kib() -> u32 {
    16 * 1024
}
fn default_busy_retries() -> u32 {
    5
}

impl SqliteConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            busy_timeout_ms: default_busy_timeout_ms(),
            durability: Durability::Full,
            cache_kib: default_cache_kib(),
            busy_retries: default_busy_retries(),
        }
    }

    /// Sets the busy timeout.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// Sets the commit durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the page cache size.
    pub fn with_cache_kib(mut self, kib: u32) -> Self {
        self.cache_kib = kib;
        self
    }

    /// Validates the values; does no I/O.
    pub fn validate(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Err(Error::config("sqlite path is empty"));
        }
        if self.cache_kib < 64 {
            return Err(Error::config("cache_kib must be at least 64"));
        }
        if self.busy_retries == 0 {
            return Err(Error::config("busy_retries must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_unknown_fields_and_bad_values() {
        let err = serde_json::from_str::<SqliteConfig>(r#"{"path":"a.db","cache":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"));
        let c: SqliteConfig = serde_json::from_str(r#"{"path":"a.db"}"#).unwrap();
        assert_eq!(c, SqliteConfig::new("a.db"));
        assert!(SqliteConfig::new("").validate().is_err());
        assert!(SqliteConfig::new("a.db")
            .with_cache_kib(1)
            .validate()
            .is_err());
    }
}
