//! Staging runs as recorded in `_sync_runs`: opening, resuming and ending a run, its staging
//! table, and the counts the run keeps of what its staging table holds, so validation and
//! promotion never scan staging to learn them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction};
use sea_query::{
    ColumnDef, Expr, ExprTrait, Index, Query, SqliteQueryBuilder, Table, UpdateStatement,
};
use sea_query_rusqlite::RusqliteBinder;
use sync_core::stager::{new_run_id, StagingRun};
use sync_core::{Error, ErrorKind, FenceToken, Position, Result, StreamSchema};

use crate::error::SqliteResultExt;
use crate::sql::{self, execute, id, staging_table, KIND, REASON, SEQ, STATE};

/// A run as recorded in `_sync_runs`.
pub(crate) struct RunRow {
    pub(crate) rowid: i64,
    pub(crate) run: StagingRun,
    /// Staged rows up to this sequence number have been validated.
    pub(crate) validated_seq: i64,
    /// What the staging table holds, kept by every statement that changes it.
    pub(crate) counts: Counts,
}

/// The contents of a staging table, kept in `_sync_runs` in the transaction that changes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    /// Rows to upsert (`KIND_ROW`), those validation set aside included.
    pub(crate) rows: u64,
    /// Keys to delete (`KIND_DELETE`).
    pub(crate) deletes: u64,
    /// Rows validation set aside (`REJECTED`), moved to the quarantine by the promotion.
    pub(crate) rejected: u64,
    /// Columns holding a NULL in some row staged after the last validation, so validation
    /// looks for missing required values only when one may be there; `None` when unknown
    /// (a run staged by a library before these counts), which makes validation look.
    pub(crate) nulls: Option<Vec<usize>>,
}

impl Counts {
    /// Rows the promotion upserts: staged rows validation did not set aside.
    pub(crate) fn live(&self) -> u64 {
        self.rows.saturating_sub(self.rejected)
    }

    /// Marks the columns of `row` holding a NULL.
    pub(crate) fn note_nulls(&mut self, values: &[sync_core::Value]) {
        if let Some(nulls) = &mut self.nulls {
            for (i, v) in values.iter().enumerate() {
                if v.is_null() && !nulls.contains(&i) {
                    nulls.push(i);
                }
            }
        }
    }

    /// The update writing the counts into the run's row (callers may set more columns).
    pub(crate) fn update(&self, rowid: i64) -> Result<UpdateStatement> {
        let nulls = match &self.nulls {
            Some(n) => Some(serde_json::to_string(n)?),
            None => None,
        };
        Ok(Query::update()
            .table(id(sql::RUNS))
            .value(id("rows_staged"), self.rows as i64)
            .value(id("deletes_staged"), self.deletes as i64)
            .value(id("rows_rejected"), self.rejected as i64)
            .value(id("null_columns"), nulls)
            .and_where(Expr::col(id("id")).eq(rowid))
            .to_owned())
    }
}

impl RunRow {
    pub(crate) fn table(&self) -> String {
        staging_table(self.rowid)
    }
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::CorruptState, "stored staging run is malformed").with_source(e)
}

/// The open run of `sync`, if any.
pub(crate) fn open_run(conn: &Connection, sync: &str) -> Result<Option<RunRow>> {
    let q = Query::select()
        .columns(
            [
                "id",
                "run_id",
                "schema",
                "progress",
                "params",
                "started_at",
                "validated_seq",
                "fence",
                "rows_staged",
                "deletes_staged",
                "rows_rejected",
                "null_columns",
            ]
            .map(id),
        )
        .from(id(sql::RUNS))
        .and_where(Expr::col(id("sync")).eq(sync))
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    type Raw = (i64, String, String, String, String, String, i64, i64);
    type Raw2 = (i64, i64, i64, Option<String>);
    let raw: Option<(Raw, Raw2)> = conn
        .prepare_cached(&text)
        .db()?
        .query_row(&*values.as_params(), |r| {
            Ok((
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ),
                (r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?),
            ))
        })
        .optional()
        .db()?;
    let Some((raw, (rows, deletes, rejected, nulls))) = raw else {
        return Ok(None);
    };
    let (rowid, run_id, schema, progress, params, started_at, validated_seq, fence) = raw;
    let schema: StreamSchema = serde_json::from_str(&schema).map_err(corrupt)?;
    let nulls = match nulls {
        Some(n) => Some(serde_json::from_str(&n).map_err(corrupt)?),
        None => None,
    };
    Ok(Some(RunRow {
        rowid,
        validated_seq,
        counts: Counts {
            rows: rows as u64,
            deletes: deletes as u64,
            rejected: rejected as u64,
            nulls,
        },
        run: StagingRun {
            sync: sync.to_string(),
            run_id,
            schema: Arc::new(schema),
            progress: serde_json::from_str(&progress).map_err(corrupt)?,
            staged_rows: (rows + deletes) as u64,
            params: serde_json::from_str(&params).map_err(corrupt)?,
            resumed: true,
            started_at: DateTime::parse_from_rfc3339(&started_at)
                .map_err(corrupt)?
                .with_timezone(&Utc),
            fence: FenceToken(fence as u64),
        },
    }))
}

