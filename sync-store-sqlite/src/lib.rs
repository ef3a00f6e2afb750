//! # sync-store-sqlite
//!
//! [`SqliteStore`] implements the store-side traits of `sync-core` ([`Stager`],
//! [`sync_core::Checkpoint`] and [`sync_core::ChangeQueue`]) on one SQLite file (bundled
//! SQLite: no system library needed):
//!
//! - targets created from stream schemas and evolved by adding columns, never dropping them;
//!   the store's own tables migrated in order from a schema-version table;
//! - per run, a *row table* shaped exactly like the target (rows with every required value,
//!   one per key) and a staging table with bookkeeping columns for everything else (rows
//!   missing a required value, keys to delete; every row once a key arrives twice or custom
//!   rules validate the run), loaded with prepared multi-row inserts in one transaction per
//!   batch together with the run's progress and its counts (rows, deletes, rows set aside,
//!   columns that received a NULL); validated in SQL (one row per key, newest by the version
//!   guard; rows missing required values quarantined with a reason);
//! - promotion in one `BEGIN IMMEDIATE` transaction: the guarded upsert (or the scoped
//!   replace), the checkpoint compare-and-set, the ledger row and the log entries. Into an
//!   empty target the row table is renamed to the target (a full load writes its rows once);
//!   otherwise the upsert runs over short ranges of rows so SQLite's statement journal stays in
//!   memory. Its cost follows the promoted window, not the target: keys are looked up in the
//!   target's primary key, counts come from the run's row and from SQLite's update hook, and
//!   only a scoped replace reads the target (not even that when the target was empty);
//! - WAL mode, `synchronous=FULL` for bare checkpoint commits, fences, the job queue and the
//!   change queue, and by default for promotions and a run's log (see [`Durability`] for
//!   `NORMAL` there and why it keeps the promise); staging and validation commit with
//!   `synchronous=NORMAL`, which can only lose staged-but-unpromoted batches on power loss,
//!   together with the progress they advanced (see `store::Commit::Staging` for the
//!   argument); a bounded page cache; sorts spill to temporary files;
//! - WAL checkpoints on a thread and connection of their own, so no commit waits for one;
//! - a busy timeout and retries of transactions that meet BUSY or LOCKED;
//! - every call on tokio's blocking pool, never on a runtime worker thread;
//! - the job queue of `sync-core` ([`SqliteJobQueue`], from [`SqliteStore::job_queue`]) in
//!   the same file: integrations, jobs, idempotency keys and pauses, claimed by the single
//!   writer so two workers never get the same job.

mod checkpoint;
mod chunk;
mod config;
mod error;
mod jobs;
mod promote;
mod queue;
mod run;
mod schema;
mod snapshot;
mod sql;
mod stage;
mod store;
mod swap;
mod wal;

use std::sync::Arc;

use async_trait::async_trait;
use sea_query::{Order, Query};
use sync_core::stager::{
    PromoteMode, PromoteReport, QuarantinedRow, Stager, StagingRun, ValidationReport,
    ValidationRules,
};
use sync_core::{
    CheckpointCommit, FaultPoint, FenceToken, Key, Position, RecordBatch, Result, Row, StreamSchema,
};

pub use config::{Durability, SqliteConfig};
pub use jobs::SqliteJobQueue;
use store::Commit;
pub use store::SqliteStore;

#[async_trait]
impl Stager for SqliteStore {
    fn name(&self) -> &str {
        "sqlite"
    }

    async fn ensure_stream(&self, schema: &StreamSchema) -> Result<()> {
        let schema = schema.clone();
        self.write(move |tx, _| schema::ensure_stream(tx, &schema))
            .await
    }

    async fn begin(
        &self,
        sync: &str,
        schema: Arc<StreamSchema>,
        fence: FenceToken,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        let sync = sync.to_string();
        self.write_with(Commit::Configured, move |tx, _| {
            run::begin(tx, &sync, &schema, fence, &params)
        })
        .await
    }

    async fn stage(&self, run: &StagingRun, batch: RecordBatch) -> Result<Position> {
        let run = run.clone();
        let to = self
            .write_with(Commit::Staging, move |tx, _| stage::stage(tx, &run, &batch))
            .await?;
        self.inner.faults.check(FaultPoint::AfterStage)?;
        Ok(to)
    }

    async fn validate(
        &self,
        run: &StagingRun,
        rules: &ValidationRules,
    ) -> Result<ValidationReport> {
        let (run, rules) = (run.clone(), rules.clone());
        self.write_with(Commit::Staging, move |tx, _| {
            stage::validate(tx, &run, &rules)
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
        self.inner.faults.check(FaultPoint::BeforePromote)?;
        let (run, mode, commit) = (run.clone(), mode.clone(), commit.clone());
        let report = self
            .write_with(Commit::Promote, move |tx, inner| {
                promote::promote(tx, inner, &run, &mode, &commit, close)
            })
            .await?;
        self.inner.faults.check(FaultPoint::AfterCommit)?;
        Ok(report)
    }

    async fn abort(&self, run: &StagingRun) -> Result<()> {
        let run = run.clone();
        self.write_with(Commit::Configured, move |tx, _| {
            run::end(tx, &run::this_run(tx, &run)?)
        })
        .await
    }

    async fn read_target(&self, stream: &str) -> Result<Vec<Row>> {
        let stream = stream.to_string();
        self.with_conn(move |conn, _| {
            let Some(schema) = schema::target_schema(conn, &stream)? else {
                return Ok(Vec::new());
            };
            let mut q = Query::select();
            q.columns(schema.columns().iter().map(|c| sql::id(&c.name)))
                .from(sql::id(&stream));
            for &k in schema.primary_key() {
                q.order_by(sql::id(&schema.columns()[k].name), Order::Asc);
            }
            sql::query_rows(conn, &q, &schema)
        })
        .await
    }

    async fn read_target_keys(&self, stream: &str, keys: &[Key]) -> Result<Vec<Row>> {
        let (stream, keys) = (stream.to_string(), keys.to_vec());
        self.with_conn(move |conn, _| {
            let Some(schema) = schema::target_schema(conn, &stream)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for chunk in keys.chunks(200) {
                let mut q = Query::select();
                q.columns(schema.columns().iter().map(|c| sql::id(&c.name)))
                    .from(sql::id(&stream));
                q.cond_where(sql::keys_in(&schema, chunk));
                out.extend(sql::query_rows(conn, &q, &schema)?);
            }
            out.sort_by_key(|r| r.key(&schema));
            out.dedup_by(|a, b| a.key(&schema) == b.key(&schema));
            Ok(out)
        })
        .await
    }

    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantinedRow>> {
        let sync = sync.to_string();
        self.with_conn(move |conn, _| stage::quarantined(conn, &sync))
            .await
    }
}
