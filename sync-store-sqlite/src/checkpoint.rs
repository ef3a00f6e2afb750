//! Checkpoints, fences, the window ledger and the sync log in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction};
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SqliteQueryBuilder};
use sea_query_rusqlite::RusqliteBinder;
use sync_core::checkpoint::{
    CheckpointCommit, CheckpointState, FenceToken, LedgerEntry, StoredCheckpoint, SyncLogEntry,
};
use sync_core::{Checkpoint, Error, ErrorKind, Result};

use crate::error::SqliteResultExt;
use crate::sql::{self, execute, id};
use crate::store::{Commit, SqliteStore};

fn corrupt(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(
        ErrorKind::CorruptState,
        format!("stored {what} is malformed"),
    )
    .with_source(e)
}

pub(crate) fn load(conn: &Connection, sync: &str) -> Result<Option<StoredCheckpoint>> {
    let q = Query::select()
        .columns([id("state"), id("version"), id("updated_at")])
        .from(id(sql::CHECKPOINTS))
        .and_where(Expr::col(id("sync")).eq(sync))
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let row: Option<(String, i64, String)> = conn
        .query_row(&text, &*values.as_params(), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .db()?;
    row.map(|(state, version, at)| {
        Ok(StoredCheckpoint {
            sync: sync.to_string(),
            state: CheckpointState::from_stored(&state)
                .map_err(|e| e.with_context("sync", sync))?,
            version: u64::try_from(version).map_err(|e| corrupt("checkpoint version", e))?,
            updated_at: DateTime::parse_from_rfc3339(&at)
                .map_err(|e| corrupt("checkpoint time", e))?
                .with_timezone(&Utc),
        })
    })
    .transpose()
}

fn latest_fence(conn: &Connection, sync: &str) -> Result<Option<FenceToken>> {
    let q = Query::select()
        .column(id("fence"))
        .from(id(sql::FENCES))
        .and_where(Expr::col(id("sync")).eq(sync))
        .to_owned();
    Ok(sql::query_i64(conn, &q)?.map(|f| FenceToken(f as u64)))
}

/// Applies a checkpoint commit inside `tx`: the check, the state, the ledger row (with the
/// rows written and quarantined when the commit comes from a promotion) and the log entries.
pub(crate) fn apply_commit(
    tx: &Transaction<'_>,
    commit: &CheckpointCommit,
    counts: Option<(u64, u64)>,
) -> Result<u64> {
    let stored = load(tx, &commit.sync)?;
    commit.check(stored.as_ref(), latest_fence(tx, &commit.sync)?)?;
    let version = commit.expected_version.map_or(1, |v| v + 1);
    let now = Utc::now().to_rfc3339();
    let upsert = Query::insert()
        .into_table(id(sql::CHECKPOINTS))
        .columns([id("sync"), id("state"), id("version"), id("updated_at")])
        .values_panic([
            commit.sync.clone().into(),
            commit.state.to_stored().into(),
            (version as i64).into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::column(id("sync"))
                .update_columns([id("state"), id("version"), id("updated_at")])
                .to_owned(),
        )
        .to_owned();
    execute(tx, &upsert)?;
    if let Some(entry) = &commit.ledger {
        let mut entry = entry.clone();
        if let Some((written, rejected)) = counts {
            entry.rows_written = written;
            entry.rows_rejected = rejected;
        }
        insert_ledger(tx, &entry)?;
    }
    for entry in &commit.log {
        insert_log(tx, entry)?;
    }
    Ok(version)
}

fn insert_ledger(tx: &Transaction<'_>, e: &LedgerEntry) -> Result<()> {
    let json = |v| serde_json::to_string(v).expect("positions serialize");
    let stmt = Query::insert()
        .into_table(id(sql::LEDGER))
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
            serde_json::to_value(e.strategy)?
                .as_str()
                .unwrap_or_default()
                .to_string()
                .into(),
            json(&e.low).into(),
            json(&e.high).into(),
            (e.rows_read as i64).into(),
            (e.rows_written as i64).into(),
            (e.rows_rejected as i64).into(),
            (e.duration_ms as i64).into(),
            serde_json::to_value(e.status)?
                .as_str()
                .unwrap_or_default()
                .to_string()
                .into(),
            e.committed_at.to_rfc3339().into(),
        ])
        .to_owned();
    execute(tx, &stmt).map(drop)
}

pub(crate) fn insert_log(conn: &Connection, e: &SyncLogEntry) -> Result<()> {
    let stmt = Query::insert()
        .into_table(id(sql::LOG))
        .columns(["sync", "run_id", "at", "level", "event", "message"].map(id))
        .values_panic([
            e.sync.clone().into(),
            e.run_id.clone().into(),
            e.at.to_rfc3339().into(),
            serde_json::to_value(e.level)?
                .as_str()
                .unwrap_or_default()
                .to_string()
                .into(),
            e.event.clone().into(),
            e.message.clone().into(),
        ])
        .to_owned();
    execute(conn, &stmt).map(drop)
}

