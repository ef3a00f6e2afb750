//! # sync-store-postgres
//!
//! [`PostgresStore`] implements the store-side traits of `sync-core` ([`Stager`],
//! [`sync_core::Checkpoint`] and [`sync_core::ChangeQueue`]) on PostgreSQL 13 or newer, with
//! tokio-postgres over a deadpool pool:
//!
//! - every table in one schema ([`PostgresConfig::schema`]); the store's own tables migrated
//!   in order under an advisory lock; targets created from stream schemas and evolved by adding
//!   columns, never dropping them;
//! - one UNLOGGED staging table per run, loaded by binary COPY (jsonb sent as its text, never
//!   re-parsed) together with the run's progress; validation in SQL;
//! - promotion in one transaction: the guarded `INSERT … ON CONFLICT DO UPDATE … WHERE`, the
//!   deletes and the scoped replace (readers never see a half-replaced table), the checkpoint
//!   compare-and-set under row locks with its fencing token, the ledger row and the log;
//! - one run of a sync at a time: `acquire_fence` takes a lease on the sync (refusing a second
//!   run with an error [`is_lease_held`] recognises) that the run's calls extend and its end
//!   releases; a holder whose process died is overtaken at once, one that hangs at the expiry
//!   ([`PostgresConfig::run_lease_ms`]), and the newer fencing token rejects its late writes;
//! - serialization failures and deadlocks retried inside the store; a connection lost during
//!   COMMIT reported as outcome-unknown, which the strategies resolve by re-reading the
//!   checkpoint before applying anything again;
//! - a change queue numbered by a counter row locked inside each append's transaction, so
//!   numbers commit in number order and the safe high-water mark is the largest committed one;
//! - a job queue ([`PostgresJobQueue`], from [`PostgresStore::job_queue`]) that worker processes
//!   on many machines share: one open job per key by a partial unique index, claims with
//!   `FOR NO KEY UPDATE SKIP LOCKED`, leases fenced by a token, enqueues inside the caller's
//!   transaction;
//! - TLS through rustls honouring `sslmode` (`verify-full` checks the chain and the host name,
//!   `sslrootcert` names the trusted roots);
//! - the password never in `Debug`, logs or errors (URL, key-value and `password=` forms).
//!
//! What PostgreSQL changes on the way: jsonb stores JSON normalized (key order, spacing), so a
//! JSON value reads back equal in meaning but not byte for byte; `timestamptz` keeps
//! microseconds, so finer instants are truncated; text and JSON cannot hold a NUL character
//! (such a batch is a typed error before anything is copied).

mod checkpoint;
mod config;
mod error;
mod jobs;
mod lease;
mod promote;
mod queue;
mod schema;
mod snapshot;
mod sql;
mod stage;
mod store;
mod tls;

use std::sync::Arc;

use async_trait::async_trait;
use sea_query::{Order, Query};
use sync_core::stager::{
    PromoteMode, PromoteReport, QuarantinedRow, Stager, StagingRun, ValidationReport,
    ValidationRules,
};
use sync_core::{
    CheckpointCommit, Error, FaultPoint, FenceToken, Key, Position, RecordBatch, Result, Row,
    StreamSchema,
};

pub use config::PostgresConfig;
pub use jobs::PostgresJobQueue;
pub use lease::is_lease_held;
pub use store::{PostgresStore, ServerInfo};
pub use tls::SslMode;

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

#[async_trait]
impl Stager for PostgresStore {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn ensure_stream(&self, stream: &StreamSchema) -> Result<()> {
        let schema = self.schema.clone();
        self.transact(move |tx| {
            let (schema, stream) = (schema.clone(), stream.clone());
            Box::pin(async move { schema::ensure_stream(tx, &schema, &stream).await })
        })
        .await
    }

    async fn begin(
        &self,
        sync: &str,
        stream: Arc<StreamSchema>,
        fence: FenceToken,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        let (schema, held_for) = (self.schema.clone(), self.lease_length());
        self.transact(move |tx| {
            let (schema, sync, stream, params) = (
                schema.clone(),
                sync.to_string(),
                stream.clone(),
                params.clone(),
            );
            Box::pin(async move {
                lease::touch(tx, &schema, &sync, fence, held_for).await?;
                stage::begin(tx, &schema, &sync, &stream, fence, &params).await
            })
        })
        .await
    }

