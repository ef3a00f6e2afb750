//! Snapshots of chosen targets with their checkpoints into a schema of their own, and their
//! restore, for a rollback of a sync: targets and checkpoints are copied from one consistent
//! view (`REPEATABLE READ`) and come back together in one transaction, so a checkpoint never
//! points past (or before) the data it describes.
//!
//! Schema DDL (`CREATE SCHEMA`, `CREATE TABLE … (LIKE …)`) has no sea-query builder; those
//! statements quote their identifiers by doubling quotes, as `drop_schema` does. Every other
//! statement is built with sea-query.

use sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sync_core::{Error, ErrorKind, Result, SyncLogEntry};
use tokio_postgres::{GenericClient, Transaction};

use crate::checkpoint::insert_log;
use crate::error::classify;
use crate::sql::{self, execute, id, table};
use crate::store::PostgresStore;

/// `"name"`, quotes doubled.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns of `schema.name` in order (none when there is no such table).
async fn columns<C: GenericClient>(client: &C, schema: &str, name: &str) -> Result<Vec<String>> {
    let q = Query::select()
        .column(id("column_name"))
        .from((id("information_schema"), id("columns")))
        .and_where(Expr::col(id("table_schema")).eq(schema))
        .and_where(Expr::col(id("table_name")).eq(name))
        .order_by(id("ordinal_position"), Order::Asc)
        .to_owned();
    let rows = sql::query(client, &q).await?;
    rows.iter()
        .map(|r| r.try_get::<_, String>(0).map_err(classify))
        .collect()
}

/// Replaces the rows of `to.name` by those of `from.name` (all rows, or those of the syncs
/// in `only` when given; none when `from` lacks the table). Nothing happens when `to` lacks
/// the table.
async fn copy_rows(
    tx: &Transaction<'_>,
    from: &str,
    to: &str,
    name: &str,
    only: Option<&[String]>,
) -> Result<()> {
    if columns(tx, to, name).await?.is_empty() {
        return Ok(());
    }
    let mut delete = Query::delete();
    delete.from_table(table(to, name));
    if let Some(syncs) = only {
        delete.and_where(Expr::col(id("sync")).is_in(syncs.iter().cloned()));
    }
    execute(tx, &delete).await?;
    let cols: Vec<Alias> = columns(tx, from, name)
        .await?
        .iter()
        .map(|c| id(c))
        .collect();
    if cols.is_empty() {
        return Ok(());
    }
    let mut select = Query::select();
    select.columns(cols.clone()).from(table(from, name));
    if let Some(syncs) = only {
        select.and_where(Expr::col(id("sync")).is_in(syncs.iter().cloned()));
    }
    let insert = Query::insert()
        .into_table(table(to, name))
        .columns(cols)
        .select_from(select)
        .map_err(|e| Error::internal("a snapshot statement is invalid").with_source(e))?
        .to_owned();
    execute(tx, &insert).await?;
    Ok(())
}

fn check_names(store: &PostgresStore, snapshot: &str, streams: &[String]) -> Result<()> {
    if snapshot.is_empty() || snapshot == store.schema_name() {
        return Err(Error::config(
            "a snapshot schema must be named and differ from the store's schema",
        ));
    }
    if let Some(s) = streams
        .iter()
        .find(|s| s.starts_with(sql::RESERVED_TABLE_PREFIX))
    {
        return Err(
            Error::config("only stream targets can be snapshotted").with_context("table", s)
        );
    }
    Ok(())
}

impl PostgresStore {
    /// Copies the target tables `streams` and the checkpoints of `syncs` into the schema
    /// `snapshot` (dropped first when it exists), all read from one consistent view
    /// (`REPEATABLE READ`), in one transaction. Targets that do not exist yet are left out;
    /// restoring empties them.
    pub async fn snapshot_into(
        &self,
        snapshot: &str,
        streams: &[String],
        syncs: &[String],
    ) -> Result<()> {
        check_names(self, snapshot, streams)?;
        let (schema, snapshot) = (self.schema_name().to_owned(), snapshot.to_owned());
        let (streams, syncs) = (streams.to_vec(), syncs.to_vec());
        self.transact(move |tx| {
            let (schema, snapshot) = (schema.clone(), snapshot.clone());
            let (streams, syncs) = (streams.clone(), syncs.clone());
            Box::pin(async move {
                tx.batch_execute(&format!(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
                     DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}",
                    s = quoted(&snapshot)
                ))
                .await
                .map_err(classify)?;
                for name in streams.iter().chain([&sql::CHECKPOINTS.to_owned()]) {
                    if columns(tx, &schema, name).await?.is_empty() {
                        continue;
                    }
                    tx.batch_execute(&format!(
                        "CREATE TABLE {}.{n} (LIKE {}.{n})",
                        quoted(&snapshot),
                        quoted(&schema),
                        n = quoted(name)
                    ))
                    .await
                    .map_err(classify)?;
                    let only = (name == sql::CHECKPOINTS).then_some(syncs.as_slice());
                    copy_rows(tx, &schema, &snapshot, name, only).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Restores the target tables `streams` and the checkpoints of `syncs` from the schema
    /// written by [`PostgresStore::snapshot_into`], in one transaction: each target gets
    /// exactly the snapshot's rows (none when the snapshot lacks the table), each checkpoint
    /// the snapshot's state and version (none when it has none), and the entries of `log`
    /// are appended to the sync log in that same transaction (the rollback's record: it is
    /// there exactly when the restore is). Fences, the ledger, the rest of the sync log and
    /// the quarantine stay as they are (fences only grow; history stays). Refuses a sync
    /// whose staging run is open (`Conflict`).
    pub async fn restore_snapshot(
        &self,
        snapshot: &str,
        streams: &[String],
        syncs: &[String],
        log: &[SyncLogEntry],
    ) -> Result<()> {
        check_names(self, snapshot, streams)?;
        let (schema, snapshot) = (self.schema_name().to_owned(), snapshot.to_owned());
        let (streams, syncs, log) = (streams.to_vec(), syncs.to_vec(), log.to_vec());
        self.transact(move |tx| {
            let (schema, snapshot) = (schema.clone(), snapshot.clone());
            let (streams, syncs, log) = (streams.clone(), syncs.clone(), log.clone());
            Box::pin(async move {
                if columns(tx, &snapshot, sql::CHECKPOINTS).await?.is_empty() {
                    return Err(Error::config("the snapshot schema holds no snapshot")
                        .with_context("snapshot", &snapshot));
                }
                let open = Query::select()
                    .expr(Expr::col(id("sync")).count())
                    .from(table(&schema, sql::RUNS))
                    .and_where(Expr::col(id("sync")).is_in(syncs.iter().cloned()))
                    .to_owned();
                if sql::query_i64(tx, &open).await?.unwrap_or(0) > 0 {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "a staging run of a sync being restored is open: abort it first",
                    ));
                }
                for name in &streams {
                    copy_rows(tx, &snapshot, &schema, name, None).await?;
                }
                copy_rows(tx, &snapshot, &schema, sql::CHECKPOINTS, Some(&syncs)).await?;
                for entry in &log {
                    insert_log(tx, &schema, entry).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Drops the snapshot schema `snapshot` (nothing when it does not exist).
    pub async fn drop_snapshot(&self, snapshot: &str) -> Result<()> {
        check_names(self, snapshot, &[])?;
        let client = self.client().await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quoted(snapshot)
            ))
            .await
            .map_err(classify)
    }
}
