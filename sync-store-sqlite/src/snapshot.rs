//! Backups of the whole file and the restore of chosen targets with their checkpoints, for a
//! rollback of a sync: the targets and the checkpoints come back together, in one
//! transaction, so a checkpoint never points past (or before) the data it describes.
//!
//! `VACUUM INTO` and `ATTACH` have no sea-query builder; both take the file name as a bound
//! value, and every other statement is built with sea-query.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, Transaction};
use sea_query::{Alias, Expr, ExprTrait, Query, TableRef};
use sync_core::{Error, ErrorKind, Result, SyncLogEntry};

use crate::checkpoint::insert_log;
use crate::error::SqliteResultExt;
use crate::sql::{self, execute, id};
use crate::store::SqliteStore;

/// The schema name a backup is attached under while it is restored.
const BACKUP: &str = "_sync_backup";

fn path_text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::config("a backup path must be valid UTF-8"))
}

fn backup_table(name: &str) -> TableRef {
    (id(BACKUP), id(name)).into()
}

/// True when `schema` (`main` or the backup) has a table `name`.
fn has_table(conn: &Connection, schema: &str, name: &str) -> Result<bool> {
    let q = Query::select()
        .expr(Expr::val(1))
        .from((Alias::new(schema), id("sqlite_master")))
        .and_where(Expr::col(id("type")).eq("table"))
        .and_where(Expr::col(id("name")).eq(name))
        .to_owned();
    Ok(sql::query_i64(conn, &q)?.is_some())
}

/// The column names of the backup's table `name`, in order.
fn backup_columns(conn: &Connection, name: &str) -> Result<Vec<String>> {
    // The table-valued pragma takes the table and the schema as bound values.
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1, ?2) ORDER BY cid")
        .db()?;
    let names = stmt
        .query_map([name, BACKUP], |r| r.get::<_, String>(0))
        .db()?
        .collect::<std::result::Result<Vec<_>, _>>()
        .db()?;
    Ok(names)
}

/// Replaces the rows of target `stream` by the backup's (none when the backup lacks it).
fn restore_target(tx: &Transaction<'_>, stream: &str) -> Result<()> {
    if !has_table(tx, "main", stream)? {
        return Ok(());
    }
    execute(tx, &Query::delete().from_table(id(stream)).to_owned())?;
    if !has_table(tx, BACKUP, stream)? {
        return Ok(());
    }
    let columns: Vec<Alias> = backup_columns(tx, stream)?.iter().map(|c| id(c)).collect();
    let select = Query::select()
        .columns(columns.clone())
        .from(backup_table(stream))
        .to_owned();
    let insert = Query::insert()
        .into_table(id(stream))
        .columns(columns)
        .select_from(select)
        .map_err(|e| Error::internal("a restore statement is invalid").with_source(e))?
        .to_owned();
    execute(tx, &insert)?;
    Ok(())
}

/// Replaces the checkpoints of `syncs` by the backup's (removed when the backup has none).
fn restore_checkpoints(tx: &Transaction<'_>, syncs: &[String]) -> Result<()> {
    let delete = Query::delete()
        .from_table(id(sql::CHECKPOINTS))
        .and_where(Expr::col(id("sync")).is_in(syncs.iter().cloned()))
        .to_owned();
    execute(tx, &delete)?;
    let columns = [id("sync"), id("state"), id("version"), id("updated_at")];
    let select = Query::select()
        .columns(columns.clone())
        .from(backup_table(sql::CHECKPOINTS))
        .and_where(Expr::col(id("sync")).is_in(syncs.iter().cloned()))
        .to_owned();
    let insert = Query::insert()
        .into_table(id(sql::CHECKPOINTS))
        .columns(columns)
        .select_from(select)
        .map_err(|e| Error::internal("a restore statement is invalid").with_source(e))?
        .to_owned();
    execute(tx, &insert)?;
    Ok(())
}

/// Fails when a staging run of one of `syncs` is open: its staged rows belong to the state
/// being rolled back.
fn refuse_open_runs(tx: &Transaction<'_>, syncs: &[String]) -> Result<()> {
    let q = Query::select()
        .expr(Expr::val(1))
        .from(id(sql::RUNS))
        .and_where(Expr::col(id("sync")).is_in(syncs.iter().cloned()))
        .limit(1)
        .to_owned();
    if sql::query_i64(tx, &q)?.is_some() {
        return Err(Error::new(
            ErrorKind::Conflict,
            "a staging run of a sync being restored is open: abort it first",
        ));
    }
    Ok(())
}

impl SqliteStore {
    /// Writes a consistent copy of the whole database to the new file `path`
    /// (`VACUUM INTO`): every target, checkpoint, ledger row and log entry as of one
    /// moment. The file must not exist yet.
    pub async fn backup_to(&self, path: impl Into<PathBuf>) -> Result<()> {
        let path = path.into();
        let text = path_text(&path)?;
        self.with_conn(move |conn, _| {
            conn.execute("VACUUM INTO ?1", [&text]).db()?;
            Ok(())
        })
        .await
        .map_err(|e| e.with_context("backup", path.display()))
    }

    /// Restores the target tables `streams` and the checkpoints of `syncs` from a file
    /// written by [`SqliteStore::backup_to`], in one transaction: each target gets exactly
    /// the backup's rows (none when the backup predates the table), each checkpoint the
    /// backup's state and version (none when the backup has none), and the entries of
    /// `log` are appended to the sync log in that same transaction (the rollback's record:
    /// it is there exactly when the restore is). Fences, the ledger, the rest of the sync
    /// log and the quarantine are left as they are (fences only grow; history stays).
    /// Refuses a stream name of the store's own tables (`Config`) and a sync whose staging
    /// run is open (`Conflict`).
    pub async fn restore_from(
        &self,
        path: impl Into<PathBuf>,
        streams: &[String],
        syncs: &[String],
        log: &[SyncLogEntry],
    ) -> Result<()> {
        let path = path.into();
        if !path.is_file() {
            return Err(Error::config("the backup file does not exist")
                .with_context("backup", path.display()));
        }
        if let Some(s) = streams
            .iter()
            .find(|s| s.starts_with(sql::RESERVED_TABLE_PREFIX))
        {
            return Err(
                Error::config("only stream targets can be restored").with_context("table", s)
            );
        }
        let text = path_text(&path)?;
        self.with_conn(move |conn, _| {
            conn.execute(&format!("ATTACH DATABASE ?1 AS \"{BACKUP}\""), [&text])
                .db()?;
            Ok(())
        })
        .await?;
        let (streams, syncs, log) = (streams.to_vec(), syncs.to_vec(), log.to_vec());
        let restored = self
            .write(move |tx, _| {
                refuse_open_runs(tx, &syncs)?;
                for stream in &streams {
                    restore_target(tx, stream)?;
                }
                restore_checkpoints(tx, &syncs)?;
                log.iter().try_for_each(|entry| insert_log(tx, entry))
            })
            .await;
        let detached = self
            .with_conn(|conn, _| {
                conn.execute(&format!("DETACH DATABASE \"{BACKUP}\""), [])
                    .db()?;
                Ok(())
            })
            .await;
        restored.and(detached)
    }
}
