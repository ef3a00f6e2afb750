//! The example's database, fresh for every run: a SQLite file removed first, or a
//! PostgreSQL schema of its own dropped first.

use std::sync::Arc;

use sync_core::{Error, Result};
use sync_store_postgres::{PostgresConfig, PostgresStore};

use super::high_water::Backend;
use crate::store::{open_engine_store, EngineStore};

/// The PostgreSQL schema the example works in.
pub const POSTGRES_SCHEMA: &str = "restaurant_delta";

/// Opens the database `url` names, emptied of an earlier run: `sqlite://FILE` removes
/// `FILE` (and its `-wal` and `-shm`) first; `postgres://...` drops and recreates the schema
/// [`POSTGRES_SCHEMA`].
pub async fn open_fresh(url: &str) -> Result<(EngineStore, Backend)> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        for suffix in ["", "-wal", "-shm"] {
            match std::fs::remove_file(format!("{path}{suffix}")) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::config("cannot remove the earlier database file")
                        .with_context("file", format!("{path}{suffix}"))
                        .with_source(e))
                }
            }
        }
        return Ok((open_engine_store(url).await?, Backend::Sqlite));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let config = PostgresConfig::new(url).with_schema(POSTGRES_SCHEMA);
        PostgresStore::open(config.clone())
            .await?
            .drop_schema()
            .await?;
        let store = Arc::new(PostgresStore::open(config).await?);
        return Ok((EngineStore::postgres(store), Backend::Postgres));
    }
    open_engine_store(url).await.map(|s| (s, Backend::Sqlite))
}
