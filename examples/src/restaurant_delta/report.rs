//! What the example did, step by step, and the integrity check at its end: typed data the
//! binary prints and the test asserts on.

use serde_json::json;
use sync_connectors::fakes::dataverse::FakeDataverse;
use sync_core::strategy::check_history;
use sync_core::{LedgerEntry, LedgerStatus, Position, Result, Row, SequenceNo};

use super::core_api::CoreApi;
use super::restaurant::Restaurant;
use super::ENTITY_SET;

/// How a producer put an id on the change queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Producer {
    /// An SNS notification through the SQS queue, appended by `SqsChangeFeed`.
    Sns,
    /// An SNS notification whose first delete fails, so SQS delivers it again after the
    /// visibility timeout (at-least-once); the feed recognises it and appends it once.
    SnsRedelivered,
    /// A direct `ChangeQueue::append` (a producer inside the same system).
    Direct,
}

/// What changed at the core API before the id was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A restaurant opened.
    Opened,
    /// A restaurant changed its number of seats.
    Seats(i64),
}

/// One queue entry a producer appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The number the change queue gave it.
    pub seq: SequenceNo,
    /// The restaurant.
    pub id: String,
    /// Which producer.
    pub via: Producer,
    /// What changed.
    pub change: Change,
    /// Deliveries of the notification the feed recognised as already appended.
    pub duplicates: usize,
}

/// One row of the history (the window ledger) as the seed's `SynchronizationHistory` shows
/// it: `StartSequenceNo = low + 1`, `EndSequenceNo = high`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// Row number, from 1.
    pub id: usize,
    /// First sequence number of the window.
    pub start: u128,
    /// Last sequence number of the window.
    pub end: u128,
    /// Committed (promoted), delivered (the sink confirmed) or replayed.
    pub status: LedgerStatus,
    /// Records fetched from the core API for the window.
    pub rows_read: u64,
    /// Records written to the target (or accepted by the sink, for delivered rows).
    pub rows_written: u64,
}

impl HistoryRow {
    /// The history rows of a ledger, in commit order.
    pub fn of(ledger: &[LedgerEntry]) -> Vec<HistoryRow> {
        ledger
            .iter()
            .enumerate()
            .map(|(i, e)| HistoryRow {
                id: i + 1,
                start: seq(&e.low) + 1,
                end: seq(&e.high),
                status: e.status,
                rows_read: e.rows_read,
                rows_written: e.rows_written,
            })
            .collect()
    }
}

/// The sequence number of a position (0 for the start).
pub(super) fn seq(p: &Position) -> u128 {
    match p {
        Position::Sequence(s) => s.0,
        _ => 0,
    }
}

/// One run of the sequence-window strategy (or a redelivery-only run).
#[derive(Debug, Clone)]
pub struct RunStep {
    /// What the run is in the story.
    pub label: String,
    /// The promoted position before and after: the window `(before, after]`.
    pub promoted: (u128, u128),
    /// The delivered position before and after.
    pub delivered: (u128, u128),
    /// `GET /restaurants/{id}` requests the run made.
    pub lookups: u64,
    /// Records written to the target.
    pub rows_written: u64,
    /// The error the run ended with, if any.
    pub error: Option<String>,
    /// `$batch` requests the Dataverse fake received during the run.
    pub dataverse_batches: usize,
    /// Records the Dataverse fake holds after the run.
    pub dataverse_records: usize,
    /// The history after the run.
    pub history: Vec<HistoryRow>,
}

/// The seed's pitfall shown on the reference change queue: a producer that took number N
/// commits after the one that took N + 1.
#[derive(Debug, Clone)]
pub struct HighWaterMarkStep {
    /// The number the slow producer took, and its restaurant.
    pub slow: (SequenceNo, String),
    /// The number the fast producer took and committed first, and its restaurant.
    pub fast: (SequenceNo, String),
    /// What a reader of `seq > 0` sees while the slow producer is still open.
    pub naive_sees: Vec<SequenceNo>,
    /// The safe high-water mark then.
    pub mark_while_open: SequenceNo,
    /// The position after a run while the slow producer is open.
    pub position_while_open: u128,
    /// The safe high-water mark after the slow producer committed.
    pub mark_after: SequenceNo,
    /// The window of the next run, and the restaurants it fetched.
    pub window_after: (u128, u128),
    /// Restaurants the next run promoted.
    pub promoted_after: Vec<String>,
    /// How the database store in use keeps numbers visible in commit order.
    pub store_guarantee: &'static str,
}

/// Producers appending concurrently to the database's change queue while the
/// sequence-window strategy follows it (a sync of its own, no sink).
#[derive(Debug, Clone)]
pub struct RaceStep {
    /// Concurrent producers.
    pub producers: usize,
    /// Entries each appended.
    pub entries_each: usize,
    /// Runs of the strategy made while they appended (and one after).
    pub runs: usize,
    /// The committed windows of the race's sync, in order.
    pub windows: Vec<(u128, u128)>,
    /// Entries the queue holds for the race.
    pub entries: usize,
    /// True when the windows cover `(0, entries]` exactly once, without gap or overlap.
    pub covered_once: bool,
}

