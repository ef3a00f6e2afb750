//! Identifiers, the mapping between core values and PostgreSQL types (binary COPY and bound
//! parameters), and statement helpers. Every statement is built with sea-query.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, Utc};
use sea_query::{Alias, ColumnDef, Expr, ExprTrait, PostgresQueryBuilder, TableRef};
use sea_query_postgres::PostgresBinder;
use sync_core::schema::{Column, ColumnType, StreamSchema};
use sync_core::{Error, ErrorKind, Result, Row, Value};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::GenericClient;

use crate::error::classify;

pub(crate) const STREAMS: &str = "_sync_streams";
pub(crate) const CHECKPOINTS: &str = "_sync_checkpoints";
pub(crate) const FENCES: &str = "_sync_fences";
pub(crate) const LEDGER: &str = "_sync_ledger";
pub(crate) const LOG: &str = "_sync_log";
pub(crate) const RUNS: &str = "_sync_runs";
pub(crate) const QUARANTINE: &str = "_sync_quarantine";
pub(crate) const QUEUE: &str = "_sync_queue";
pub(crate) const QUEUE_COUNTERS: &str = "_sync_queue_counters";
pub(crate) const SCHEMA_VERSION: &str = "_sync_schema_version";
pub(crate) const INTEGRATIONS: &str = "_sync_integrations";
pub(crate) const JOBS: &str = "_sync_jobs";
pub(crate) const JOB_KEYS: &str = "_sync_job_keys";
pub(crate) const JOB_PAUSES: &str = "_sync_job_pauses";
/// Tables the store owns start with this; streams may not use it.
pub(crate) const RESERVED_TABLE_PREFIX: &str = "_sync_";
/// Bookkeeping columns of staging tables start with this; stream columns may not use it.
pub(crate) const RESERVED_COLUMN_PREFIX: &str = "__sync_";
pub(crate) const SEQ: &str = "__sync_seq";
pub(crate) const KIND: &str = "__sync_kind";
pub(crate) const STATE: &str = "__sync_state";
pub(crate) const REASON: &str = "__sync_reason";
pub(crate) const KIND_ROW: i16 = 0;
pub(crate) const KIND_DELETE: i16 = 1;
pub(crate) const STAGED: i16 = 0;
pub(crate) const REJECTED: i16 = 2;

/// A quoted identifier.
pub(crate) fn id(name: &str) -> Alias {
    Alias::new(name)
}

/// `"schema"."table"`.
pub(crate) fn table(schema: &str, name: &str) -> TableRef {
    (id(schema), id(name)).into()
}

/// `"schema"."table"."column"`.
pub(crate) fn qcol(schema: &str, table: &str, column: &str) -> Expr {
    Expr::col((id(schema), id(table), id(column)))
}

/// `"alias"."column"`.
pub(crate) fn acol(alias: &str, column: &str) -> Expr {
    Expr::col((id(alias), id(column)))
}

/// The staging table of a run (named by the run's row id, so stream names never reach it).
pub(crate) fn staging_table(run_rowid: i64) -> String {
    format!("_sync_stage_{run_rowid}")
}

/// The PostgreSQL type of a column.
pub(crate) fn pg_type(ty: ColumnType) -> Type {
    match ty {
        ColumnType::Text => Type::TEXT,
        ColumnType::Integer => Type::INT8,
        ColumnType::Float => Type::FLOAT8,
        ColumnType::Decimal { .. } => Type::NUMERIC,
        ColumnType::Bool => Type::BOOL,
        ColumnType::Timestamp => Type::TIMESTAMPTZ,
        ColumnType::Date => Type::DATE,
        ColumnType::Json => Type::JSONB,
        ColumnType::Bytes => Type::BYTEA,
    }
}

/// The column definition of a stream column.
pub(crate) fn column_def(column: &Column) -> ColumnDef {
    let mut def = ColumnDef::new(id(&column.name));
    match column.ty {
        ColumnType::Text => def.text(),
        ColumnType::Integer => def.big_integer(),
        ColumnType::Float => def.double(),
        // numeric(p) alone would mean scale 0 and round: without a declared scale it stays open.
        ColumnType::Decimal {
            precision: Some(p),
            scale: Some(s),
        } => def.decimal_len(u32::from(p), u32::from(s)),
        ColumnType::Decimal { .. } => def.decimal(),
        ColumnType::Bool => def.boolean(),
        ColumnType::Timestamp => def.timestamp_with_time_zone(),
        ColumnType::Date => def.date(),
        ColumnType::Json => def.json_binary(),
        ColumnType::Bytes => def.binary(),
    };
    if !column.nullable {
        def.not_null();
    }
    def
}

