//! WAL checkpoints on a thread and connection of their own, so no commit waits for one.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: the
//! committing call copies the log into the database file and syncs both before it returns.
//! With a staging batch committed per page that was most of the fill's time. Here the store's
//! connection only notes how large the log has grown after each commit (a WAL hook, which also
//! turns the automatic checkpoint off) and wakes this thread, which runs a `PASSIVE`
//! checkpoint: it never blocks readers or writers and copies only committed frames, syncing
//! the log before and the database after as the automatic one does. The last connection to
//! close checkpoints what is left and removes the log, as SQLite always does.

use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use sync_core::{Error, Result};

use crate::error::SqliteResultExt;

/// Log frames (pages) after which a commit wakes the checkpointer: 32 MiB of 4 KiB pages, so
/// a checkpoint's two syncs are paid every 8,000 pages rather than every 1,000 (SQLite's
/// automatic threshold), and the log stays small.
pub(crate) const CHECKPOINT_FRAMES: i32 = 8000;

thread_local! {
    /// Frames in the log after the last commit on this thread, from the WAL hook.
    static FRAMES: Cell<i32> = const { Cell::new(0) };
}

fn note_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    FRAMES.with(|f| f.set(frames));
    Ok(())
}

/// Replaces the automatic checkpoint of `conn` by noting the log size after each commit.
pub(crate) fn watch(conn: &Connection) {
    conn.wal_hook(Some(note_frames));
}

/// Frames in the log after the last commit on this thread (and forgets them).
pub(crate) fn take_frames() -> i32 {
    FRAMES.with(|f| f.replace(0))
}

#[derive(Default)]
struct State {
    pending: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The checkpointing thread; stopped and joined on drop.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to `path` and starts the thread.
    pub(crate) fn start(path: &Path, synchronous: &str) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db()?;
        conn.pragma_update(None, "synchronous", synchronous).db()?;
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &theirs))
            .map_err(|e| Error::internal("cannot start the checkpoint thread").with_source(e))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint (returns at once).
    pub(crate) fn request(&self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.pending = true;
            self.shared.wake.notify_one();
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            while !state.pending && !state.stop {
                state = match shared.wake.wait(state) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            if state.stop {
                return;
            }
            state.pending = false;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite background checkpoint failed");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stop = true;
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
