//! Schema management: the store's tables created by ordered migrations (under an advisory lock,
//! so concurrent processes migrate once) and stream targets created or evolved.

use sea_query::{
    ColumnDef, Expr, ExprTrait, Index, OnConflict, PostgresQueryBuilder, Query, Table,
    TableAlterStatement, TableCreateStatement,
};
use sync_core::schema::{ColumnType, StreamSchema};
use sync_core::{Error, ErrorKind, Result};
use tokio_postgres::{GenericClient, Transaction};

use crate::error::classify;
use crate::sql::{self, column_def, ddl, execute, id, table};

/// The newest schema version this library knows.
pub(crate) const LATEST_VERSION: i64 = 3;

fn text(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.text().not_null();
    c
}

fn bigint(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.big_integer().not_null();
    c
}

fn serial(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.big_integer().not_null().primary_key().auto_increment();
    c
}

fn migration_1(s: &str) -> Vec<TableCreateStatement> {
    vec![
        Table::create()
            .table(table(s, sql::STREAMS))
            .col(text("name").primary_key())
            .col(text("schema"))
            .to_owned(),
        Table::create()
            .table(table(s, sql::CHECKPOINTS))
            .col(text("sync").primary_key())
            .col(text("state"))
            .col(bigint("version"))
            .col(
                ColumnDef::new(id("updated_at"))
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .to_owned(),
        Table::create()
            .table(table(s, sql::FENCES))
            .col(text("sync").primary_key())
            .col(bigint("fence"))
            .to_owned(),
        Table::create()
            .table(table(s, sql::LEDGER))
            .col(serial("id"))
            .col(text("sync"))
            .col(text("run_id"))
            .col(text("strategy"))
            .col(ColumnDef::new(id("low")).json_binary().not_null())
            .col(ColumnDef::new(id("high")).json_binary().not_null())
            .col(bigint("rows_read"))
            .col(bigint("rows_written"))
            .col(bigint("rows_rejected"))
            .col(bigint("duration_ms"))
            .col(text("status"))
            .col(
                ColumnDef::new(id("committed_at"))
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .to_owned(),
        Table::create()
            .table(table(s, sql::LOG))
            .col(serial("id"))
            .col(text("sync"))
            .col(text("run_id"))
            .col(
                ColumnDef::new(id("at"))
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .col(text("level"))
            .col(text("event"))
            .col(text("message"))
            .to_owned(),
        Table::create()
            .table(table(s, sql::RUNS))
            .col(serial("id"))
            .col(text("sync").unique_key())
            .col(text("run_id"))
            .col(text("stream"))
            .col(text("schema"))
            .col(text("progress"))
            .col(text("params"))
            .col(
                ColumnDef::new(id("started_at"))
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .col(
                ColumnDef::new(id("validated_seq"))
                    .big_integer()
                    .not_null()
                    .default(0),
            )
            // Rows the staging table should hold: an UNLOGGED table emptied by a server crash
            // no longer matches, and the run starts over instead of resuming a lost fill.
            .col(
                ColumnDef::new(id("staged_count"))
                    .big_integer()
                    .not_null()
                    .default(0),
            )
            // The fencing token of the writer that owns the run (the last one to begin it).
            .col(
                ColumnDef::new(id("fence"))
                    .big_integer()
                    .not_null()
                    .default(0),
            )
            .to_owned(),
        Table::create()
            .table(table(s, sql::QUARANTINE))
            .col(serial("id"))
            .col(text("sync"))
            .col(text("run_id"))
            .col(text("row"))
            .col(text("reason"))
            .col(
                ColumnDef::new(id("at"))
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .to_owned(),
        Table::create()
            .table(table(s, sql::QUEUE))
            .col(text("queue"))
            .col(bigint("seq"))
            .col(text("entity"))
            .primary_key(Index::create().col(id("queue")).col(id("seq")))
            .to_owned(),
        Table::create()
            .table(table(s, sql::QUEUE_COUNTERS))
            .col(text("queue").primary_key())
            .col(bigint("last"))
            .to_owned(),
    ]
}

/// Run leases on the fence rows: until when the lease lasts (NULL: free), the holder (the key
/// of the advisory lock its store's holder session holds) and the run bound to it.
fn migration_2(s: &str) -> TableAlterStatement {
    Table::alter()
        .table(table(s, sql::FENCES))
        .add_column(ColumnDef::new(id("lease_until")).timestamp_with_time_zone())
        .add_column(ColumnDef::new(id("holder")).big_integer())
        .add_column(ColumnDef::new(id("run_id")).text())
        .to_owned()
}

/// Creates the schema and brings the store's tables to [`LATEST_VERSION`], one migration per
/// transaction, under an advisory lock. A database written by a newer library is refused.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client, schema: &str) -> Result<()> {
    let tx = client.transaction().await.map_err(classify)?;
    // Serialize migrations of this schema across processes (the key is a hash of its name).
    let key = schema.bytes().fold(0x5359_4e43_i64, |h, b| {
        h.wrapping_mul(31).wrapping_add(i64::from(b))
    });
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
        .await
        .map_err(classify)?;
    let create_schema = format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema));
    ddl(&tx, &create_schema).await?;
    let version_table = Table::create()
        .table(table(schema, sql::SCHEMA_VERSION))
        .if_not_exists()
        .col(bigint("version"))
        .to_owned();
    ddl(&tx, &version_table.to_string(PostgresQueryBuilder)).await?;
    let q = Query::select()
        .expr(Expr::col(id("version")).max())
        .from(table(schema, sql::SCHEMA_VERSION))
        .to_owned();
    let mut version = sql::query_i64(&tx, &q).await?.unwrap_or(0);
    if version > LATEST_VERSION {
        return Err(Error::new(
            ErrorKind::Storage,
            "database was written by a newer version of this library",
        )
        .with_context("schema_version", version)
        .with_context("supported", LATEST_VERSION));
    }
    while version < LATEST_VERSION {
        match version + 1 {
            1 => {
                for stmt in migration_1(schema) {
                    ddl(&tx, &stmt.to_string(PostgresQueryBuilder)).await?;
                }
            }
            2 => ddl(&tx, &migration_2(schema).to_string(PostgresQueryBuilder)).await?,
            // The job queue's tables (see `jobs::tables`).
            3 => {
                let (tables, indexes) = crate::jobs::migration_3(schema);
                for stmt in tables {
                    ddl(&tx, &stmt.to_string(PostgresQueryBuilder)).await?;
                }
                for stmt in indexes {
                    ddl(&tx, &stmt.to_string(PostgresQueryBuilder)).await?;
                }
            }
            v => return Err(Error::internal(format!("no migration to version {v}"))),
        }
        version += 1;
    }
    execute(
        &tx,
        &Query::delete()
            .from_table(table(schema, sql::SCHEMA_VERSION))
            .to_owned(),
    )
    .await?;
    let stamp = Query::insert()
        .into_table(table(schema, sql::SCHEMA_VERSION))
        .columns([id("version")])
        .values_panic([version.into()])
        .to_owned();
    execute(&tx, &stamp).await?;
    tx.commit().await.map_err(classify)
}

/// A schema name quoted as sea-query quotes identifiers (for the one DDL it does not build).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The stored target schema of `stream`, if the store manages it.
pub(crate) async fn target_schema<C: GenericClient>(
    client: &C,
    schema: &str,
    stream: &str,
) -> Result<Option<StreamSchema>> {
    let q = Query::select()
        .column(id("schema"))
        .from(table(schema, sql::STREAMS))
        .and_where(Expr::col(id("name")).eq(stream))
        .to_owned();
    let rows = sql::query(client, &q).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let text: String = row.try_get(0).map_err(classify)?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::new(ErrorKind::CorruptState, "stored stream schema is malformed")
            .with_context("stream", stream)
            .with_source(e)
    })
}

