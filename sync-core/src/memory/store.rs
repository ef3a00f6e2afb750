//! `MemoryStore`: the in-memory reference implementation of [`Stager`], [`Checkpoint`],
//! [`ChangeQueue`] and [`Sink`]. One mutex is the "transaction": every method checks first,
//! then applies, so a failed call changes nothing. Checkpoints are kept as stored JSON text so
//! the format and migration path are exercised exactly as in the database stores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::validate::validate_rows;
use crate::checkpoint::{
    Checkpoint, CheckpointCommit, CheckpointState, FenceToken, LedgerEntry, StoredCheckpoint,
    SyncLogEntry,
};
use crate::error::{Error, ErrorKind, Result};
use crate::fault::{FaultPoint, Faults};
use crate::position::{Position, SequenceNo, Window};
use crate::queue::{ChangeQueue, QueueEntry};
use crate::record::{Key, RecordBatch, Row};
use crate::schema::StreamSchema;
use crate::sink::{Delivery, DeliveryReceipt, Sink};
use crate::stager::{
    new_run_id, PromoteMode, PromoteReport, QuarantinedRow, ReplaceScope, Stager, StagingRun,
    ValidationReport, ValidationRules,
};
use crate::value::Value;

#[derive(Debug)]
struct Table {
    schema: Arc<StreamSchema>,
    rows: BTreeMap<Key, Row>,
}

#[derive(Debug)]
struct Run {
    run: StagingRun,
    staged: Vec<Row>,
    validated: Vec<Row>,
    /// Rows validation rejected, kept with the run until promotion moves them to the
    /// quarantine (and keeps their keys out of a replace's deletions).
    rejected: Vec<(Row, String)>,
    deletes: Vec<Key>,
}

#[derive(Debug, Default)]
struct Queue {
    last: u128,
    visible: BTreeMap<SequenceNo, Key>,
    pending: BTreeSet<SequenceNo>,
}

#[derive(Debug, Default)]
struct State {
    tables: BTreeMap<String, Table>,
    runs: BTreeMap<String, Run>,
    checkpoints: BTreeMap<String, (String, u64, DateTime<Utc>)>,
    fences: BTreeMap<String, u64>,
    ledger: BTreeMap<String, Vec<LedgerEntry>>,
    log: BTreeMap<String, Vec<SyncLogEntry>>,
    quarantine: Vec<QuarantinedRow>,
    queues: BTreeMap<String, Queue>,
    destinations: BTreeMap<String, BTreeMap<Key, Row>>,
}