/// The open run matching `run` (same sync and run id), or `NotFound`.
pub(crate) fn this_run(conn: &Connection, run: &StagingRun) -> Result<RunRow> {
    match open_run(conn, &run.sync)? {
        Some(r) if r.run.run_id == run.run_id && r.run.fence != run.fence => Err(Error::new(
            ErrorKind::Fenced,
            "a newer writer owns this staging run",
        )
        .with_context("sync", &run.sync)),
        Some(r) if r.run.run_id == run.run_id => Ok(r),
        _ => Err(Error::new(ErrorKind::NotFound, "staging run is not open")
            .with_context("sync", &run.sync)
            .with_context("run_id", &run.run_id)),
    }
}

/// Counts the rows of a staging table by kind and state (used to fill in the counts of runs
/// staged by a library before them).
pub(crate) fn count(
    conn: &Connection,
    table: &str,
    kind: Option<i64>,
    state: Option<i64>,
) -> Result<u64> {
    let mut q = Query::select();
    q.expr(Expr::col(id(SEQ)).count()).from(id(table));
    if let Some(k) = kind {
        q.and_where(Expr::col(id(KIND)).eq(k));
    }
    if let Some(s) = state {
        q.and_where(Expr::col(id(STATE)).eq(s));
    }
    Ok(sql::query_i64(conn, &q)?.unwrap_or(0) as u64)
}

/// The index on the key, kind and state of a staging table. It finds duplicate keys without
/// reading the rows, and serves the key lookups of the scoped replace; kept up as rows are
/// staged (the fill reads its next page meanwhile), so validation never sorts the table.
pub(crate) fn ensure_key_index(
    conn: &Connection,
    table: &str,
    schema: &StreamSchema,
) -> Result<()> {
    let mut index = Index::create();
    index
        .if_not_exists()
        .name(format!("{table}_keys"))
        .table(id(table));
    for &k in schema.primary_key() {
        index.col(id(&schema.columns()[k].name));
    }
    index.col(id(KIND)).col(id(STATE));
    conn.execute(&index.to_string(SqliteQueryBuilder), [])
        .db()?;
    Ok(())
}

pub(crate) fn begin(
    tx: &Transaction<'_>,
    sync: &str,
    schema: &Arc<StreamSchema>,
    fence: FenceToken,
    params: &serde_json::Value,
) -> Result<StagingRun> {
    if let Some(mut existing) = open_run(tx, sync)? {
        if fence < existing.run.fence {
            return Err(
                Error::new(ErrorKind::Fenced, "a newer writer owns this staging run")
                    .with_context("sync", sync),
            );
        }
        let adopt = Query::update()
            .table(id(sql::RUNS))
            .value(id("fence"), fence.0 as i64)
            .and_where(Expr::col(id("id")).eq(existing.rowid))
            .to_owned();
        execute(tx, &adopt)?;
        existing.run.fence = fence;
        return Ok(existing.run);
    }
    let run = StagingRun {
        sync: sync.to_string(),
        run_id: new_run_id(),
        schema: schema.clone(),
        progress: Position::Start,
        staged_rows: 0,
        params: params.clone(),
        resumed: false,
        started_at: Utc::now(),
        fence,
    };
    let insert = Query::insert()
        .into_table(id(sql::RUNS))
        .columns(
            [
                "sync",
                "run_id",
                "stream",
                "schema",
                "progress",
                "params",
                "started_at",
                "fence",
                "null_columns",
            ]
            .map(id),
        )
        .values_panic([
            sync.into(),
            run.run_id.clone().into(),
            schema.name().into(),
            serde_json::to_string(schema.as_ref())?.into(),
            serde_json::to_string(&run.progress)?.into(),
            serde_json::to_string(&run.params)?.into(),
            run.started_at.to_rfc3339().into(),
            (fence.0 as i64).into(),
            "[]".into(),
        ])
        .to_owned();
    execute(tx, &insert)?;
    let table = staging_table(tx.last_insert_rowid());
    let mut create = Table::create();
    create.table(id(&table));
    create.col(ColumnDef::new(id(SEQ)).integer().not_null().primary_key());
    create.col(ColumnDef::new(id(KIND)).integer().not_null());
    create.col(ColumnDef::new(id(STATE)).integer().not_null());
    create.col(ColumnDef::new(id(REASON)).text());
    for c in schema.columns() {
        // Staging holds rows before validation: no NOT NULL here, the quarantine catches them.
        create.col(sql::column_def(&sync_core::Column {
            nullable: true,
            ..c.clone()
        }));
    }
    tx.execute(&create.to_string(SqliteQueryBuilder), []).db()?;
    ensure_key_index(tx, &table, schema)?;
    Ok(run)
}

/// Drops the run's staging table and forgets the run.
pub(crate) fn end(tx: &Transaction<'_>, row: &RunRow) -> Result<()> {
    tx.execute(
        &Table::drop()
            .table(id(&row.table()))
            .if_exists()
            .to_string(SqliteQueryBuilder),
        [],
    )
    .db()?;
    execute(
        tx,
        &Query::delete()
            .from_table(id(sql::RUNS))
            .and_where(Expr::col(id("id")).eq(row.rowid))
            .to_owned(),
    )?;
    Ok(())
}
