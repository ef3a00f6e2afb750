//! Opening the database a URL names, with every trait the engine needs from it.

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

/// The store of `url`: `sqlite://FILE` (or `sqlite:FILE`) or `postgres://...`
/// (`postgresql://` too; workers on many machines can share it).
pub async fn open_engine_store(url: &str) -> Result<EngineStore> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(Error::config(
                "a sqlite database url needs a file: sqlite://FILE",
            ));
        }
        let store = SqliteStore::open(SqliteConfig::new(path)).await?;
        return Ok(EngineStore::sqlite(Arc::new(store)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::open(PostgresConfig::new(url)).await?;
        return Ok(EngineStore::postgres(Arc::new(store)));
    }
    Err(Error::config(
        "the database url must start with sqlite:// or postgres://",
    ))
}
