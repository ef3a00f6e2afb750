//! Staging runs as recorded in `_sync_runs`: opening, resuming and ending a run, its staging
//! tables, and the counts the run keeps of what they hold, so validation and promotion never
//! scan staging to learn them.
//!
//! A run stages into two tables. The *row table* has the target's exact shape (columns, NOT
//! NULL, primary key) and holds the rows that can only be promoted: every required value
//! present, one row per key. The *staging table* holds everything else, with bookkeeping
//! columns: rows missing a required value (validation sets them aside), keys to delete, and,
//! once a key arrives twice or validation runs custom rules, every row (the run is *demoted*:
//! its row table is moved into its staging table, which validates and deduplicates rows in
//! SQL as before). A promotion into an empty target renames the row table to the target
//! instead of copying it: a full load writes its rows once.

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
    /// What the staging tables hold, kept by every statement that changes them.
    pub(crate) counts: Counts,
    /// The run stages rows into its row table.
    pub(crate) row_table: bool,
    /// Rows were staged into the row table after the last validation.
    pub(crate) rows_unvalidated: bool,
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

    /// The row table (whether or not the run still has one).
    pub(crate) fn rows_table(&self) -> String {
        format!("{}_rows", self.table())
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
                "row_table",
                "rows_unvalidated",
            ]
            .map(id),
        )
        .from(id(sql::RUNS))
        .and_where(Expr::col(id("sync")).eq(sync))
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    type Raw = (i64, String, String, String, String, String, i64, i64);
    type Raw2 = (i64, i64, i64, Option<String>, bool, bool);
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
                (
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                ),
            ))
        })
        .optional()
        .db()?;
    let Some((raw, (rows, deletes, rejected, nulls, row_table, rows_unvalidated))) = raw else {
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
        row_table,
        rows_unvalidated,
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
                "row_table",
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
            1.into(),
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
    create_rows_table(tx, &format!("{table}_rows"), schema)?;
    Ok(run)
}

/// Creates a row table: the target's `CREATE TABLE` under another name.
pub(crate) fn create_rows_table(
    conn: &Connection,
    name: &str,
    schema: &StreamSchema,
) -> Result<()> {
    let create = crate::schema::target_table(name, schema);
    conn.execute(&create.to_string(SqliteQueryBuilder), [])
        .db()?;
    Ok(())
}

/// Moves the row table's rows into the staging table (as rows to validate) and drops it: from
/// here on the run stages everything into its staging table. The counts stay as they are.
pub(crate) fn demote(tx: &Transaction<'_>, row: &mut RunRow) -> Result<()> {
    if !row.row_table {
        return Ok(());
    }
    let schema = row.run.schema.clone();
    let columns = || schema.columns().iter().map(|c| id(&c.name));
    let mut insert_columns = vec![id(KIND), id(STATE)];
    insert_columns.extend(columns());
    // Keys are unique in the row table: the order the rows move in does not matter.
    let select = Query::select()
        .expr(Expr::val(sql::KIND_ROW))
        .expr(Expr::val(sql::STAGED))
        .columns(columns())
        .from(id(&row.rows_table()))
        .to_owned();
    let insert = Query::insert()
        .into_table(id(&row.table()))
        .columns(insert_columns)
        .select_from(select)
        .map_err(|e| Error::internal("cannot build the demotion statement").with_source(e))?
        .to_owned();
    execute(tx, &insert)?;
    tx.execute(
        &Table::drop()
            .table(id(&row.rows_table()))
            .to_string(SqliteQueryBuilder),
        [],
    )
    .db()?;
    let mark = Query::update()
        .table(id(sql::RUNS))
        .value(id("row_table"), 0)
        .value(id("rows_unvalidated"), 0)
        .and_where(Expr::col(id("id")).eq(row.rowid))
        .to_owned();
    execute(tx, &mark)?;
    row.row_table = false;
    row.rows_unvalidated = false;
    Ok(())
}

/// Drops the run's staging tables and forgets the run.
pub(crate) fn end(tx: &Transaction<'_>, row: &RunRow) -> Result<()> {
    for table in [row.table(), row.rows_table()] {
        tx.execute(
            &Table::drop()
                .table(id(&table))
                .if_exists()
                .to_string(SqliteQueryBuilder),
            [],
        )
        .db()?;
    }
    execute(
        tx,
        &Query::delete()
            .from_table(id(sql::RUNS))
            .and_where(Expr::col(id("id")).eq(row.rowid))
            .to_owned(),
    )?;
    Ok(())
}
