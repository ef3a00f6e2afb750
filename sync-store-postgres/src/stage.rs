//! Staging runs: one UNLOGGED staging table per run, loaded by binary COPY (streamed, so memory
//! stays bounded), with the run's progress updated in the same transaction; validation in SQL.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::pin_mut;
use sea_query::{
    ColumnDef, ConditionalStatement, Expr, ExprTrait, Index, NullOrdering, Order, OverStatement,
    PostgresQueryBuilder, Query, Table, WindowStatement,
};
use sync_core::stager::{
    new_run_id, QuarantinedRow, StagingRun, ValidationReport, ValidationRules,
};
use sync_core::{
    Error, ErrorKind, FenceToken, Position, RecordBatch, Result, Row, StreamSchema, Value,
};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};

use crate::error::classify;
use crate::lease;
use crate::sql::{
    self, ddl, execute, id, pg_type, staging_table, table, Cell, KIND, KIND_DELETE, KIND_ROW,
    REASON, REJECTED, SEQ, STAGED, STATE,
};

/// A run as recorded in `_sync_runs`.
pub(crate) struct RunRow {
    pub(crate) rowid: i64,
    pub(crate) run: StagingRun,
    pub(crate) validated_seq: i64,
    pub(crate) staged_count: i64,
}

impl RunRow {
    pub(crate) fn table(&self) -> String {
        staging_table(self.rowid)
    }
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::CorruptState, "stored staging run is malformed").with_source(e)
}

pub(crate) async fn open_run<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
) -> Result<Option<RunRow>> {
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
                "staged_count",
                "fence",
            ]
            .map(id),
        )
        .from(table(schema, sql::RUNS))
        .and_where(Expr::col(id("sync")).eq(sync))
        // Locked: a concurrent begin that hands the run to a newer fence is seen, not raced.
        .lock(sea_query::LockType::Update)
        .to_owned();
    let rows = sql::query(client, &q).await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let s = |i: usize| -> Result<String> { r.try_get::<_, String>(i).map_err(classify) };
    let stream: StreamSchema = serde_json::from_str(&s(2)?).map_err(corrupt)?;
    Ok(Some(RunRow {
        rowid: r.try_get(0).map_err(classify)?,
        validated_seq: r.try_get(6).map_err(classify)?,
        staged_count: r.try_get(7).map_err(classify)?,
        run: StagingRun {
            sync: sync.to_string(),
            run_id: s(1)?,
            schema: Arc::new(stream),
            progress: serde_json::from_str(&s(3)?).map_err(corrupt)?,
            staged_rows: 0,
            params: serde_json::from_str(&s(4)?).map_err(corrupt)?,
            resumed: true,
            started_at: r.try_get::<_, DateTime<Utc>>(5).map_err(classify)?,
            fence: FenceToken(r.try_get::<_, i64>(8).map_err(classify)? as u64),
        },
    }))
}

