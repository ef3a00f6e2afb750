//! Opening the store a database URL names.

use std::sync::Arc;

use sync_core::{Checkpoint, Error, Result, Stager};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

/// The store of `url`: `sqlite://FILE` (or `sqlite:FILE`) or `postgres://...`
/// (`postgresql://` too).
pub(crate) async fn open(url: &str) -> Result<(Arc<dyn Stager>, Arc<dyn Checkpoint>)> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(Error::config(
                "a sqlite database url needs a file: sqlite://FILE",
            ));
        }
        let store = Arc::new(SqliteStore::open(SqliteConfig::new(path)).await?);
        return Ok((store.clone(), store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = Arc::new(PostgresStore::open(PostgresConfig::new(url)).await?);
        return Ok((store.clone(), store));
    }
    Err(Error::config(
        "the database url must start with sqlite:// or postgres://",
    ))
}
