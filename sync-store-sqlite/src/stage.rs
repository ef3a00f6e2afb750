//! Staging: batches loaded with prepared multi-row inserts in one transaction per batch
//! together with the run's progress and counts, validated in SQL, and the rows validation set
//! aside moved to the quarantine.

use chrono::Utc;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Transaction};
use sea_query::{
    Expr, ExprTrait, Order, OverStatement, Query, SelectStatement, SqliteQueryBuilder,
    WindowStatement,
};
use sea_query_rusqlite::RusqliteBinder;
use sync_core::stager::{QuarantinedRow, StagingRun, ValidationReport, ValidationRules};
use sync_core::{Error, ErrorKind, Position, RecordBatch, Result, Row, StreamSchema, Value};

use crate::error::SqliteResultExt;
use crate::run::{demote, ensure_key_index, this_run, RunRow};
use crate::sql::{
    self, execute, id, KIND, KIND_DELETE, KIND_ROW, REASON, REJECTED, SEQ, STAGED, STATE,
};

/// Rows per multi-row insert: fewer statement executions per batch, well under SQLite's
/// limit of bound parameters for any reasonable width.
const ROWS_PER_INSERT: usize = 64;
/// SQLite accepts at most 32766 bound parameters in one statement.
const MAX_PARAMS: usize = 32_000;

/// A value bound to a prepared statement without allocating: text and bytes are borrowed,
/// timestamps and decimals formatted into the cell (SQLite copies bound text at once).
enum Cell<'a> {
    Value(&'a Value),
    Text(Inline),
}

/// Short text kept inline.
struct Inline {
    buf: [u8; 64],
    len: usize,
}

impl<'a> Cell<'a> {
    fn of(v: &'a Value) -> Self {
        let text = || Inline {
            buf: [0; 64],
            len: 0,
        };
        match v {
            Value::Timestamp(t) => match sql::timestamp_bytes(t) {
                Some(b) => {
                    let mut t = text();
                    t.buf[..b.len()].copy_from_slice(&b);
                    t.len = b.len();
                    Cell::Text(t)
                }
                None => Cell::Value(v),
            },
            Value::Decimal(d) => {
                let mut t = text();
                t.len = sql::decimal_bytes(d, &mut t.buf);
                Cell::Text(t)
            }
            _ => Cell::Value(v),
        }
    }
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Value(v) => sql::to_sql(v),
            Cell::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(&t.buf[..t.len])),
        })
    }
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::CorruptState, "stored staging run is malformed").with_source(e)
}

/// `INSERT INTO table (prefix…, columns…) VALUES (?, …), …` for `rows` rows.
fn insert_sql(table: &str, prefix: &[&str], schema: &StreamSchema, rows: usize) -> String {
    let mut cols: Vec<_> = prefix.iter().map(|c| id(c)).collect();
    cols.extend(schema.columns().iter().map(|c| id(&c.name)));
    let width = cols.len();
    let mut insert = Query::insert();
    insert.into_table(id(table)).columns(cols);
    for _ in 0..rows {
        insert.values_panic((0..width).map(|_| Expr::val(0)));
    }
    insert.build_rusqlite(SqliteQueryBuilder).0
}