fn check_names(schema: &StreamSchema) -> Result<()> {
    if schema.name().starts_with(sql::RESERVED_TABLE_PREFIX) {
        return Err(Error::config("stream name uses a reserved prefix")
            .with_context("stream", schema.name()));
    }
    for c in schema.columns() {
        if c.name.starts_with(sql::RESERVED_COLUMN_PREFIX) {
            return Err(
                Error::config("column name uses a reserved prefix").with_context("column", &c.name)
            );
        }
    }
    for &g in schema.guard() {
        if matches!(schema.columns()[g].ty, ColumnType::Json | ColumnType::Bytes) {
            return Err(Error::unsupported(
                "postgres",
                "a json or bytes version guard column",
            ));
        }
    }
    Ok(())
}

/// Creates the target of `stream` or adds the columns it gained; records the merged schema.
pub(crate) async fn ensure_stream(
    tx: &Transaction<'_>,
    schema_name: &str,
    stream: &StreamSchema,
) -> Result<()> {
    check_names(stream)?;
    match target_schema(tx, schema_name, stream.name()).await? {
        None => {
            let exists = Query::select()
                .expr(Expr::cust("1::bigint"))
                .from((id("information_schema"), id("tables")))
                .and_where(Expr::col(id("table_schema")).eq(schema_name))
                .and_where(Expr::col(id("table_name")).eq(stream.name()))
                .to_owned();
            if sql::query_i64(tx, &exists).await?.is_some() {
                return Err(Error::config(
                    "a table with this name exists and is not managed by the store",
                )
                .with_context("stream", stream.name()));
            }
            let mut create = Table::create();
            create.table(table(schema_name, stream.name()));
            for c in stream.columns() {
                create.col(column_def(c));
            }
            let mut pk = Index::create();
            for &k in stream.primary_key() {
                pk.col(id(&stream.columns()[k].name));
            }
            create.primary_key(&mut pk);
            ddl(tx, &create.to_string(PostgresQueryBuilder)).await?;
            store_schema(tx, schema_name, stream).await
        }
        Some(old) => {
            let added = old.check_evolution(stream)?;
            if added.is_empty() {
                return Ok(());
            }
            let merged = old.with_added_columns(&added)?;
            check_names(&merged)?;
            for c in &added {
                let alter = Table::alter()
                    .table(table(schema_name, stream.name()))
                    .add_column(column_def(c))
                    .to_owned();
                ddl(tx, &alter.to_string(PostgresQueryBuilder)).await?;
            }
            store_schema(tx, schema_name, &merged).await
        }
    }
}

async fn store_schema(
    tx: &Transaction<'_>,
    schema_name: &str,
    stream: &StreamSchema,
) -> Result<()> {
    let json = serde_json::to_string(stream)?;
    let stmt = Query::insert()
        .into_table(table(schema_name, sql::STREAMS))
        .columns([id("name"), id("schema")])
        .values_panic([stream.name().into(), json.into()])
        .on_conflict(
            OnConflict::column(id("name"))
                .update_column(id("schema"))
                .to_owned(),
        )
        .to_owned();
    execute(tx, &stmt).await.map(drop)
}
