//! Checkpoints, fences, the window ledger and the sync log in PostgreSQL. Rows are locked
//! (`FOR UPDATE`) before the compare-and-set, so concurrent writers serialize on them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, LockType, OnConflict, Order, Query};
use sync_core::checkpoint::{
    CheckpointCommit, CheckpointState, FenceToken, LedgerEntry, StoredCheckpoint, SyncLogEntry,
};
use sync_core::{Checkpoint, Error, ErrorKind, Result};
use tokio_postgres::GenericClient;

use crate::error::classify;
use crate::lease;
use crate::sql::{self, execute, id, table};
use crate::store::PostgresStore;

fn corrupt(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(
        ErrorKind::CorruptState,
        format!("stored {what} is malformed"),
    )
    .with_source(e)
}

pub(crate) async fn load<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
    lock: bool,
) -> Result<Option<StoredCheckpoint>> {
    let mut q = Query::select();
    q.columns([id("state"), id("version"), id("updated_at")])
        .from(table(schema, sql::CHECKPOINTS))
        .and_where(Expr::col(id("sync")).eq(sync));
    if lock {
        q.lock(LockType::Update);
    }
    let rows = sql::query(client, &q).await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let state: String = r.try_get(0).map_err(classify)?;
    let version: i64 = r.try_get(1).map_err(classify)?;
    Ok(Some(StoredCheckpoint {
        sync: sync.to_string(),
        state: CheckpointState::from_stored(&state).map_err(|e| e.with_context("sync", sync))?,
        version: u64::try_from(version).map_err(|e| corrupt("checkpoint version", e))?,
        updated_at: r.try_get::<_, DateTime<Utc>>(2).map_err(classify)?,
    }))
}

async fn latest_fence<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
    lock: bool,
) -> Result<Option<FenceToken>> {
    let mut q = Query::select();
    q.column(id("fence"))
        .from(table(schema, sql::FENCES))
        .and_where(Expr::col(id("sync")).eq(sync));
    if lock {
        q.lock(LockType::Update);
    }
    Ok(sql::query_i64(client, &q)
        .await?
        .map(|f| FenceToken(f as u64)))
}

/// Applies a checkpoint commit inside a transaction: the check under row locks, the state, the
/// ledger row (with the rows written and quarantined by a promotion) and the log entries.
pub(crate) async fn apply_commit<C: GenericClient>(
    client: &C,
    schema: &str,
    commit: &CheckpointCommit,
    counts: Option<(u64, u64)>,
) -> Result<u64> {
    let fence = latest_fence(client, schema, &commit.sync, true).await?;
    let stored = load(client, schema, &commit.sync, true).await?;
    commit.check(stored.as_ref(), fence)?;
    let version = commit.expected_version.map_or(1, |v| v + 1);
    let upsert = Query::insert()
        .into_table(table(schema, sql::CHECKPOINTS))
        .columns([id("sync"), id("state"), id("version"), id("updated_at")])
        .values_panic([
            commit.sync.clone().into(),
            commit.state.to_stored().into(),
            (version as i64).into(),
            Utc::now().into(),
        ])
        .on_conflict(
            OnConflict::column(id("sync"))
                .update_columns([id("state"), id("version"), id("updated_at")])
                .to_owned(),
        )
        .to_owned();
    execute(client, &upsert).await?;
    if let Some(entry) = &commit.ledger {
        let mut entry = entry.clone();
        if let Some((written, rejected)) = counts {
            entry.rows_written = written;
            entry.rows_rejected = rejected;
        }
        insert_ledger(client, schema, &entry).await?;
    }
    for entry in &commit.log {
        insert_log(client, schema, entry).await?;
    }
    Ok(version)
}

fn name_of<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_value(v)?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

async fn insert_ledger<C: GenericClient>(client: &C, schema: &str, e: &LedgerEntry) -> Result<()> {
    let stmt = Query::insert()
        .into_table(table(schema, sql::LEDGER))
        .columns(
            [
                "sync",
                "run_id",
                "strategy",
                "low",
                "high",
                "rows_read",
                "rows_written",
                "rows_rejected",
                "duration_ms",
                "status",
                "committed_at",
            ]
            .map(id),
        )
        .values_panic([
            e.sync.clone().into(),
            e.run_id.clone().into(),
            name_of(&e.strategy)?.into(),
            serde_json::to_value(&e.low)?.into(),
            serde_json::to_value(&e.high)?.into(),
            (e.rows_read as i64).into(),
            (e.rows_written as i64).into(),
            (e.rows_rejected as i64).into(),
            (e.duration_ms as i64).into(),
            name_of(&e.status)?.into(),
            e.committed_at.into(),
        ])
        .to_owned();
    execute(client, &stmt).await.map(drop)
}

pub(crate) async fn insert_log<C: GenericClient>(
    client: &C,
    schema: &str,
    e: &SyncLogEntry,
) -> Result<()> {
    let stmt = Query::insert()
        .into_table(table(schema, sql::LOG))
        .columns(["sync", "run_id", "at", "level", "event", "message"].map(id))
        .values_panic([
            e.sync.clone().into(),
            e.run_id.clone().into(),
            e.at.into(),
            name_of(&e.level)?.into(),
            e.event.clone().into(),
            e.message.clone().into(),
        ])
        .to_owned();
    execute(client, &stmt).await.map(drop)
}

fn parse<T: serde::de::DeserializeOwned>(text: String) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| corrupt("ledger row", e))
}

#[async_trait]
impl Checkpoint for PostgresStore {
    async fn load(&self, sync: &str) -> Result<Option<StoredCheckpoint>> {
        let client = self.client().await?;
        load(&**client, &self.schema, sync, false).await
    }

