//! Promotion: staging into the target in one `BEGIN IMMEDIATE` transaction together with the
//! checkpoint compare-and-set, the ledger row and the log entries.
//!
//! Every statement costs what the promoted window holds, never what the target holds: keys
//! are looked up in the target's primary key, the counts come from the run's row and SQLite's
//! update hook, and only the scoped replace of a full snapshot, which must find the rows the
//! snapshot lacks, reads the target (and not even that when the target was empty). Into an
//! empty target the run's row table is renamed (see `swap`); otherwise the upsert runs over
//! short ranges of the source (see `chunk`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::hooks::Action;
use rusqlite::Transaction;
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sync_core::checkpoint::CheckpointCommit;
use sync_core::stager::{PromoteMode, PromoteReport, ReplaceScope, StagingRun};
use sync_core::{Error, ErrorKind, FaultPoint, Result, StreamSchema};

use crate::checkpoint::apply_commit;
use crate::error::SqliteResultExt;
use crate::run::{create_rows_table, end, this_run, Counts};
use crate::schema::target_schema;
use crate::sql::{
    self, col, execute, id, key_match, KIND, KIND_DELETE, KIND_ROW, REJECTED, SEQ, STATE,
};
use crate::stage::{has_unvalidated, quarantine_rejected};
use crate::store::Inner;
use crate::{chunk, swap};

const STAGE: &str = "s";

/// `SELECT 1 FROM stage s WHERE [s.kind = kind AND] s.key = target.key`; for rows this
/// includes rows validation set aside: they are in the snapshot, so a replace keeps their keys.
fn in_stage(
    schema: &StreamSchema,
    table: &str,
    target: &str,
    kind: Option<i64>,
) -> SelectStatement {
    let mut q = Query::select();
    q.expr(Expr::val(1))
        .from_as(id(table), id(STAGE))
        .and_where(key_match(schema, STAGE, target));
    if let Some(kind) = kind {
        q.and_where(col(STAGE, KIND).eq(kind));
    }
    q
}

/// True when the staging table holds rows to upsert (in a run with a row table it holds
/// none once validated: only rows set aside and keys to delete).
fn has_live(tx: &Transaction<'_>, table: &str) -> Result<bool> {
    let q = Query::select()
        .expr(Expr::val(1))
        .from(id(table))
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).ne(REJECTED))
        .limit(1)
        .to_owned();
    Ok(sql::query_i64(tx, &q)?.is_some())
}

/// The key columns of `schema` as a row value, `("k1", "k2")`.
fn key_tuple(schema: &StreamSchema) -> Expr {
    Expr::tuple(
        schema
            .primary_key()
            .iter()
            .map(|&k| Expr::col(id(&schema.columns()[k].name))),
    )
}

/// The row table's rowid under a name no column of `schema` takes (`None` when columns take
/// all three).
fn rowid(schema: &StreamSchema) -> Option<Expr> {
    let taken = |name: &str| {
        schema
            .columns()
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
    };
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !taken(n))
        .map(Expr::cust)
}

/// True when `stream` has no row (one step into its table).
fn is_empty(tx: &Transaction<'_>, stream: &str) -> Result<bool> {
    let q = Query::select()
        .expr(Expr::val(1))
        .from(id(stream))
        .limit(1)
        .to_owned();
    Ok(sql::query_i64(tx, &q)?.is_none())
}