/// Inserts `rows` into `table`, each after the values of the `prefix` columns: whole chunks
/// through one prepared multi-row statement, the rest one by one. On an error the rows before
/// the failing statement stay inserted; the index of that statement's first row is returned
/// with the error, and the statement itself changed nothing (SQLite rolls it back).
fn insert_rows<'a>(
    tx: &Transaction<'_>,
    table: &str,
    prefix: (&[&str], &'a [&'a Value]),
    schema: &StreamSchema,
    rows: &[&'a Row],
) -> std::result::Result<(), (usize, Error)> {
    let width = schema.columns().len() + prefix.0.len();
    let per_insert = ROWS_PER_INSERT.min(MAX_PARAMS / width).max(1);
    let split = if per_insert > 1 {
        rows.len() - rows.len() % per_insert
    } else {
        0
    };
    let cells = |r: &&'a Row| prefix.1.iter().copied().chain(r.values());
    if split > 0 {
        let mut many = tx
            .prepare_cached(&insert_sql(table, prefix.0, schema, per_insert))
            .db()
            .map_err(|e| (0, e))?;
        for (i, chunk) in rows[..split].chunks(per_insert).enumerate() {
            let values = chunk.iter().flat_map(cells).map(Cell::of);
            many.execute(rusqlite::params_from_iter(values))
                .db()
                .map_err(|e| (i * per_insert, e))?;
        }
    }
    let mut one = tx
        .prepare_cached(&insert_sql(table, prefix.0, schema, 1))
        .db()
        .map_err(|e| (split, e))?;
    for (i, r) in rows[split..].iter().enumerate() {
        let values = cells(r).map(Cell::of);
        one.execute(rusqlite::params_from_iter(values))
            .db()
            .map_err(|e| (split + i, e))?;
    }
    Ok(())
}

pub(crate) fn stage(
    tx: &Transaction<'_>,
    run: &StagingRun,
    batch: &RecordBatch,
) -> Result<Position> {
    let mut row = this_run(tx, run)?;
    batch
        .delta()
        .try_apply(&row.run.progress)
        .map_err(|e| e.with_context("sync", &run.sync))?;
    let schema = row.run.schema.clone();
    if batch.schema().columns() != schema.columns() {
        return Err(
            Error::invalid_input("batch schema differs from the staging run's")
                .with_context("sync", &run.sync),
        );
    }
    let rows = batch.rows();
    for r in rows {
        row.counts.note_nulls(r.values());
    }
    // Rows with every required value go to the row table while the run has one; the others
    // to the staging table, where validation sets them aside.
    let required: Vec<usize> = schema.required().collect();
    let complete = |r: &&Row| required.iter().all(|&c| !r.get(c).is_null());
    let (mut classic, mut clean): (Vec<&Row>, Vec<&Row>) = (Vec::new(), Vec::new());
    if row.row_table {
        for r in rows {
            if complete(&r) {
                clean.push(r);
            } else {
                classic.push(r);
            }
        }
        if !clean.is_empty() {
            row.rows_unvalidated = true;
        }
        if let Err((at, e)) = insert_rows(tx, &row.rows_table(), (&[], &[]), &schema, &clean) {
            if e.kind() != ErrorKind::Conflict {
                return Err(e);
            }
            // A key staged before: the row table cannot hold both. Everything moves to the
            // staging table, which keeps both and lets validation pick the newest.
            demote(tx, &mut row)?;
            classic.extend_from_slice(&clean[at..]);
        }
    } else {
        classic.extend(rows);
    }
    let table = row.table();
    let row_prefix = [Value::Integer(KIND_ROW), Value::Integer(STAGED)];
    let prefix = [KIND, STATE];
    insert_rows(
        tx,
        &table,
        (&prefix, &[&row_prefix[0], &row_prefix[1]]),
        &schema,
        &classic,
    )
    .map_err(|(_, e)| e)?;
    let kind_delete = Value::Integer(KIND_DELETE);
    let mut one = tx
        .prepare_cached(&insert_sql(&table, &prefix, &schema, 1))
        .db()?;
    for key in batch.deletes() {
        let mut values: Vec<&Value> = vec![&kind_delete, &row_prefix[1]];
        for i in 0..schema.columns().len() {
            let part = schema.primary_key().iter().position(|&k| k == i);
            values.push(part.and_then(|p| key.0.get(p)).unwrap_or(&Value::Null));
        }
        one.execute(rusqlite::params_from_iter(values.into_iter().map(Cell::of)))
            .db()?;
    }
    row.counts.rows += rows.len() as u64;
    row.counts.deletes += batch.deletes().len() as u64;
    let mut update = row.counts.update(row.rowid)?;
    update
        .value(id("progress"), serde_json::to_string(&batch.delta().to)?)
        .value(id("rows_unvalidated"), row.rows_unvalidated);
    execute(tx, &update)?;
    Ok(batch.delta().to.clone())
}