    async fn acquire_fence(&self, sync: &str) -> Result<FenceToken> {
        let schema = self.schema.clone();
        let Some(lease) = &self.lease else {
            return self
                .transact(move |tx| {
                    let (schema, sync) = (schema.clone(), sync.to_string());
                    Box::pin(async move { lease::acquire_unleased(tx, &schema, &sync).await })
                })
                .await;
        };
        let (me, length) = (lease.holder().await?, lease.length);
        self.transact(move |tx| {
            let (schema, sync) = (schema.clone(), sync.to_string());
            Box::pin(async move { lease::acquire(tx, &schema, &sync, length, me).await })
        })
        .await
    }

    async fn commit(&self, commit: &CheckpointCommit) -> Result<u64> {
        let (schema, held_for) = (self.schema.clone(), self.lease_length());
        self.transact(move |tx| {
            let schema = schema.clone();
            let commit = commit.clone();
            Box::pin(async move {
                lease::hold(tx, &schema, &commit.sync, commit.fence, held_for).await?;
                apply_commit(tx, &schema, &commit, None).await
            })
        })
        .await
    }

    async fn ledger(&self, sync: &str) -> Result<Vec<LedgerEntry>> {
        let q = Query::select()
            .columns(
                [
                    "run_id",
                    "strategy",
                    "low",
                    "high",
                    "rows_read",
                    "rows_written",
                    "rows_rejected",
                    "duration_ms",
                    "status",
                    "committed_at",
                ]
                .map(id),
            )
            .from(table(&self.schema, sql::LEDGER))
            .and_where(Expr::col(id("sync")).eq(sync))
            .order_by(id("id"), Order::Asc)
            .to_owned();
        let client = self.client().await?;
        let rows = sql::query(&**client, &q).await?;
        rows.iter()
            .map(|r| {
                let n = |i: usize| -> Result<u64> {
                    Ok(r.try_get::<_, i64>(i).map_err(classify)? as u64)
                };
                let s =
                    |i: usize| -> Result<String> { r.try_get::<_, String>(i).map_err(classify) };
                let j = |i: usize| -> Result<serde_json::Value> {
                    r.try_get::<_, serde_json::Value>(i).map_err(classify)
                };
                Ok(LedgerEntry {
                    sync: sync.to_string(),
                    run_id: s(0)?,
                    strategy: parse(s(1)?)?,
                    low: serde_json::from_value(j(2)?).map_err(|e| corrupt("ledger row", e))?,
                    high: serde_json::from_value(j(3)?).map_err(|e| corrupt("ledger row", e))?,
                    rows_read: n(4)?,
                    rows_written: n(5)?,
                    rows_rejected: n(6)?,
                    duration_ms: n(7)?,
                    status: parse(s(8)?)?,
                    committed_at: r.try_get(9).map_err(classify)?,
                })
            })
            .collect()
    }

    async fn append_log(&self, entry: &SyncLogEntry) -> Result<()> {
        let Some(lease) = &self.lease else {
            let client = self.client().await?;
            return insert_log(&**client, &self.schema, entry).await;
        };
        // The run's start binds it to its lease, its end releases the lease.
        let (schema, me, length) = (
            self.schema.clone(),
            lease.current_holder().await,
            lease.length,
        );
        self.transact(move |tx| {
            let (schema, entry) = (schema.clone(), entry.clone());
            Box::pin(async move {
                insert_log(tx, &schema, &entry).await?;
                lease::on_log(tx, &schema, &entry, me, length).await
            })
        })
        .await
    }

    async fn sync_log(&self, sync: &str, limit: usize) -> Result<Vec<SyncLogEntry>> {
        let q = Query::select()
            .columns(["run_id", "at", "level", "event", "message"].map(id))
            .from(table(&self.schema, sql::LOG))
            .and_where(Expr::col(id("sync")).eq(sync))
            .order_by(id("id"), Order::Desc)
            .limit(limit.min(i64::MAX as usize) as u64)
            .to_owned();
        let client = self.client().await?;
        let rows = sql::query(&**client, &q).await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let s =
                    |i: usize| -> Result<String> { r.try_get::<_, String>(i).map_err(classify) };
                Ok(SyncLogEntry {
                    sync: sync.to_string(),
                    run_id: s(0)?,
                    at: r.try_get(1).map_err(classify)?,
                    level: serde_json::from_value(serde_json::Value::String(s(2)?))
                        .map_err(|e| corrupt("log entry", e))?,
                    event: s(3)?,
                    message: s(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    async fn reset(&self, sync: &str, fence: FenceToken) -> Result<()> {
        let (schema, leased) = (self.schema.clone(), self.lease.is_some());
        self.transact(move |tx| {
            let (schema, sync) = (schema.clone(), sync.to_string());
            Box::pin(async move {
                if latest_fence(tx, &schema, &sync, true).await? != Some(fence) {
                    return Err(Error::new(ErrorKind::Fenced, "fencing token is stale")
                        .with_context("sync", &sync));
                }
                let delete = Query::delete()
                    .from_table(table(&schema, sql::CHECKPOINTS))
                    .and_where(Expr::col(id("sync")).eq(sync.as_str()))
                    .to_owned();
                execute(tx, &delete).await?;
                if leased {
                    // A reset outside a run took the lease for this call alone.
                    lease::release_unbound(tx, &schema, &sync, fence).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn release_fence(&self, sync: &str, fence: FenceToken) -> Result<()> {
        if self.lease.is_none() {
            return Ok(());
        }
        let schema = self.schema.clone();
        self.transact(move |tx| {
            let (schema, sync) = (schema.clone(), sync.to_string());
            Box::pin(async move { lease::release(tx, &schema, &sync, fence).await })
        })
        .await
    }
}