pub(crate) async fn this_run<C: GenericClient>(
    client: &C,
    schema: &str,
    run: &StagingRun,
) -> Result<RunRow> {
    match open_run(client, schema, &run.sync).await? {
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

async fn count<C: GenericClient>(
    client: &C,
    schema: &str,
    stage: &str,
    live_only: bool,
) -> Result<u64> {
    let mut q = Query::select();
    q.expr(Expr::col(id(SEQ)).count())
        .from(table(schema, stage));
    if live_only {
        q.and_where(Expr::col(id(KIND)).eq(KIND_ROW))
            .and_where(Expr::col(id(STATE)).ne(REJECTED));
    }
    Ok(sql::query_i64(client, &q).await?.unwrap_or(0) as u64)
}

/// PostgreSQL cannot store a NUL character in text or JSON, and delete keys must fit the key
/// columns: both are typed errors before anything is copied.
fn check_storable(stream: &StreamSchema, batch: &RecordBatch) -> Result<()> {
    for r in batch.rows() {
        for (v, c) in r.values().iter().zip(stream.columns()) {
            if let Value::Text(t) | Value::Json(t) = v {
                if t.contains('\0') {
                    return Err(Error::invalid_input(
                        "postgres cannot store a NUL character in text or json",
                    )
                    .with_context("column", &c.name)
                    .with_context("key", r.key(stream)));
                }
            }
        }
    }
    for key in batch.deletes() {
        let fits = key.0.len() == stream.primary_key().len()
            && key
                .0
                .iter()
                .zip(stream.primary_key())
                .all(|(v, &k)| !v.is_null() && v.fits(stream.columns()[k].ty));
        if !fits {
            return Err(
                Error::invalid_input("a delete key does not fit the primary key")
                    .with_context("key", key),
            );
        }
    }
    Ok(())
}

/// Moves the recorded number of staged rows by `delta` (in the caller's transaction), or, for
/// `None`, records the staging table as emptied: no row staged and none validated. Counting
/// the table each time would cost a scan per batch.
///
/// Validation starts over with an emptied table because the staging table's row numbers may
/// start over too: it is UNLOGGED, and so is its sequence (PostgreSQL 15 and newer), which
/// crash recovery resets to 1 with the table. Rows numbered from 1 again after a crash must not
/// pass for validated by an older, higher mark.
pub(crate) async fn adjust_staged_count(
    tx: &Transaction<'_>,
    schema: &str,
    row: &RunRow,
    delta: Option<i64>,
) -> Result<()> {
    let mut stmt = Query::update();
    stmt.table(table(schema, sql::RUNS))
        .and_where(Expr::col(id("id")).eq(row.rowid));
    match delta {
        Some(d) => stmt.value(
            id("staged_count"),
            sql::qcol(schema, sql::RUNS, "staged_count").add(d),
        ),
        None => stmt
            .value(id("staged_count"), 0i64)
            .value(id("validated_seq"), 0i64),
    };
    execute(tx, &stmt).await.map(drop)
}

/// Rows to upsert: staged rows that validation did not set aside.
pub(crate) async fn count_live<C: GenericClient>(
    client: &C,
    schema: &str,
    stage: &str,
) -> Result<u64> {
    count(client, schema, stage, true).await
}

pub(crate) async fn begin(
    tx: &Transaction<'_>,
    schema: &str,
    sync: &str,
    stream: &Arc<StreamSchema>,
    fence: FenceToken,
    params: &serde_json::Value,
) -> Result<StagingRun> {
    if let Some(mut existing) = open_run(tx, schema, sync).await? {
        if fence < existing.run.fence {
            return Err(
                Error::new(ErrorKind::Fenced, "a newer writer owns this staging run")
                    .with_context("sync", sync),
            );
        }
        let held = count(tx, schema, &existing.table(), false).await?;
        if held as i64 == existing.staged_count {
            let mut adopt = Query::update();
            adopt
                .table(table(schema, sql::RUNS))
                .value(id("fence"), fence.0 as i64)
                .and_where(Expr::col(id("id")).eq(existing.rowid));
            if held == 0 {
                // An empty staging table may number its rows from 1 again (see
                // `adjust_staged_count`); runs recorded before that reset are caught up here.
                adopt.value(id("validated_seq"), 0i64);
            }
            execute(tx, &adopt).await?;
            existing.run.fence = fence;
            existing.run.staged_rows = held;
            return Ok(existing.run);
        }
        // The UNLOGGED staging table lost rows (a server crash or failover empties it): the
        // recorded progress describes rows that are gone, so the run starts over.
        tracing::warn!(
            sync,
            held,
            expected = existing.staged_count,
            "staging was lost; starting the run again"
        );
        end(tx, schema, &existing).await?;
    }
    let run = StagingRun {
        sync: sync.to_string(),
        run_id: new_run_id(),
        schema: stream.clone(),
        progress: Position::Start,
        staged_rows: 0,
        params: params.clone(),
        resumed: false,
        started_at: Utc::now(),
        fence,
    };
    let insert = Query::insert()
        .into_table(table(schema, sql::RUNS))
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
            stream.name().into(),
            serde_json::to_string(stream.as_ref())?.into(),
            serde_json::to_string(&run.progress)?.into(),
            serde_json::to_string(&run.params)?.into(),
            run.started_at.into(),
            (fence.0 as i64).into(),
        ])
        .returning_col(id("id"))
        .to_owned();
    let rowid = sql::query_i64(tx, &insert)
        .await?
        .ok_or_else(|| Error::internal("no run id returned"))?;
    let mut create = Table::create();
    create.table(table(schema, &staging_table(rowid)));
    create.col(
        ColumnDef::new(id(SEQ))
            .big_integer()
            .not_null()
            .primary_key()
            .auto_increment(),
    );
    create.col(ColumnDef::new(id(KIND)).small_integer().not_null());
    create.col(
        ColumnDef::new(id(STATE))
            .small_integer()
            .not_null()
            .default(STAGED),
    );
    create.col(ColumnDef::new(id(REASON)).text());
    for c in stream.columns() {
        create.col(sql::column_def(&sync_core::Column {
            nullable: true,
            ..c.clone()
        }));
    }
    // UNLOGGED: staging is rebuilt from the source after a server crash, never trusted from WAL.
    let ddl_text =
        create
            .to_string(PostgresQueryBuilder)
            .replacen("CREATE TABLE", "CREATE UNLOGGED TABLE", 1);
    ddl(tx, &ddl_text).await?;
    Ok(run)
}

