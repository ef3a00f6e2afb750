//! Promotion of a row table into an empty target by renaming it: a full load writes its rows
//! once, into the table that becomes the target, instead of staging them and copying them.
//!
//! The rename happens inside the promoting transaction (SQLite's DDL is transactional), so it
//! commits or rolls back with the checkpoint like the upsert it replaces. It is done only when
//! the two tables are interchangeable: the target holds no row, was created by this store from
//! the run's schema exactly (its stored `CREATE TABLE` is the one the store would write now),
//! has no index but its primary key's, and the database has no view or trigger a rename could
//! change the meaning of. Anything else is promoted by the upsert.

use rusqlite::{Connection, OptionalExtension, Transaction};
use sea_query::{Expr, ExprTrait, Query, SqliteQueryBuilder, Table};
use sea_query_rusqlite::RusqliteBinder;
use sync_core::{Result, StreamSchema};

use crate::error::SqliteResultExt;
use crate::schema::target_table;
use crate::sql::{self, id};

/// The stored `CREATE TABLE` of `table`, if it is a table.
fn stored_sql(conn: &Connection, table: &str) -> Result<Option<String>> {
    let q = Query::select()
        .column(id("sql"))
        .from(id("sqlite_master"))
        .and_where(Expr::col(id("type")).eq("table"))
        .and_where(Expr::col(id("name")).eq(table))
        .to_owned();
    let (text, values) = q.build_rusqlite(SqliteQueryBuilder);
    let sql: Option<Option<String>> = conn
        .query_row(&text, &*values.as_params(), |r| r.get(0))
        .optional()
        .db()?;
    Ok(sql.flatten())
}

/// True when `rows` may replace the (empty) target `stream` by a rename.
pub(crate) fn interchangeable(
    conn: &Connection,
    rows: &str,
    stream: &str,
    schema: &StreamSchema,
) -> Result<bool> {
    let expected = |name: &str| target_table(name, schema).to_string(SqliteQueryBuilder);
    if stored_sql(conn, stream)? != Some(expected(stream))
        || stored_sql(conn, rows)? != Some(expected(rows))
    {
        return Ok(false);
    }
    let rewritable = Query::select()
        .expr(Expr::val(1))
        .from(id("sqlite_master"))
        .and_where(Expr::col(id("type")).is_in(["trigger", "view"]))
        .limit(1)
        .to_owned();
    if sql::query_i64(conn, &rewritable)?.is_some() {
        return Ok(false);
    }
    // A pragma string: indexes on the target other than its primary key's.
    let other_indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_index_list(?1) WHERE origin <> 'pk'",
            [stream],
            |r| r.get(0),
        )
        .db()?;
    Ok(other_indexes == 0)
}

/// Drops the empty target and renames `rows` to it.
pub(crate) fn rename_into(tx: &Transaction<'_>, rows: &str, stream: &str) -> Result<()> {
    let drop = Table::drop()
        .table(id(stream))
        .to_string(SqliteQueryBuilder);
    tx.execute(&drop, []).db()?;
    let rename = Table::rename()
        .table(id(rows), id(stream))
        .to_string(SqliteQueryBuilder);
    tx.execute(&rename, []).db()?;
    Ok(())
}
