//! Identifiers, the mapping between core values and SQLite storage, and small statement
//! helpers. Every statement is built with sea-query (identifiers quoted, values bound).

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use sea_query::{Alias, ColumnDef, Expr, ExprTrait, SqliteQueryBuilder};
use sea_query_rusqlite::RusqliteBinder;
use sync_core::schema::{Column, ColumnType, StreamSchema};
use sync_core::{Error, ErrorKind, Result, Row, Value};

use crate::error::SqliteResultExt;

/// Tables the store owns start with this; streams may not use it.
pub(crate) const RESERVED_TABLE_PREFIX: &str = "_sync_";
/// Bookkeeping columns of staging tables start with this; stream columns may not use it.
pub(crate) const RESERVED_COLUMN_PREFIX: &str = "__sync_";

pub(crate) const STREAMS: &str = "_sync_streams";
pub(crate) const CHECKPOINTS: &str = "_sync_checkpoints";
pub(crate) const FENCES: &str = "_sync_fences";
pub(crate) const LEDGER: &str = "_sync_ledger";
pub(crate) const LOG: &str = "_sync_log";
pub(crate) const RUNS: &str = "_sync_runs";
pub(crate) const QUARANTINE: &str = "_sync_quarantine";
pub(crate) const QUEUE: &str = "_sync_queue";
pub(crate) const SCHEMA_VERSION: &str = "_sync_schema_version";

/// Staging bookkeeping: staging order, row or delete, validated.
pub(crate) const SEQ: &str = "__sync_seq";
pub(crate) const KIND: &str = "__sync_kind";
pub(crate) const STATE: &str = "__sync_state";
/// Why validation rejected a staged row.
pub(crate) const REASON: &str = "__sync_reason";
/// `KIND` of a row to upsert, and of a key to delete.
pub(crate) const KIND_ROW: i64 = 0;
pub(crate) const KIND_DELETE: i64 = 1;
/// `STATE` of a staged row (validation is tracked by the run's `validated_seq`).
pub(crate) const STAGED: i64 = 0;
/// `STATE` of a row validation rejected: kept until promotion moves it to the quarantine.
pub(crate) const REJECTED: i64 = 2;

/// A quoted identifier.
pub(crate) fn id(name: &str) -> Alias {
    Alias::new(name)
}

/// A column of a table: `"table"."column"`.
pub(crate) fn col(table: &str, column: &str) -> Expr {
    Expr::col((id(table), id(column)))
}

/// The staging table of a run (named by the run's row id, so stream names never reach it).
pub(crate) fn staging_table(run_rowid: i64) -> String {
    format!("_sync_stage_{run_rowid}")
}