/// One step of the example, reported as it happens.
#[derive(Debug, Clone)]
pub enum Step {
    /// The loopback services are up.
    Started {
        /// The core API.
        core: String,
        /// The Dataverse fake.
        dataverse: String,
        /// The SQS fake.
        sqs: String,
    },
    /// The initial full sync: every restaurant at sequence number 0.
    Snapshot {
        /// Restaurants in the target.
        restaurants: usize,
        /// List pages read.
        pages: u64,
    },
    /// Producers appended ids to the change queue.
    Enqueued(Vec<Enqueued>),
    /// A run of the sequence-window strategy.
    Run(RunStep),
    /// Dataverse is made to refuse the next `$batch` requests.
    SinkFault {
        /// Requests answered `429 Too Many Requests` (`Retry-After: 0`).
        throttled: u32,
    },
    /// A restaurant changed at the core API and its notification never arrived.
    SilentChange {
        /// The restaurant.
        id: String,
        /// Its new number of seats.
        seats: i64,
    },
    /// A replay of a past window.
    Replay(RunStep),
    /// Producers racing on the database's own change queue while runs follow it.
    Race(RaceStep),
    /// The safe high-water mark against a late commit.
    HighWaterMark(HighWaterMarkStep),
}

/// What the example did, and whether the target and Dataverse equal the core API.
#[derive(Debug, Clone)]
pub struct Report {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The integrity check at the end.
    pub integrity: Integrity,
}

/// The end-to-end check: target, Dataverse and history against the core API and the queue.
#[derive(Debug, Clone, Default)]
pub struct Integrity {
    /// Restaurants at the core API.
    pub core_restaurants: usize,
    /// Rows in the target.
    pub target_rows: usize,
    /// Distinct restaurants the change queue named.
    pub queued_restaurants: usize,
    /// Records in the Dataverse fake.
    pub dataverse_records: usize,
    /// The committed windows `(start, end)` of the history.
    pub committed: Vec<(u128, u128)>,
    /// The replayed windows.
    pub replayed: Vec<(u128, u128)>,
    /// Promoted and delivered positions at the end.
    pub promoted: u128,
    /// The delivered position.
    pub delivered: u128,
    /// Everything found wrong (empty: the promise held).
    pub problems: Vec<String>,
}

impl Integrity {
    /// True when nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Checks the target (`target` rows, ordered by key) and the Dataverse fake against the
    /// core API, for the restaurants `queued`, and the history `ledger`.
    pub fn check(
        core: &CoreApi,
        target: &[Row],
        dataverse: &FakeDataverse,
        queued: &[String],
        ledger: &[LedgerEntry],
        positions: (u128, u128),
    ) -> Result<Integrity> {
        let source = core.rows();
        let mut problems = Vec::new();
        if target.len() != source.len() {
            problems.push(format!(
                "the target has {} restaurants, the core api {}",
                target.len(),
                source.len()
            ));
        }
        for (got, want) in target.iter().zip(&source) {
            if got != want {
                problems.push(format!(
                    "target row {} differs from the core api",
                    got.get(0)
                ));
            }
        }
        let mut keys: Vec<String> = queued.iter().map(|id| dataverse_key(id)).collect();
        keys.sort();
        keys.dedup();
        if dataverse.keys(ENTITY_SET) != keys {
            problems.push(format!(
                "dataverse holds {:?}, the queue named {:?}",
                dataverse.keys(ENTITY_SET),
                keys
            ));
        }
        for id in queued {
            match (
                core.restaurant(id),
                dataverse.record(ENTITY_SET, &dataverse_key(id)),
            ) {
                (Some(r), Some(record)) if !same(&r, &record) => {
                    problems.push(format!("dataverse record {id} is not the latest state"))
                }
                (Some(_), None) => problems.push(format!("dataverse lacks restaurant {id}")),
                (None, Some(_)) => problems.push(format!("dataverse still holds closed {id}")),
                _ => {}
            }
        }
        let windows = |status| -> Vec<(u128, u128)> {
            HistoryRow::of(ledger)
                .into_iter()
                .filter(|h| h.status == status)
                .map(|h| (h.start, h.end))
                .collect()
        };
        let report = check_history(ledger)?;
        if !report.is_contiguous() {
            problems.push(format!(
                "history gaps {:?}, overlaps {:?}",
                report.gaps, report.overlaps
            ));
        }
        if positions.0 != positions.1 {
            problems.push(format!(
                "delivered {} lags promoted {}",
                positions.1, positions.0
            ));
        }
        for v in dataverse.violations() {
            problems.push(format!("dataverse contract broken: {v}"));
        }
        Ok(Integrity {
            core_restaurants: source.len(),
            target_rows: target.len(),
            queued_restaurants: keys.len(),
            dataverse_records: dataverse.keys(ENTITY_SET).len(),
            committed: windows(LedgerStatus::Committed),
            replayed: windows(LedgerStatus::Replayed),
            promoted: positions.0,
            delivered: positions.1,
            problems,
        })
    }
}

/// The Dataverse key text of restaurant `id`.
pub fn dataverse_key(id: &str) -> String {
    format!("tr_restaurantid={id}")
}

/// True when the Dataverse record holds the restaurant's values.
fn same(r: &Restaurant, record: &serde_json::Map<String, serde_json::Value>) -> bool {
    record.get("tr_name") == Some(&json!(r.name))
        && record.get("tr_city") == Some(&json!(r.city))
        && record.get("tr_seats") == Some(&json!(r.seats))
        && record.get("tr_version") == Some(&json!(r.version))
}
