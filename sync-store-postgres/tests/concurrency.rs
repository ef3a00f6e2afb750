//! Concurrency on a real PostgreSQL, each test in its own schema: two runs of one sync never
//! interleave (the second is refused while the first holds the sync's lease and succeeds once
//! it is released); a holder whose lease expired, or whose session died, is overtaken and its
//! late writes are `Fenced`; two workers promoting overlapping keys concurrently converge on
//! the newest version of every key.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sync_core::checkpoint::LedgerEntry;
use sync_core::memory::MemorySource;
use sync_core::testkit::{batch, commit, item, items_schema, keyed_schema};
use sync_core::{
    Checkpoint, ErrorKind, FullConfig, FullStrategy, IncrementalConfig, IncrementalStrategy, Key,
    Page, PageRequest, Position, PromoteMode, Result, RetryPolicy, Row, Source, SourceCapabilities,
    Stager, Strategy, StreamSchema, SyncContext, ValidationRules, Value,
};
use sync_store_postgres::{is_lease_held, PostgresConfig, PostgresStore};
use tokio::sync::{Barrier, Notify};

fn url() -> Option<String> {
    std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn schema_name(test: &str) -> String {
    format!("sync_test_{}_{test}", std::process::id())
}

/// A store ("worker") on `schema`; several may share one schema.
async fn worker(schema: &str, lease: Option<Duration>) -> Arc<PostgresStore> {
    let mut config = PostgresConfig::new(url().expect("SYNC_TEST_POSTGRES_URL"))
        .with_schema(schema)
        .with_pool_size(3);
    if let Some(lease) = lease {
        config = config.with_run_lease(Some(lease));
    }
    Arc::new(
        PostgresStore::open(config)
            .await
            .expect("the test database"),
    )
}

/// A [`MemorySource`] whose first page waits: it signals `entered` (the run holds its lease
/// by then) and continues once `release` is notified.
#[derive(Debug)]
struct GatedSource {
    inner: Arc<MemorySource>,
    armed: AtomicBool,
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl GatedSource {
    fn new(inner: Arc<MemorySource>) -> Self {
        GatedSource {
            inner,
            armed: AtomicBool::new(true),
            entered: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
        }
    }
}

#[async_trait]
impl Source for GatedSource {
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
        if self.armed.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.inner.fetch_page(request).await
    }
    async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>> {
        self.inner.fetch_latest(stream, ids).await
    }
    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        self.inner.high_watermark(stream).await
    }
}

fn context(sync: &str, source: Arc<dyn Source>, store: &Arc<PostgresStore>) -> SyncContext {
    SyncContext::new(sync, source, store.clone(), store.clone()).with_retry(RetryPolicy::none())
}

fn full() -> FullStrategy {
    FullStrategy::new(FullConfig {
        page_size: 7,
        ..FullConfig::new("items")
    })
    .unwrap()
}

fn keyed_source(n: usize) -> Arc<MemorySource> {
    let source = Arc::new(MemorySource::new((*keyed_schema("items")).clone()));
    for i in 0..n {
        source.upsert(item(&format!("k{i:02}"), 1, None).values().to_vec());
    }
    source
}

/// The run events of `sync` in order, as `(event, run_id)`.
async fn run_events(store: &PostgresStore, sync: &str) -> Vec<(String, String)> {
    store
        .sync_log(sync, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.starts_with("run_"))
        .map(|e| (e.event, e.run_id))
        .collect()
}

/// Runs of one sync never overlapped: every `run_started` is followed by the `run_finished`
/// of the same run before the next run starts. Returns the number of runs.
fn assert_runs_never_interleave(events: &[(String, String)]) -> usize {
    assert_eq!(events.len() % 2, 0, "a run did not finish: {events:?}");
    for pair in events.chunks(2) {
        assert_eq!(pair[0].0, "run_started", "{events:?}");
        assert_eq!(pair[1].0, "run_finished", "{events:?}");
        assert_eq!(pair[0].1, pair[1].1, "two runs interleaved: {events:?}");
    }
    events.len() / 2
}

