//! Within a stream the next page is fetched while the current one is staged, and checkpoint
//! order still holds.
//!
//! Overlap is proved without timing: a stager whose `stage` of page N returns only once the
//! source has received the fetch of page N+1. Strictly sequential code (fetch, stage, fetch)
//! can never get there and the run hits the test's timeout; overlapping code completes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{hwm, put, setup};
use sync_core::memory::{MemoryPaging, MemorySource, MemoryStore};
use sync_core::testkit::{ids, items_schema, keyed_schema};
use sync_core::{
    Checkpoint, CheckpointCommit, ErrorKind, FaultAction, FaultPoint, FullConfig, FullStrategy,
    IncrementalConfig, IncrementalStrategy, Key, OffsetConfig, OffsetStrategy, Page, PageRequest,
    Position, PromoteMode, PromoteReport, QuarantinedRow, RecordBatch, Result, RetryPolicy, Row,
    RunLimits, Source, SourceCapabilities, SourceOrdering, Stager, StagingRun, Strategy,
    StreamSchema, SyncContext, ValidationReport, ValidationRules, Value,
};
use tokio::sync::watch;

/// Far longer than any of these runs takes; reached only when staging waits forever.
const DEADLOCK: Duration = Duration::from_secs(5);

/// A memory source that announces every page request it receives.
#[derive(Debug)]
struct AnnouncingSource {
    inner: Arc<MemorySource>,
    received: watch::Sender<usize>,
}

#[async_trait]
impl Source for AnnouncingSource {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }
    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        self.inner.schema(stream)
    }
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page> {
        self.received.send_modify(|n| *n += 1);
        self.inner.fetch_page(request).await
    }
    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        self.inner.high_watermark(stream).await
    }
}

/// A memory store whose `stage` of the n-th batch (n <= `gated`) waits until the source has
/// received request n + `ahead`, and which records the deltas it staged.
#[derive(Debug)]
struct WaitingStager {
    inner: Arc<MemoryStore>,
    received: watch::Receiver<usize>,
    gated: usize,
    /// The n-th stage waits for request n + `ahead` (1: the page after a page staged alone).
    ahead: usize,
    staged: AtomicUsize,
    deltas: Mutex<Vec<(Position, Position)>>,
}

#[async_trait]
impl Stager for WaitingStager {
    fn name(&self) -> &str {
        Stager::name(&*self.inner)
    }
    async fn ensure_stream(&self, schema: &StreamSchema) -> Result<()> {
        self.inner.ensure_stream(schema).await
    }
    async fn begin(
        &self,
        sync: &str,
        schema: Arc<StreamSchema>,
        fence: sync_core::FenceToken,
        params: serde_json::Value,
    ) -> Result<StagingRun> {
        self.inner.begin(sync, schema, fence, params).await
    }
    async fn stage(&self, run: &StagingRun, batch: RecordBatch) -> Result<Position> {
        let n = self.staged.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.gated {
            let mut received = self.received.clone();
            received
                .wait_for(|&r| r >= n + self.ahead)
                .await
                .expect("the source outlives the run");
        }
        let schema = batch.schema().clone();
        let (rows, deletes, delta) = batch.into_parts();
        self.deltas
            .lock()
            .unwrap()
            .push((delta.from.clone(), delta.to.clone()));
        let batch = RecordBatch::new(schema, rows, delta)?.with_deletes(deletes);
        self.inner.stage(run, batch).await
    }
    async fn validate(
        &self,
        run: &StagingRun,
        rules: &ValidationRules,
    ) -> Result<ValidationReport> {
        self.inner.validate(run, rules).await
    }
    async fn promote(
        &self,
        run: &StagingRun,
        mode: &PromoteMode,
        commit: &CheckpointCommit,
        close: bool,
    ) -> Result<PromoteReport> {
        self.inner.promote(run, mode, commit, close).await
    }
    async fn abort(&self, run: &StagingRun) -> Result<()> {
        self.inner.abort(run).await
    }
    async fn read_target(&self, stream: &str) -> Result<Vec<Row>> {
        self.inner.read_target(stream).await
    }
    async fn read_target_keys(&self, stream: &str, keys: &[Key]) -> Result<Vec<Row>> {
        self.inner.read_target_keys(stream, keys).await
    }
    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantinedRow>> {
        self.inner.quarantined(sync).await
    }
}

