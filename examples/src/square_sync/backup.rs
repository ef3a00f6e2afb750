//! The database of the example, opened with what a rollback needs: a point-in-time backup of
//! the synced targets together with their checkpoints, restored in one transaction.
//!
//! SQLite: `VACUUM INTO` a backup file next to the database, restored through `ATTACH`.
//! PostgreSQL: a snapshot schema (`<schema>_backup`) holding copies of the targets and
//! checkpoint rows, read from one `REPEATABLE READ` view.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use sync_core::{Checkpoint, Error, Result, Stager, SyncLogEntry};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

use crate::store::DatabaseUrl;

/// A backup of targets and their checkpoints, taken before a sync and restored by a
/// rollback.
///
/// # Contract
/// - `snapshot` MUST capture the rows of `streams` and the checkpoints of `syncs` as of one
///   moment, replacing the previous backup.
/// - `restore` MUST put back exactly those rows and checkpoints (a table or checkpoint the
///   backup lacks ends up empty or absent) and append the entries of `log` to the sync log,
///   all in one transaction: a reader sees the state before or after, never a mix, and the
///   rollback's log entries exist exactly when the rollback does. It MUST NOT touch fences,
///   the ledger or the rest of the sync log.
/// - `restore` without a backup MUST fail with `Config` and change nothing.
#[async_trait]
pub trait TargetBackup: std::fmt::Debug + Send + Sync + 'static {
    /// Takes the backup.
    async fn snapshot(&self, streams: &[String], syncs: &[String]) -> Result<()>;
    /// Restores it, logging `log` in the same transaction.
    async fn restore(
        &self,
        streams: &[String],
        syncs: &[String],
        log: &[SyncLogEntry],
    ) -> Result<()>;
    /// Where the backup lives, for the printout.
    fn location(&self) -> String;
}

/// [`TargetBackup`] of a SQLite file: `VACUUM INTO` a sibling file.
#[derive(Debug, Clone)]
pub struct SqliteBackup {
    store: SqliteStore,
    path: PathBuf,
}

#[async_trait]
impl TargetBackup for SqliteBackup {
    async fn snapshot(&self, _streams: &[String], _syncs: &[String]) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::config("the old backup file cannot be removed")
                    .with_context("backup", self.path.display())
                    .with_source(e))
            }
        }
        self.store.backup_to(&self.path).await
    }

    async fn restore(
        &self,
        streams: &[String],
        syncs: &[String],
        log: &[SyncLogEntry],
    ) -> Result<()> {
        self.store
            .restore_from(&self.path, streams, syncs, log)
            .await
    }

    fn location(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// [`TargetBackup`] of a PostgreSQL schema: a snapshot schema beside it.
#[derive(Debug, Clone)]
pub struct PostgresBackup {
    store: PostgresStore,
    snapshot: String,
}

#[async_trait]
impl TargetBackup for PostgresBackup {
    async fn snapshot(&self, streams: &[String], syncs: &[String]) -> Result<()> {
        self.store
            .snapshot_into(&self.snapshot, streams, syncs)
            .await
    }

    async fn restore(
        &self,
        streams: &[String],
        syncs: &[String],
        log: &[SyncLogEntry],
    ) -> Result<()> {
        self.store
            .restore_snapshot(&self.snapshot, streams, syncs, log)
            .await
    }

    fn location(&self) -> String {
        format!("schema {}", self.snapshot)
    }
}

/// The example's database through the traits a sync needs, plus its backup.
#[derive(Debug, Clone)]
pub struct SquareTargets {
    /// Staging, promotion and target reads.
    pub stager: Arc<dyn Stager>,
    /// Checkpoints (the `sync_state` rows), ledger and sync log.
    pub checkpoints: Arc<dyn Checkpoint>,
    /// The backup a rollback restores.
    pub backup: Arc<dyn TargetBackup>,
    /// The PostgreSQL store when the URL names one (to drop its schemas after a test).
    pub postgres: Option<PostgresStore>,
}

impl SquareTargets {
    /// Opens `url`: `sqlite://FILE` (the backup is `FILE.backup`) or `postgres://...` (in
    /// `schema`, default `public`; the backup is the schema `<schema>_backup`).
    pub async fn open(url: &str, schema: Option<&str>) -> Result<SquareTargets> {
        match DatabaseUrl::parse(url)? {
            DatabaseUrl::Sqlite(path) => {
                let store = SqliteStore::open(SqliteConfig::new(&path)).await?;
                let backup = SqliteBackup {
                    store: store.clone(),
                    path: PathBuf::from(format!("{path}.backup")),
                };
                let store = Arc::new(store);
                Ok(SquareTargets {
                    stager: store.clone(),
                    checkpoints: store,
                    backup: Arc::new(backup),
                    postgres: None,
                })
            }
            DatabaseUrl::Postgres(url) => {
                let mut config = PostgresConfig::new(url);
                if let Some(s) = schema {
                    config = config.with_schema(s);
                }
                let store = PostgresStore::open(config).await?;
                let backup = PostgresBackup {
                    snapshot: format!("{}_backup", store.schema_name()),
                    store: store.clone(),
                };
                let shared = Arc::new(store.clone());
                Ok(SquareTargets {
                    stager: shared.clone(),
                    checkpoints: shared,
                    backup: Arc::new(backup),
                    postgres: Some(store),
                })
            }
        }
    }

    /// Drops the PostgreSQL schema and its backup schema (test teardown); nothing for
    /// SQLite.
    pub async fn drop_postgres_schemas(self) -> Result<()> {
        if let Some(store) = self.postgres {
            store
                .drop_snapshot(&format!("{}_backup", store.schema_name()))
                .await?;
            store.drop_schema().await?;
        }
        Ok(())
    }
}