/// Rows inserted and updated in `stream` while `f` runs, as SQLite's update hook reports
/// them (targets are rowid tables, which it reports on): no statement counts the target.
fn counting_changes<T>(
    tx: &Transaction<'_>,
    stream: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<(T, u64, u64)> {
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let (theirs, table) = (counts.clone(), stream.to_string());
    tx.update_hook(Some(
        move |action: Action, db: &str, t: &str, _rowid: i64| {
            let slot = match action {
                Action::SQLITE_INSERT => 0,
                Action::SQLITE_UPDATE => 1,
                _ => return,
            };
            if db == "main" && t == table {
                theirs[slot].fetch_add(1, Ordering::Relaxed);
            }
        },
    ))
    .db()?;
    let out = f();
    tx.update_hook(None::<fn(Action, &str, &str, i64)>).db()?;
    let (inserted, updated) = (
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
    );
    Ok((out?, inserted, updated))
}

pub(crate) fn promote(
    tx: &Transaction<'_>,
    inner: &Inner,
    run: &StagingRun,
    mode: &PromoteMode,
    commit: &CheckpointCommit,
    close: bool,
) -> Result<PromoteReport> {
    let row = this_run(tx, run)?;
    let (schema, table) = (row.run.schema.clone(), row.table());
    if has_unvalidated(tx, &row)? {
        return Err(
            Error::invalid_input("staged rows were not validated before promote")
                .with_context("sync", &run.sync),
        );
    }
    let stream = schema.name();
    let target = target_schema(tx, stream)?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "stream has no target; call ensure_stream",
        )
        .with_context("stream", stream)
    })?;
    let valid = row.counts.live();
    let was_empty = is_empty(tx, stream)?;

    // Upsert, never replacing a row by one with an older version guard.
    let columns: Vec<_> = schema
        .columns()
        .iter()
        .filter(|c| target.column_index(&c.name).is_some())
        .map(|c| id(&c.name))
        .collect();
    let key: Vec<_> = schema
        .primary_key()
        .iter()
        .map(|&k| id(&schema.columns()[k].name))
        .collect();
    let update: Vec<_> = schema
        .columns()
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            !schema.primary_key().contains(i) && target.column_index(&c.name).is_some()
        })
        .map(|(_, c)| id(&c.name))
        .collect();
    let mut on_conflict = OnConflict::columns(key);
    if update.is_empty() {
        on_conflict.do_nothing();
    } else {
        on_conflict.update_columns(update);
        let guard: Vec<&str> = schema
            .guard()
            .iter()
            .map(|&g| schema.columns()[g].name.as_str())
            .collect();
        if let Some(newer) = sql::newer_guard(&guard, |g| col("excluded", g), |g| col(stream, g)) {
            on_conflict.action_and_where(newer);
        }
    }
    let rows_table = row.row_table.then(|| row.rows_table());
    // Into an empty target the row table is renamed, not copied.
    let swapped = match &rows_table {
        Some(rows) if valid > 0 && was_empty && !has_live(tx, &table)? => {
            let swap = swap::interchangeable(tx, rows, stream, &schema)?;
            if swap {
                swap::rename_into(tx, rows, stream)?;
            }
            swap
        }
        _ => false,
    };
    let per_statement = chunk::rows_per_statement(tx)?;
    // Over ranges of an integer key of the source (see `chunk`): the row table's rowid, the
    // staging table's sequence.
    let upsert_from = |source: &str, order: Option<Expr>, filter: Option<Expr>| -> Result<()> {
        let mut select = Query::select();
        select.columns(columns.clone()).from(id(source));
        if let Some(filter) = filter {
            select.and_where(filter);
        } else {
            // Keeps SQLite from reading the upsert's ON as a join constraint.
            select.and_where(Expr::cust("true"));
        }
        let values = order.as_ref().map(|order| {
            select
                .and_where(chunk::range(order.clone()))
                .order_by_expr(order.clone(), Order::Asc);
            Query::select()
                .expr(order.clone())
                .from(id(source))
                .order_by_expr(order.clone(), Order::Asc)
                .to_owned()
        });
        let upsert = Query::insert()
            .into_table(id(stream))
            .columns(columns.clone())
            .select_from(select)
            .map_err(|e| Error::internal("cannot build the promote statement").with_source(e))?
            .on_conflict(on_conflict.clone())
            .to_owned();
        match values {
            Some(values) => chunk::in_ranges(tx, &upsert, &values, per_statement).map(drop),
            None => execute(tx, &upsert).map(drop),
        }
    };
    let (inserted, updated) = if swapped {
        (valid, 0)
    } else {
        let ((), inserted, updated) = counting_changes(tx, stream, || {
            if valid == 0 {
                return Ok(());
            }
            if let Some(rows) = &rows_table {
                // A row table's rowid is its integer key when it has one: sparse ranges
                // are fine, `in_ranges` follows the values that exist.
                upsert_from(rows, rowid(&schema), None)?;
            }
            let live = Expr::col(id(KIND))
                .eq(KIND_ROW)
                .and(Expr::col(id(STATE)).ne(REJECTED));
            upsert_from(&table, Some(Expr::col(id(SEQ))), Some(live))
        })?;
        (inserted, updated)
    };
    let mut report = PromoteReport {
        inserted,
        updated,
        unchanged: valid.saturating_sub(inserted + updated),
        ..PromoteReport::default()
    };

    if row.counts.deletes > 0 {
        // Each staged key is looked up in the target's primary key.
        let doomed = Query::select()
            .exprs(
                schema
                    .primary_key()
                    .iter()
                    .map(|&k| Expr::col(id(&schema.columns()[k].name))),
            )
            .from(id(&table))
            .and_where(Expr::col(id(KIND)).eq(KIND_DELETE))
            .to_owned();
        let deletes = Query::delete()
            .from_table(id(stream))
            .and_where(key_tuple(&schema).in_subquery(doomed))
            .to_owned();
        report.deleted = execute(tx, &deletes)? as u64;
    }
    // A target that was empty holds only staged rows now: nothing for a replace to delete.
    if let (PromoteMode::Replace(scope), false) = (mode, was_empty) {
        let mut replace = Query::delete();
        replace
            .from_table(id(stream))
            .and_where(Expr::exists(in_stage(&schema, &table, stream, Some(KIND_ROW))).not());
        if let Some(rows) = &rows_table {
            replace.and_where(Expr::exists(in_stage(&schema, rows, stream, None)).not());
        }
        if let ReplaceScope::Since { column, since } = scope {
            let name = &schema.columns()[*column].name;
            replace.and_where(col(stream, name).gte(Expr::val(sql::sea_value(since))));
        }
        report.deleted += execute(tx, &replace)? as u64;
    }
    if row.counts.rejected > 0 {
        report.quarantined = quarantine_rejected(tx, run, &table, &schema)?;
    }
    report.checkpoint_version =
        apply_commit(tx, commit, Some((report.written(), report.quarantined)))?;
    if close {
        end(tx, &row)?;
    } else {
        execute(tx, &Query::delete().from_table(id(&table)).to_owned())?;
        match &rows_table {
            Some(rows) if swapped => create_rows_table(tx, rows, &schema)?,
            Some(rows) => {
                execute(tx, &Query::delete().from_table(id(rows)).to_owned()).map(drop)?
            }
            None => {}
        }
        // SQLite numbers rows of an emptied table from 1 again: validation starts over too.
        let empty = Counts {
            nulls: Some(Vec::new()),
            ..Counts::default()
        };
        let mut reset = empty.update(row.rowid)?;
        reset.value(id("validated_seq"), 0);
        execute(tx, &reset)?;
    }
    // Every statement ran; a crash here rolls all of it back.
    inner.faults.check(FaultPoint::DuringCommit)?;
    Ok(report)
}
