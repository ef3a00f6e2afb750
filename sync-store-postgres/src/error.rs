//! The one place PostgreSQL errors become `sync_core::Error`s: serialization failures,
//! deadlocks, too many connections and a server starting up are transient; a lock another
//! session holds (`lock_not_available`) is [`ErrorKind::Busy`]; unique violations
//! are conflicts; a lost connection is transient, and during COMMIT its outcome is unknown.
//! Messages never include the connection string.

use sync_core::{Error, ErrorKind};
use tokio_postgres::error::SqlState;

/// Classifies a driver error, keeping it as the source.
pub(crate) fn classify(e: tokio_postgres::Error) -> Error {
    let code = e.code().cloned();
    // The innermost cause says what really failed (a refused certificate, a reset socket);
    // driver errors never carry the connection string.
    let cause = std::iter::successors(std::error::Error::source(&e), |c| c.source())
        .last()
        .map(|c| c.to_string());
    if code.is_none()
        && cause
            .as_deref()
            .is_some_and(|c| c.contains("certificate") || c.contains("Certificate"))
    {
        return Error::config("the server's TLS certificate was refused")
            .with_context("cause", cause.unwrap_or_default())
            .with_source(e);
    }
    let (kind, transient, message) = match &code {
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => {
            (ErrorKind::Storage, true, "serialization failure")
        }
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => {
            (ErrorKind::Storage, true, "deadlock detected")
        }
        Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => {
            (ErrorKind::Storage, true, "too many connections")
        }
        Some(c) if *c == SqlState::CANNOT_CONNECT_NOW => {
            (ErrorKind::Storage, true, "server is starting up")
        }
        Some(c) if *c == SqlState::ADMIN_SHUTDOWN => {
            (ErrorKind::Storage, true, "server terminated the connection")
        }
        Some(c) if *c == SqlState::CRASH_SHUTDOWN => (ErrorKind::Storage, true, "server crashed"),
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => {
            (ErrorKind::Busy, true, "lock not available")
        }
        Some(c) if *c == SqlState::QUERY_CANCELED => {
            (ErrorKind::Timeout, true, "statement cancelled or timed out")
        }
        Some(c) if c.code().starts_with("08") => (ErrorKind::Storage, true, "connection exception"),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            (ErrorKind::Conflict, false, "unique violation")
        }
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            (ErrorKind::Config, false, "authentication failed")
        }
        Some(_) => (ErrorKind::Storage, false, "postgres error"),
        None if e.is_closed() => (ErrorKind::Storage, true, "connection closed"),
        None => (ErrorKind::Storage, true, "connection error"),
    };
    let detail = e.as_db_error().map(|d| d.message().to_string());
    let mut err = Error::new(kind, message);
    if let Some(d) = detail {
        err = err.with_context("detail", d);
    } else if let Some(c) = cause {
        err = err.with_context("cause", c);
    }
    if let Some(c) = &code {
        err = err.with_context("sqlstate", c.code());
    }
    let err = err.with_source(e);
    if transient {
        err.transient()
    } else {
        err.permanent()
    }
}

/// A failed COMMIT: when the connection broke the transaction may or may not have committed.
pub(crate) fn classify_commit(e: tokio_postgres::Error) -> Error {
    // No SQLSTATE (the socket broke), a connection exception (class 08) or an operator
    // intervention (class 57: shutdown, crash, terminated backend) leave the outcome unknown.
    let lost = e.code().map_or(true, |c| {
        c.code().starts_with("08") || c.code().starts_with("57")
    });
    let err = classify(e);
    if lost {
        err.with_outcome_unknown()
    } else {
        err
    }
}

/// True when the whole transaction may simply be run again.
pub(crate) fn is_retryable(e: &Error) -> bool {
    e.is_transient()
        && !e.is_outcome_unknown()
        && matches!(e.context_value("sqlstate"), Some("40001") | Some("40P01"))
}
