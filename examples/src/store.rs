//! Opening the database a URL names, with every trait the engine needs from it.

use std::fmt;
use std::sync::Arc;

use sync_core::jobs::JobQueue;
use sync_core::{ChangeQueue, Checkpoint, Error, Result, Stager};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

/// One database seen through the traits of a sync engine: runs stage and promote into it,
/// commit checkpoints to it, and the job queue lives in it.
#[derive(Debug, Clone)]
pub struct EngineStore {
    /// Staging and promotion.
    pub stager: Arc<dyn Stager>,
    /// Checkpoints, ledger and sync log.
    pub checkpoints: Arc<dyn Checkpoint>,
    /// The job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The change queue of sequence-window syncs (producers append ids, numbered in commit
    /// order).
    pub changes: Arc<dyn ChangeQueue>,
}

impl EngineStore {
    fn of<S: Stager + Checkpoint + ChangeQueue>(store: Arc<S>, queue: Arc<dyn JobQueue>) -> Self {
        EngineStore {
            stager: store.clone(),
            checkpoints: store.clone(),
            queue,
            changes: store,
        }
    }

    /// Every trait of one SQLite store, its job queue included.
    pub fn sqlite(store: Arc<SqliteStore>) -> Self {
        let queue = Arc::new(store.job_queue());
        EngineStore::of(store, queue)
    }

    /// Every trait of one PostgreSQL store, its job queue included.
    pub fn postgres(store: Arc<PostgresStore>) -> Self {
        let queue = Arc::new(store.job_queue());
        EngineStore::of(store, queue)
    }
}

/// A database URL, parsed once: `sqlite://FILE` (or `sqlite:FILE`) or `postgres://...`
/// (`postgresql://` too). `Debug` leaves out a PostgreSQL URL, which may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file.
    Sqlite(String),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            DatabaseUrl::Postgres(_) => f.write_str("Postgres(***)"),
        }
    }
}

impl DatabaseUrl {
    /// Parses `url`; anything else is a configuration error.
    pub fn parse(url: &str) -> Result<DatabaseUrl> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(Error::config(
                    "a sqlite database url needs a file: sqlite://FILE",
                ));
            }
            return Ok(DatabaseUrl::Sqlite(path.to_string()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        Err(Error::config(
            "the database url must start with sqlite:// or postgres://",
        ))
    }

    /// The SQLite file `url` names, if it names one (for messages such as a `sqlite3` hint).
    pub fn sqlite_file(url: &str) -> Option<String> {
        match DatabaseUrl::parse(url) {
            Ok(DatabaseUrl::Sqlite(path)) => Some(path),
            _ => None,
        }
    }
}

/// Removes the SQLite file `path` with its `-wal` and `-shm` and any `extra` suffixes (an
/// example's fresh start); files that are not there are fine.
pub fn remove_sqlite_file(path: &str, extra: &[&str]) -> Result<()> {
    for suffix in ["", "-wal", "-shm"].iter().chain(extra) {
        let file = format!("{path}{suffix}");
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::config("cannot remove the earlier database file")
                    .with_context("file", file)
                    .with_source(e))
            }
        }
    }
    Ok(())
}

/// The store of `url` (see [`DatabaseUrl`]; workers on many machines can share a PostgreSQL
/// one).
pub async fn open_engine_store(url: &str) -> Result<EngineStore> {
    Ok(match DatabaseUrl::parse(url)? {
        DatabaseUrl::Sqlite(path) => {
            EngineStore::sqlite(Arc::new(SqliteStore::open(SqliteConfig::new(path)).await?))
        }
        DatabaseUrl::Postgres(url) => EngineStore::postgres(Arc::new(
            PostgresStore::open(PostgresConfig::new(url)).await?,
        )),
    })
}
