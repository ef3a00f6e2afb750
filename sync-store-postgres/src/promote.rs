//! Promotion: staging into the target in one transaction with the checkpoint compare-and-set,
//! the ledger row and the log entries.

use sea_query::{Expr, ExprTrait, OnConflict, PostgresQueryBuilder, Query, SelectStatement};
use sea_query_postgres::PostgresBinder;
use sync_core::checkpoint::CheckpointCommit;
use sync_core::stager::{PromoteMode, PromoteReport, ReplaceScope, StagingRun};
use sync_core::{Error, ErrorKind, FaultPoint, Faults, Result, StreamSchema};
use tokio_postgres::error::SqlState;
use tokio_postgres::Transaction;

use crate::checkpoint::apply_commit;
use crate::schema::target_schema;
use crate::sql::{
    self, acol, execute, id, key_match, qcol, table, KIND, KIND_DELETE, KIND_ROW, REJECTED, STATE,
};
use crate::stage::{
    adjust_staged_count, count_live, end, has_unvalidated, quarantine_rejected, this_run,
};

const STAGE: &str = "s";

/// `EXISTS (SELECT 1 FROM stage s WHERE s.kind = kind AND s.key = target.key)`; for rows this
/// includes rows validation set aside: they are in the snapshot, so a replace keeps their keys.
fn in_stage(schema: &str, stream: &StreamSchema, stage: &str, kind: i16) -> Expr {
    let target = stream.name();
    Expr::exists(
        Query::select()
            .expr(Expr::cust("1::bigint"))
            .from_as(sql::table(schema, stage), id(STAGE))
            .and_where(acol(STAGE, KIND).eq(kind))
            .and_where(key_match(
                stream,
                |c| acol(STAGE, c),
                |c| qcol(schema, target, c),
            ))
            .to_owned(),
    )
}

/// `"name"`, quoted as sea-query quotes identifiers.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn is_empty(tx: &Transaction<'_>, schema: &str, name: &str) -> Result<bool> {
    let any = Query::select()
        .expr(Expr::cust("1::bigint"))
        .from(table(schema, name))
        .limit(1)
        .to_owned();
    Ok(sql::query_i64(tx, &any).await?.is_none())
}

/// The name of the target's primary-key constraint when it is exactly what `ALTER TABLE ..
/// ADD CONSTRAINT name PRIMARY KEY (key)` would build again: on the stream's key columns in
/// order, a plain b-tree of default operator classes and collations, no INCLUDE, storage
/// option or tablespace of its own, not deferrable, clustered or the replica identity, and
/// nothing (a foreign key, a constraint) depending on its index. `None` otherwise.
async fn rebuildable_key(
    tx: &Transaction<'_>,
    schema: &str,
    stream: &StreamSchema,
) -> Result<Option<String>> {
    let key: Vec<String> = stream
        .primary_key()
        .iter()
        .map(|&k| stream.columns()[k].name.clone())
        .collect();
    let probe = Query::select()
        .expr(Expr::cust_with_values(
            "(SELECT c.conname::text FROM pg_constraint c \
               JOIN pg_class t ON t.oid = c.conrelid \
               JOIN pg_namespace n ON n.oid = t.relnamespace \
               JOIN pg_index i ON i.indexrelid = c.conindid \
               JOIN pg_class ic ON ic.oid = c.conindid \
             WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind = 'r' \
               AND c.contype = 'p' AND NOT c.condeferrable \
               AND NOT i.indisclustered AND NOT i.indisreplident \
               AND i.indnatts = i.indnkeyatts AND i.indexprs IS NULL AND i.indpred IS NULL \
               AND ic.reloptions IS NULL AND ic.reltablespace = 0 \
               AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(att, ord) \
                         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.att ORDER BY k.ord) \
                   = ARRAY(SELECT j.e FROM jsonb_array_elements_text($3::text::jsonb) WITH ORDINALITY j(e, ord) ORDER BY j.ord) \
               AND NOT EXISTS (SELECT 1 FROM unnest(i.indclass::oid[]) oc(o) \
                               JOIN pg_opclass op ON op.oid = oc.o WHERE NOT op.opcdefault) \
               AND ARRAY(SELECT unnest(i.indcollation::oid[])) = ARRAY(SELECT a.attcollation FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(att, ord) \
                         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.att ORDER BY k.ord) \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = t.oid) \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass \
                               AND d.refobjid = c.conindid AND d.deptype = 'n'))",
            [
                sea_query::Value::from(schema.to_string()),
                sea_query::Value::from(stream.name().to_string()),
                sea_query::Value::from(serde_json::to_string(&key)?),
            ],
        ))
        .to_owned();
    let rows = sql::query(tx, &probe).await?;
    match rows.first() {
        Some(r) => r
            .try_get::<_, Option<String>>(0)
            .map_err(crate::error::classify),
        None => Ok(None),
    }
}

