//! Schema management: the store's own tables created by ordered migrations recorded in a
//! schema-version table, and stream targets created or evolved (columns added, never
//! dropped).

use rusqlite::{Connection, OptionalExtension, Transaction};
use sea_query::{
    ColumnDef, Expr, ExprTrait, Func, Index, OnConflict, Query, SqliteQueryBuilder, Table,
    TableCreateStatement,
};
use sync_core::schema::{ColumnType, StreamSchema};
use sync_core::{Error, ErrorKind, Result};

use crate::error::SqliteResultExt;
use crate::run::count;
use crate::sql::{self, column_def, execute, id};

/// The newest schema version this library knows.
pub(crate) const LATEST_VERSION: i64 = 7;

pub(crate) fn text(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.text().not_null();
    c
}

pub(crate) fn integer(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.integer().not_null();
    c
}

pub(crate) fn serial(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.integer().not_null().primary_key().auto_increment();
    c
}

/// Version 1: the bookkeeping tables.
fn migration_1() -> Vec<TableCreateStatement> {
    vec![
        Table::create()
            .table(id(sql::STREAMS))
            .col(text("name").primary_key())
            .col(text("schema"))
            .to_owned(),
        Table::create()
            .table(id(sql::CHECKPOINTS))
            .col(text("sync").primary_key())
            .col(text("state"))
            .col(integer("version"))
            .col(text("updated_at"))
            .to_owned(),
        Table::create()
            .table(id(sql::FENCES))
            .col(text("sync").primary_key())
            .col(integer("fence"))
            .to_owned(),
        Table::create()
            .table(id(sql::LEDGER))
            .col(serial("id"))
            .col(text("sync"))
            .col(text("run_id"))
            .col(text("strategy"))
            .col(text("low"))
            .col(text("high"))
            .col(integer("rows_read"))
            .col(integer("rows_written"))
            .col(integer("rows_rejected"))
            .col(integer("duration_ms"))
            .col(text("status"))
            .col(text("committed_at"))
            .to_owned(),
        Table::create()
            .table(id(sql::LOG))
            .col(serial("id"))
            .col(text("sync"))
            .col(text("run_id"))
            .col(text("at"))
            .col(text("level"))
            .col(text("event"))
            .col(text("message"))
            .to_owned(),
        Table::create()
            .table(id(sql::RUNS))
            .col(serial("id"))
            .col(text("sync").unique_key())
            .col(text("run_id"))
            .col(text("stream"))
            .col(text("schema"))
            .col(text("progress"))
            .col(text("params"))
            .col(text("started_at"))
            .to_owned(),
        Table::create()
            .table(id(sql::QUARANTINE))
            .col(serial("id"))
            .col(text("sync"))
            .col(text("run_id"))
            .col(text("row"))
            .col(text("reason"))
            .col(text("at"))
            .to_owned(),
        Table::create()
            .table(id(sql::QUEUE))
            .col(text("queue"))
            .col(integer("seq"))
            .col(text("entity"))
            .primary_key(Index::create().col(id("queue")).col(id("seq")))
            .to_owned(),
    ]
}

/// Version 2: indexes for per-sync reads of the ledger, log and quarantine.
fn migration_2(tx: &Transaction<'_>) -> Result<()> {
    for table in [sql::LEDGER, sql::LOG, sql::QUARANTINE] {
        let index = Index::create()
            .name(format!("{table}_by_sync"))
            .table(id(table))
            .col(id("sync"))
            .col(id("id"))
            .to_owned();
        tx.execute(&index.to_string(SqliteQueryBuilder), []).db()?;
    }
    Ok(())
}

/// Version 3: staging runs record how far validation got, so validating marks no rows.
fn migration_3(tx: &Transaction<'_>) -> Result<()> {
    let mut column = ColumnDef::new(id("validated_seq"));
    column.integer().not_null().default(0);
    let alter = Table::alter()
        .table(id(sql::RUNS))
        .add_column(column)
        .to_owned();
    tx.execute(&alter.to_string(SqliteQueryBuilder), []).db()?;
    Ok(())
}

/// Version 4: staging runs record the fencing token of the writer that owns them.
fn migration_4(tx: &Transaction<'_>) -> Result<()> {
    let mut column = ColumnDef::new(id("fence"));
    column.integer().not_null().default(0);
    let alter = Table::alter()
        .table(id(sql::RUNS))
        .add_column(column)
        .to_owned();
    tx.execute(&alter.to_string(SqliteQueryBuilder), []).db()?;
    Ok(())
}

