//! The one error type of the workspace: a kind, a retry class, an outcome-unknown flag,
//! an optional `retry_after`, context pairs and the underlying source error.
//!
//! Backends classify their driver errors into this type in one function each (HTTP status,
//! SQLSTATE, SQLite result code); driver error types never appear in public signatures.

use std::fmt;
use std::time::Duration;

/// What went wrong, independent of the backend that reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value is invalid (rejected before any I/O).
    Config,
    /// A record, batch or request is malformed: missing key, wrong type, duplicate key.
    InvalidInput,
    /// The backend does not support the requested operation or strategy.
    Unsupported,
    /// A compare-and-set lost: the expected checkpoint version did not match.
    Conflict,
    /// The caller's fencing token is stale: another writer owns the sync now.
    Fenced,
    /// Something the call needs is held by another live holder right now: another run's
    /// lease on the sync, or a database lock that outlasted the store's own retries. It
    /// frees itself, so the call can be made again later (`retry_after`, when set, says
    /// when at the latest) and the attempt says nothing against the caller: a job worker
    /// defers such a job without counting the attempt.
    Busy,
    /// A checkpoint delta does not continue from the current position or goes backwards.
    CheckpointDelta,
    /// Stored checkpoint state is malformed or from an unknown format version.
    CorruptState,
    /// The requested object (sync, run, stream, window) does not exist.
    NotFound,
    /// The remote system rejected or failed the request.
    Remote,
    /// The remote system asked us to slow down.
    RateLimited,
    /// An operation did not finish in time.
    Timeout,
    /// Storage (database, file) failed.
    Storage,
    /// The source changed underneath a paginated read (offset drift, window shift).
    Drift,
    /// A per-run limit (max pages, max errors) stopped the run; it resumes next time.
    LimitReached,
    /// The run was cancelled by its owner.
    Cancelled,
    /// A fault injected by the test kit fired.
    InjectedFault,
    /// A bug or broken invariant inside the library.
    Internal,
}

impl ErrorKind {
    /// The retry class this kind has unless the reporter says otherwise.
    pub fn default_retry(self) -> RetryClass {
        match self {
            ErrorKind::RateLimited | ErrorKind::Timeout | ErrorKind::Busy => RetryClass::Transient,
            _ => RetryClass::Permanent,
        }
    }

    /// A short lowercase name, stable for logs and ledger rows.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Fenced => "fenced",
            ErrorKind::Busy => "busy",
            ErrorKind::CheckpointDelta => "checkpoint_delta",
            ErrorKind::CorruptState => "corrupt_state",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Remote => "remote",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Storage => "storage",
            ErrorKind::Drift => "drift",
            ErrorKind::LimitReached => "limit_reached",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::InjectedFault => "injected_fault",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether trying the same operation again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryClass {
    /// Retrying will fail the same way.
    Permanent,
    /// Retrying later may succeed.
    Transient,
    /// The error was transient but the retry policy ran out of attempts or time.
    Exhausted,
}

/// The error type of every public fallible function in the workspace.
///
/// Messages are lowercase without a trailing period. Context values must never hold secrets:
/// backends put identifiers (stream, sync, page) in context, never credentials.
pub struct Error {
    kind: ErrorKind,
    retry: RetryClass,
    outcome_unknown: bool,
    retry_after: Option<Duration>,
    message: String,
    context: Vec<(&'static str, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with the kind's default retry class.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            retry: kind.default_retry(),
            outcome_unknown: false,
            retry_after: None,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Shorthand for [`ErrorKind::Unsupported`], naming the backend that lacks the feature.
    pub fn unsupported(backend: &str, what: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Unsupported, format!("{what} is not supported"))
            .with_context("backend", backend)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Marks the error transient (retrying may succeed).
    pub fn transient(mut self) -> Self {
        self.retry = RetryClass::Transient;
        self
    }

    /// Marks the error permanent.
    pub fn permanent(mut self) -> Self {
        self.retry = RetryClass::Permanent;
        self
    }

    /// Sets the retry class.
    pub fn with_retry(mut self, retry: RetryClass) -> Self {
        self.retry = retry;
        self
    }

    /// Marks that the operation may or may not have taken effect (for example the
    /// connection dropped during COMMIT). Callers must re-read state before applying again.
    pub fn with_outcome_unknown(mut self) -> Self {
        self.outcome_unknown = true;
        self
    }

    /// The server asked to wait this long before the next attempt.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Adds a context pair (never a secret).
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The retry class.
    pub fn retry_class(&self) -> RetryClass {
        self.retry
    }

    /// True when retrying may succeed.
    pub fn is_transient(&self) -> bool {
        self.retry == RetryClass::Transient
    }

    /// True when the operation may have taken effect despite the error.
    pub fn is_outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Context pairs in the order they were added.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The value of a context key, if present.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        for (k, v) in &self.context {
            write!(f, ", {k}={v}")?;
        }
        if self.outcome_unknown {
            f.write_str(" (outcome unknown)")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("retry", &self.retry)
            .field("outcome_unknown", &self.outcome_unknown)
            .field("message", &self.message);
        if let Some(after) = self.retry_after {
            d.field("retry_after", &after);
        }
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid_input("malformed json").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lowercase_with_context_and_flags() {
        let e = Error::new(ErrorKind::Storage, "commit failed")
            .with_context("stream", "orders")
            .with_outcome_unknown()
            .transient();
        assert_eq!(
            e.to_string(),
            "storage: commit failed, stream=orders (outcome unknown)"
        );
        assert!(e.is_transient());
        assert!(e.is_outcome_unknown());
        assert_eq!(e.context_value("stream"), Some("orders"));
    }

    #[test]
    fn rate_limited_defaults_to_transient_and_keeps_retry_after() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_secs(3));
        assert_eq!(e.retry_class(), RetryClass::Transient);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            Error::invalid_input("x").retry_class(),
            RetryClass::Permanent
        );
    }
}