/// Timestamps are stored as fixed-width UTC text, so text order is time order.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// The declared SQLite type of a column. Text affinity for decimals and JSON keeps their text
/// exact (NUMERIC affinity would turn `"48160.62"` into a float).
pub(crate) fn column_def(column: &Column) -> ColumnDef {
    let mut def = ColumnDef::new(id(&column.name));
    match column.ty {
        ColumnType::Integer => def.integer(),
        ColumnType::Float => def.double(),
        ColumnType::Bool => def.boolean(),
        ColumnType::Bytes => def.blob(),
        ColumnType::Text
        | ColumnType::Decimal { .. }
        | ColumnType::Timestamp
        | ColumnType::Date
        | ColumnType::Json => def.text(),
    };
    if !column.nullable {
        def.not_null();
    }
    def
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` without going through a strftime parser on the hot path.
pub(crate) fn timestamp_text(t: &DateTime<Utc>) -> String {
    match timestamp_bytes(t) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => t.format(TIMESTAMP_FORMAT).to_string(),
    }
}

/// The stored text of a timestamp of years 0 to 9999, formatted without allocating.
pub(crate) fn timestamp_bytes(t: &DateTime<Utc>) -> Option<[u8; 27]> {
    use chrono::{Datelike, Timelike};
    let t = t.naive_utc();
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 6, t.nanosecond() / 1_000 % 1_000_000);
    Some(out)
}

/// The stored text of a decimal (as its `Display` writes it: the scale's digits after the
/// point, `-` for a negative sign) into `out`, without allocating; returns its length.
pub(crate) fn decimal_bytes(d: &rust_decimal::Decimal, out: &mut [u8; 64]) -> usize {
    let scale = d.scale() as usize;
    // Digits from the least significant; 29 at most, and at least `scale`.
    let mut digits = [b'0'; 40];
    let mut n = 0;
    let mantissa = d.mantissa().unsigned_abs();
    if let Ok(mut m) = u64::try_from(mantissa) {
        while m > 0 {
            digits[n] = b'0' + (m % 10) as u8;
            m /= 10;
            n += 1;
        }
    } else {
        let mut m = mantissa;
        while m > 0 {
            digits[n] = b'0' + (m % 10) as u8;
            m /= 10;
            n += 1;
        }
    }
    let n = n.max(scale);
    let mut len = 0;
    let mut put = |b: u8| {
        out[len] = b;
        len += 1;
    };
    if d.is_sign_negative() {
        put(b'-');
    }
    if n == scale {
        put(b'0');
    }
    for i in (scale..n).rev() {
        put(digits[i]);
    }
    if scale > 0 {
        put(b'.');
        for i in (0..scale).rev() {
            put(digits[i]);
        }
    }
    len
}

/// The stored form of a value, borrowing text and bytes.
pub(crate) fn to_sql(v: &Value) -> ToSqlOutput<'_> {
    use rusqlite::types::Value as Owned;
    match v {
        Value::Null => ToSqlOutput::Owned(Owned::Null),
        Value::Text(s) | Value::Json(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Value::Integer(i) => ToSqlOutput::Owned(Owned::Integer(*i)),
        Value::Float(f) => ToSqlOutput::Owned(Owned::Real(*f)),
        Value::Decimal(d) => ToSqlOutput::Owned(Owned::Text(d.to_string())),
        Value::Bool(b) => ToSqlOutput::Owned(Owned::Integer(i64::from(*b))),
        Value::Timestamp(t) => ToSqlOutput::Owned(Owned::Text(timestamp_text(t))),
        Value::Date(d) => ToSqlOutput::Owned(Owned::Text(d.format("%Y-%m-%d").to_string())),
        Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
    }
}

/// A value as a sea-query bound value (for values inside built statements).
pub(crate) fn sea_value(v: &Value) -> sea_query::Value {
    use rusqlite::types::Value as Owned;
    match to_sql(v) {
        ToSqlOutput::Borrowed(ValueRef::Text(t)) => {
            sea_query::Value::String(Some(String::from_utf8_lossy(t).into_owned()))
        }
        ToSqlOutput::Borrowed(ValueRef::Blob(b)) => sea_query::Value::Bytes(Some(b.to_vec())),
        ToSqlOutput::Owned(Owned::Integer(i)) => sea_query::Value::BigInt(Some(i)),
        ToSqlOutput::Owned(Owned::Real(f)) => sea_query::Value::Double(Some(f)),
        ToSqlOutput::Owned(Owned::Text(s)) => sea_query::Value::String(Some(s)),
        _ => sea_query::Value::String(None),
    }
}

/// Reads a stored value back as a column of type `ty`.
pub(crate) fn from_sql(column: &Column, v: ValueRef<'_>) -> Result<Value> {
    let bad = || {
        Error::new(
            ErrorKind::CorruptState,
            "stored value does not match its column type",
        )
        .with_context("column", &column.name)
    };
    let text = |v: ValueRef<'_>| -> Result<String> {
        match v {
            ValueRef::Text(t) => Ok(String::from_utf8_lossy(t).into_owned()),
            _ => Err(bad()),
        }
    };
    if let ValueRef::Null = v {
        return Ok(Value::Null);
    }
    Ok(match column.ty {
        ColumnType::Text => Value::Text(text(v)?.into_boxed_str()),
        ColumnType::Json => Value::Json(text(v)?.into_boxed_str()),
        ColumnType::Integer => Value::Integer(v.as_i64().map_err(|_| bad())?),
        ColumnType::Float => Value::Float(match v {
            ValueRef::Integer(i) => i as f64,
            other => other.as_f64().map_err(|_| bad())?,
        }),
        ColumnType::Bool => Value::Bool(v.as_i64().map_err(|_| bad())? != 0),
        ColumnType::Decimal { .. } => {
            Value::Decimal(sync_core::value::parse_decimal(&text(v)?).map_err(|_| bad())?)
        }
        ColumnType::Timestamp => Value::Timestamp(
            DateTime::parse_from_rfc3339(&text(v)?)
                .map_err(|_| bad())?
                .with_timezone(&Utc),
        ),
        ColumnType::Date => {
            Value::Date(NaiveDate::parse_from_str(&text(v)?, "%Y-%m-%d").map_err(|_| bad())?)
        }
        ColumnType::Bytes => Value::Bytes(v.as_blob().map_err(|_| bad())?.into()),
    })
}

/// Executes a built statement; returns the rows changed.
pub(crate) fn execute<S: RusqliteBinder>(conn: &Connection, stmt: &S) -> Result<usize> {
    let (sql, values) = stmt.build_rusqlite(SqliteQueryBuilder);
    conn.execute(&sql, &*values.as_params()).db()
}

/// Runs a built single-value query returning an integer (counts, maxima); `None` when there
/// is no row or the value is NULL.
pub(crate) fn query_i64<S: RusqliteBinder>(conn: &Connection, stmt: &S) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    let (sql, values) = stmt.build_rusqlite(SqliteQueryBuilder);
    let v = conn
        .query_row(&sql, &*values.as_params(), |r| r.get::<_, Option<i64>>(0))
        .optional()
        .db()?;
    Ok(v.flatten())
}

/// Runs a built select, reading each result row with `read`.
pub(crate) fn query_map<S: RusqliteBinder, T>(
    conn: &Connection,
    stmt: &S,
    mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let (sql, values) = stmt.build_rusqlite(SqliteQueryBuilder);
    let mut prepared = conn.prepare(&sql).db()?;
    let mut rows = prepared.query(&*values.as_params()).db()?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        out.push(read(r)?);
    }
    Ok(out)
}

/// Reads rows of `schema` from the result of a built select of its columns in order.
pub(crate) fn query_rows<S: RusqliteBinder>(
    conn: &Connection,
    stmt: &S,
    schema: &StreamSchema,
) -> Result<Vec<Row>> {
    query_map(conn, stmt, |r| {
        let mut cells = Vec::with_capacity(schema.columns().len());
        for (i, c) in schema.columns().iter().enumerate() {
            cells.push(from_sql(c, r.get_ref(i).db()?)?);
        }
        Ok(Row::new(cells))
    })
}

/// `a = b` for every key column between two tables (for correlated subqueries).
pub(crate) fn key_match(schema: &StreamSchema, left: &str, right: &str) -> Expr {
    let mut cond: Option<Expr> = None;
    for &k in schema.primary_key() {
        let name = &schema.columns()[k].name;
        let eq = col(left, name).equals((id(right), id(name)));
        cond = Some(match cond {
            Some(c) => c.and(eq),
            None => eq,
        });
    }
    cond.expect("a schema has a primary key")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_as_sortable_text() {
        let c = Column::new("t", ColumnType::Timestamp);
        let early = Value::Timestamp("2024-01-01T00:00:00.5Z".parse().unwrap());
        let late = Value::Timestamp("2024-01-01T00:00:01Z".parse().unwrap());
        let (a, b) = match (to_sql(&early), to_sql(&late)) {
            (
                ToSqlOutput::Owned(rusqlite::types::Value::Text(a)),
                ToSqlOutput::Owned(rusqlite::types::Value::Text(b)),
            ) => (a, b),
            other => panic!("{other:?}"),
        };
        assert!(a < b, "{a} < {b}");
        assert_eq!(a, "2024-01-01T00:00:00.500000Z");
        let t: DateTime<Utc> = "2024-02-29T23:59:59.123456789Z".parse().unwrap();
        assert_eq!(timestamp_text(&t), t.format(TIMESTAMP_FORMAT).to_string());
        let ancient: DateTime<Utc> = "0001-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            timestamp_text(&ancient),
            ancient.format(TIMESTAMP_FORMAT).to_string()
        );
        assert_eq!(from_sql(&c, ValueRef::Text(a.as_bytes())).unwrap(), early);
    }

    #[test]
    fn decimals_stay_exact_text() {
        let c = Column::new(
            "p",
            ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
        );
        let v = Value::Decimal("48160.62".parse().unwrap());
        let stored = match to_sql(&v) {
            ToSqlOutput::Owned(rusqlite::types::Value::Text(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(stored, "48160.62");
        assert_eq!(from_sql(&c, ValueRef::Text(stored.as_bytes())).unwrap(), v);
        assert!(from_sql(&c, ValueRef::Integer(3)).is_err());
    }

    #[test]
    fn decimals_format_inline_as_display_does() {
        use rust_decimal::Decimal;
        let mut values: Vec<Decimal> = [
            "0",
            "0.00",
            "-0.00",
            "48160.62",
            "-48160.62",
            "0.05",
            "-0.5",
            "99999.99",
            "1",
            "10",
            "100.000",
            "0.0000000000000000000000000001",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "7922816251426433759354395033.5",
            "18446744073709551616",
            "18446744073709551615.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        values.push(Decimal::new(-0, 3));
        let mut negative_zero = Decimal::new(0, 2);
        negative_zero.set_sign_negative(true);
        values.push(negative_zero);
        for i in 0..2000i64 {
            values.push(Decimal::new(i * 7919 - 5_000_000, (i % 12) as u32));
        }
        let mut buf = [0u8; 64];
        for d in values {
            let n = decimal_bytes(&d, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), d.to_string());
        }
    }
}