/// A source holding `rows`, a store, and a context whose stager waits in its first `gated`
/// stages, the n-th for request n + `ahead` (1: the page after a page staged alone).
fn waiting(
    memory: MemorySource,
    rows: Vec<Row>,
    gated: usize,
    ahead: usize,
) -> (
    Arc<MemorySource>,
    Arc<MemoryStore>,
    Arc<WaitingStager>,
    SyncContext,
) {
    let memory = Arc::new(memory);
    for row in rows {
        memory.upsert(row.values().to_vec());
    }
    let (received, watching) = watch::channel(0);
    let source = Arc::new(AnnouncingSource {
        inner: memory.clone(),
        received,
    });
    let store = Arc::new(MemoryStore::new());
    let stager = Arc::new(WaitingStager {
        inner: store.clone(),
        received: watching,
        gated,
        ahead,
        staged: AtomicUsize::new(0),
        deltas: Mutex::new(Vec::new()),
    });
    let ctx = SyncContext::new("prefetch", source, stager.clone(), store.clone())
        .with_retry(RetryPolicy::none());
    (memory, store, stager, ctx)
}

/// Runs `strategy`, failing (rather than hanging) when staging waited for a fetch that never
/// came.
async fn run_overlapping(strategy: &dyn Strategy, ctx: &SyncContext) -> sync_core::RunReport {
    tokio::time::timeout(DEADLOCK, strategy.run(ctx))
        .await
        .expect("staging page N waited for the fetch of page N+1: pages are fetched in sequence")
        .expect("the run succeeds")
}

/// Each staged batch starts where the one before it ended.
fn assert_chained(deltas: &[(Position, Position)]) {
    for pair in deltas.windows(2) {
        assert_eq!(pair[1].0, pair[0].1, "staged batches are in page order");
    }
}

fn keyed_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| sync_core::testkit::item(&format!("k{i}"), 1, None))
        .collect()
}

fn cursor_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| sync_core::testkit::item(&format!("k{i}"), 1, Some(i as i64 + 1)))
        .collect()
}

/// Pages gathered into batches of two: while a batch is staged the two pages of the next are
/// fetched, one after the other; each batch is one stage call.
#[tokio::test]
async fn a_full_fill_fetches_the_next_batch_while_one_is_staged() {
    let schema = keyed_schema("t");
    // Five pages of two, batches of four rows: staging batch 1 (pages 1 and 2) waits for the
    // fetch of page 4, batch 2 (pages 3 and 4) for page 5.
    let (memory, store, stager, ctx) =
        waiting(MemorySource::new((*schema).clone()), keyed_rows(10), 2, 3);
    let full = FullStrategy::new(FullConfig {
        page_size: 2,
        batch_rows: 4,
        ..FullConfig::new("t")
    })
    .unwrap();
    let report = run_overlapping(&full, &ctx).await;
    assert_eq!((report.pages, report.rows_written), (5, 10));
    assert_eq!(memory.requests().len(), 5, "no page is fetched twice");
    let deltas = stager.deltas.lock().unwrap().clone();
    assert_eq!(
        deltas.len(),
        3,
        "two batches of two pages and the last page"
    );
    assert_chained(&deltas);
    assert_eq!(store.target_rows("t"), memory.rows("t"));
}

#[tokio::test]
async fn full_fetches_the_next_page_while_the_current_one_is_staged() {
    let schema = keyed_schema("t");
    // Three pages of two: staging pages 1 and 2 each waits for the fetch after it.
    let (memory, store, stager, ctx) =
        waiting(MemorySource::new((*schema).clone()), keyed_rows(6), 2, 1);
    let full = FullStrategy::new(FullConfig {
        page_size: 2,
        batch_rows: 2,
        ..FullConfig::new("t")
    })
    .unwrap();
    let report = run_overlapping(&full, &ctx).await;
    assert_eq!((report.pages, report.rows_written), (3, 6));
    assert_eq!(memory.requests().len(), 3, "no page is fetched twice");
    let deltas = stager.deltas.lock().unwrap().clone();
    assert_eq!(deltas.len(), 3);
    assert_chained(&deltas);
    assert_eq!(store.target_rows("t"), memory.rows("t"));
    assert_eq!(store.ledger("prefetch").await.unwrap().len(), 1);
}

