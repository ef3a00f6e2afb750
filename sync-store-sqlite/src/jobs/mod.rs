//! `SqliteJobQueue`: the [`JobQueue`] of `sync-core` in the store's SQLite file, next to the
//! checkpoints its jobs' runs commit.
//!
//! - **One writer.** Every change runs in a `BEGIN IMMEDIATE` transaction on the store's
//!   connection (the blocking pool, the BUSY retries and the durability of
//!   [`SqliteStore`]'s other writes). SQLite lets one connection write at a time, across
//!   processes too, so a claim reads the next due job and marks it processing with nothing
//!   in between: two claimers, even two processes on one file, never get the same job.
//! - **Fencing.** Heartbeat and finish read and update the job only `WHERE id = ? AND fence =
//!   ? AND status = 'processing'`; no row gives [`ErrorKind::Fenced`](sync_core::ErrorKind).
//! - **One open job per key,** by the re-read in `enqueue` and by a partial unique index on
//!   `(provider, tenant, stream) WHERE status IN ('pending', 'processing', 'paused')`.
//! - **Times** are integer microseconds since the Unix epoch in UTC, from the clock of the
//!   process that makes the call. SQLite has no server clock, so every worker sharing a file
//!   must run on the machine that holds it (as SQLite itself requires: its locks do not work
//!   over network file systems) and leases assume that machine's clock does not jump.
//!
//! The tables are described in `schema.rs` (migration 7). A change of one job applies the
//! state change `sync-core` defines for every queue (`Job::claim`, `Job::finish`, ...) to the
//! row as read, and writes it back guarded by the fence and status it was read with.

mod control;
mod integration;
mod ops;
mod row;
mod schema;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sync_core::jobs::{
    EnqueueRequest, Enqueued, Heartbeat, Integration, Job, JobCounts, JobFilter, JobId, JobOutcome,
    JobQueue, JobScope, StopIntent,
};
use sync_core::Result;

pub(crate) use schema::migration_7;

use crate::store::SqliteStore;

/// The job queue in a [`SqliteStore`]'s file; made by [`SqliteStore::job_queue`]. Cloning
/// shares the store's connection.
#[derive(Clone)]
pub struct SqliteJobQueue {
    store: SqliteStore,
    /// Microseconds added to the process clock: tests move time forward without waiting.
    offset: Arc<AtomicI64>,
}

impl std::fmt::Debug for SqliteJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJobQueue")
            .field("path", &self.store.path())
            .finish()
    }
}

impl SqliteStore {
    /// The job queue kept in this store's file, on this store's connection: jobs,
    /// integrations and the checkpoints of their runs live in one database.
    pub fn job_queue(&self) -> SqliteJobQueue {
        SqliteJobQueue {
            store: self.clone(),
            offset: Arc::new(AtomicI64::new(0)),
        }
    }
}

/// The time a call uses, read once when its transaction runs.
#[derive(Debug, Clone)]
struct Clock(Arc<AtomicI64>);

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        let us = Utc::now()
            .timestamp_micros()
            .saturating_add(self.0.load(Ordering::Relaxed));
        DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl SqliteJobQueue {
    /// The store whose file holds the queue.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Moves the clock of this handle (and its clones) forward by `by`: leases expire and
    /// backoffs pass without waiting, for tests. Other handles from
    /// [`SqliteStore::job_queue`] and other processes keep the real clock.
    pub fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset.fetch_add(us, Ordering::Relaxed);
    }

    fn clock(&self) -> Clock {
        Clock(self.offset.clone())
    }
}

#[async_trait]
impl JobQueue for SqliteJobQueue {
    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        integration.validate()?;
        if let Some(s) = &integration.schedule {
            s.validate()?;
        }
        let (integration, clock) = (integration.clone(), self.clock());
        self.store
            .write(move |tx, _| integration::put(tx, &integration, clock.now()))
            .await
    }

    async fn integration(&self, provider: &str, tenant: &str) -> Result<Option<Integration>> {
        let (provider, tenant) = (provider.to_string(), tenant.to_string());
        self.store
            .with_conn(move |conn, _| integration::get(conn, &provider, &tenant))
            .await
    }

    async fn integrations(&self, provider: Option<&str>) -> Result<Vec<Integration>> {
        let provider = provider.map(str::to_string);
        self.store
            .with_conn(move |conn, _| integration::list(conn, provider.as_deref()))
            .await
    }

    async fn enqueue(&self, request: &EnqueueRequest) -> Result<Enqueued> {
        request.validate()?;
        let (request, clock) = (request.clone(), self.clock());
        self.store
            .write(move |tx, _| ops::enqueue(tx, &request, clock.now()))
            .await
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let (worker, clock) = (worker.to_string(), self.clock());
        self.store
            .write(move |tx, _| ops::claim(tx, &worker, lease, clock.now()))
            .await
    }

    async fn heartbeat(&self, id: JobId, fence: u64, lease: Duration) -> Result<Heartbeat> {
        let clock = self.clock();
        self.store
            .write(move |tx, _| ops::heartbeat(tx, id, fence, lease, clock.now()))
            .await
    }

    async fn finish(&self, id: JobId, fence: u64, outcome: &JobOutcome) -> Result<Job> {
        let (outcome, clock) = (outcome.clone(), self.clock());
        self.store
            .write(move |tx, _| ops::finish(tx, id, fence, &outcome, clock.now()))
            .await
    }

    async fn request_stop(&self, scope: &JobScope, intent: StopIntent) -> Result<u64> {
        let (scope, clock) = (scope.clone(), self.clock());
        self.store
            .write(move |tx, _| control::request_stop(tx, &scope, intent, clock.now()))
            .await
    }

    async fn resume(&self, scope: &JobScope) -> Result<u64> {
        let (scope, clock) = (scope.clone(), self.clock());
        self.store
            .write(move |tx, _| control::resume(tx, &scope, clock.now()))
            .await
    }

    async fn retry_failed(&self, scope: &JobScope) -> Result<u64> {
        let (scope, clock) = (scope.clone(), self.clock());
        self.store
            .write(move |tx, _| control::retry_failed(tx, &scope, clock.now()))
            .await
    }

    async fn rescue_expired(&self) -> Result<Vec<JobId>> {
        let clock = self.clock();
        self.store
            .write(move |tx, _| control::rescue_expired(tx, clock.now()))
            .await
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>> {
        self.store
            .with_conn(move |conn, _| row::load(conn, id))
            .await
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let filter = filter.clone();
        self.store
            .with_conn(move |conn, _| ops::jobs(conn, &filter))
            .await
    }

    async fn counts(&self, scope: &JobScope) -> Result<JobCounts> {
        let scope = scope.clone();
        self.store
            .with_conn(move |conn, _| ops::counts(conn, &scope))
            .await
    }

    async fn prune(&self, older_than: Duration) -> Result<u64> {
        let clock = self.clock();
        self.store
            .write(move |tx, _| control::prune(tx, row::before(clock.now(), older_than)))
            .await
    }
}