/// The staging sequence and failure reason of each fresh row some rule rejects.
fn rule_failures(
    conn: &Connection,
    table: &str,
    schema: &StreamSchema,
    validated_seq: i64,
    rules: &ValidationRules,
) -> Result<Vec<(i64, String)>> {
    let mut q = Query::select();
    q.column(id(SEQ))
        .columns(schema.columns().iter().map(|c| id(&c.name)))
        .from(id(table));
    q.and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).eq(STAGED))
        .and_where(Expr::col(id(SEQ)).gt(validated_seq));
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let mut stmt = conn.prepare(&text).db()?;
    let mut rows = stmt.query(&*values.as_params()).db()?;
    // One row in memory at a time: only the failures are kept.
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        let seq: i64 = r.get(0).db()?;
        let cells = schema
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| sql::from_sql(c, r.get_ref(i + 1).db()?))
            .collect::<Result<Vec<_>>>()?;
        let row = Row::new(cells);
        let failed = rules.rules.iter().find_map(|rule| {
            rule.check(schema, &row)
                .err()
                .map(|e| format!("{}: {e}", rule.name()))
        });
        if let Some(reason) = failed {
            out.push((seq, reason));
        }
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

/// Rows to upsert: `KIND_ROW` and not set aside.
fn live() -> Expr {
    Expr::col(id(KIND))
        .eq(KIND_ROW)
        .and(Expr::col(id(STATE)).ne(REJECTED))
}

/// Deletes every live row but the newest of its key (by the version guard, the last staged
/// on ties); returns how many.
fn drop_duplicates(tx: &Transaction<'_>, table: &str, schema: &StreamSchema) -> Result<u64> {
    let key_cols = || {
        schema
            .primary_key()
            .iter()
            .map(|&k| id(&schema.columns()[k].name))
    };
    let key_tuple = || Expr::tuple(key_cols().map(Expr::col));
    // Only keys staged more than once are ranked (and sorted): the cost follows the duplicates.
    let duplicated = Query::select()
        .columns(key_cols())
        .from(id(table))
        .and_where(live())
        .group_by_columns(key_cols())
        .and_having(Expr::col(id(SEQ)).count().gt(1))
        .to_owned();
    let mut window = WindowStatement::new();
    OverStatement::partition_by_columns(&mut window, key_cols());
    for &g in schema.guard() {
        window.order_by(id(&schema.columns()[g].name), Order::Desc);
    }
    window.order_by(id(SEQ), Order::Desc);
    let ranked = Query::select()
        .column(id(SEQ))
        .expr_window_as(Expr::cust("ROW_NUMBER()"), window, id("rn"))
        .from(id(table))
        .and_where(live())
        .and_where(key_tuple().in_subquery(duplicated))
        .to_owned();
    let losers = Query::select()
        .column(id(SEQ))
        .from_subquery(ranked, id("ranked"))
        .and_where(Expr::col(id("rn")).gt(1))
        .to_owned();
    let delete = Query::delete()
        .from_table(id(table))
        .and_where(Expr::col(id(SEQ)).in_subquery(losers))
        .to_owned();
    Ok(execute(tx, &delete)? as u64)
}

/// `SELECT 1 … LIMIT 1` of `q`: true when it finds a row.
fn any(conn: &Connection, mut q: SelectStatement) -> Result<bool> {
    q.expr(Expr::val(1)).limit(1);
    Ok(sql::query_i64(conn, &q)?.is_some())
}

