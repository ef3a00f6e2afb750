//! The store's hot paths on the bench record shape, per store: staging a page of 1,000
//! decoded rows (encode + bulk insert or binary COPY), a whole window (stage, validate,
//! guarded upsert of 1,000 rows over a populated target with the checkpoint commit and its
//! ledger row in one transaction) and a bare checkpoint commit (the durable commit alone).
//!
//! SQLite runs on a temporary file; PostgreSQL runs when `SYNC_BENCH_POSTGRES_URL` is set,
//! in a schema of its own (`sync_bench_<pid>`, dropped first if left behind).
#![allow(missing_docs)]

use std::cell::Cell;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sync_benches::{item_schema, items_page};
use sync_core::record::decode::RowDecoder;
use sync_core::testkit::{batch, commit};
use sync_core::{
    Checkpoint, FenceToken, Position, PromoteMode, Row, Stager, StreamSchema, ValidationRules,
    Value,
};
use tokio::runtime::Runtime;

const PAGE: u64 = 1000;

fn rows(version: i64) -> Vec<Row> {
    let page = items_page(PAGE as usize);
    let decoded = RowDecoder::new(item_schema())
        .decode_page(page.as_bytes(), &["items"])
        .expect("page decodes")
        .rows;
    decoded
        .into_iter()
        .map(|r| {
            let mut values = r.values().to_vec();
            values[2] = Value::from(version);
            Row::new(values)
        })
        .collect()
}

struct Store {
    name: &'static str,
    stager: Arc<dyn Stager>,
    checkpoints: Arc<dyn Checkpoint>,
}

async fn stores(dir: &std::path::Path) -> Vec<Store> {
    let sqlite = Arc::new(
        sync_store_sqlite::SqliteStore::open(sync_store_sqlite::SqliteConfig::new(
            dir.join("bench.db"),
        ))
        .await
        .expect("sqlite store"),
    );
    let mut out = vec![Store {
        name: "sqlite",
        stager: sqlite.clone(),
        checkpoints: sqlite,
    }];
    if let Some(url) = std::env::var("SYNC_BENCH_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let schema = format!("sync_bench_{}", std::process::id());
        let pg = Arc::new(
            sync_store_postgres::PostgresStore::open(
                sync_store_postgres::PostgresConfig::new(url)
                    .with_schema(schema)
                    .with_run_lease(None),
            )
            .await
            .expect("postgres store"),
        );
        out.push(Store {
            name: "postgres",
            stager: pg.clone(),
            checkpoints: pg,
        });
    }
    out
}

/// Positions advance by one page per call, so every stage and commit continues the last.
struct Cursor(Cell<u64>);

impl Cursor {
    fn step(&self) -> (Position, Position) {
        let at = self.0.get();
        self.0.set(at + PAGE);
        // A run and a checkpoint start at `Start`, not at offset 0.
        let from = if at == 0 {
            Position::Start
        } else {
            Position::Offset(at)
        };
        (from, Position::Offset(at + PAGE))
    }
}

fn store_paths(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let schema: Arc<StreamSchema> = item_schema();
    let page = rows(1);
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(PAGE));
    group.sample_size(20);
    for store in rt.block_on(stores(dir.path())) {
        rt.block_on(store.stager.ensure_stream(&schema))
            .expect("target");
        // Staging alone: pages appended to one open run.
        let sync = format!("bench/stage/{}", store.name);
        let fence = rt
            .block_on(store.checkpoints.acquire_fence(&sync))
            .expect("fence");
        let run = rt
            .block_on(
                store
                    .stager
                    .begin(&sync, schema.clone(), fence, serde_json::json!({})),
            )
            .expect("run");
        let staged = Cursor(Cell::new(0));
        group.bench_function(BenchmarkId::new("stage_page", store.name), |b| {
            b.iter(|| {
                let (from, to) = staged.step();
                rt.block_on(
                    store
                        .stager
                        .stage(&run, batch(&schema, page.clone(), from, to)),
                )
                .expect("stage")
            })
        });
        rt.block_on(store.stager.abort(&run)).expect("abort");

        // A whole window over a populated target: every row is a newer version of one there.
        let sync = format!("bench/window/{}", store.name);
        let fence = rt
            .block_on(store.checkpoints.acquire_fence(&sync))
            .expect("fence");
        let windows = Cursor(Cell::new(0));
        let version = Cell::new(0i64);
        let window = |rows: Vec<Row>| {
            let (from, to) = windows.step();
            rt.block_on(async {
                let expected = store
                    .checkpoints
                    .load(&sync)
                    .await
                    .expect("load")
                    .map(|s| s.version);
                let run = store
                    .stager
                    .begin(&sync, schema.clone(), fence, serde_json::json!({}))
                    .await
                    .expect("run");
                store
                    .stager
                    .stage(&run, batch(&schema, rows, run.progress.clone(), to.clone()))
                    .await
                    .expect("stage");
                store
                    .stager
                    .validate(&run, &ValidationRules::default())
                    .await
                    .expect("validate");
                let commit = commit(&sync, expected, fence, from, to);
                store
                    .stager
                    .promote(&run, &PromoteMode::Upsert, &commit, true)
                    .await
                    .expect("promote")
            })
        };
        window(rows(0));
        group.bench_function(BenchmarkId::new("window_upsert_page", store.name), |b| {
            b.iter(|| {
                version.set(version.get() + 1);
                window(rows(version.get()))
            })
        });

        // The durable checkpoint commit alone (no rows).
        let sync = format!("bench/commit/{}", store.name);
        let fence = rt
            .block_on(store.checkpoints.acquire_fence(&sync))
            .expect("fence");
        let commits = Cursor(Cell::new(0));
        let expected: Cell<Option<u64>> = Cell::new(None);
        group.bench_function(BenchmarkId::new("checkpoint_commit", store.name), |b| {
            b.iter(|| {
                let (from, to) = commits.step();
                let v = rt
                    .block_on(store.checkpoints.commit(&commit(
                        &sync,
                        expected.get(),
                        fence,
                        from,
                        to,
                    )))
                    .expect("commit");
                expected.set(Some(v));
            })
        });
        let _: FenceToken = fence;
    }
    group.finish();
}

criterion_group!(benches, store_paths);
criterion_main!(benches);
