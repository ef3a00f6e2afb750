//! What the walkthrough takes and what it reports.

use std::collections::BTreeMap;
use std::time::Duration;

use sync_core::jobs::{JobStatus, WorkerMetrics};

/// How the walkthrough runs.
#[derive(Debug, Clone)]
pub struct WalkthroughOptions {
    /// Multiplies every venue's item count (1.0: 3,000 / 1,500 / 20,000 / 2,000).
    pub scale: f64,
    /// Worker loops in the engine.
    pub workers: usize,
    /// The longest wait for any one step.
    pub step_timeout: Duration,
}

impl Default for WalkthroughOptions {
    fn default() -> Self {
        WalkthroughOptions {
            scale: 1.0,
            workers: 2,
            step_timeout: Duration::from_secs(120),
        }
    }
}

/// The queue's job counts by status after one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// The step.
    pub step: &'static str,
    /// Jobs per status (`pending`, `processing`, `completed`, `failed`, `paused`,
    /// `cancelled`).
    pub counts: BTreeMap<String, u64>,
}

/// One venue at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueOutcome {
    /// The venue id.
    pub venue: String,
    /// Its target table.
    pub table: String,
    /// Items its API serves.
    pub records: usize,
    /// Rows in its table.
    pub rows: usize,
    /// Whether the table equals the API's items, row for row.
    pub matches: bool,
    /// Its jobs' final statuses, oldest first.
    pub jobs: Vec<JobStatus>,
}

/// What the walkthrough did.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkthroughReport {
    /// The error a bad integration config got.
    pub rejected_config: String,
    /// The queue after each step.
    pub snapshots: Vec<QueueSnapshot>,
    /// Rows the stopped venue had when its job was cancelled.
    pub rows_when_stopped: usize,
    /// Pages the stopped venue's resumed run fetched.
    pub resumed_pages: u64,
    /// The offline venue's last error before it came back.
    pub offline_error: String,
    /// Items changed at one venue before its incremental sync.
    pub mutated: usize,
    /// Rows that incremental sync wrote.
    pub incremental_rows: u64,
    /// Ledger rows in the stopped venue's history.
    pub history_windows: usize,
    /// Every venue at the end.
    pub venues: Vec<VenueOutcome>,
    /// What the engine's workers did, summed over the pool.
    pub workers: WorkerMetrics,
}

impl WalkthroughReport {
    /// True when every venue's table equals its API.
    pub fn all_match(&self) -> bool {
        self.venues.iter().all(|v| v.matches)
    }
}
