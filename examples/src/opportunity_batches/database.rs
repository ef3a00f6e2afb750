//! The database a URL names: SQLite (the default, one file) or PostgreSQL (optionally in a
//! schema of its own), seen through the two traits a sync needs.

use std::sync::Arc;

use sync_core::{Checkpoint, Error, Result, Stager};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

use crate::store::DatabaseUrl;

/// One database: batches are staged and promoted into it, and the checkpoint (the seed's
/// `sync_state`), the ledger and the sync log live in it, so promotion and checkpoint commit
/// in one transaction.
#[derive(Debug, Clone)]
pub struct BatchDatabase {
    /// Staging and promotion.
    pub stager: Arc<dyn Stager>,
    /// Checkpoints, ledger and sync log.
    pub checkpoints: Arc<dyn Checkpoint>,
    postgres: Option<PostgresStore>,
    description: String,
}

impl BatchDatabase {
    /// Opens `url`: `sqlite://FILE` (or `sqlite:FILE`), or `postgres://...` with the tables in
    /// `schema` (the server's default schema when `None`). A schema on a SQLite URL is a
    /// configuration error.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Self> {
        match DatabaseUrl::parse(url)? {
            DatabaseUrl::Sqlite(path) => {
                if schema.is_some() {
                    return Err(Error::config("--schema applies to postgres urls only"));
                }
                let store = Arc::new(SqliteStore::open(SqliteConfig::new(&path)).await?);
                Ok(BatchDatabase {
                    stager: store.clone(),
                    checkpoints: store,
                    postgres: None,
                    description: format!("sqlite file {path}"),
                })
            }
            DatabaseUrl::Postgres(url) => {
                let mut config = PostgresConfig::new(url);
                if let Some(schema) = schema {
                    config = config.with_schema(schema);
                }
                let store = PostgresStore::open(config).await?;
                let description = format!("postgresql schema {}", store.schema_name());
                let shared = Arc::new(store.clone());
                Ok(BatchDatabase {
                    stager: shared.clone(),
                    checkpoints: shared,
                    postgres: Some(store),
                    description,
                })
            }
        }
    }

    /// What it is, for messages (never the URL, which may hold a password).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Drops the PostgreSQL schema with everything in it (tests clean up with it); nothing
    /// for SQLite.
    pub async fn drop_postgres_schema(self) -> Result<()> {
        match self.postgres {
            Some(store) => store.drop_schema().await,
            None => Ok(()),
        }
    }
}
