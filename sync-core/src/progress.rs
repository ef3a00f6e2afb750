//! Progress events a CLI can turn into a progress bar. Sending never blocks a sync: when the
//! receiver lags, events are dropped (counters in later events stay cumulative).

use tokio::sync::mpsc;

use crate::position::Position;

/// One progress event. Counts are cumulative for the run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A run started.
    RunStarted {
        /// The sync.
        sync: String,
        /// The run.
        run_id: String,
    },
    /// A page was fetched.
    Page {
        /// Pages fetched so far.
        pages: u64,
        /// Records fetched so far.
        rows_fetched: u64,
    },
    /// Rows were staged.
    Staged {
        /// Rows staged so far.
        rows_staged: u64,
    },
    /// A window `(low, high]` is being committed.
    Window {
        /// Exclusive lower bound.
        low: Position,
        /// Inclusive upper bound.
        high: Position,
    },
    /// A window was promoted and the checkpoint advanced.
    Promoted {
        /// Rows written so far.
        rows_promoted: u64,
        /// Rows quarantined so far.
        rows_rejected: u64,
        /// The new checkpoint position.
        position: Position,
    },
    /// A call is being retried.
    Retry {
        /// Attempt number that failed.
        attempt: u32,
        /// The error, without secrets.
        error: String,
    },
    /// The run finished (`complete: false` when a limit stopped it early).
    RunFinished {
        /// Whether the source was read to the end.
        complete: bool,
    },
}

/// The sending half; cheap to clone. `Progress::none()` discards everything.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    tx: Option<mpsc::Sender<ProgressEvent>>,
}

impl Progress {
    /// A sender with a bounded buffer of `capacity` events, and its receiver.
    pub fn channel(capacity: usize) -> (Progress, mpsc::Receiver<ProgressEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Progress { tx: Some(tx) }, rx)
    }

    /// Discards events.
    pub fn none() -> Self {
        Progress { tx: None }
    }

    /// Sends without waiting; drops the event if the buffer is full or nobody listens.
    pub fn emit(&self, event: ProgressEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(event);
        }
    }
}
