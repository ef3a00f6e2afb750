//! The example's database, fresh for every run: a SQLite file removed first, or a
//! PostgreSQL schema of its own dropped first.

use std::sync::Arc;

use sync_core::Result;
use sync_store_postgres::{PostgresConfig, PostgresStore};

use super::high_water::Backend;
use crate::store::{open_engine_store, remove_sqlite_file, DatabaseUrl, EngineStore};

/// The PostgreSQL schema the example works in.
pub const POSTGRES_SCHEMA: &str = "restaurant_delta";

/// Opens the database `url` names, emptied of an earlier run: `sqlite://FILE` removes
/// `FILE` (and its `-wal` and `-shm`) first; `postgres://...` drops and recreates the schema
/// [`POSTGRES_SCHEMA`].
pub async fn open_fresh(url: &str) -> Result<(EngineStore, Backend)> {
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Sqlite(path) => {
            remove_sqlite_file(&path, &[])?;
            Ok((open_engine_store(url).await?, Backend::Sqlite))
        }
        DatabaseUrl::Postgres(url) => {
            let config = PostgresConfig::new(url).with_schema(POSTGRES_SCHEMA);
            PostgresStore::open(config.clone())
                .await?
                .drop_schema()
                .await?;
            let store = Arc::new(PostgresStore::open(config).await?);
            Ok((EngineStore::postgres(store), Backend::Postgres))
        }
    }
}