/// Into a target that holds no row, validated rows (one per key) are plain inserts: no
/// conflict check or guard per row. When its primary key can be built again exactly
/// ([`rebuildable_key`]), it is dropped for the insert and added back after it, one sort
/// instead of a million index insertions; the drop locks the target until the commit, so
/// readers wait for the promotion (and then see every row) instead of reading the empty
/// table meanwhile. Returns the rows inserted, or `None` when the target is not empty, or a
/// writer outside this run inserted a key meanwhile (the savepoint undoes the attempt and the
/// caller upserts).
async fn insert_into_empty(
    tx: &Transaction<'_>,
    schema: &str,
    stream: &StreamSchema,
    columns: &[sea_query::Alias],
    select: &SelectStatement,
) -> Result<Option<u64>> {
    let name = stream.name();
    if !is_empty(tx, schema, name).await? {
        return Ok(None);
    }
    let rebuilt = rebuildable_key(tx, schema, stream).await?;
    let insert = Query::insert()
        .into_table(table(schema, name))
        .columns(columns.to_vec())
        .select_from(select.clone())
        .map_err(|e| Error::internal("cannot build the promote statement").with_source(e))?
        .to_owned();
    let (insert_sql, values) = insert.build_postgres(PostgresQueryBuilder);
    // ALTER TABLE is not a statement sea-query builds for constraints; identifiers are quoted
    // the way it quotes them.
    let target = format!("{}.{}", quoted(schema), quoted(name));
    let key = stream
        .primary_key()
        .iter()
        .map(|&k| quoted(&stream.columns()[k].name))
        .collect::<Vec<_>>()
        .join(", ");
    sql::ddl(tx, "SAVEPOINT \"__sync_insert\"").await?;
    let attempt = async {
        if let Some(pk) = &rebuilt {
            let drop = format!("ALTER TABLE {target} DROP CONSTRAINT {}", quoted(pk));
            tx.batch_execute(&drop).await?;
            // Under the lock the drop took: a writer may have inserted since the first look.
            let any = format!("SELECT 1 FROM {target} LIMIT 1");
            if !tx.query(any.as_str(), &[]).await?.is_empty() {
                return Ok(None);
            }
        }
        let inserted = tx.execute(insert_sql.as_str(), &values.as_params()).await?;
        if let Some(pk) = &rebuilt {
            let add = format!(
                "ALTER TABLE {target} ADD CONSTRAINT {} PRIMARY KEY ({key})",
                quoted(pk)
            );
            tx.batch_execute(&add).await?;
        }
        Ok::<_, tokio_postgres::Error>(Some(inserted))
    };
    match attempt.await {
        Ok(Some(inserted)) => {
            sql::ddl(tx, "RELEASE SAVEPOINT \"__sync_insert\"").await?;
            Ok(Some(inserted))
        }
        Ok(None) => {
            sql::ddl(tx, "ROLLBACK TO SAVEPOINT \"__sync_insert\"").await?;
            Ok(None)
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            sql::ddl(tx, "ROLLBACK TO SAVEPOINT \"__sync_insert\"").await?;
            Ok(None)
        }
        Err(e) => Err(crate::error::classify(e)),
    }
}

/// The guarded upsert of validated rows; counts inserted, updated and unchanged rows.
async fn upsert(
    tx: &Transaction<'_>,
    schema: &str,
    stream: &StreamSchema,
    target: &StreamSchema,
    stage: &str,
    columns: Vec<sea_query::Alias>,
    select: SelectStatement,
) -> Result<PromoteReport> {
    let name = stream.name();
    let valid = count_live(tx, schema, stage).await?;
    let key: Vec<_> = stream
        .primary_key()
        .iter()
        .map(|&k| id(&stream.columns()[k].name))
        .collect();
    let update: Vec<_> = stream
        .columns()
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            !stream.primary_key().contains(i) && target.column_index(&c.name).is_some()
        })
        .map(|(_, c)| id(&c.name))
        .collect();
    let mut on_conflict = OnConflict::columns(key);
    if update.is_empty() {
        on_conflict.do_nothing();
    } else {
        on_conflict.update_columns(update);
        let guard: Vec<&str> = stream
            .guard()
            .iter()
            .map(|&g| stream.columns()[g].name.as_str())
            .collect();
        if let Some(newer) =
            sql::newer_guard(&guard, |g| acol("excluded", g), |g| qcol(schema, name, g))
        {
            on_conflict.action_and_where(newer);
        }
    }
    let upsert = Query::insert()
        .into_table(table(schema, name))
        .columns(columns)
        .select_from(select)
        .map_err(|e| Error::internal("cannot build the promote statement").with_source(e))?
        .on_conflict(on_conflict)
        .to_owned();
    // Inserted and updated rows are told apart by xmax in one pass over the changed rows,
    // not by counting the whole target before and after.
    let (upsert_sql, values) = upsert.build_postgres(PostgresQueryBuilder);
    let counted = format!(
        "WITH \"changed\" AS ({upsert_sql} RETURNING (xmax = 0) AS \"inserted\") \
         SELECT count(*) FILTER (WHERE \"inserted\"), count(*) FROM \"changed\""
    );
    let counts = tx
        .query_one(counted.as_str(), &values.as_params())
        .await
        .map_err(crate::error::classify)?;
    let inserted = counts
        .try_get::<_, i64>(0)
        .map_err(crate::error::classify)? as u64;
    let changed = counts
        .try_get::<_, i64>(1)
        .map_err(crate::error::classify)? as u64;
    Ok(PromoteReport {
        inserted,
        updated: changed.saturating_sub(inserted),
        unchanged: valid.saturating_sub(changed),
        ..PromoteReport::default()
    })
}