pub(crate) async fn stage(
    tx: &Transaction<'_>,
    schema: &str,
    run: &StagingRun,
    batch: &RecordBatch,
    held_for: Option<Duration>,
) -> Result<Position> {
    // The fence check, the relaxed commit and the run's row go out together (one round trip
    // instead of three); a failed fence check is reported first, as if it had run alone.
    //
    // A staging commit need not wait for the WAL flush: losing the last ones in a server crash
    // loses their rows and their progress together (one transaction), and the fill re-reads
    // them. Promotion, which moves the checkpoint, keeps synchronous commit.
    let (held, relaxed, row) = futures::join!(
        lease::hold(tx, schema, &run.sync, run.fence, held_for),
        ddl(tx, "SET LOCAL synchronous_commit = off"),
        this_run(tx, schema, run),
    );
    held?;
    let row = row?;
    relaxed?;
    batch
        .delta()
        .try_apply(&row.run.progress)
        .map_err(|e| e.with_context("sync", &run.sync))?;
    let stream = &row.run.schema;
    check_storable(stream, batch)?;
    if batch.schema().columns() != stream.columns() {
        return Err(
            Error::invalid_input("batch schema differs from the staging run's")
                .with_context("sync", &run.sync),
        );
    }
    let mut columns = vec![KIND.to_string()];
    columns.extend(stream.columns().iter().map(|c| c.name.clone()));
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect();
    let target = format!("\"{}\".\"{}\"", schema.replace('"', "\"\""), row.table());
    // COPY is not a statement sea-query builds; identifiers are quoted the way it quotes them.
    let copy = format!(
        "COPY {target} ({}) FROM STDIN (FORMAT binary)",
        quoted.join(", ")
    );
    let mut types = vec![Type::INT2];
    types.extend(stream.columns().iter().map(|c| pg_type(c.ty)));
    let sink = tx.copy_in(copy.as_str()).await.map_err(classify)?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    // One flat cell buffer per batch and one reused field list: no allocation per row.
    let width = stream.columns().len();
    let mut cells: Vec<Cell<'_>> = Vec::with_capacity(width * batch.rows().len());
    for r in batch.rows() {
        cells.extend(r.values().iter().map(Cell));
    }
    let rows_end = cells.len();
    for key in batch.deletes() {
        let mut key_values = key.0.iter();
        cells.extend((0..width).map(|i| {
            Cell(if stream.primary_key().contains(&i) {
                key_values.next().unwrap_or(&Value::Null)
            } else {
                &Value::Null
            })
        }));
    }
    let (kind_row, kind_delete) = (KIND_ROW, KIND_DELETE);
    let mut fields: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(width + 1);
    for (at, record) in cells.chunks(width.max(1)).enumerate() {
        fields.clear();
        fields.push(if at * width < rows_end {
            &kind_row
        } else {
            &kind_delete
        });
        fields.extend(record.iter().map(|c| c as &(dyn ToSql + Sync)));
        writer.as_mut().write(&fields).await.map_err(classify)?;
    }
    writer.finish().await.map_err(classify)?;
    // The progress and the staged-row count in one statement.
    let written = (batch.rows().len() + batch.deletes().len()) as i64;
    let progress = Query::update()
        .table(table(schema, sql::RUNS))
        .value(id("progress"), serde_json::to_string(&batch.delta().to)?)
        .value(
            id("staged_count"),
            sql::qcol(schema, sql::RUNS, "staged_count").add(written),
        )
        .and_where(Expr::col(id("id")).eq(row.rowid))
        .to_owned();
    execute(tx, &progress).await?;
    Ok(batch.delta().to.clone())
}