/// The in-memory store. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    faults: Faults,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store sharing `faults`.
    pub fn with_faults(faults: Faults) -> Self {
        MemoryStore {
            state: Mutex::default(),
            faults,
        }
    }

    /// The fault set this store checks.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("memory store lock")
    }

    /// Target rows of `stream` in key order (empty when the stream does not exist).
    pub fn target_rows(&self, stream: &str) -> Vec<Row> {
        self.lock()
            .tables
            .get(stream)
            .map(|t| t.rows.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Rows the sink received for `stream`, in key order.
    pub fn destination_rows(&self, stream: &str) -> Vec<Row> {
        self.lock()
            .destinations
            .get(stream)
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The stored checkpoint text of `sync`.
    pub fn checkpoint_text(&self, sync: &str) -> Option<String> {
        self.lock().checkpoints.get(sync).map(|(t, _, _)| t.clone())
    }

    /// Overwrites the stored checkpoint text (to test corrupt or old-format state).
    pub fn set_checkpoint_text(&self, sync: &str, text: &str) {
        let mut s = self.lock();
        let version = s.checkpoints.get(sync).map_or(1, |(_, v, _)| *v);
        s.checkpoints
            .insert(sync.to_string(), (text.to_string(), version, Utc::now()));
    }

    /// Reserves sequence numbers without making them visible, as a producer transaction that
    /// has not committed yet; [`MemoryStore::commit_reserved`] makes them visible.
    pub fn reserve(&self, queue: &str, n: usize) -> Vec<SequenceNo> {
        let mut s = self.lock();
        let q = s.queues.entry(queue.to_string()).or_default();
        (0..n)
            .map(|_| {
                q.last += 1;
                q.pending.insert(SequenceNo(q.last));
                SequenceNo(q.last)
            })
            .collect()
    }

    /// Makes a reserved sequence number visible with its entity.
    pub fn commit_reserved(&self, queue: &str, seq: SequenceNo, entity: Key) -> Result<()> {
        let mut s = self.lock();
        let q = s
            .queues
            .get_mut(queue)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "unknown queue"))?;
        if !q.pending.remove(&seq) {
            return Err(
                Error::invalid_input("sequence number was not reserved").with_context("seq", seq)
            );
        }
        q.visible.insert(seq, entity);
        Ok(())
    }

    fn commit_checkpoint(
        s: &mut State,
        commit: &CheckpointCommit,
        written: u64,
        rejected: u64,
    ) -> Result<u64> {
        let stored = Self::stored(s, &commit.sync)?;
        commit.check(
            stored.as_ref(),
            s.fences.get(&commit.sync).copied().map(FenceToken),
        )?;
        let version = commit.expected_version.map_or(1, |v| v + 1);
        s.checkpoints.insert(
            commit.sync.clone(),
            (commit.state.to_stored(), version, Utc::now()),
        );
        if let Some(entry) = &commit.ledger {
            let mut entry = entry.clone();
            entry.rows_written = entry.rows_written.max(written);
            entry.rows_rejected = entry.rows_rejected.max(rejected);
            s.ledger.entry(commit.sync.clone()).or_default().push(entry);
        }
        s.log
            .entry(commit.sync.clone())
            .or_default()
            .extend(commit.log.iter().cloned());
        Ok(version)
    }

    fn stored(s: &State, sync: &str) -> Result<Option<StoredCheckpoint>> {
        match s.checkpoints.get(sync) {
            None => Ok(None),
            Some((text, version, at)) => Ok(Some(StoredCheckpoint {
                sync: sync.to_string(),
                state: CheckpointState::from_stored(text)
                    .map_err(|e| e.with_context("sync", sync))?,
                version: *version,
                updated_at: *at,
            })),
        }
    }

    fn run_mut<'a>(s: &'a mut State, run: &StagingRun) -> Result<&'a mut Run> {
        match s.runs.get_mut(&run.sync) {
            Some(r) if r.run.run_id == run.run_id && r.run.fence != run.fence => Err(Error::new(
                ErrorKind::Fenced,
                "a newer writer owns this staging run",
            )
            .with_context("sync", &run.sync)),
            Some(r) if r.run.run_id == run.run_id => Ok(r),
            _ => Err(Error::new(ErrorKind::NotFound, "staging run is not open")
                .with_context("sync", &run.sync)
                .with_context("run_id", &run.run_id)),
        }
    }
}

/// Maps a row of `from` to the column order of `to` by name (absent columns become NULL).
fn remap(row: &Row, from: &StreamSchema, to: &StreamSchema) -> Row {
    if from == to {
        return row.clone();
    }
    Row::new(
        to.columns()
            .iter()
            .map(|c| {
                from.column_index(&c.name)
                    .map_or(Value::Null, |i| row.get(i).clone())
            })
            .collect(),
    )
}

