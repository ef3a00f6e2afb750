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

/// Runs `stmt` (which holds one [`range`]) over ranges of `rows` of the ascending integers
/// that `values` (a select of one column, ordered) yields: `(first - 1, v[rows - 1]]`,
/// `(v[rows - 1], v[2 * rows - 1]]`, … up to the last value; returns the rows changed.
///
/// The ranges follow the values that exist rather than stepping from 0 to the largest: a
/// row table keyed by one integer column has that key as its rowid, so its rowids can be
/// sparse and large (Oracle ids such as 300000001000000), and stepping would run a number of
/// empty statements proportional to the largest key. The values are streamed from their
/// select while the statements run, so memory stays bounded whatever the table's size;
/// `values` must read another table than the one `stmt` changes.
pub(crate) fn in_ranges<S: RusqliteBinder, V: RusqliteBinder>(
    conn: &Connection,
    stmt: &S,
    values: &V,
    rows: i64,
) -> Result<usize> {
    let (sql, bound) = stmt.build_rusqlite(SqliteQueryBuilder);
    let mut bound: Vec<RusqliteValue> = bound.0;
    let at = |placeholder: i64| {
        bound
            .iter()
            .position(|v| v.0 == sea_query::Value::BigInt(Some(placeholder)))
    };
    let (Some(low), Some(high)) = (at(LOW), at(HIGH)) else {
        return Err(sync_core::Error::internal(
            "range statement without its bounds",
        ));
    };
    let mut prepared = conn.prepare_cached(&sql).db()?;
    let mut run = |from: i64, to: i64| -> Result<usize> {
        bound[low] = RusqliteValue(sea_query::Value::BigInt(Some(from)));
        bound[high] = RusqliteValue(sea_query::Value::BigInt(Some(to)));
        let params: Vec<&dyn ToSql> = bound.iter().map(|v| v as &dyn ToSql).collect();
        prepared.execute(&*params).db()
    };
    let (values_sql, values_bound) = values.build_rusqlite(SqliteQueryBuilder);
    let mut select = conn.prepare(&values_sql).db()?;
    let mut cursor = select.query(&*values_bound.as_params()).db()?;
    let per_range = Ord::max(rows, 1);
    let mut changed = 0;
    // (the bound below the current range, the last value read, values read in the range)
    let mut open: Option<(i64, i64, i64)> = None;
    while let Some(row) = cursor.next().db()? {
        let value: i64 = row.get(0).db()?;
        let (from, _, n) = open.unwrap_or((value.saturating_sub(1), value, 0));
        if n + 1 == per_range {
            changed += run(from, value)?;
            open = Some((value, value, 0));
        } else {
            open = Some((from, value, n + 1));
        }
    }
    if let Some((from, last, n)) = open {
        if n > 0 {
            changed += run(from, last)?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use sea_query::Query;

    use super::*;
    use crate::sql::id;

    /// Keys like Oracle's (sparse, near 3e14) are covered in a handful of statements: the
    /// ranges follow the values, they do not step from 0 to the largest key.
    #[test]
    fn ranges_follow_sparse_large_keys() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        conn.execute_batch("CREATE TABLE keys (k INTEGER PRIMARY KEY)")
            .unwrap();
        let keys: Vec<i64> = (0..50).map(|i| 300_000_001_000_000 + i * 7_919).collect();
        for k in &keys {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, 0)", [k])
                .unwrap();
            conn.execute("INSERT INTO keys (k) VALUES (?1)", [k])
                .unwrap();
        }
        let stmt = Query::update()
            .table(id("t"))
            .value(id("v"), Expr::col(id("v")).add(1))
            .and_where(range(Expr::col(id("k"))))
            .to_owned();
        let values = |table: &str| {
            Query::select()
                .column(id("k"))
                .from(id(table))
                .order_by(id("k"), sea_query::Order::Asc)
                .to_owned()
        };
        // 50 values in ranges of 8: 7 statements, the last one short.
        assert_eq!(in_ranges(&conn, &stmt, &values("keys"), 8).unwrap(), 50);
        let touched: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE v = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(touched, 50, "every row once, none twice");
        conn.execute_batch("DELETE FROM keys").unwrap();
        assert_eq!(in_ranges(&conn, &stmt, &values("keys"), 8).unwrap(), 0);
        // Ranges of one value each, and one range for all (the statement's table holding
        // just the values, as a promotion's source does).
        conn.execute(
            "INSERT INTO keys (k) VALUES (?1), (?2)",
            [keys[3], keys[40]],
        )
        .unwrap();
        conn.execute("DELETE FROM t WHERE k NOT IN (?1, ?2)", [keys[3], keys[40]])
            .unwrap();
        assert_eq!(in_ranges(&conn, &stmt, &values("keys"), 1).unwrap(), 2);
        assert_eq!(in_ranges(&conn, &stmt, &values("keys"), 100).unwrap(), 2);
        let twice: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE v = 3", [], |r| r.get(0))
            .unwrap();
        assert_eq!(twice, 2);
    }
}