#[tokio::test]
async fn ordered_incremental_fetches_the_next_page_while_the_current_one_is_promoted() {
    let schema = items_schema("t");
    let (memory, store, stager, ctx) =
        waiting(MemorySource::new((*schema).clone()), cursor_rows(6), 2, 1);
    memory.set_high_watermark("t", Some(vec![Value::from(6)]));
    let incremental = IncrementalStrategy::new(IncrementalConfig {
        page_size: 2,
        ..IncrementalConfig::new("t")
    })
    .unwrap();
    let report = run_overlapping(&incremental, &ctx).await;
    assert_eq!((report.pages, report.rows_written), (3, 6));
    assert_eq!(memory.requests().len(), 3);
    assert_chained(&stager.deltas.lock().unwrap());
    // One commit per page, in page order: each delta starts where the one before ended.
    let ledger = store.ledger("prefetch").await.unwrap();
    assert_eq!(ledger.len(), 3);
    assert_eq!(ledger[0].low, Position::Start);
    for pair in ledger.windows(2) {
        assert_eq!(pair[1].low, pair[0].high, "commits chain in page order");
    }
    let position = store
        .load("prefetch")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    assert_eq!(position, ledger[2].high);
    assert_eq!(store.target_rows("t"), memory.rows("t"));
}

#[tokio::test]
async fn unordered_incremental_fetches_the_next_page_while_the_current_one_is_staged() {
    let schema = items_schema("t");
    let memory = MemorySource::new((*schema).clone()).with_paging(MemoryPaging::Token);
    let caps = SourceCapabilities {
        ordering: SourceOrdering::Unordered,
        ..memory.capabilities()
    };
    let (memory, store, stager, ctx) =
        waiting(memory.with_capabilities(caps), cursor_rows(6), 2, 1);
    memory.set_high_watermark("t", Some(vec![Value::from(6)]));
    let incremental = IncrementalStrategy::new(IncrementalConfig {
        page_size: 2,
        ..IncrementalConfig::new("t")
    })
    .unwrap();
    let report = run_overlapping(&incremental, &ctx).await;
    assert_eq!((report.pages, report.rows_written), (3, 6));
    assert_eq!(memory.requests().len(), 3);
    assert_chained(&stager.deltas.lock().unwrap());
    let ledger = store.ledger("prefetch").await.unwrap();
    assert_eq!(ledger.len(), 1, "an unordered run is one window");
    assert_eq!(store.target_rows("t"), memory.rows("t"));
}

#[tokio::test]
async fn offset_fetches_the_next_page_while_the_current_one_is_promoted() {
    let schema = keyed_schema("t");
    let (memory, store, stager, ctx) =
        waiting(MemorySource::new((*schema).clone()), keyed_rows(6), 2, 1);
    let offset = OffsetStrategy::new(OffsetConfig {
        page_size: 2,
        ..OffsetConfig::new("t")
    })
    .unwrap();
    let report = run_overlapping(&offset, &ctx).await;
    assert!(report.complete);
    assert_eq!(memory.requests().len(), 3);
    assert_chained(&stager.deltas.lock().unwrap());
    let ledger = store.ledger("prefetch").await.unwrap();
    let highs: Vec<Position> = ledger.iter().map(|l| l.high.clone()).collect();
    assert_eq!(
        highs,
        [
            Position::Offset(2),
            Position::Offset(4),
            Position::Offset(6)
        ]
    );
    assert_eq!(store.target_rows("t"), memory.rows("t"));
}

/// One strategy of each kind that fetches ahead, over three pages of two records.
fn strategies() -> Vec<(&'static str, Arc<StreamSchema>, Box<dyn Strategy>)> {
    vec![
        (
            "full",
            keyed_schema("t"),
            Box::new(
                FullStrategy::new(FullConfig {
                    page_size: 2,
                    batch_rows: 2,
                    ..FullConfig::new("t")
                })
                .unwrap(),
            ),
        ),
        (
            "incremental",
            items_schema("t"),
            Box::new(
                IncrementalStrategy::new(IncrementalConfig {
                    page_size: 2,
                    ..IncrementalConfig::new("t")
                })
                .unwrap(),
            ),
        ),
        (
            "offset",
            keyed_schema("t"),
            Box::new(
                OffsetStrategy::new(OffsetConfig {
                    page_size: 2,
                    ..OffsetConfig::new("t")
                })
                .unwrap(),
            ),
        ),
    ]
}

