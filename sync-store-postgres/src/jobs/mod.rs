//! `PostgresJobQueue`: the [`JobQueue`] of `sync-core` on the store's pool and schema, shared
//! by any number of worker processes on any number of machines, with no coordinator.
//!
//! Four tables (migration 3, [`tables`]): `_sync_integrations`, `_sync_jobs`,
//! `_sync_job_keys` (idempotency keys, primary key on the key, cascading with their job) and
//! `_sync_job_pauses` (recorded pauses, a NULL part matching any). Every time is the server's
//! clock (`now()`, the transaction's start), so workers whose clocks disagree agree on leases.
//!
//! - **One open job per key**: the partial unique index `_sync_jobs_open` on
//!   `(provider, tenant, stream) WHERE status IN ('pending', 'processing', 'paused')`. An
//!   enqueue inserts with `ON CONFLICT DO NOTHING` and, when that inserted nothing, reads the
//!   winner's job ([`enqueue`]).
//! - **Claims**: one `UPDATE … WHERE id = (SELECT … FOR NO KEY UPDATE SKIP LOCKED) RETURNING`,
//!   walking the partial index `_sync_jobs_due` ([`attempts::claim`]).
//! - **Fencing**: heartbeat and finish change a row only `WHERE id = $1 AND fence = $2 AND
//!   status = 'processing'`; no row is [`ErrorKind::Fenced`](sync_core::ErrorKind::Fenced).
//! - **Pauses**: enqueues hold a shared transaction-level advisory lock of the schema that
//!   pause and resume take exclusively, so a job enqueued while a pause commits is either seen
//!   and paused by it or starts paused.
//! - Single statements run outside an explicit transaction, prepared once per connection;
//!   deadlocks (two bulk updates meeting) run again, as do serialization failures of the
//!   multi-statement operations.
//!
//! [`PostgresJobQueue::enqueue_in`] enqueues inside the caller's own transaction: the job
//! exists exactly when the caller's other writes commit. [`PostgresJobQueue::enqueue_all_in`]
//! does so for many requests, with one multi-row insert per run of plain requests.

mod attempts;
mod control;
mod enqueue;
mod integrations;
mod queue;
mod tables;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use sea_query::PostgresQueryBuilder;
use sea_query_postgres::PostgresBinder;
use sync_core::jobs::{EnqueueRequest, Enqueued, Integration, Job};
use sync_core::Result;
use tokio_postgres::Transaction;

pub(crate) use tables::migration_3;

use crate::error::{classify, is_retryable};
use crate::store::PostgresStore;

/// What one statement gave.
enum Ran {
    Rows(Vec<tokio_postgres::Row>),
    Changed(u64),
}

/// The job queue of a [`PostgresStore`]: the same pool and schema ([`PostgresStore::job_queue`]).
#[derive(Clone)]
pub struct PostgresJobQueue {
    store: PostgresStore,
}

impl std::fmt::Debug for PostgresJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJobQueue")
            .field("schema", &self.store.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The job queue in this store's schema, sharing its connection pool (its tables are
    /// created with the store's by the migrations of [`PostgresStore::open`]).
    pub fn job_queue(&self) -> PostgresJobQueue {
        PostgresJobQueue {
            store: self.clone(),
        }
    }
}

impl PostgresJobQueue {
    /// Enqueues inside the caller's transaction `tx` (on this queue's database), exactly as
    /// [`JobQueue::enqueue`](sync_core::jobs::JobQueue::enqueue) does: the job and its
    /// idempotency key commit or roll back with the caller's other writes.
    ///
    /// Until `tx` ends it holds the shared pause lock (so a pause or resume of the queue waits
    /// for it) and, having created a job, the key's slot for an open job (so another enqueue of
    /// the key waits too): keep such transactions short. Under `REPEATABLE READ` or
    /// `SERIALIZABLE` a race with a concurrent enqueue of the key fails with a transient error
    /// for the caller to retry the transaction; under `READ COMMITTED` it is resolved here.
    pub async fn enqueue_in(
        &self,
        tx: &Transaction<'_>,
        request: &EnqueueRequest,
    ) -> Result<Enqueued> {
        enqueue::enqueue(tx, &self.store.schema, request).await
    }

    /// Enqueues `requests` in order inside the caller's transaction `tx`, as
    /// [`Self::enqueue_in`] each would, with each distinct statement prepared once for the
    /// batch: the way to enqueue many jobs at once. Nothing is written unless every request is
    /// valid; an error leaves `tx` for the caller to roll back.
    pub async fn enqueue_all_in(
        &self,
        tx: &Transaction<'_>,
        requests: &[EnqueueRequest],
    ) -> Result<Vec<Enqueued>> {
        enqueue::enqueue_all(tx, &self.store.schema, requests).await
    }

    fn schema(&self) -> &str {
        &self.store.schema
    }

    /// Runs `op` again after a deadlock or serialization failure (it rolled back whole).
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if is_retryable(&e) && attempt < 5 => {
                    tracing::warn!(attempt, error = %e, "retrying a job queue statement");
                    let cap = 10u64 << attempt;
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=cap))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs one statement on its own (no explicit transaction): its rows, or the number of rows
    /// it changed. The statement is prepared once per connection, so the hot ones (claim,
    /// heartbeat, finish) take one round trip and no parsing.
    async fn run<S: PostgresBinder>(&self, stmt: &S, want_rows: bool) -> Result<Ran> {
        let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
        let (sql, values) = (&sql, &values);
        self.retrying(move || async move {
            let client = self.store.client().await?;
            let prepared = client.prepare_cached(sql).await.map_err(classify)?;
            let params = values.as_params();
            let ran = if want_rows {
                client.query(&prepared, &params).await.map(Ran::Rows)
            } else {
                client.execute(&prepared, &params).await.map(Ran::Changed)
            };
            ran.map_err(classify)
        })
        .await
    }

    /// [`Self::run`] for the rows.
    async fn query<S: PostgresBinder>(&self, stmt: &S) -> Result<Vec<tokio_postgres::Row>> {
        match self.run(stmt, true).await? {
            Ran::Rows(rows) => Ok(rows),
            Ran::Changed(_) => Ok(Vec::new()),
        }
    }

    /// [`Self::run`] for the number of rows changed.
    async fn execute<S: PostgresBinder>(&self, stmt: &S) -> Result<u64> {
        match self.run(stmt, false).await? {
            Ran::Changed(n) => Ok(n),
            Ran::Rows(rows) => Ok(rows.len() as u64),
        }
    }

    async fn one_job<S: PostgresBinder + Sync>(&self, stmt: &S) -> Result<Option<Job>> {
        self.query(stmt)
            .await?
            .first()
            .map(tables::read_job)
            .transpose()
    }

    async fn integrations_of(
        &self,
        provider: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<Vec<Integration>> {
        let rows = self
            .query(&integrations::select(self.schema(), provider, tenant))
            .await?;
        integrations::read(&rows)
    }
}
