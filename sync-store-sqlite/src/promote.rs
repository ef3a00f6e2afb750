//! Promotion: staging into the target in one `BEGIN IMMEDIATE` transaction together with the
//! checkpoint compare-and-set, the ledger row and the log entries.

use rusqlite::Transaction;
use sea_query::{Asterisk, Expr, ExprTrait, OnConflict, Order, Query};
use sync_core::checkpoint::CheckpointCommit;
use sync_core::stager::{PromoteMode, PromoteReport, ReplaceScope, StagingRun};
use sync_core::{Error, ErrorKind, FaultPoint, Result, StreamSchema};

use crate::checkpoint::apply_commit;
use crate::schema::target_schema;
use crate::sql::{
    self, col, execute, id, key_match, KIND, KIND_DELETE, KIND_ROW, REJECTED, SEQ, STATE,
};
use crate::stage::{count_live, end, has_unvalidated, quarantine_rejected, this_run};
use crate::store::Inner;

const STAGE: &str = "s";

/// `EXISTS (SELECT 1 FROM stage s WHERE s.kind = kind AND s.key = target.key)`; for rows this
/// includes rows validation set aside: they are in the snapshot, so a replace keeps their keys.
fn in_stage(schema: &StreamSchema, table: &str, target: &str, kind: i64) -> Expr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from_as(id(table), id(STAGE))
            .and_where(col(STAGE, KIND).eq(kind))
            .and_where(key_match(schema, STAGE, target))
            .to_owned(),
    )
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
    let valid = count_live(tx, &table)?;
    let target_rows = || -> Result<u64> {
        let q = Query::select()
            .expr(Expr::col(Asterisk).count())
            .from(id(stream))
            .to_owned();
        Ok(sql::query_i64(tx, &q)?.unwrap_or(0) as u64)
    };
    let before = target_rows()?;

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
    let select = Query::select()
        .columns(columns.clone())
        .from(id(&table))
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).ne(REJECTED))
        .order_by(id(SEQ), Order::Asc)
        .to_owned();
    let upsert = Query::insert()
        .into_table(id(stream))
        .columns(columns)
        .select_from(select)
        .map_err(|e| Error::internal("cannot build the promote statement").with_source(e))?
        .on_conflict(on_conflict)
        .to_owned();
    let changed = execute(tx, &upsert)? as u64;
    let inserted = target_rows()?.saturating_sub(before);
    let updated = changed.saturating_sub(inserted);
    let mut report = PromoteReport {
        inserted,
        updated,
        unchanged: valid.saturating_sub(changed),
        ..PromoteReport::default()
    };

    let deletes = Query::delete()
        .from_table(id(stream))
        .and_where(in_stage(&schema, &table, stream, KIND_DELETE))
        .to_owned();
    report.deleted = execute(tx, &deletes)? as u64;
    if let PromoteMode::Replace(scope) = mode {
        let mut replace = Query::delete();
        replace
            .from_table(id(stream))
            .and_where(in_stage(&schema, &table, stream, KIND_ROW).not());
        if let ReplaceScope::Since { column, since } = scope {
            let name = &schema.columns()[*column].name;
            replace.and_where(col(stream, name).gte(Expr::val(sql::sea_value(since))));
        }
        report.deleted += execute(tx, &replace)? as u64;
    }
    report.quarantined = quarantine_rejected(tx, run, &table, &schema)?;
    report.checkpoint_version =
        apply_commit(tx, commit, Some((report.written(), report.quarantined)))?;
    if close {
        end(tx, &row)?;
    } else {
        execute(tx, &Query::delete().from_table(id(&table)).to_owned())?;
        // SQLite numbers rows of an emptied table from 1 again: validation starts over too.
        let reset = Query::update()
            .table(id(sql::RUNS))
            .value(id("validated_seq"), 0)
            .and_where(Expr::col(id("id")).eq(row.rowid))
            .to_owned();
        execute(tx, &reset)?;
    }
    // Every statement ran; a crash here rolls all of it back.
    inner.faults.check(FaultPoint::DuringCommit)?;
    Ok(report)
}