fn read_ledger(conn: &Connection, sync: &str) -> Result<Vec<LedgerEntry>> {
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
        .from(id(sql::LEDGER))
        .and_where(Expr::col(id("sync")).eq(sync))
        .order_by(id("id"), Order::Asc)
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let mut stmt = conn.prepare(&text).db()?;
    let mut rows = stmt.query(&*values.as_params()).db()?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        let s = |i: usize| -> Result<String> { r.get::<_, String>(i).db() };
        let n = |i: usize| -> Result<u64> { Ok(r.get::<_, i64>(i).db()? as u64) };
        fn parse<T: serde::de::DeserializeOwned>(t: String) -> Result<T> {
            serde_json::from_value(serde_json::Value::String(t))
                .map_err(|e| corrupt("ledger row", e))
        }
        out.push(LedgerEntry {
            sync: sync.to_string(),
            run_id: s(0)?,
            strategy: parse(s(1)?)?,
            low: serde_json::from_str(&s(2)?).map_err(|e| corrupt("ledger row", e))?,
            high: serde_json::from_str(&s(3)?).map_err(|e| corrupt("ledger row", e))?,
            rows_read: n(4)?,
            rows_written: n(5)?,
            rows_rejected: n(6)?,
            duration_ms: n(7)?,
            status: parse(s(8)?)?,
            committed_at: DateTime::parse_from_rfc3339(&s(9)?)
                .map_err(|e| corrupt("ledger row", e))?
                .with_timezone(&Utc),
        });
    }
    Ok(out)
}

fn read_log(conn: &Connection, sync: &str, limit: usize) -> Result<Vec<SyncLogEntry>> {
    let q = Query::select()
        .columns(["run_id", "at", "level", "event", "message"].map(id))
        .from(id(sql::LOG))
        .and_where(Expr::col(id("sync")).eq(sync))
        .order_by(id("id"), Order::Desc)
        .limit(limit.min(i64::MAX as usize) as u64)
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let mut stmt = conn.prepare(&text).db()?;
    let mut rows = stmt.query(&*values.as_params()).db()?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        let s = |i: usize| -> Result<String> { r.get::<_, String>(i).db() };
        out.push(SyncLogEntry {
            sync: sync.to_string(),
            run_id: s(0)?,
            at: DateTime::parse_from_rfc3339(&s(1)?)
                .map_err(|e| corrupt("log entry", e))?
                .with_timezone(&Utc),
            level: serde_json::from_value(serde_json::Value::String(s(2)?))
                .map_err(|e| corrupt("log entry", e))?,
            event: s(3)?,
            message: s(4)?,
        });
    }
    out.reverse();
    Ok(out)
}

#[async_trait]
impl Checkpoint for SqliteStore {
    async fn load(&self, sync: &str) -> Result<Option<StoredCheckpoint>> {
        let sync = sync.to_string();
        self.with_conn(move |conn, _| load(conn, &sync)).await
    }

    async fn acquire_fence(&self, sync: &str) -> Result<FenceToken> {
        let sync = sync.to_string();
        self.write(move |tx, _| {
            let next = latest_fence(tx, &sync)?.map_or(1, |f| f.0 + 1);
            let stmt = Query::insert()
                .into_table(id(sql::FENCES))
                .columns([id("sync"), id("fence")])
                .values_panic([sync.clone().into(), (next as i64).into()])
                .on_conflict(
                    OnConflict::column(id("sync"))
                        .update_column(id("fence"))
                        .to_owned(),
                )
                .to_owned();
            execute(tx, &stmt)?;
            Ok(FenceToken(next))
        })
        .await
    }

    async fn commit(&self, commit: &CheckpointCommit) -> Result<u64> {
        let commit = commit.clone();
        self.write(move |tx, _| apply_commit(tx, &commit, None))
            .await
    }

    async fn ledger(&self, sync: &str) -> Result<Vec<LedgerEntry>> {
        let sync = sync.to_string();
        self.with_conn(move |conn, _| read_ledger(conn, &sync))
            .await
    }

    async fn append_log(&self, entry: &SyncLogEntry) -> Result<()> {
        let entry = entry.clone();
        // At the configured durability: a log entry a power loss takes is about a window
        // that went with it, and that the next run logs again.
        self.write_with(Commit::Configured, move |tx, _| insert_log(tx, &entry))
            .await
    }

    async fn sync_log(&self, sync: &str, limit: usize) -> Result<Vec<SyncLogEntry>> {
        let sync = sync.to_string();
        self.with_conn(move |conn, _| read_log(conn, &sync, limit))
            .await
    }

    async fn reset(&self, sync: &str, fence: FenceToken) -> Result<()> {
        let sync = sync.to_string();
        self.write(move |tx, _| {
            if latest_fence(tx, &sync)? != Some(fence) {
                return Err(Error::new(ErrorKind::Fenced, "fencing token is stale")
                    .with_context("sync", &sync));
            }
            execute(
                tx,
                &Query::delete()
                    .from_table(id(sql::CHECKPOINTS))
                    .and_where(Expr::col(id("sync")).eq(sync.as_str()))
                    .to_owned(),
            )?;
            Ok(())
        })
        .await
    }
}