/// Every window starts where the one before ended, and each run's windows are contiguous.
fn assert_ledger_chains(ledger: &[LedgerEntry]) {
    for w in ledger.windows(2) {
        assert_eq!(w[1].low, w[0].high, "windows do not chain: {ledger:?}");
    }
    let mut seen = Vec::new();
    for e in ledger {
        if seen.last() != Some(&e.run_id) {
            assert!(
                !seen.contains(&e.run_id),
                "the windows of two runs interleaved"
            );
            seen.push(e.run_id.clone());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_a_sync_is_refused_while_the_first_holds_it_and_succeeds_after() {
    if url().is_none() {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    }
    let schema = schema_name("lease_refused");
    let (a, b) = (worker(&schema, None).await, worker(&schema, None).await);
    let source = keyed_source(30);
    let gated = Arc::new(GatedSource::new(source.clone()));
    let first = tokio::spawn({
        let ctx = context("items", gated.clone(), &a);
        async move { full().run(&ctx).await }
    });
    gated.entered.notified().await;

    // Another worker, and another task of the same worker, are refused with a typed error.
    for (who, store) in [("another worker", &b), ("the same worker", &a)] {
        let err = full()
            .run(&context("items", source.clone(), store))
            .await
            .expect_err("the sync is held by the first run");
        assert!(is_lease_held(&err), "{who}: {err}");
        assert_eq!(err.kind(), ErrorKind::Busy, "{who}");
        assert!(err.is_transient(), "{who}: {err}");
        assert!(
            err.retry_after().is_some_and(|d| d > Duration::ZERO),
            "{who}: the error says when the lease expires: {err}"
        );
    }
    let events = run_events(&b, "items").await;
    assert_eq!(events.len(), 1, "refused runs log nothing: {events:?}");
    assert_eq!(
        b.read_target("items").await.unwrap(),
        Vec::<Row>::new(),
        "nothing was promoted while the first run waited"
    );

    gated.release.notify_one();
    assert!(first.await.unwrap().unwrap().complete);
    source.upsert(item("k99", 1, None).values().to_vec());
    let second = full()
        .run(&context("items", source.clone(), &b))
        .await
        .expect("the lease was released at the end of the first run");
    assert!(second.complete);
    assert_eq!(b.read_target("items").await.unwrap(), source.rows("items"));
    assert_eq!(
        assert_runs_never_interleave(&run_events(&b, "items").await),
        2
    );
    (*a).clone().drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_runs_of_one_sync_never_overlap_and_the_target_equals_the_source() {
    if url().is_none() {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    }
    const WORKERS: usize = 3;
    const RUNS: usize = 3;
    let schema = schema_name("lease_race");
    let source = Arc::new(MemorySource::new((*items_schema("items")).clone()));
    for i in 0..40 {
        source.upsert(item(&format!("k{i:02}"), 1, Some(i)).values().to_vec());
    }
    let cursor = Arc::new(AtomicI64::new(100));
    let refusals = Arc::new(AtomicU32::new(0));
    // Wakes the refused workers whenever a run ends (the lease is free by then).
    let ended = Arc::new(Notify::new());
    let start = Arc::new(Barrier::new(WORKERS));
    let mut stores = Vec::new();
    for _ in 0..WORKERS {
        stores.push(worker(&schema, None).await);
    }
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(w, store)| {
            let ctx = context("race", source.clone(), store);
            let (source, cursor, refusals, ended, start) = (
                source.clone(),
                cursor.clone(),
                refusals.clone(),
                ended.clone(),
                start.clone(),
            );
            tokio::spawn(async move {
                let incremental = IncrementalStrategy::new(IncrementalConfig {
                    page_size: 7,
                    ..IncrementalConfig::new("items")
                })
                .unwrap();
                start.wait().await;
                for run in 0..RUNS {
                    for k in 0..3 {
                        let c = cursor.fetch_add(1, Ordering::SeqCst);
                        let key = format!("k{:02}", (w * 11 + run * 5 + k * 3) % 40);
                        source.upsert(item(&key, c, Some(c)).values().to_vec());
                    }
                    loop {
                        let notified = ended.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        match incremental.run(&ctx).await {
                            Ok(report) => {
                                assert!(report.complete);
                                ended.notify_waiters();
                                break;
                            }
                            Err(e) if is_lease_held(&e) => {
                                refusals.fetch_add(1, Ordering::SeqCst);
                                notified.await;
                            }
                            Err(e) => panic!("worker {w}: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let store = &stores[0];
    let incremental = IncrementalStrategy::new(IncrementalConfig::new("items")).unwrap();
    incremental
        .run(&context("race", source.clone(), store))
        .await
        .unwrap();
    assert_eq!(
        store.read_target("items").await.unwrap(),
        source.rows("items")
    );
    let runs = assert_runs_never_interleave(&run_events(store, "race").await);
    assert_eq!(runs, WORKERS * RUNS + 1);
    assert_ledger_chains(&store.ledger("race").await.unwrap());
    assert!(
        refusals.load(Ordering::SeqCst) > 0,
        "the workers raced for the sync"
    );
    (**store).clone().drop_schema().await.unwrap();
}

/// A stale holder: acquires, begins and stages, then never calls again (nor releases).
async fn stale_holder(
    store: &PostgresStore,
    sync: &str,
) -> (sync_core::FenceToken, sync_core::StagingRun) {
    let schema = keyed_schema("items");
    store.ensure_stream(&schema).await.unwrap();
    let fence = store.acquire_fence(sync).await.unwrap();
    let run = store
        .begin(sync, schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    store
        .stage(
            &run,
            batch(
                &schema,
                vec![item("stale", 9, None)],
                Position::Start,
                Position::Page(1),
            ),
        )
        .await
        .unwrap();
    (fence, run)
}

/// The stale holder's later writes are all refused with `Fenced`, and change nothing.
async fn assert_stale_holder_is_fenced(
    store: &PostgresStore,
    sync: &str,
    fence: sync_core::FenceToken,
    run: &sync_core::StagingRun,
) {
    let schema = keyed_schema("items");
    let target = store.read_target("items").await.unwrap();
    let checkpoint = store.load(sync).await.unwrap();
    let late = batch(
        &schema,
        vec![item("late", 9, None)],
        Position::Page(1),
        Position::Page(2),
    );
    assert_eq!(
        store.stage(run, late).await.unwrap_err().kind(),
        ErrorKind::Fenced,
        "a stale holder cannot stage"
    );
    let stale_commit = commit(
        sync,
        checkpoint.as_ref().map(|c| c.version),
        fence,
        checkpoint
            .as_ref()
            .map_or(Position::Start, |c| c.state.position.clone()),
        Position::Page(99),
    );
    assert_eq!(
        store
            .promote(run, &PromoteMode::Upsert, &stale_commit, true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Fenced,
        "a stale holder cannot promote"
    );
    assert_eq!(
        store.commit(&stale_commit).await.unwrap_err().kind(),
        ErrorKind::Fenced,
        "a stale holder cannot commit"
    );
    assert_eq!(store.read_target("items").await.unwrap(), target);
    assert_eq!(store.load(sync).await.unwrap(), checkpoint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_stale_holder_is_fenced() {
    if url().is_none() {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    }
    const LEASE: Duration = Duration::from_millis(300);
    let schema = schema_name("lease_expired");
    let (a, b) = (
        worker(&schema, Some(LEASE)).await,
        worker(&schema, Some(LEASE)).await,
    );
    let source = keyed_source(20);
    let t0 = Instant::now();
    let (fence, run) = stale_holder(&a, "items").await;

    // `a` is alive (its holder session is open) but silent: the lease runs out on its own.
    let mut refused = 0;
    let report = loop {
        match full().run(&context("items", source.clone(), &b)).await {
            Ok(report) => break report,
            Err(e) if is_lease_held(&e) && refused < 10 => {
                refused += 1;
                let expires = e
                    .retry_after()
                    .expect("the refusal says when the lease expires");
                assert!(expires <= LEASE, "{e}");
                // The lease's own deadline, not a guess.
                tokio::time::sleep(expires).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(report.complete);
    assert!(refused > 0, "the new run waited for the lease");
    assert!(
        t0.elapsed() >= LEASE,
        "the sync was taken over before the lease expired"
    );
    assert_eq!(b.read_target("items").await.unwrap(), source.rows("items"));
    assert_stale_holder_is_fenced(&a, "items", fence, &run).await;
    assert_eq!(b.read_target("items").await.unwrap(), source.rows("items"));
    (*a).clone().drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_session_died_is_taken_over_at_once_and_fenced() {
    if url().is_none() {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    }
    let (admin, connection) = tokio_postgres::connect(&url().unwrap(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let server: i32 = admin
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    if server < 140_000 {
        return eprintln!("skipped: waiting for a terminated backend needs PostgreSQL 14");
    }
    let schema = schema_name("lease_died");
    // The default lease (ten minutes): only the holder's death frees the sync in time.
    let (a, b) = (worker(&schema, None).await, worker(&schema, None).await);
    let source = keyed_source(20);
    let (fence, run) = stale_holder(&a, "items").await;
    assert!(is_lease_held(
        &full()
            .run(&context("items", source.clone(), &b))
            .await
            .unwrap_err()
    ));

    // What the server sees when a worker's process dies: its holder session ends (and the
    // termination waits until it has). That session holds the two-key advisory lock (`SYNL`,
    // holder key) recorded on the fence row.
    let holder: i64 = admin
        .query_one(
            &format!("SELECT holder FROM \"{schema}\".\"_sync_fences\" WHERE sync = 'items'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let terminated = admin
        .query(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks \
             WHERE locktype = 'advisory' AND classid = $1::bigint::oid \
             AND objid = $2::bigint::oid AND objsubid = 2 AND granted",
            &[&0x5359_4e4c_i64, &holder],
        )
        .await
        .unwrap();
    assert_eq!(terminated.len(), 1, "one session holds the holder lock");
    assert!(terminated[0].get::<_, bool>(0));

    let report = full()
        .run(&context("items", source.clone(), &b))
        .await
        .expect("a dead holder does not block the sync until the lease expires");
    assert!(report.complete);
    assert_eq!(b.read_target("items").await.unwrap(), source.rows("items"));
    assert_stale_holder_is_fenced(&a, "items", fence, &run).await;
    (*a).clone().drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_promoting_overlapping_keys_converge_to_the_newest_versions() {
    if url().is_none() {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    }
    const KEYS: i64 = 400;
    const ROUNDS: i64 = 16;
    let schema = schema_name("overlap");
    let stream = items_schema("items");
    let workers = [worker(&schema, None).await, worker(&schema, None).await];
    for w in &workers {
        w.ensure_stream(&stream).await.unwrap();
    }
    let (admin, connection) = tokio_postgres::connect(&url().unwrap(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let deadlocks = || async {
        admin
            .query_one(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let deadlocks_before = deadlocks().await;

    // Round r: worker w writes every key, at version 4r + 2((i + w) % 2) + (r % 2): the newest
    // alternates between the workers from key to key and round to round. Every third key
    // also gets a version older than what the other worker wrote the round before.
    let version = |w: i64, r: i64, i: i64| {
        if i % 3 == 0 && r > 0 && (i + r + w) % 2 == 0 {
            4 * (r - 1) - 1
        } else {
            4 * r + 2 * ((i + w) % 2) + (r % 2)
        }
    };
    let barrier = Arc::new(Barrier::new(2));
    let tasks: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(w, store)| {
            let (store, stream, barrier) = (store.clone(), stream.clone(), barrier.clone());
            tokio::spawn(async move {
                let w = w as i64;
                let sync = format!("w{w}");
                let fence = store.acquire_fence(&sync).await.unwrap();
                for r in 0..ROUNDS {
                    // The workers upsert in opposite key orders every fourth round: the
                    // deadlocks that follow are retried inside the store.
                    let mut keys: Vec<i64> = (0..KEYS).collect();
                    if w == 1 && r % 2 == 1 {
                        keys.reverse();
                    }
                    let rows = keys
                        .iter()
                        .map(|&i| {
                            let v = version(w, r, i);
                            item(&format!("k{i:03}"), v, Some(v))
                        })
                        .collect();
                    let run = store
                        .begin(&sync, stream.clone(), fence, serde_json::Value::Null)
                        .await
                        .unwrap();
                    store
                        .stage(
                            &run,
                            batch(&stream, rows, Position::Start, Position::Page(1)),
                        )
                        .await
                        .unwrap();
                    store
                        .validate(&run, &ValidationRules::default())
                        .await
                        .unwrap();
                    let expected = (r > 0).then_some(r as u64);
                    let from = if r == 0 {
                        Position::Start
                    } else {
                        Position::Page(r as u64)
                    };
                    let c = commit(&sync, expected, fence, from, Position::Page(r as u64 + 1));
                    barrier.wait().await;
                    store
                        .promote(&run, &PromoteMode::Upsert, &c, true)
                        .await
                        .unwrap_or_else(|e| panic!("worker {w} round {r}: {e}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let expected: Vec<Row> = (0..KEYS)
        .map(|i| {
            let newest = (0..2)
                .flat_map(|w| (0..ROUNDS).map(move |r| version(w, r, i)))
                .max()
                .unwrap();
            item(&format!("k{i:03}"), newest, Some(newest))
        })
        .collect();
    assert_eq!(workers[0].read_target("items").await.unwrap(), expected);
    for w in 0..2 {
        let cp = workers[0].load(&format!("w{w}")).await.unwrap().unwrap();
        assert_eq!(cp.version, ROUNDS as u64);
    }
    eprintln!(
        "deadlocks detected and retried: {}",
        deadlocks().await - deadlocks_before
    );
    (*workers[0]).clone().drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_fence_frees_the_sync_at_once_and_a_stale_release_frees_nothing() {
    if url().is_none() {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    }
    let schema = schema_name("lease_release");
    // The default lease (ten minutes): only a release frees the sync within the test.
    let (a, b) = (worker(&schema, None).await, worker(&schema, None).await);
    let first = a.acquire_fence("items").await.unwrap();
    let refused = b.acquire_fence("items").await.unwrap_err();
    assert!(is_lease_held(&refused), "{refused}");
    assert_eq!(refused.kind(), ErrorKind::Busy);

    a.release_fence("items", first).await.unwrap();
    let second = b
        .acquire_fence("items")
        .await
        .expect("a released lease is taken at once");
    assert!(second > first);

    // The former holder's release, repeated, leaves the new holder's lease and writes alone.
    a.release_fence("items", first).await.unwrap();
    assert!(is_lease_held(&a.acquire_fence("items").await.unwrap_err()));
    let c = commit("items", None, second, Position::Start, Position::Offset(1));
    assert_eq!(b.commit(&c).await.unwrap(), 1);

    b.release_fence("items", second).await.unwrap();
    a.acquire_fence("items").await.expect("released again");

    // A run releases its fence when it ends: the other store's run follows at once.
    let source = keyed_source(20);
    let report = full()
        .run(&context("orders", source.clone(), &a))
        .await
        .unwrap();
    assert!(report.complete);
    let report = full()
        .run(&context("orders", source.clone(), &b))
        .await
        .expect("the first run released its lease when it ended");
    assert!(report.complete);
    assert_eq!(b.read_target("items").await.unwrap(), source.rows("items"));
    (*a).clone().drop_schema().await.unwrap();
}
