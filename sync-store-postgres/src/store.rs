//! `PostgresStore`: a pool of connections to one PostgreSQL database, all tables in one schema.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sync_core::{Error, ErrorKind, Faults, Result};
use tokio_postgres::{NoTls, Transaction};

use crate::config::{redact, PostgresConfig};
use crate::error::{classify, classify_commit, is_retryable};
use crate::lease::Lease;
use crate::schema;

/// The future a transaction body returns.
pub(crate) type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>;

/// What [`PostgresStore::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `server_version`.
    pub version: String,
    /// Whether the session is encrypted.
    pub tls: bool,
}

/// A store in one PostgreSQL schema. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: Pool,
    pub(crate) schema: String,
    pub(crate) faults: Faults,
    /// Run leases (`None`: off, fencing only).
    pub(crate) lease: Option<Arc<Lease>>,
    url: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A pool error as a store error.
pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => classify(e),
        other => Error::new(ErrorKind::Storage, "cannot get a connection")
            .with_source(other)
            .transient(),
    }
}

impl PostgresStore {
    /// Connects, creates the schema when missing and migrates the store's tables.
    pub async fn open(config: PostgresConfig) -> Result<Self> {
        Self::open_with_faults(config, Faults::new()).await
    }

    /// Opens with a fault set the store checks at its fault points (crash tests).
    pub async fn open_with_faults(config: PostgresConfig, faults: Faults) -> Result<Self> {
        let (pg, tls) = config.validate()?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(
                pg,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            ),
            None => Manager::from_config(pg, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .build()
            .map_err(|e| Error::config("cannot build the connection pool").with_source(e))?;
        let store = PostgresStore {
            lease: config
                .run_lease()
                .map(|length| Arc::new(Lease::new(length, pool.clone()))),
            pool,
            schema: config.schema.clone(),
            faults,
            url: config.url.clone(),
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client, &store.schema).await?;
        Ok(store)
    }

    /// Drops the store's schema with every table in it: targets, staging, checkpoints, ledger.
    /// For test teardown and decommissioning; there is no undo.
    pub async fn drop_schema(self) -> Result<()> {
        let client = self.client().await?;
        let sql = format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema.replace('"', "\"\"")
        );
        client.batch_execute(&sql).await.map_err(classify)
    }

    /// The health check: opens a connection and reports the server version and whether the
    /// session is encrypted.
    pub async fn check(&self) -> Result<ServerInfo> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT current_setting('server_version'), coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)", &[])
            .await
            .map_err(classify)?;
        Ok(ServerInfo {
            version: row.try_get(0).map_err(classify)?,
            tls: row.try_get(1).map_err(classify)?,
        })
    }

    /// The fault set this store checks.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The schema holding the tables.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// How long a run lease lasts, `None` when leases are off.
    pub(crate) fn lease_length(&self) -> Option<Duration> {
        self.lease.as_ref().map(|l| l.length)
    }

    /// Runs `body` in a transaction and commits it. Serialization failures and deadlocks run
    /// the whole transaction again; a connection lost during COMMIT is outcome-unknown.
    pub(crate) async fn transact<T, F>(&self, body: F) -> Result<T>
    where
        T: Send,
        F: for<'t> Fn(&'t Transaction<'t>) -> TxFuture<'t, T> + Send + Sync,
    {
        let mut attempt = 1;
        loop {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(classify)?;
            let result = match body(&tx).await {
                Ok(v) => tx.commit().await.map_err(classify_commit).map(|_| v),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match result {
                Err(e) if is_retryable(&e) && attempt < 5 => {
                    tracing::warn!(attempt, error = %e, "retrying the transaction");
                    // Back off with jitter so two transactions that deadlocked do not meet again.
                    let cap = 10u64 << attempt;
                    tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(0..=cap)))
                        .await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