async fn reject(
    tx: &Transaction<'_>,
    schema: &str,
    stage: &str,
    filter: Expr,
    reason: &str,
) -> Result<u64> {
    let stmt = Query::update()
        .table(table(schema, stage))
        .value(id(STATE), REJECTED)
        .value(id(REASON), reason)
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).eq(STAGED))
        .and_where(filter)
        .to_owned();
    execute(tx, &stmt).await
}

async fn rows_where(
    tx: &Transaction<'_>,
    schema: &str,
    stage: &str,
    stream: &StreamSchema,
    filter: Expr,
) -> Result<Vec<(i64, Option<String>, Row)>> {
    let mut q = Query::select();
    q.columns([id(SEQ), id(REASON)])
        .columns(stream.columns().iter().map(|c| id(&c.name)))
        .from(table(schema, stage));
    q.and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(filter)
        .order_by(id(SEQ), Order::Asc);
    let rows = sql::query(tx, &q).await?;
    let values = sql::read_rows(&rows, stream, 2)?;
    rows.iter()
        .zip(values)
        .map(|(r, v)| {
            Ok((
                r.try_get::<_, i64>(0).map_err(classify)?,
                r.try_get::<_, Option<String>>(1).map_err(classify)?,
                v,
            ))
        })
        .collect()
}

/// Staged rows up to which validation looks for a key staged twice by grouping the rows
/// (a hash table that stays small); above it, by building a unique index.
const GROUPED_PROBE_ROWS: i64 = 20_000;

/// Builds the unique index `create` inside a savepoint and rolls it back: true when it could
/// not be built because a key is there twice.
async fn fails_unique(tx: &Transaction<'_>, create: &str) -> Result<bool> {
    ddl(tx, "SAVEPOINT \"__sync_unique\"").await?;
    let built = tx.batch_execute(create).await;
    ddl(tx, "ROLLBACK TO SAVEPOINT \"__sync_unique\"").await?;
    match built {
        Ok(()) => Ok(false),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(true),
        Err(e) => Err(classify(e)),
    }
}