/// Version 5: staging runs keep counts of what their staging table holds (rows, deletes,
/// rows set aside) and which columns received a NULL since the last validation, so
/// validation and promotion learn them without scanning staging. Open runs get their counts
/// here; their NULL columns stay unknown (NULL), which makes the next validation look.
fn migration_5(tx: &Transaction<'_>) -> Result<()> {
    for name in ["rows_staged", "deletes_staged", "rows_rejected"] {
        let mut column = ColumnDef::new(id(name));
        column.integer().not_null().default(0);
        let alter = Table::alter()
            .table(id(sql::RUNS))
            .add_column(column)
            .to_owned();
        tx.execute(&alter.to_string(SqliteQueryBuilder), []).db()?;
    }
    let mut column = ColumnDef::new(id("null_columns"));
    column.text();
    let alter = Table::alter()
        .table(id(sql::RUNS))
        .add_column(column)
        .to_owned();
    tx.execute(&alter.to_string(SqliteQueryBuilder), []).db()?;
    let (text, _) = Query::select()
        .column(id("id"))
        .from(id(sql::RUNS))
        .to_owned()
        .build(SqliteQueryBuilder);
    let runs: Vec<i64> = tx
        .prepare(&text)
        .db()?
        .query_map([], |r| r.get(0))
        .db()?
        .collect::<rusqlite::Result<_>>()
        .db()?;
    for rowid in runs {
        let table = sql::staging_table(rowid);
        let exists = Query::select()
            .expr(Expr::val(1))
            .from(id("sqlite_master"))
            .and_where(Expr::col(id("type")).eq("table"))
            .and_where(Expr::col(id("name")).eq(table.as_str()))
            .to_owned();
        if sql::query_i64(tx, &exists)?.is_none() {
            continue;
        }
        let counts = crate::run::Counts {
            rows: count(tx, &table, Some(sql::KIND_ROW), None)?,
            deletes: count(tx, &table, Some(sql::KIND_DELETE), None)?,
            rejected: count(tx, &table, Some(sql::KIND_ROW), Some(sql::REJECTED))?,
            nulls: None,
        };
        execute(tx, &counts.update(rowid)?)?;
    }
    Ok(())
}

/// Version 6: staging runs may keep their rows in a row table shaped like the target
/// (`row_table`), with a mark of rows staged there since the last validation. Open runs keep
/// their single staging table.
fn migration_6(tx: &Transaction<'_>) -> Result<()> {
    for name in ["row_table", "rows_unvalidated"] {
        let mut column = ColumnDef::new(id(name));
        column.integer().not_null().default(0);
        let alter = Table::alter()
            .table(id(sql::RUNS))
            .add_column(column)
            .to_owned();
        tx.execute(&alter.to_string(SqliteQueryBuilder), []).db()?;
    }
    Ok(())
}

/// Brings the database to [`LATEST_VERSION`], one migration per transaction, in order.
/// A database written by a newer library is refused.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let create = Table::create()
        .table(id(sql::SCHEMA_VERSION))
        .if_not_exists()
        .col(integer("version"))
        .to_owned();
    conn.execute(&create.to_string(SqliteQueryBuilder), [])
        .db()?;
    loop {
        let version = current_version(conn)?;
        if version > LATEST_VERSION {
            return Err(Error::new(
                ErrorKind::Storage,
                "database was written by a newer version of this library",
            )
            .with_context("schema_version", version)
            .with_context("supported", LATEST_VERSION));
        }
        if version == LATEST_VERSION {
            return Ok(());
        }
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .db()?;
        if current_version(&tx)? != version {
            continue; // another process migrated meanwhile
        }
        match version + 1 {
            1 => {
                for stmt in migration_1() {
                    tx.execute(&stmt.to_string(SqliteQueryBuilder), []).db()?;
                }
            }
            2 => migration_2(&tx)?,
            3 => migration_3(&tx)?,
            4 => migration_4(&tx)?,
            5 => migration_5(&tx)?,
            6 => migration_6(&tx)?,
            7 => crate::jobs::migration_7(&tx)?,
            v => return Err(Error::internal(format!("no migration to version {v}"))),
        }
        execute(
            &tx,
            &Query::delete()
                .from_table(id(sql::SCHEMA_VERSION))
                .to_owned(),
        )?;
        execute(
            &tx,
            &Query::insert()
                .into_table(id(sql::SCHEMA_VERSION))
                .columns([id("version")])
                .values_panic([(version + 1).into()])
                .to_owned(),
        )?;
        tx.commit().db()?;
        tracing::info!(version = version + 1, "sqlite store migrated");
    }
}

fn current_version(conn: &Connection) -> Result<i64> {
    let q = Query::select()
        .expr(Expr::col(id("version")).max())
        .from(id(sql::SCHEMA_VERSION))
        .to_owned();
    Ok(sql::query_i64(conn, &q)?.unwrap_or(0))
}