pub(crate) async fn promote(
    tx: &Transaction<'_>,
    schema: &str,
    faults: &Faults,
    run: &StagingRun,
    mode: &PromoteMode,
    commit: &CheckpointCommit,
    close: bool,
) -> Result<PromoteReport> {
    let row = this_run(tx, schema, run).await?;
    let (stream, stage) = (row.run.schema.clone(), row.table());
    if has_unvalidated(tx, schema, &row).await? {
        return Err(
            Error::invalid_input("staged rows were not validated before promote")
                .with_context("sync", &run.sync),
        );
    }
    let name = stream.name();
    let target = target_schema(tx, schema, name).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "stream has no target; call ensure_stream",
        )
        .with_context("stream", name)
    })?;
    let columns: Vec<_> = stream
        .columns()
        .iter()
        .filter(|c| target.column_index(&c.name).is_some())
        .map(|c| id(&c.name))
        .collect();
    // Validation left one live row per key: the order rows are applied in does not matter.
    let select = Query::select()
        .columns(columns.clone())
        .from(table(schema, &stage))
        .and_where(Expr::col(id(KIND)).eq(KIND_ROW))
        .and_where(Expr::col(id(STATE)).ne(REJECTED))
        .to_owned();
    let (mut report, was_empty) =
        match insert_into_empty(tx, schema, &stream, &columns, &select).await? {
            Some(inserted) => (
                PromoteReport {
                    inserted,
                    ..PromoteReport::default()
                },
                true,
            ),
            None => (
                upsert(tx, schema, &stream, &target, &stage, columns, select).await?,
                false,
            ),
        };
    // The staging table holds exactly the recorded count of rows (begin checks it, every
    // change moves it). When the rows just applied are all of them, no delete key and no row
    // set aside is there: neither is looked for.
    let applied = report.inserted + report.updated + report.unchanged;
    let rest = u64::try_from(row.staged_count)
        .unwrap_or(0)
        .saturating_sub(applied);
    if rest > 0 {
        let deletes = Query::delete()
            .from_table(table(schema, name))
            .and_where(in_stage(schema, &stream, &stage, KIND_DELETE))
            .to_owned();
        report.deleted = execute(tx, &deletes).await?;
    }
    match mode {
        // The target held nothing before: every row in it now came from this snapshot.
        PromoteMode::Replace(_) if was_empty => {}
        PromoteMode::Replace(scope) => {
            let mut replace = Query::delete();
            replace
                .from_table(table(schema, name))
                .and_where(in_stage(schema, &stream, &stage, KIND_ROW).not());
            if let ReplaceScope::Since { column, since } = scope {
                let col = &stream.columns()[*column].name;
                replace.and_where(qcol(schema, name, col).gte(Expr::val(sql::sea_value(since))));
            }
            report.deleted += execute(tx, &replace).await?;
        }
        PromoteMode::Upsert => {}
    }
    if rest > 0 {
        report.quarantined = quarantine_rejected(tx, schema, run, &stage, &stream).await?;
    }
    report.checkpoint_version = apply_commit(
        tx,
        schema,
        commit,
        Some((report.written(), report.quarantined)),
    )
    .await?;
    if close {
        end(tx, schema, &row).await?;
    } else {
        execute(
            tx,
            &Query::delete().from_table(table(schema, &stage)).to_owned(),
        )
        .await?;
        adjust_staged_count(tx, schema, &row, None).await?;
    }
    // Every statement ran; a crash here rolls all of it back.
    faults.check(FaultPoint::DuringCommit)?;
    Ok(report)
}
