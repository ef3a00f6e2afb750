//! What each step of the device sync did, as typed reports the binary prints and the tests
//! check.

use chrono::{DateTime, Utc};
use sync_core::{ErrorKind, LedgerEntry, Position, RetryClass, RunReport, Value};

/// The fake's fleet when the example started.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSummary {
    /// Where the fake listens: `http://127.0.0.1:PORT/rws/api/v1`.
    pub base_url: String,
    /// Distinct devices.
    pub devices: usize,
    /// Device listings (duplicated ICCIDs count twice).
    pub listings: usize,
    /// Days their changes are spread over.
    pub days: u32,
    /// Devices changed within the full sync's window (the last 31 days).
    pub in_window: usize,
    /// ICCIDs listed twice.
    pub duplicated: usize,
    /// Devices answered with a `null` plan.
    pub incomplete: usize,
    /// The calls per second the fake (and the client) allow.
    pub calls_per_second: u32,
}

/// One run of a strategy, and what a reader saw after it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLine {
    /// 1-based run number within its step.
    pub run: usize,
    /// Pages fetched.
    pub pages: u64,
    /// Devices read.
    pub rows_read: u64,
    /// Devices written to the target.
    pub rows_written: u64,
    /// Devices quarantined.
    pub rows_rejected: u64,
    /// False when the page limit ended the run (the next run resumes its fill).
    pub complete: bool,
    /// The checkpoint after the run (`None` before the first promotion).
    pub checkpoint: Option<DateTime<Utc>>,
    /// Target rows a reader sees after the run.
    pub target_rows: usize,
}

impl RunLine {
    /// The line of run number `run` with `report`, seeing `target_rows`.
    pub fn of(run: usize, report: &RunReport, target_rows: usize) -> RunLine {
        RunLine {
            run,
            pages: report.pages,
            rows_read: report.rows_read,
            rows_written: report.rows_written,
            rows_rejected: report.rows_rejected,
            complete: report.complete,
            checkpoint: report.position.as_ref().and_then(checkpoint_time),
            target_rows,
        }
    }
}

/// The instant of a device-sync checkpoint (the end of the last promoted window).
pub fn checkpoint_time(position: &Position) -> Option<DateTime<Utc>> {
    match position {
        Position::CursorKey(ck) => match ck.cursor.first() {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        },
        _ => None,
    }
}

/// The incremental sync asked for before any full sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The error's kind ([`ErrorKind::Unsupported`]).
    pub kind: ErrorKind,
    /// The error's message.
    pub message: String,
    /// Calls it made to Control Center (none).
    pub calls: usize,
}

/// A device the fake lists twice, and which listing the target kept.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateSeen {
    /// The ICCID.
    pub iccid: String,
    /// Its listings as (rate plan, change time), oldest first.
    pub listed: Vec<(String, DateTime<Utc>)>,
    /// The rate plan the target holds.
    pub kept: Option<String>,
}

/// A quarantined device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineLine {
    /// The ICCID.
    pub iccid: String,
    /// Why.
    pub reason: String,
}

/// The full sync of the last 30 days plus one, in runs of at most `max_pages` pages.
#[derive(Debug, Clone, PartialEq)]
pub struct FullSyncReport {
    /// `modifiedSince` of the first search: the window's start.
    pub since: DateTime<Utc>,
    /// The runs until the fill completed and was promoted.
    pub runs: Vec<RunLine>,
    /// Devices listed twice in the window.
    pub duplicates: Vec<DuplicateSeen>,
    /// Devices quarantined by validation.
    pub quarantined: Vec<QuarantineLine>,
}

/// Incremental syncs of a backlog, in runs of at most `max_pages` pages.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogReport {
    /// Devices changed since the checkpoint.
    pub modified: usize,
    /// Devices added since the checkpoint.
    pub added: usize,
    /// The checkpoint the backlog starts after.
    pub after: DateTime<Utc>,
    /// The runs until the window was promoted.
    pub runs: Vec<RunLine>,
}

/// A failed attempt as the fake answered it, and when the next attempt came.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSeen {
    /// The HTTP status answered.
    pub status: u16,
    /// Cisco's error code, if any.
    pub error_code: Option<String>,
    /// Milliseconds until the next request.
    pub next_after_ms: u64,
    /// The retry policy's backoff cap for this retry, in milliseconds.
    pub backoff_cap_ms: u64,
    /// The `Retry-After` the fake sent, in seconds.
    pub retry_after_s: Option<u64>,
}

/// An incremental sync through injected transient faults.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultsReport {
    /// Devices changed before the run.
    pub modified: usize,
    /// The failed attempts, in order.
    pub attempts: Vec<AttemptSeen>,
    /// Retries the strategy reported (progress events).
    pub retries: Vec<String>,
    /// The run.
    pub run: RunLine,
}

/// An incremental sync failed by a permanent error, and the run after it.
#[derive(Debug, Clone, PartialEq)]
pub struct PermanentReport {
    /// Devices changed before the run.
    pub modified: usize,
    /// The error's kind and retry class.
    pub kind: ErrorKind,
    /// [`RetryClass::Permanent`].
    pub retry_class: RetryClass,
    /// The error as displayed, with its context (no credentials: the client never puts
    /// them in errors).
    pub message: String,
    /// The error's own message.
    pub summary: String,
    /// Cisco's `errorCode` and `errorMessage`.
    pub error_code: Option<String>,
    /// Cisco's `errorMessage`.
    pub detail: Option<String>,
    /// Calls the failed run made before the one answered 401 (their pages stay staged for
    /// the next run).
    pub calls_before_failure: usize,
    /// The target equals what it was before the failed run.
    pub target_unchanged: bool,
    /// The checkpoint (position and version) equals what it was before the failed run.
    pub checkpoint_unchanged: bool,
}

/// The target checked against the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Devices expected (newest listing per ICCID changed since the full window's start,
    /// incomplete ones excluded).
    pub expected: usize,
    /// Target rows.
    pub target: usize,
    /// ICCIDs expected but absent.
    pub missing: Vec<String>,
    /// ICCIDs present but not expected.
    pub unexpected: Vec<String>,
    /// ICCIDs whose status or plans differ.
    pub different: Vec<String>,
}

impl Verification {
    /// True when the target equals the expected devices.
    pub fn is_exact(&self) -> bool {
        self.expected == self.target
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.different.is_empty()
    }
}

/// The ledger in brief.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerSummary {
    /// Every committed window, oldest first.
    pub windows: Vec<LedgerEntry>,
    /// Rows read, written and rejected over all windows.
    pub rows_read: u64,
    /// Rows written over all windows.
    pub rows_written: u64,
    /// Rows quarantined over all windows.
    pub rows_rejected: u64,
}
