//! Configuration of a SQLite store: serde data with a builder; `build` validates and does no I/O.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::{Error, Result};

/// How hard SQLite syncs to disk on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=FULL`: every promotion and checkpoint commit is on disk when it returns.
    /// The default: the checkpoint promise holds across power loss. Staging and validation
    /// commits use `NORMAL` even so: in WAL mode a power loss can only take the commits after
    /// the last synced one, so it loses staged batches with the run progress they advanced
    /// (one transaction), never anything promoted; the next run re-reads them.
    #[default]
    Full,
    /// `synchronous=NORMAL` in WAL mode: a commit survives a process crash but the last
    /// commits may roll back on power loss. The checkpoint still never gets ahead of the data
    /// (both roll back together, being one transaction), so a resumed sync re-reads them.
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