    async fn stage(&self, run: &StagingRun, batch: RecordBatch) -> Result<Position> {
        let (store, run) = (self.clone(), run.clone());
        let batch = Arc::new(batch);
        // On a task of its own: the strategies fetch and decode the next page while this one
        // is staged, and on one task that CPU work would hold back the COPY (and leave the
        // server idle) until it yields. Dropping this future aborts the task, as dropping the
        // transaction itself would.
        let task = AbortOnDrop(tokio::spawn(async move {
            let (schema, held_for) = (store.schema.clone(), store.lease_length());
            store
                .transact(move |tx| {
                    let (schema, run, batch) = (schema.clone(), run.clone(), batch.clone());
                    Box::pin(async move { stage::stage(tx, &schema, &run, &batch, held_for).await })
                })
                .await
        }));
        let to = match task.await {
            Ok(staged) => staged?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(Error::internal("the staging task was cancelled").with_source(e)),
        };
        self.faults.check(FaultPoint::AfterStage)?;
        Ok(to)
    }

    async fn validate(
        &self,
        run: &StagingRun,
        rules: &ValidationRules,
    ) -> Result<ValidationReport> {
        let (schema, held_for) = (self.schema.clone(), self.lease_length());
        self.transact(move |tx| {
            let (schema, run, rules) = (schema.clone(), run.clone(), rules.clone());
            Box::pin(async move {
                lease::touch(tx, &schema, &run.sync, run.fence, held_for).await?;
                stage::validate(tx, &schema, &run, &rules).await
            })
        })
        .await
    }

    async fn promote(
        &self,
        run: &StagingRun,
        mode: &PromoteMode,
        commit: &CheckpointCommit,
        close: bool,
    ) -> Result<PromoteReport> {
        self.faults.check(FaultPoint::BeforePromote)?;
        let (schema, faults, held_for) = (
            self.schema.clone(),
            self.faults.clone(),
            self.lease_length(),
        );
        let report = self
            .transact(move |tx| {
                let (schema, faults, run, mode, commit) = (
                    schema.clone(),
                    faults.clone(),
                    run.clone(),
                    mode.clone(),
                    commit.clone(),
                );
                Box::pin(async move {
                    // A stale writer is told so before anything else, whatever became of its
                    // staging run.
                    lease::hold(tx, &schema, &commit.sync, commit.fence, held_for).await?;
                    promote::promote(tx, &schema, &faults, &run, &mode, &commit, close).await
                })
            })
            .await?;
        self.faults.check(FaultPoint::AfterCommit)?;
        Ok(report)
    }

    async fn abort(&self, run: &StagingRun) -> Result<()> {
        let (schema, held_for) = (self.schema.clone(), self.lease_length());
        self.transact(move |tx| {
            let (schema, run) = (schema.clone(), run.clone());
            Box::pin(async move {
                lease::touch(tx, &schema, &run.sync, run.fence, held_for).await?;
                let row = stage::this_run(tx, &schema, &run).await?;
                stage::end(tx, &schema, &row).await
            })
        })
        .await
    }

    async fn read_target(&self, stream: &str) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let Some(target) = schema::target_schema(&**client, &self.schema, stream).await? else {
            return Ok(Vec::new());
        };
        let mut q = Query::select();
        q.columns(target.columns().iter().map(|c| sql::id(&c.name)))
            .from(sql::table(&self.schema, stream));
        for &k in target.primary_key() {
            q.order_by(sql::id(&target.columns()[k].name), Order::Asc);
        }
        let rows = sql::query(&**client, &q).await?;
        sql::read_rows(&rows, &target, 0)
    }

    async fn read_target_keys(&self, stream: &str, keys: &[Key]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let Some(target) = schema::target_schema(&**client, &self.schema, stream).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let mut q = Query::select();
            q.columns(target.columns().iter().map(|c| sql::id(&c.name)))
                .from(sql::table(&self.schema, stream));
            q.cond_where(sql::keys_in(&target, chunk));
            out.extend(sql::read_rows(
                &sql::query(&**client, &q).await?,
                &target,
                0,
            )?);
        }
        out.sort_by_key(|r| r.key(&target));
        out.dedup_by(|a, b| a.key(&target) == b.key(&target));
        Ok(out)
    }

    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantinedRow>> {
        let client = self.client().await?;
        stage::quarantined(&**client, &self.schema, sync).await
    }
}
