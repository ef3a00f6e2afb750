//! Staging runs: one staging table per run, bulk loaded with a prepared statement in one
//! transaction per batch together with the run's progress, and validated in SQL.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::types::{ToSql, ToSqlOutput};
use rusqlite::{Connection, OptionalExtension, Transaction};
use sea_query::{
    ColumnDef, Expr, ExprTrait, Index, Order, OverStatement, Query, SqliteQueryBuilder, Table,
    WindowStatement,
};
use sea_query_rusqlite::RusqliteBinder;
use sync_core::stager::{
    new_run_id, QuarantinedRow, StagingRun, ValidationReport, ValidationRules,
};
use sync_core::{
    Error, ErrorKind, FenceToken, Position, RecordBatch, Result, Row, StreamSchema, Value,
};

use crate::error::SqliteResultExt;
use crate::sql::{
    self, execute, id, staging_table, KIND, KIND_DELETE, KIND_ROW, REASON, REJECTED, SEQ, STAGED,
    STATE,
};

/// A run as recorded in `_sync_runs`.
pub(crate) struct RunRow {
    pub(crate) rowid: i64,
    pub(crate) run: StagingRun,
    /// Staged rows up to this sequence number have been validated.
    pub(crate) validated_seq: i64,
}

impl RunRow {
    pub(crate) fn table(&self) -> String {
        staging_table(self.rowid)
    }
}

/// A value bound to a prepared statement without copying text or bytes.
struct Cell<'a>(&'a Value);

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(sql::to_sql(self.0))
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
            ]
            .map(id),
        )
        .from(id(sql::RUNS))
        .and_where(Expr::col(id("sync")).eq(sync))
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    type Raw = (i64, String, String, String, String, String, i64, i64);
    let raw: Option<Raw> = conn
        .query_row(&text, &*values.as_params(), |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()
        .db()?;
    let Some((rowid, run_id, schema, progress, params, started_at, validated_seq, fence)) = raw
    else {
        return Ok(None);
    };
    let schema: StreamSchema = serde_json::from_str(&schema).map_err(corrupt)?;
    Ok(Some(RunRow {
        rowid,
        validated_seq,
        run: StagingRun {
            sync: sync.to_string(),
            run_id,
            schema: Arc::new(schema),
            progress: serde_json::from_str(&progress).map_err(corrupt)?,
            staged_rows: 0,
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

fn count(conn: &Connection, table: &str, kind: Option<i64>, state: Option<i64>) -> Result<u64> {
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
        existing.run.staged_rows = count(tx, &existing.table(), None, None)?;
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
    Ok(run)
}

pub(crate) fn stage(
    tx: &Transaction<'_>,
    run: &StagingRun,
    batch: &RecordBatch,
) -> Result<Position> {
    let row = this_run(tx, run)?;
    batch
        .delta()
        .try_apply(&row.run.progress)
        .map_err(|e| e.with_context("sync", &run.sync))?;
    let schema = &row.run.schema;
    if batch.schema().columns() != schema.columns() {
        return Err(
            Error::invalid_input("batch schema differs from the staging run's")
                .with_context("sync", &run.sync),
        );
    }
    let table = row.table();
    let mut cols = vec![id(KIND), id(STATE)];
    cols.extend(schema.columns().iter().map(|c| id(&c.name)));
    let placeholders: Vec<Expr> = (0..cols.len()).map(|_| Expr::val(0)).collect();
    let (insert, _) = Query::insert()
        .into_table(id(&table))
        .columns(cols)
        .values_panic(placeholders)
        .to_owned()
        .build_rusqlite(SqliteQueryBuilder);
    let mut stmt = tx.prepare_cached(&insert).db()?;
    let (kind_row, staged) = (Value::Integer(KIND_ROW), Value::Integer(STAGED));
    for r in batch.rows() {
        let cells = [&kind_row, &staged].into_iter().chain(r.values()).map(Cell);
        stmt.execute(rusqlite::params_from_iter(cells)).db()?;
    }
    let kind_delete = Value::Integer(KIND_DELETE);
    for key in batch.deletes() {
        let mut values: Vec<&Value> = vec![&kind_delete, &staged];
        let mut key_values = key.0.iter();
        for (i, _) in schema.columns().iter().enumerate() {
            values.push(if schema.primary_key().contains(&i) {
                key_values.next().unwrap_or(&Value::Null)
            } else {
                &Value::Null
            });
        }
        stmt.execute(rusqlite::params_from_iter(values.into_iter().map(Cell)))
            .db()?;
    }
    let progress = Query::update()
        .table(id(sql::RUNS))
        .value(id("progress"), serde_json::to_string(&batch.delta().to)?)
        .and_where(Expr::col(id("id")).eq(row.rowid))
        .to_owned();
    execute(tx, &progress)?;
    Ok(batch.delta().to.clone())
}

/// Reads staged rows (with their staging sequence) matching `filter`.
fn staged_rows(
    conn: &Connection,
    table: &str,
    schema: &StreamSchema,
    filter: Expr,
) -> Result<Vec<(i64, Row)>> {
    let mut q = Query::select();
    q.column(id(SEQ))
        .columns(schema.columns().iter().map(|c| id(&c.name)))
        .from(id(table));
    q.and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).eq(STAGED))
        .and_where(filter);
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let mut stmt = conn.prepare(&text).db()?;
    let mut rows = stmt.query(&*values.as_params()).db()?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        let seq: i64 = r.get(0).db()?;
        let cells = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| sql::from_sql(c, r.get_ref(i + 1).db()?))
            .collect::<Result<Vec<_>>>()?;
        out.push((seq, Row::new(cells)));
    }
    Ok(out)
}

/// Sets staged rows matching `filter` aside with `reason`; returns how many.
fn reject(tx: &Transaction<'_>, table: &str, filter: Expr, reason: &str) -> Result<u64> {
    let stmt = Query::update()
        .table(id(table))
        .value(id(STATE), REJECTED)
        .value(id(REASON), reason)
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).eq(STAGED))
        .and_where(filter)
        .to_owned();
    Ok(execute(tx, &stmt)? as u64)
}

