//! Statements run over a table in short ranges of its integer key.
//!
//! Inside a transaction SQLite first copies every page that an `INSERT … SELECT` is about to
//! change into a statement journal, so that the statement alone can be rolled back. Past
//! 64 KiB that journal spills into a temporary file: an upsert of a window of 1,000 changed
//! rows into a large target wrote each of the ~1,000 pages it changed twice. Run over ranges
//! of a few rows, each statement changes a handful of pages and its journal stays in memory.
//! (The promoting transaction rolls back as a whole on any error, so nothing depends on one
//! statement rolling back alone.)

use rusqlite::types::ToSql;
use rusqlite::Connection;
use sea_query::{Expr, ExprTrait, SqliteQueryBuilder};
use sea_query_rusqlite::{RusqliteBinder, RusqliteValue};
use sync_core::Result;

use crate::error::SqliteResultExt;

/// Bytes of statement journal SQLite keeps in memory (`SQLITE_STMTJRNL_SPILL`).
const JOURNAL_IN_MEMORY: i64 = 64 * 1024;

/// Placeholders for the range bounds, found again among the statement's bound values.
const LOW: i64 = i64::MIN + 7;
const HIGH: i64 = i64::MIN + 11;

/// Rows per statement for a database of `page_size`: half the pages the statement journal
/// holds in memory (a row changes a leaf page, sometimes a parent too).
pub(crate) fn rows_per_statement(conn: &Connection) -> Result<i64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).db()?;
    Ok(Ord::max(
        JOURNAL_IN_MEMORY / Ord::max(page_size, 512) / 2,
        1,
    ))
}

/// `column > low AND column <= high`, with placeholders [`in_ranges`] fills in.
pub(crate) fn range(column: Expr) -> Expr {
    column
        .clone()
        .gt(Expr::val(LOW))
        .and(column.lte(Expr::val(HIGH)))
}

/// Runs `stmt` (which holds one [`range`]) for the ranges `(0, n]`, `(n, 2n]`, … up to
/// `max`; returns the rows changed.
pub(crate) fn in_ranges<S: RusqliteBinder>(
    conn: &Connection,
    stmt: &S,
    max: i64,
    rows: i64,
) -> Result<usize> {
    let (sql, values) = stmt.build_rusqlite(SqliteQueryBuilder);
    let mut values: Vec<RusqliteValue> = values.0;
    let at = |bound: i64| {
        values
            .iter()
            .position(|v| v.0 == sea_query::Value::BigInt(Some(bound)))
    };
    let (Some(low), Some(high)) = (at(LOW), at(HIGH)) else {
        return Err(sync_core::Error::internal(
            "range statement without its bounds",
        ));
    };
    let mut prepared = conn.prepare_cached(&sql).db()?;
    let mut changed = 0;
    let mut from = 0i64;
    while from < max {
        let to = from.saturating_add(rows);
        values[low] = RusqliteValue(sea_query::Value::BigInt(Some(from)));
        values[high] = RusqliteValue(sea_query::Value::BigInt(Some(to)));
        let params: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
        changed += prepared.execute(&*params).db()?;
        from = to;
    }
    Ok(changed)
}