/// A source with six records (cursors 1 to 6 when the schema has one) and its context.
fn six(schema: &StreamSchema) -> (Arc<MemorySource>, Arc<MemoryStore>, SyncContext) {
    let (source, store, ctx, _) = setup(schema);
    for i in 0..6 {
        let cursor = (!schema.cursor().is_empty()).then_some(i + 1);
        put(&source, &format!("k{i}"), 1, cursor);
    }
    hwm(&source, "t", 6);
    (source, store, ctx)
}

#[tokio::test]
async fn a_page_limit_is_never_exceeded_by_a_fetch_ahead_and_the_next_run_resumes() {
    for (name, schema, strategy) in strategies() {
        let (source, store, ctx) = six(&schema);
        let limited = ctx.clone().with_limits(RunLimits {
            max_pages: Some(2),
            max_errors: None,
        });
        let first = strategy.run(&limited).await.unwrap();
        assert!(!first.complete, "{name}");
        assert_eq!(first.pages, 2, "{name}");
        assert_eq!(
            source.requests().len(),
            2,
            "{name}: exactly two pages fetched"
        );
        let second = strategy.run(&ctx).await.unwrap();
        assert!(second.complete, "{name}");
        // Full and offset resume at the page the limit left; incremental re-reads from the
        // checkpoint's cursor (inclusive), which puts the last record read first.
        let resumed = if name == "incremental" { 2 } else { 1 };
        assert_eq!(
            (second.pages, source.requests().len()),
            (resumed, 2 + resumed as usize),
            "{name}: the resumed run reads from where the limit stopped"
        );

        let (reference, reference_store, reference_ctx) = six(&schema);
        assert!(strategy.run(&reference_ctx).await.unwrap().complete);
        assert_eq!(reference.requests().len(), 3, "{name}");
        assert_eq!(
            store.target_rows("t"),
            reference_store.target_rows("t"),
            "{name}: a limited run and its resume reach what an unlimited run reaches"
        );
        assert_eq!(store.target_rows("t"), source.rows("t"), "{name}");
        if name != "full" {
            // The full strategy's position is the fill's start time; the others' must match.
            let at = |s: Arc<MemoryStore>| async move {
                s.load("test/sync").await.unwrap().unwrap().state.position
            };
            assert_eq!(at(store).await, at(reference_store).await, "{name}");
        }
    }
}

#[tokio::test]
async fn a_failed_fetch_ahead_is_returned_after_the_page_before_it_committed() {
    let schema = items_schema("t");
    let (source, store, ctx) = six(&schema);
    let faults = store.faults().clone();
    // The second request (fetched ahead while page 1 is promoted) fails.
    faults.arm_after(FaultPoint::MidPage, FaultAction::Error, 1);
    let incremental = &strategies()[1].2;
    let err = incremental.run(&ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InjectedFault);
    assert_eq!(ids(&store.target_rows("t")), ["k0", "k1"]);
    let position = store
        .load("test/sync")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    assert_eq!(
        position,
        Position::CursorKey(sync_core::CursorKey {
            cursor: vec![Value::from(2)],
            key: Some(Key::text("k1")),
        }),
        "page 1 committed before the failed fetch was reported"
    );
    assert!(incremental.run(&ctx).await.unwrap().complete);
    assert_eq!(store.target_rows("t"), source.rows("t"));
}

#[tokio::test]
async fn a_failed_stage_drops_the_page_fetched_ahead_and_the_next_run_reads_it_again() {
    let schema = keyed_schema("t");
    let (source, store, ctx) = six(&schema);
    store
        .faults()
        .arm(FaultPoint::AfterStage, FaultAction::Error);
    let full = &strategies()[0].2;
    let err = full.run(&ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InjectedFault);
    assert_eq!(
        source.requests().len(),
        2,
        "page 2 was fetched while page 1 was staged"
    );
    let report = full.run(&ctx).await.unwrap();
    assert_eq!(
        report.pages, 2,
        "the fill resumes after the staged page: page 2 is read again, then page 3"
    );
    assert_eq!(store.target_rows("t"), source.rows("t"));
}