pub(crate) fn validate(
    tx: &Transaction<'_>,
    run: &StagingRun,
    rules: &ValidationRules,
) -> Result<ValidationReport> {
    let row = this_run(tx, run)?;
    let (schema, table) = (row.run.schema.clone(), row.table());
    let fresh = || Expr::col(id(SEQ)).gt(row.validated_seq);
    let missing = |c: usize| format!("missing required field {:?}", schema.columns()[c].name);
    let mut required: Vec<(usize, String)> = schema.required().map(|c| (c, missing(c))).collect();
    for &c in &rules.require {
        required.push((
            c,
            rules.require_reason.clone().unwrap_or_else(|| missing(c)),
        ));
    }
    let mut quarantined = 0;
    // One scan finds out whether any new row lacks a required value (rarely); only then is
    // each column's reason written.
    let any_null = required
        .iter()
        .map(|(c, _)| Expr::col(id(&schema.columns()[*c].name)).is_null())
        .reduce(|a, b| a.or(b));
    if let Some(any_null) = any_null {
        let probe = Query::select()
            .expr(Expr::val(1))
            .from(id(&table))
            .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
            .and_where(fresh())
            .and_where(any_null)
            .limit(1)
            .to_owned();
        if sql::query_i64(tx, &probe)?.is_some() {
            for (c, reason) in &required {
                let null = Expr::col(id(&schema.columns()[*c].name)).is_null();
                quarantined += reject(tx, &table, null.and(fresh()), reason)?;
            }
        }
    }
    if !rules.rules.is_empty() {
        for (seq, r) in staged_rows(tx, &table, &schema, fresh())? {
            let failed = rules.rules.iter().find_map(|rule| {
                rule.check(&schema, &r)
                    .err()
                    .map(|e| format!("{}: {e}", rule.name()))
            });
            if let Some(reason) = failed {
                quarantined += reject(tx, &table, Expr::col(id(SEQ)).eq(seq), &reason)?;
            }
        }
    }
    // The key index serves the duplicate check here and the key lookups of the promotion;
    // built once the first batch is in, it is cheaper than maintaining it row by row.
    let mut index = Index::create();
    index
        .if_not_exists()
        .name(format!("{table}_key"))
        .table(id(&table));
    for &k in schema.primary_key() {
        index.col(id(&schema.columns()[k].name));
    }
    tx.execute(&index.to_string(SqliteQueryBuilder), []).db()?;
    // One row per key: the newest by the version guard, the last staged on ties.
    let key_cols = || {
        schema
            .primary_key()
            .iter()
            .map(|&k| id(&schema.columns()[k].name))
    };
    let live = || {
        Expr::col(id(KIND))
            .eq(KIND_ROW)
            .and(Expr::col(id(STATE)).ne(REJECTED))
    };
    let dup_probe = Query::select()
        .expr(Expr::val(1))
        .from(id(&table))
        .and_where(live())
        .group_by_columns(key_cols())
        .and_having(Expr::col(id(SEQ)).count().gt(1))
        .limit(1)
        .to_owned();
    let mut duplicates = 0;
    if sql::query_i64(tx, &dup_probe)?.is_some() {
        let mut window = WindowStatement::new();
        OverStatement::partition_by_columns(&mut window, key_cols());
        for &g in schema.guard() {
            window.order_by(id(&schema.columns()[g].name), Order::Desc);
        }
        window.order_by(id(SEQ), Order::Desc);
        let ranked = Query::select()
            .column(id(SEQ))
            .expr_window_as(Expr::cust("ROW_NUMBER()"), window, id("rn"))
            .from(id(&table))
            .and_where(live())
            .to_owned();
        let losers = Query::select()
            .column(id(SEQ))
            .from_subquery(ranked, id("ranked"))
            .and_where(Expr::col(id("rn")).gt(1))
            .to_owned();
        let delete = Query::delete()
            .from_table(id(&table))
            .and_where(Expr::col(id(SEQ)).in_subquery(losers))
            .to_owned();
        duplicates = execute(tx, &delete)? as u64;
    }
    let high = Query::select()
        .expr(Expr::col(id(SEQ)).max())
        .from(id(&table))
        .to_owned();
    let high = Ord::max(sql::query_i64(tx, &high)?.unwrap_or(0), row.validated_seq);
    let mark = Query::update()
        .table(id(sql::RUNS))
        .value(id("validated_seq"), high)
        .and_where(Expr::col(id("id")).eq(row.rowid))
        .to_owned();
    execute(tx, &mark)?;
    let valid = count_live(tx, &table)?;
    Ok(ValidationReport {
        valid,
        duplicates_dropped: duplicates,
        quarantined,
    })
}