pub(crate) fn validate(
    tx: &Transaction<'_>,
    run: &StagingRun,
    rules: &ValidationRules,
) -> Result<ValidationReport> {
    let mut row = this_run(tx, run)?;
    let (schema, table) = (row.run.schema.clone(), row.table());
    // The row table holds rows with every required value, one per key: nothing to check there
    // unless the rules ask for more, which the staging table does.
    let may_be_null = |c: &usize| {
        let nulls = row.counts.nulls.as_ref();
        schema.columns()[*c].nullable && nulls.map_or(true, |n| n.contains(c))
    };
    if !rules.rules.is_empty() || rules.require.iter().any(may_be_null) {
        demote(tx, &mut row)?;
    }
    let fresh = || Expr::col(id(SEQ)).gt(row.validated_seq);
    let missing = |c: usize| format!("missing required field {:?}", schema.columns()[c].name);
    let mut required: Vec<(usize, String)> = schema.required().map(|c| (c, missing(c))).collect();
    for &c in &rules.require {
        required.push((
            c,
            rules.require_reason.clone().unwrap_or_else(|| missing(c)),
        ));
    }
    // Staging noted which columns received a NULL since the last validation: only those are
    // looked for, and only when a probe finds one is each column's reason written.
    let nulls = row.counts.nulls.clone();
    required.retain(|(c, _)| nulls.as_ref().map_or(true, |n| n.contains(c)));
    let mut quarantined = 0;
    let any_null = required
        .iter()
        .map(|(c, _)| Expr::col(id(&schema.columns()[*c].name)).is_null())
        .reduce(|a, b| a.or(b));
    if let Some(any_null) = any_null {
        let probe = Query::select()
            .from(id(&table))
            .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
            .and_where(fresh())
            .and_where(any_null)
            .to_owned();
        if any(tx, probe)? {
            for (c, reason) in &required {
                let null = Expr::col(id(&schema.columns()[*c].name)).is_null();
                quarantined += reject(tx, &table, null.and(fresh()), reason)?;
            }
        }
    }
    if !rules.rules.is_empty() {
        for (seq, reason) in rule_failures(tx, &table, &schema, row.validated_seq, rules)? {
            quarantined += reject(tx, &table, Expr::col(id(SEQ)).eq(seq), &reason)?;
        }
    }
    // Runs staged by an older library have no key index yet.
    ensure_key_index(tx, &table, &schema)?;
    // One row per key. The probe reads the key index only (it holds kind and state).
    let key_cols = schema
        .primary_key()
        .iter()
        .map(|&k| id(&schema.columns()[k].name));
    let dup_probe = Query::select()
        .from(id(&table))
        .and_where(live())
        .group_by_columns(key_cols)
        .and_having(Expr::col(id(SEQ)).count().gt(1))
        .to_owned();
    let mut duplicates = 0;
    if any(tx, dup_probe)? {
        duplicates = drop_duplicates(tx, &table, &schema)?;
    }
    let high = Query::select()
        .expr(Expr::col(id(SEQ)).max())
        .from(id(&table))
        .to_owned();
    let high = Ord::max(sql::query_i64(tx, &high)?.unwrap_or(0), row.validated_seq);
    row.counts.rows = row.counts.rows.saturating_sub(duplicates);
    row.counts.rejected += quarantined;
    row.counts.nulls = Some(Vec::new());
    let mut mark = row.counts.update(row.rowid)?;
    mark.value(id("validated_seq"), high)
        .value(id("rows_unvalidated"), false);
    execute(tx, &mark)?;
    Ok(ValidationReport {
        valid: row.counts.live(),
        duplicates_dropped: duplicates,
        quarantined,
    })
}

/// True when rows were staged after the last validation.
pub(crate) fn has_unvalidated(conn: &Connection, row: &RunRow) -> Result<bool> {
    if row.rows_unvalidated {
        return Ok(true);
    }
    let q = Query::select()
        .from(id(&row.table()))
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(SEQ)).gt(row.validated_seq))
        .to_owned();
    any(conn, q)
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