/// The stored target schema of `stream`, if the store manages it.
pub(crate) fn target_schema(conn: &Connection, stream: &str) -> Result<Option<StreamSchema>> {
    let q = Query::select()
        .column(id("schema"))
        .from(id(sql::STREAMS))
        .and_where(Expr::col(id("name")).eq(stream))
        .to_owned();
    let (sql, values) = sea_query_rusqlite::RusqliteBinder::build_rusqlite(&q, SqliteQueryBuilder);
    let text: Option<String> = conn
        .query_row(&sql, &*values.as_params(), |r| r.get(0))
        .optional()
        .db()?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            Error::new(ErrorKind::CorruptState, "stored stream schema is malformed")
                .with_context("stream", stream)
                .with_source(e)
        })
    })
    .transpose()
}

/// The `CREATE TABLE` of a target of `schema` named `name`: its columns (NOT NULL where
/// required) and its primary key. Staging runs create their row tables with it too.
pub(crate) fn target_table(name: &str, schema: &StreamSchema) -> TableCreateStatement {
    let mut create = Table::create();
    create.table(id(name));
    for c in schema.columns() {
        create.col(column_def(c));
    }
    let mut pk = Index::create();
    for &k in schema.primary_key() {
        pk.col(id(&schema.columns()[k].name));
    }
    create.primary_key(&mut pk);
    create
}

/// Names SQLite would confuse or the store reserves are rejected before any DDL.
fn check_names(schema: &StreamSchema) -> Result<()> {
    if schema
        .name()
        .to_ascii_lowercase()
        .starts_with(sql::RESERVED_TABLE_PREFIX)
        || schema.name().to_ascii_lowercase().starts_with("sqlite_")
    {
        return Err(Error::config("stream name uses a reserved prefix")
            .with_context("stream", schema.name()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in schema.columns() {
        if c.name
            .to_ascii_lowercase()
            .starts_with(sql::RESERVED_COLUMN_PREFIX)
        {
            return Err(
                Error::config("column name uses a reserved prefix").with_context("column", &c.name)
            );
        }
        if !seen.insert(c.name.to_ascii_lowercase()) {
            return Err(Error::config(
                "column names differ only in case, which sqlite cannot tell apart",
            )
            .with_context("column", &c.name));
        }
    }
    for &g in schema.guard() {
        if matches!(
            schema.columns()[g].ty,
            ColumnType::Decimal { .. } | ColumnType::Json | ColumnType::Bytes
        ) {
            return Err(Error::unsupported(
                "sqlite",
                "a decimal, json or bytes version guard column",
            ));
        }
    }
    Ok(())
}

/// Creates the target of `schema` or adds the columns it gained; records the merged schema.
pub(crate) fn ensure_stream(tx: &Transaction<'_>, schema: &StreamSchema) -> Result<()> {
    check_names(schema)?;
    match target_schema(tx, schema.name())? {
        None => {
            let clash = Query::select()
                .expr(Expr::val(1))
                .from(id("sqlite_master"))
                .and_where(
                    Func::lower(Expr::col(id("name"))).eq(Func::lower(Expr::val(schema.name()))),
                )
                .to_owned();
            if sql::query_i64(tx, &clash)?.is_some() {
                return Err(Error::config(
                    "a table with this name (ignoring case) exists and is not managed by the store",
                )
                .with_context("stream", schema.name()));
            }
            let create = target_table(schema.name(), schema);
            tx.execute(&create.to_string(SqliteQueryBuilder), []).db()?;
            store_schema(tx, schema)
        }
        Some(old) => {
            let added = old.check_evolution(schema)?;
            if added.is_empty() {
                return Ok(());
            }
            let merged = old.with_added_columns(&added)?;
            check_names(&merged)?;
            for c in &added {
                let alter = Table::alter()
                    .table(id(schema.name()))
                    .add_column(column_def(c))
                    .to_owned();
                tx.execute(&alter.to_string(SqliteQueryBuilder), []).db()?;
            }
            store_schema(tx, &merged)
        }
    }
}

fn store_schema(tx: &Transaction<'_>, schema: &StreamSchema) -> Result<()> {
    let json = serde_json::to_string(schema)?;
    let stmt = Query::insert()
        .into_table(id(sql::STREAMS))
        .columns([id("name"), id("schema")])
        .values_panic([schema.name().into(), json.into()])
        .on_conflict(
            OnConflict::column(id("name"))
                .update_column(id("schema"))
                .to_owned(),
        )
        .to_owned();
    execute(tx, &stmt)?;
    Ok(())
}