/// Rows to upsert: staged rows that validation did not set aside.
pub(crate) fn count_live(conn: &Connection, table: &str) -> Result<u64> {
    let q = Query::select()
        .expr(Expr::col(id(SEQ)).count())
        .from(id(table))
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).ne(REJECTED))
        .to_owned();
    Ok(sql::query_i64(conn, &q)?.unwrap_or(0) as u64)
}

/// True when rows were staged after the last validation.
pub(crate) fn has_unvalidated(conn: &Connection, row: &RunRow) -> Result<bool> {
    let q = Query::select()
        .expr(Expr::val(1))
        .from(id(&row.table()))
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(SEQ)).gt(row.validated_seq))
        .limit(1)
        .to_owned();
    Ok(sql::query_i64(conn, &q)?.is_some())
}

/// Moves the rows validation set aside into the quarantine table; returns how many.
pub(crate) fn quarantine_rejected(
    tx: &Transaction<'_>,
    run: &StagingRun,
    table: &str,
    schema: &StreamSchema,
) -> Result<u64> {
    let mut q = Query::select();
    q.column(id(REASON))
        .columns(schema.columns().iter().map(|c| id(&c.name)))
        .from(id(table));
    q.and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).eq(REJECTED))
        .order_by(id(SEQ), Order::Asc);
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let mut stmt = tx.prepare(&text).db()?;
    let mut rows = stmt.query(&*values.as_params()).db()?;
    let now = Utc::now().to_rfc3339();
    let mut moved = 0;
    while let Some(r) = rows.next().db()? {
        let reason: String = r.get(0).db()?;
        let cells = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| sql::from_sql(c, r.get_ref(i + 1).db()?))
            .collect::<Result<Vec<_>>>()?;
        let insert = Query::insert()
            .into_table(id(sql::QUARANTINE))
            .columns(["sync", "run_id", "row", "reason", "at"].map(id))
            .values_panic([
                run.sync.clone().into(),
                run.run_id.clone().into(),
                serde_json::to_string(&Row::new(cells))?.into(),
                reason.into(),
                now.clone().into(),
            ])
            .to_owned();
        execute(tx, &insert)?;
        moved += 1;
    }
    Ok(moved)
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

pub(crate) fn quarantined(conn: &Connection, sync: &str) -> Result<Vec<QuarantinedRow>> {
    let q = Query::select()
        .columns(["run_id", "row", "reason"].map(id))
        .from(id(sql::QUARANTINE))
        .and_where(Expr::col(id("sync")).eq(sync))
        .order_by(id("id"), Order::Asc)
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let mut stmt = conn.prepare(&text).db()?;
    let mut rows = stmt.query(&*values.as_params()).db()?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        let row: String = r.get(1).db()?;
        out.push(QuarantinedRow {
            sync: sync.to_string(),
            run_id: r.get(0).db()?,
            row: serde_json::from_str(&row).map_err(corrupt)?,
            reason: r.get(2).db()?,
        });
    }
    Ok(out)
}