/// A core value bound as a PostgreSQL parameter or COPY field of its column's type.
#[derive(Debug)]
pub(crate) struct Cell<'a>(pub(crate) &'a Value);

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        // The driver's own type check is off (`accepts` takes every type), so a value is only
        // written into the column type it belongs to; anything else is an error, never a
        // reinterpretation of its bytes.
        let expected = self.0.column_type().map(pg_type);
        if expected
            .as_ref()
            .is_some_and(|e| e != ty && !(*e == Type::JSONB && *ty == Type::JSON))
        {
            return Err(format!(
                "a {:?} value cannot be written to a {ty} column",
                self.0.column_type()
            )
            .into());
        }
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Text(s) => s.as_ref().to_sql(ty, out),
            Value::Integer(i) => i.to_sql(ty, out),
            Value::Float(f) => f.to_sql(ty, out),
            Value::Decimal(d) => d.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
            Value::Timestamp(t) => t.to_sql(ty, out),
            Value::Date(d) => d.to_sql(ty, out),
            Value::Json(s) => {
                // jsonb's binary form is a version byte and the JSON text: no re-parse here.
                if *ty == Type::JSONB {
                    out.put_u8(1);
                }
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            Value::Bytes(b) => b.as_ref().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// jsonb or json read back as its text.
struct JsonText(String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        let body = if *ty == Type::JSONB {
            raw.get(1..).unwrap_or_default()
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(body)?.to_string()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// A value as a sea-query bound value (for values inside built statements).
pub(crate) fn sea_value(v: &Value) -> sea_query::Value {
    use sea_query::Value as V;
    match v {
        Value::Null => V::String(None),
        Value::Text(s) => V::String(Some(s.to_string())),
        Value::Integer(i) => V::BigInt(Some(*i)),
        Value::Float(f) => V::Double(Some(*f)),
        Value::Decimal(d) => V::Decimal(Some(*d)),
        Value::Bool(b) => V::Bool(Some(*b)),
        Value::Timestamp(t) => V::ChronoDateTimeUtc(Some(*t)),
        Value::Date(d) => V::ChronoDate(Some(*d)),
        Value::Json(s) => V::Json(serde_json::from_str(s).ok().map(Box::new)),
        Value::Bytes(b) => V::Bytes(Some(b.to_vec())),
    }
}

/// Reads column `i` of a result row as a value of `column`'s type.
pub(crate) fn read_cell(row: &tokio_postgres::Row, i: usize, column: &Column) -> Result<Value> {
    let bad = |e: tokio_postgres::Error| {
        Error::new(
            ErrorKind::CorruptState,
            "stored value does not match its column type",
        )
        .with_context("column", &column.name)
        .with_source(e)
    };
    Ok(match column.ty {
        ColumnType::Text => row
            .try_get::<_, Option<String>>(i)
            .map_err(bad)?
            .map(|s| Value::Text(s.into())),
        ColumnType::Integer => row
            .try_get::<_, Option<i64>>(i)
            .map_err(bad)?
            .map(Value::Integer),
        ColumnType::Float => row
            .try_get::<_, Option<f64>>(i)
            .map_err(bad)?
            .map(Value::Float),
        ColumnType::Decimal { .. } => row
            .try_get::<_, Option<rust_decimal::Decimal>>(i)
            .map_err(bad)?
            .map(Value::Decimal),
        ColumnType::Bool => row
            .try_get::<_, Option<bool>>(i)
            .map_err(bad)?
            .map(Value::Bool),
        ColumnType::Timestamp => row
            .try_get::<_, Option<DateTime<Utc>>>(i)
            .map_err(bad)?
            .map(Value::Timestamp),
        ColumnType::Date => row
            .try_get::<_, Option<NaiveDate>>(i)
            .map_err(bad)?
            .map(Value::Date),
        ColumnType::Json => row
            .try_get::<_, Option<JsonText>>(i)
            .map_err(bad)?
            .map(|j| Value::Json(j.0.into())),
        ColumnType::Bytes => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(bad)?
            .map(|b| Value::Bytes(b.into())),
    }
    .unwrap_or(Value::Null))
}

/// Reads rows of `schema` from a result whose columns start at `offset` in schema order.
pub(crate) fn read_rows(
    rows: &[tokio_postgres::Row],
    schema: &StreamSchema,
    offset: usize,
) -> Result<Vec<Row>> {
    rows.iter()
        .map(|r| {
            let cells = schema
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| read_cell(r, i + offset, c));
            Ok(Row::new(cells.collect::<Result<Vec<_>>>()?))
        })
        .collect()
}

/// Executes a built statement; returns the rows changed.
pub(crate) async fn execute<C: GenericClient, S: PostgresBinder>(
    client: &C,
    stmt: &S,
) -> Result<u64> {
    let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
    client
        .execute(sql.as_str(), &values.as_params())
        .await
        .map_err(classify)
}

/// Runs a built query.
pub(crate) async fn query<C: GenericClient, S: PostgresBinder>(
    client: &C,
    stmt: &S,
) -> Result<Vec<tokio_postgres::Row>> {
    let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
    client
        .query(sql.as_str(), &values.as_params())
        .await
        .map_err(classify)
}

/// Runs a built query as one unnamed statement whose parameter types are sent with it: one
/// round trip, where [`query`] first prepares (for statements run once on a connection the
/// store does not own, such as a caller's transaction).
pub(crate) async fn query_typed<C: GenericClient, S: PostgresBinder>(
    client: &C,
    stmt: &S,
) -> Result<Vec<tokio_postgres::Row>> {
    let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
    let types = values.as_types();
    let params: Vec<_> = values.as_params().into_iter().zip(types).collect();
    client
        .query_typed(sql.as_str(), &params)
        .await
        .map_err(classify)
}

/// Runs a built single-value query returning an integer; `None` without a row or for NULL.
pub(crate) async fn query_i64<C: GenericClient, S: PostgresBinder>(
    client: &C,
    stmt: &S,
) -> Result<Option<i64>> {
    let rows = query(client, stmt).await?;
    match rows.first() {
        None => Ok(None),
        Some(r) => r.try_get::<_, Option<i64>>(0).map_err(classify),
    }
}

/// Runs DDL built by sea-query.
pub(crate) async fn ddl<C: GenericClient>(client: &C, sql: &str) -> Result<()> {
    client.batch_execute(sql).await.map_err(classify)
}

/// `left.k = right.k` for every key column.
pub(crate) fn key_match(
    schema: &StreamSchema,
    left: impl Fn(&str) -> Expr,
    right: impl Fn(&str) -> Expr,
) -> Expr {
    schema
        .primary_key()
        .iter()
        .map(|&k| {
            let name = &schema.columns()[k].name;
            left(name).eq(right(name))
        })
        .reduce(|a, b| a.and(b))
        .expect("a schema has a primary key")
}

/// `(key columns) = key` for any of `keys`.
pub(crate) fn keys_in(schema: &StreamSchema, keys: &[sync_core::Key]) -> sea_query::Condition {
    let mut any = sea_query::Condition::any();
    for key in keys {
        let mut all = sea_query::Condition::all();
        for (&k, v) in schema.primary_key().iter().zip(&key.0) {
            all = all.add(Expr::col(id(&schema.columns()[k].name)).eq(Expr::val(sea_value(v))));
        }
        any = any.add(all);
    }
    any
}

/// `excluded` is newer than the stored row by the guard columns, compared in order with NULL
/// as the oldest value (as `Row::compare_guard` does), in SQL both stores accept.
pub(crate) fn newer_guard(
    guard: &[&str],
    excluded: impl Fn(&str) -> Expr,
    current: impl Fn(&str) -> Expr,
) -> Option<Expr> {
    let mut any: Option<Expr> = None;
    for (i, g) in guard.iter().enumerate() {
        let gt = current(g)
            .is_null()
            .and(excluded(g).is_not_null())
            .or(excluded(g).gt(current(g)));
        let mut term = gt;
        for h in &guard[..i] {
            let same = excluded(h)
                .eq(current(h))
                .or(excluded(h).is_null().and(current(h).is_null()));
            term = same.and(term);
        }
        any = Some(match any {
            Some(a) => a.or(term),
            None => term,
        });
    }
    any
}
