//! `SqliteStore`: one SQLite file holding targets, staging, checkpoints, the window ledger,
//! the sync log, the quarantine and the change queue. Every call runs on tokio's blocking pool,
//! never on a runtime worker thread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use sync_core::{Error, ErrorKind, Faults, Result};

use crate::config::{Durability, SqliteConfig};
use crate::error::{is_busy, SqliteResultExt};
use crate::schema;
use crate::wal::{self, Checkpointer, CHECKPOINT_FRAMES};

/// A store on one SQLite file. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Declared first, so it stops before the connection closes (the last to close
    /// checkpoints what is left).
    checkpointer: Option<Checkpointer>,
    conn: Mutex<Conn>,
    pub(crate) config: SqliteConfig,
    pub(crate) faults: Faults,
}

/// The connection and the `synchronous` level and `temp_store` it is set to.
struct Conn {
    conn: Connection,
    synchronous: Durability,
    temp_in_memory: bool,
}

/// How hard a write transaction syncs its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// `synchronous=FULL` whatever the configuration: what records a fact a later run cannot
    /// rebuild (bare checkpoint commits, fences and leases, the job queue, the change queue,
    /// schema changes; see [`Durability`]).
    Durable,
    /// At the configured [`Durability`]: what a run writes besides its batches and promotions
    /// and a later run rebuilds (the start and end of a staging run, the log).
    Configured,
    /// At the configured [`Durability`], with statement journals kept in memory: promotions.
    ///
    /// The upsert of a promotion runs over short ranges so that each statement's journal
    /// (the pages it changes, kept so the statement alone can roll back) stays small; with
    /// `temp_store=FILE` SQLite still spills a journal past 64 KiB to a temporary file, and
    /// once one statement of a transaction spilled, every later statement's journal goes to
    /// the file too: an incremental window of 10,000 changed rows wrote ~27,000 journal pages
    /// (110 MB) that nothing ever read. With `temp_store=MEMORY` for the transaction the
    /// journals stay in memory, bounded by one short statement. A promotion runs no sort or
    /// temporary b-tree that grows with the stage (those are in staging and validation, which
    /// keep `temp_store=FILE`). SQLite decides where a transaction's journals live when the
    /// transaction begins and refuses to change `temp_store` inside one, so it is set before.
    Promote,
    /// `synchronous=NORMAL` whatever the configuration: staging and validation only.
    ///
    /// In WAL mode every transaction appends its frames to the log in commit order, and a
    /// `FULL` commit syncs the log, which makes every frame before it durable too. A power loss
    /// can therefore only lose a suffix of the `NORMAL` commits after the last `FULL` one: staged
    /// batches together with the run progress they advanced (one transaction), or validation
    /// marks, never a `FULL` promotion or checkpoint (for `NORMAL` promotions see
    /// [`Durability::Normal`]). The next run resumes the fill from the progress that survived,
    /// re-reads what was lost, and validates again; nothing promoted is lost and the
    /// checkpoint never gets ahead of the data. A process crash loses nothing committed in
    /// either mode. This saves one log sync per staged page.
    Staging,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.config.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database, sets WAL mode, durability, the busy timeout
    /// and a bounded page cache, and migrates the store's tables to the current version.
    ///
    /// A file that is not a SQLite database, a corrupt one, or one written by a newer version
    /// of this library gives a [`ErrorKind::Storage`] error.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        Self::open_with_faults(config, Faults::new()).await
    }

    /// Opens with a fault set the store checks at its fault points (crash tests).
    pub async fn open_with_faults(config: SqliteConfig, faults: Faults) -> Result<Self> {
        config.validate()?;
        let path = config.path.clone();
        let cfg = config.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<(Conn, Option<Checkpointer>)> {
            let mut conn = Connection::open_with_flags(
                &cfg.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .db()?;
            conn.busy_timeout(Duration::from_millis(cfg.busy_timeout_ms))
                .db()?;
            let journal: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .db()?;
            if journal != "wal" {
                tracing::warn!(journal = %journal, "sqlite did not switch to WAL mode");
            }
            conn.pragma_update(None, "synchronous", synchronous(Durability::Full))
                .db()?;
            conn.pragma_update(None, "cache_size", -i64::from(cfg.cache_kib))
                .db()?;
            // Sorts and temporary b-trees spill to a temporary file past the cache size rather
            // than grow in memory with the staging table.
            conn.pragma_update(None, "temp_store", temp_store(false))
                .db()?;
            schema::migrate(&mut conn)?;
            let checkpointer = match Checkpointer::start(&cfg.path, synchronous(Durability::Full)) {
                Ok(c) => {
                    wal::watch(&conn);
                    Some(c)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sqlite checkpoints stay in the committing call");
                    None
                }
            };
            Ok((
                Conn {
                    conn,
                    synchronous: Durability::Full,
                    temp_in_memory: false,
                },
                checkpointer,
            ))
        })
        .await
        .map_err(join_error)?
        .map_err(|e| e.with_context("path", path.display()))?;
        let (conn, checkpointer) = conn;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                checkpointer,
                conn: Mutex::new(conn),
                config,
                faults,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.inner.config.path
    }

    /// The fault set this store checks.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .conn
                .lock()
                .map_err(|_| Error::internal("sqlite connection lock poisoned"))?;
            f(&mut conn.conn, &inner)
        })
        .await
        .map_err(join_error)?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the blocking pool, committing when it
    /// returns `Ok`, durably (`synchronous=FULL`, see [`Commit::Durable`]). A transaction that
    /// fails with BUSY or LOCKED (after the busy timeout) is retried up to `busy_retries`
    /// times; other errors roll back and return at once.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Transaction<'_>, &Inner) -> Result<T> + Send + 'static,
    {
        self.write_with(Commit::Durable, f).await
    }

    /// [`SqliteStore::write`] committing as `commit` says.
    pub(crate) async fn write_with<T, F>(&self, commit: Commit, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Transaction<'_>, &Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner
                .conn
                .lock()
                .map_err(|_| Error::internal("sqlite connection lock poisoned"))?;
            let level = match commit {
                Commit::Durable => Durability::Full,
                Commit::Configured | Commit::Promote => inner.config.durability,
                Commit::Staging => Durability::Normal,
            };
            let conn = &mut *guard;
            let in_memory = commit == Commit::Promote;
            if conn.temp_in_memory != in_memory {
                conn.conn
                    .pragma_update(None, "temp_store", temp_store(in_memory))
                    .db()?;
                conn.temp_in_memory = in_memory;
            }
            if conn.synchronous != level {
                // Outside any transaction: SQLite refuses to change it inside one.
                conn.conn
                    .pragma_update(None, "synchronous", synchronous(level))
                    .db()?;
                conn.synchronous = level;
            }
            wal::take_frames();
            let mut attempt = 1;
            loop {
                let result = (|| {
                    let tx = conn
                        .conn
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .db()?;
                    let out = f(&tx, &inner)?;
                    tx.commit().db()?;
                    if wal::take_frames() >= CHECKPOINT_FRAMES {
                        if let Some(c) = &inner.checkpointer {
                            c.request();
                        }
                    }
                    Ok(out)
                })();
                match result {
                    Err(e) if is_busy(&e) && attempt < inner.config.busy_retries => {
                        tracing::warn!(attempt, "sqlite busy; retrying the transaction");
                        std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
        .await
        .map_err(join_error)?
    }
}

fn temp_store(in_memory: bool) -> &'static str {
    if in_memory {
        "MEMORY"
    } else {
        "FILE"
    }
}

fn synchronous(level: Durability) -> &'static str {
    match level {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    }
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::new(ErrorKind::Internal, "sqlite task failed").with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn synchronous_after(store: &SqliteStore, commit: Commit) -> i64 {
        store.write_with(commit, |_, _| Ok(())).await.unwrap();
        store
            .with_conn(|c, _| {
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))
                    .map_err(|e| Error::internal("pragma").with_source(e))
            })
            .await
            .unwrap()
    }

    /// `Durability::Normal` relaxes promotions and a run's own records only: durable commits
    /// stay `FULL` (2), staging is always `NORMAL` (1).
    #[tokio::test]
    async fn only_what_a_run_rebuilds_follows_the_configured_durability() {
        let dir = tempfile::tempdir().unwrap();
        for (durability, promote) in [(Durability::Full, 2), (Durability::Normal, 1)] {
            let path = dir.path().join(format!("{durability:?}.db"));
            let cfg = SqliteConfig::new(&path).with_durability(durability);
            let store = SqliteStore::open(cfg).await.unwrap();
            assert_eq!(synchronous_after(&store, Commit::Durable).await, 2);
            assert_eq!(synchronous_after(&store, Commit::Promote).await, promote);
            assert_eq!(synchronous_after(&store, Commit::Durable).await, 2);
            assert_eq!(synchronous_after(&store, Commit::Configured).await, promote);
            assert_eq!(synchronous_after(&store, Commit::Staging).await, 1);
            assert_eq!(synchronous_after(&store, Commit::Durable).await, 2);
        }
    }
}
