//! The one place SQLite errors become `sync_core::Error`s: BUSY and LOCKED are transient
//! [`ErrorKind::Busy`] (another connection holds the lock; it frees itself), a
//! file that is not a database or is corrupt gets a clear storage error, constraint
//! violations are conflicts.

use rusqlite::ErrorCode;
use sync_core::{Error, ErrorKind};

/// Classifies a rusqlite error, keeping it as the source.
pub(crate) fn classify(e: rusqlite::Error) -> Error {
    let (kind, transient, message) = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                (ErrorKind::Busy, true, "database is busy")
            }
            ErrorCode::NotADatabase => (ErrorKind::Storage, false, "file is not a sqlite database"),
            ErrorCode::DatabaseCorrupt => (ErrorKind::Storage, false, "database file is corrupt"),
            ErrorCode::ConstraintViolation => (ErrorKind::Conflict, false, "constraint violation"),
            ErrorCode::CannotOpen => (ErrorKind::Storage, false, "cannot open the database file"),
            ErrorCode::ReadOnly => (ErrorKind::Storage, false, "database is read-only"),
            ErrorCode::DiskFull => (ErrorKind::Storage, true, "disk is full"),
            ErrorCode::SystemIoFailure => (ErrorKind::Storage, true, "i/o failure"),
            _ => (ErrorKind::Storage, false, "sqlite error"),
        },
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => (
            ErrorKind::CorruptState,
            false,
            "stored value has an unexpected type",
        ),
        _ => (ErrorKind::Storage, false, "sqlite error"),
    };
    let err = Error::new(kind, message).with_source(e);
    if transient {
        err.transient()
    } else {
        err.permanent()
    }
}

/// `Result` conversion for rusqlite calls.
pub(crate) trait SqliteResultExt<T> {
    /// Classifies the error.
    fn db(self) -> sync_core::Result<T>;
}

impl<T> SqliteResultExt<T> for rusqlite::Result<T> {
    fn db(self) -> sync_core::Result<T> {
        self.map_err(classify)
    }
}

/// True when the error came from SQLite's BUSY or LOCKED (read from the kept source, not the
/// message).
pub(crate) fn is_busy(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .and_then(rusqlite::Error::sqlite_error_code)
        .is_some_and(|c| matches!(c, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn busy_and_locked_are_transient_and_notadb_is_clear() {
        let busy = classify(failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(busy.is_transient() && is_busy(&busy));
        assert_eq!(busy.kind(), ErrorKind::Busy);
        let locked = classify(failure(rusqlite::ffi::SQLITE_LOCKED));
        assert!(locked.is_transient() && is_busy(&locked));
        assert_eq!(locked.kind(), ErrorKind::Busy);
        assert!(!is_busy(&classify(failure(rusqlite::ffi::SQLITE_FULL))));
        let notadb = classify(failure(rusqlite::ffi::SQLITE_NOTADB));
        assert_eq!(
            (notadb.kind(), notadb.message()),
            (ErrorKind::Storage, "file is not a sqlite database")
        );
        assert!(!notadb.is_transient());
        assert_eq!(
            classify(failure(rusqlite::ffi::SQLITE_CONSTRAINT)).kind(),
            ErrorKind::Conflict
        );
    }
}