#[async_trait]
impl Stager for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn ensure_stream(&self, schema: &StreamSchema) -> Result<()> {
        let mut s = self.lock();
        match s.tables.get_mut(schema.name()) {
            None => {
                s.tables.insert(
                    schema.name().to_string(),
                    Table {
                        schema: Arc::new(schema.clone()),
                        rows: BTreeMap::new(),
                    },
                );
            }
            Some(t) => {
                let added = t.schema.check_evolution(schema)?;
                if !added.is_empty() {
                    let merged = Arc::new(t.schema.with_added_columns(&added)?);
                    for row in t.rows.values_mut() {
                        *row = remap(row, &t.schema, &merged);
                    }
                    t.schema = merged;
                }
            }
        }
        Ok(())
    }

    async fn begin(
        &self,
        sync: &str,
        schema: Arc<StreamSchema>,
        fence: FenceToken,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        let mut s = self.lock();
        if let Some(r) = s.runs.get_mut(sync) {
            if fence < r.run.fence {
                return Err(
                    Error::new(ErrorKind::Fenced, "a newer writer owns this staging run")
                        .with_context("sync", sync),
                );
            }
            r.run.fence = fence;
            let mut run = r.run.clone();
            run.resumed = true;
            run.staged_rows =
                (r.staged.len() + r.validated.len() + r.rejected.len() + r.deletes.len()) as u64;
            return Ok(run);
        }
        let run = StagingRun {
            sync: sync.to_string(),
            run_id: new_run_id(),
            schema,
            progress: Position::Start,
            staged_rows: 0,
            params,
            resumed: false,
            started_at: Utc::now(),
            fence,
        };
        s.runs.insert(
            sync.to_string(),
            Run {
                run: run.clone(),
                staged: Vec::new(),
                validated: Vec::new(),
                rejected: Vec::new(),
                deletes: Vec::new(),
            },
        );
        Ok(run)
    }

    async fn stage(&self, run: &StagingRun, batch: RecordBatch) -> Result<Position> {
        let (rows, deletes, delta) = batch.into_parts();
        {
            let mut s = self.lock();
            let r = Self::run_mut(&mut s, run)?;
            delta
                .try_apply(&r.run.progress)
                .map_err(|e| e.with_context("sync", &run.sync))?;
            r.staged.extend(rows);
            r.deletes.extend(deletes);
            r.run.progress = delta.to.clone();
        }
        self.faults.check(FaultPoint::AfterStage)?;
        Ok(delta.to)
    }

    async fn validate(
        &self,
        run: &StagingRun,
        rules: &ValidationRules,
    ) -> Result<ValidationReport> {
        let mut s = self.lock();
        let r = Self::run_mut(&mut s, run)?;
        let mut rows = std::mem::take(&mut r.validated);
        rows.append(&mut r.staged);
        let outcome = validate_rows(&run.schema, rows, rules);
        r.validated = outcome.valid;
        r.rejected.extend(outcome.quarantined);
        let report = outcome.report;
        Ok(report)
    }

    async fn promote(
        &self,
        run: &StagingRun,
        mode: &PromoteMode,
        commit: &CheckpointCommit,
        close: bool,
    ) -> Result<PromoteReport> {
        self.faults.check(FaultPoint::BeforePromote)?;
        let mut s = self.lock();
        let r = Self::run_mut(&mut s, run)?;
        if !r.staged.is_empty() {
            return Err(
                Error::invalid_input("staged rows were not validated before promote")
                    .with_context("sync", &run.sync),
            );
        }
        let stored = Self::stored(&s, &commit.sync)?;
        commit.check(
            stored.as_ref(),
            s.fences.get(&commit.sync).copied().map(FenceToken),
        )?;
        let target_schema = match s.tables.get(run.schema.name()) {
            Some(t) => t.schema.clone(),
            None => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "stream has no target; call ensure_stream",
                )
                .with_context("stream", run.schema.name()))
            }
        };
        // Every check passed; a crash here leaves nothing applied.
        self.faults.check(FaultPoint::DuringCommit)?;
        let r = Self::run_mut(&mut s, run)?;
        let rows = std::mem::take(&mut r.validated);
        let deletes = std::mem::take(&mut r.deletes);
        let rejected = std::mem::take(&mut r.rejected);
        let mut report = PromoteReport {
            quarantined: rejected.len() as u64,
            ..PromoteReport::default()
        };
        let table = s.tables.get_mut(run.schema.name()).expect("checked above");
        // Keys the snapshot holds, rejected rows included: a replace never deletes them.
        let mut snapshot_keys: BTreeSet<Key> = rejected
            .iter()
            .map(|(r, _)| remap(r, &run.schema, &target_schema).key(&target_schema))
            .collect();
        for row in rows {
            let row = remap(&row, &run.schema, &target_schema);
            let key = row.key(&target_schema);
            snapshot_keys.insert(key.clone());
            match table.rows.get(&key) {
                None => {
                    table.rows.insert(key, row);
                    report.inserted += 1;
                }
                Some(old)
                    if target_schema.guard().is_empty()
                        || row.compare_guard(old, &target_schema).is_gt() =>
                {
                    table.rows.insert(key, row);
                    report.updated += 1;
                }
                Some(_) => report.unchanged += 1,
            }
        }
        for key in &deletes {
            report.deleted += u64::from(table.rows.remove(key).is_some());
        }
        if let PromoteMode::Replace(scope) = mode {
            let in_scope = |row: &Row| match scope {
                ReplaceScope::All => true,
                ReplaceScope::Since { column, since } => {
                    let name = &run.schema.columns()[*column].name;
                    target_schema
                        .column_index(name)
                        .is_some_and(|i| row.get(i).compare(since).is_some_and(|o| o.is_ge()))
                }
            };
            let before = table.rows.len();
            table
                .rows
                .retain(|k, row| snapshot_keys.contains(k) || !in_scope(row));
            report.deleted += (before - table.rows.len()) as u64;
        }
        report.checkpoint_version =
            Self::commit_checkpoint(&mut s, commit, report.written(), report.quarantined)?;
        let quarantined = rejected.into_iter().map(|(row, reason)| QuarantinedRow {
            sync: run.sync.clone(),
            run_id: run.run_id.clone(),
            row,
            reason,
        });
        s.quarantine.extend(quarantined);
        if close {
            s.runs.remove(&run.sync);
        }
        drop(s);
        self.faults.check(FaultPoint::AfterCommit)?;
        Ok(report)
    }

    async fn abort(&self, run: &StagingRun) -> Result<()> {
        let mut s = self.lock();
        Self::run_mut(&mut s, run)?;
        s.runs.remove(&run.sync);
        Ok(())
    }

    async fn read_target(&self, stream: &str) -> Result<Vec<Row>> {
        Ok(self.target_rows(stream))
    }

    async fn read_target_keys(&self, stream: &str, keys: &[Key]) -> Result<Vec<Row>> {
        let s = self.lock();
        let Some(t) = s.tables.get(stream) else {
            return Ok(Vec::new());
        };
        let wanted: BTreeSet<&Key> = keys.iter().collect();
        Ok(wanted
            .into_iter()
            .filter_map(|k| t.rows.get(k).cloned())
            .collect())
    }

    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantinedRow>> {
        Ok(self
            .lock()
            .quarantine
            .iter()
            .filter(|q| q.sync == sync)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Checkpoint for MemoryStore {
    async fn load(&self, sync: &str) -> Result<Option<StoredCheckpoint>> {
        Self::stored(&self.lock(), sync)
    }

    async fn acquire_fence(&self, sync: &str) -> Result<FenceToken> {
        let mut s = self.lock();
        let f = s.fences.entry(sync.to_string()).or_insert(0);
        *f += 1;
        Ok(FenceToken(*f))
    }

    async fn commit(&self, commit: &CheckpointCommit) -> Result<u64> {
        Self::commit_checkpoint(&mut self.lock(), commit, 0, 0)
    }

    async fn ledger(&self, sync: &str) -> Result<Vec<LedgerEntry>> {
        Ok(self.lock().ledger.get(sync).cloned().unwrap_or_default())
    }

    async fn append_log(&self, entry: &SyncLogEntry) -> Result<()> {
        self.lock()
            .log
            .entry(entry.sync.clone())
            .or_default()
            .push(entry.clone());
        Ok(())
    }

    async fn sync_log(&self, sync: &str, limit: usize) -> Result<Vec<SyncLogEntry>> {
        let s = self.lock();
        let all = s.log.get(sync).map(Vec::as_slice).unwrap_or_default();
        Ok(all[all.len().saturating_sub(limit)..].to_vec())
    }

    async fn reset(&self, sync: &str, fence: FenceToken) -> Result<()> {
        let mut s = self.lock();
        if s.fences.get(sync).copied() != Some(fence.0) {
            return Err(
                Error::new(ErrorKind::Fenced, "fencing token is stale").with_context("sync", sync)
            );
        }
        s.checkpoints.remove(sync);
        Ok(())
    }
}

#[async_trait]
impl ChangeQueue for MemoryStore {
    async fn append(&self, queue: &str, entities: &[Key]) -> Result<Vec<SequenceNo>> {
        let mut s = self.lock();
        let q = s.queues.entry(queue.to_string()).or_default();
        Ok(entities
            .iter()
            .map(|e| {
                q.last += 1;
                q.visible.insert(SequenceNo(q.last), e.clone());
                SequenceNo(q.last)
            })
            .collect())
    }

    async fn read_window(&self, queue: &str, window: Window) -> Result<Vec<QueueEntry>> {
        let s = self.lock();
        let Some(q) = s.queues.get(queue).filter(|_| window.low < window.high) else {
            return Ok(Vec::new());
        };
        let range = (
            std::ops::Bound::Excluded(window.low),
            std::ops::Bound::Included(window.high),
        );
        Ok(q.visible
            .range(range)
            .map(|(seq, e)| QueueEntry {
                seq: *seq,
                entity: e.clone(),
            })
            .collect())
    }

    async fn safe_high_water_mark(&self, queue: &str) -> Result<SequenceNo> {
        let s = self.lock();
        let Some(q) = s.queues.get(queue) else {
            return Ok(SequenceNo(0));
        };
        Ok(match q.pending.first() {
            Some(p) => SequenceNo(p.0 - 1),
            None => SequenceNo(q.last),
        })
    }
}

#[async_trait]
impl Sink for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<DeliveryReceipt> {
        self.faults.check(FaultPoint::BeforeDeliver)?;
        let mut s = self.lock();
        let dest = s
            .destinations
            .entry(delivery.schema.name().to_string())
            .or_default();
        for row in &delivery.upserts {
            dest.insert(row.key(&delivery.schema), row.clone());
        }
        for key in &delivery.deletes {
            dest.remove(key);
        }
        Ok(DeliveryReceipt {
            delivered: (delivery.upserts.len() + delivery.deletes.len()) as u64,
        })
    }
}