pub(crate) async fn validate(
    tx: &Transaction<'_>,
    schema: &str,
    run: &StagingRun,
    rules: &ValidationRules,
) -> Result<ValidationReport> {
    let row = this_run(tx, schema, run).await?;
    let (stream, stage) = (row.run.schema.clone(), row.table());
    let fresh = || Expr::col(id(SEQ)).gt(row.validated_seq);
    let missing = |c: usize| format!("missing required field {:?}", stream.columns()[c].name);
    let mut required: Vec<(usize, String)> = stream.required().map(|c| (c, missing(c))).collect();
    for &c in &rules.require {
        required.push((
            c,
            rules.require_reason.clone().unwrap_or_else(|| missing(c)),
        ));
    }
    let mut quarantined = 0;
    // One scan counts the live rows and finds out whether any new row lacks a required value
    // (rarely); only then is each column's reason written. The rows left to promote are that
    // count less what validation sets aside, so no second scan counts them.
    let live = Expr::col(id(KIND))
        .eq(KIND_ROW)
        .and(Expr::col(id(STATE)).ne(REJECTED));
    let any_null = required
        .iter()
        .map(|(c, _)| Expr::col(id(&stream.columns()[*c].name)).is_null())
        .reduce(|a, b| a.or(b))
        .unwrap_or_else(|| Expr::cust("false"));
    let lacking = Expr::col(id(KIND)).eq(KIND_ROW).and(fresh()).and(any_null);
    let scan = Query::select()
        .expr(Expr::case(live, Expr::cust("1")).count())
        .expr(Expr::case(lacking, Expr::cust("1")).count())
        .from(table(schema, &stage))
        .to_owned();
    let counts = sql::query(tx, &scan).await?;
    let count_at = |i: usize| -> Result<u64> {
        let n = counts
            .first()
            .map(|r| r.try_get::<_, i64>(i))
            .transpose()
            .map_err(classify)?;
        Ok(n.unwrap_or(0) as u64)
    };
    let (live_rows, lacking_rows) = (count_at(0)?, count_at(1)?);
    if lacking_rows > 0 {
        for (c, reason) in &required {
            let null = Expr::col(id(&stream.columns()[*c].name)).is_null();
            quarantined += reject(tx, schema, &stage, null.and(fresh()), reason).await?;
        }
    }
    if !rules.rules.is_empty() {
        let fresh_rows = rows_where(
            tx,
            schema,
            &stage,
            &stream,
            fresh().and(Expr::col(id(STATE)).eq(STAGED)),
        )
        .await?;
        for (seq, _, r) in fresh_rows {
            let failed = rules.rules.iter().find_map(|rule| {
                rule.check(&stream, &r)
                    .err()
                    .map(|e| format!("{}: {e}", rule.name()))
            });
            if let Some(reason) = failed {
                quarantined +=
                    reject(tx, schema, &stage, Expr::col(id(SEQ)).eq(seq), &reason).await?;
            }
        }
    }
    // One row per key: the newest by the version guard, the last staged on ties. The window
    // pass runs only when a key is there twice, which a probe finds out first: grouping the
    // live rows by key when there are few of them; past that (a full fill), building a unique
    // index over them (one sort, no spill of a hash table) and rolling it back at once.
    let key_cols = || {
        stream
            .primary_key()
            .iter()
            .map(|&k| id(&stream.columns()[k].name))
            .collect::<Vec<_>>()
    };
    let has_duplicates = if row.staged_count <= GROUPED_PROBE_ROWS {
        let probe = Query::select()
            .expr(Expr::cust("1::bigint"))
            .from(table(schema, &stage))
            .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
            .and_where(Expr::col(id(STATE)).ne(REJECTED))
            .group_by_columns(key_cols())
            .and_having(Expr::col(id(SEQ)).count().gt(1i64))
            .limit(1)
            .to_owned();
        sql::query_i64(tx, &probe).await?.is_some()
    } else {
        let mut unique = Index::create();
        unique
            .name(format!("{stage}_unique"))
            .table(table(schema, &stage))
            .unique()
            .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
            .and_where(Expr::col(id(STATE)).ne(REJECTED));
        for c in key_cols() {
            unique.col(c);
        }
        fails_unique(tx, &unique.to_string(PostgresQueryBuilder)).await?
    };
    let mut duplicates = 0;
    if has_duplicates {
        let mut window = WindowStatement::new();
        OverStatement::partition_by_columns(
            &mut window,
            stream
                .primary_key()
                .iter()
                .map(|&k| id(&stream.columns()[k].name)),
        );
        for &g in stream.guard() {
            // NULL is the oldest guard value (as the core compares), so it sorts last here.
            window.order_by_with_nulls(
                id(&stream.columns()[g].name),
                Order::Desc,
                NullOrdering::Last,
            );
        }
        window.order_by(id(SEQ), Order::Desc);
        let ranked = Query::select()
            .column(id(SEQ))
            .expr_window_as(Expr::cust("ROW_NUMBER()"), window, id("rn"))
            .from(table(schema, &stage))
            .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
            .and_where(Expr::col(id(STATE)).ne(REJECTED))
            .to_owned();
        let losers = Query::select()
            .column(id(SEQ))
            .from_subquery(ranked, id("ranked"))
            .and_where(Expr::col(id("rn")).gt(1i64))
            .to_owned();
        let delete = Query::delete()
            .from_table(table(schema, &stage))
            .and_where(Expr::col(id(SEQ)).in_subquery(losers))
            .to_owned();
        duplicates = execute(tx, &delete).await?;
    }
    let high = Query::select()
        .expr(Expr::col(id(SEQ)).max())
        .from(table(schema, &stage))
        .to_owned();
    let high = Ord::max(
        sql::query_i64(tx, &high).await?.unwrap_or(0),
        row.validated_seq,
    );
    let mark = Query::update()
        .table(table(schema, sql::RUNS))
        .value(id("validated_seq"), high)
        .and_where(Expr::col(id("id")).eq(row.rowid))
        .to_owned();
    execute(tx, &mark).await?;
    adjust_staged_count(tx, schema, &row, Some(-(duplicates as i64))).await?;
    Ok(ValidationReport {
        valid: live_rows.saturating_sub(quarantined + duplicates),
        duplicates_dropped: duplicates,
        quarantined,
    })
}

/// True when rows were staged after the last validation (the newest row's sequence number,
/// found from the end of the sequence's index, is past the validated one).
pub(crate) async fn has_unvalidated(
    tx: &Transaction<'_>,
    schema: &str,
    row: &RunRow,
) -> Result<bool> {
    let q = Query::select()
        .expr(Expr::col(id(SEQ)).max())
        .from(table(schema, &row.table()))
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .to_owned();
    Ok(sql::query_i64(tx, &q)
        .await?
        .is_some_and(|high| high > row.validated_seq))
}

/// Moves the rows validation set aside into the quarantine table; returns how many.
pub(crate) async fn quarantine_rejected(
    tx: &Transaction<'_>,
    schema: &str,
    run: &StagingRun,
    stage: &str,
    stream: &StreamSchema,
) -> Result<u64> {
    let rejected = rows_where(tx, schema, stage, stream, Expr::col(id(STATE)).eq(REJECTED)).await?;
    for (_, reason, r) in &rejected {
        let insert = Query::insert()
            .into_table(table(schema, sql::QUARANTINE))
            .columns(["sync", "run_id", "row", "reason", "at"].map(id))
            .values_panic([
                run.sync.clone().into(),
                run.run_id.clone().into(),
                serde_json::to_string(r)?.into(),
                reason.clone().unwrap_or_default().into(),
                Utc::now().into(),
            ])
            .to_owned();
        execute(tx, &insert).await?;
    }
    Ok(rejected.len() as u64)
}

/// Drops the run's staging table and forgets the run.
pub(crate) async fn end(tx: &Transaction<'_>, schema: &str, row: &RunRow) -> Result<()> {
    ddl(
        tx,
        &Table::drop()
            .table(table(schema, &row.table()))
            .if_exists()
            .to_string(PostgresQueryBuilder),
    )
    .await?;
    execute(
        tx,
        &Query::delete()
            .from_table(table(schema, sql::RUNS))
            .and_where(Expr::col(id("id")).eq(row.rowid))
            .to_owned(),
    )
    .await
    .map(drop)
}

pub(crate) async fn quarantined<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
) -> Result<Vec<QuarantinedRow>> {
    let q = Query::select()
        .columns(["run_id", "row", "reason"].map(id))
        .from(table(schema, sql::QUARANTINE))
        .and_where(Expr::col(id("sync")).eq(sync))
        .order_by(id("id"), Order::Asc)
        .to_owned();
    let rows = sql::query(client, &q).await?;
    rows.iter()
        .map(|r| {
            let row: String = r.try_get(1).map_err(classify)?;
            Ok(QuarantinedRow {
                sync: sync.to_string(),
                run_id: r.try_get(0).map_err(classify)?,
                row: serde_json::from_str(&row).map_err(corrupt)?,
                reason: r.try_get(2).map_err(classify)?,
            })
        })
        .collect()
}
