//! End-to-end benchmark: a full sync, then an incremental sync with 1% of the records
//! changed, from a paginated fake API into SQLite and PostgreSQL, at each size asked for.
//! Prints a table and one JSON line per measurement (records/s, wall time, peak RSS).
//!
//! ```text
//! e2e [--sizes 100000,1000000] [--targets sqlite,pg] [--api-url http://127.0.0.1:18080]
//!     [--postgres postgres://postgres@127.0.0.1:5432/test] [--dir /tmp/e2e] [--page-size 1000]
//!     [--sqlite-durability full|normal]
//! ```
//!
//! `--sqlite-durability normal` promotes into SQLite at `synchronous=NORMAL`
//! (`sync_store_sqlite::Durability::Normal`, the setting `e2e_ceiling` uses); the default is
//! the store's default, `full`.
//!
//! Without `--api-url` the in-process demo API (the shared/bench fake API contract) serves the
//! records; with it, an external one (shared/bench's `fake_api`) does, and is reset first.
//! Each phase runs in a child process of its own, so its peak RSS is the sync's alone (the
//! API's records live in this process). The child verifies the target after it measured:
//! `count == records` and `sum(version) == expected_version_sum`.
//!
//! With `E2E_TIMELINE=1` in its environment a child also prints each progress event of its
//! run to stderr with the milliseconds since the run began, taken as the event is printed
//! (pages, staging, windows, promotions): where a run's time goes, without a profiler.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use sync_connectors::http::{HttpClient, HttpConfig, HttpRequest, Method};
use sync_connectors::rest::{RestSource, StrategySpec};
use sync_core::{Checkpoint, Stager, SyncContext};
use sync_examples::demo_api::{items_stream, DemoApi};

/// Pages per promotion of the incremental phase (as `examples/pipelines/bench.toml`): one
/// durable commit with its checkpoint per 10 pages.
const PAGES_PER_WINDOW: u32 = 10;

fn arg(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == &flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Peak resident set size of this process, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn admin(url: &str, path: &str) -> sync_core::Result<serde_json::Value> {
    let client = HttpClient::new(HttpConfig::default())?;
    let mut request = HttpRequest::get(format!("{url}{path}"));
    if path != "/admin/state" {
        request.method = Method::Post;
    }
    client.execute(&request).await?.json()
}

/// Drops the schema a PostgreSQL measurement used (`url#schema`; the name is ours,
/// `e2e_<n>_<pid>`), so repeated sittings do not fill the cluster.
async fn drop_schema(db: &str) {
    let (url, schema) = db.split_once('#').expect("postgres url#schema");
    assert!(schema
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            if let Err(e) = client.batch_execute(&drop).await {
                eprintln!("could not drop schema {schema}: {e}");
            }
        }
        Err(e) => eprintln!("could not drop schema {schema}: {e}"),
    }
}

/// The durability of SQLite promotions `--sqlite-durability` asks for, and its name.
fn durability() -> (sync_store_sqlite::Durability, &'static str) {
    match arg("sqlite-durability").as_deref() {
        None | Some("full") => (sync_store_sqlite::Durability::Full, "full"),
        Some("normal") => (sync_store_sqlite::Durability::Normal, "normal"),
        Some(other) => panic!("--sqlite-durability full|normal, not {other}"),
    }
}

/// One phase in this (child) process; prints its JSON line.
async fn child(
    target: &str,
    db: &str,
    api: &str,
    phase: &str,
    page_size: u32,
) -> sync_core::Result<()> {
    let (durability, durability_name) = durability();
    let (stager, checkpoints): (Arc<dyn Stager>, Arc<dyn Checkpoint>) = match target {
        "sqlite" => {
            let config = sync_store_sqlite::SqliteConfig::new(db).with_durability(durability);
            let store = Arc::new(sync_store_sqlite::SqliteStore::open(config).await?);
            (store.clone(), store)
        }
        _ => {
            let (url, schema) = db.split_once('#').expect("postgres url#schema");
            let store = Arc::new(
                sync_store_postgres::PostgresStore::open(
                    sync_store_postgres::PostgresConfig::new(url).with_schema(schema),
                )
                .await?,
            );
            (store.clone(), store)
        }
    };
    let mut stream = items_stream(api).with_page_size(page_size);
    stream.strategy = match phase {
        "full" => StrategySpec::full(),
        _ => StrategySpec::Incremental {
            lookback: 0,
            settle_lag: 0,
            missing_cursor: Default::default(),
            pages_per_window: PAGES_PER_WINDOW,
        },
    };
    let strategy = stream.strategy.build("items", page_size)?;
    let source = Arc::new(RestSource::new(
        stream,
        HttpClient::new(HttpConfig::default())?,
    )?);
    let mut ctx = SyncContext::new("bench/items", source, stager.clone(), checkpoints);
    let started = Instant::now();
    let mut timeline = None;
    if std::env::var_os("E2E_TIMELINE").is_some() {
        let (progress, mut events) = sync_core::progress::Progress::channel(4096);
        ctx = ctx.with_progress(progress);
        timeline = Some(tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                eprintln!("{ms:9.1} ms  {event:?}");
            }
        }));
    }
    let report = strategy.run(&ctx).await?;
    let secs = started.elapsed().as_secs_f64();
    // The run's events end with the context: print the last of them before the result.
    drop(ctx);
    if let Some(printer) = timeline {
        printer.await.expect("the timeline printer");
    }
    let rss = peak_rss_kib();
    let target_rows = stager.read_target("items").await?;
    let version_sum: i64 = target_rows
        .iter()
        .map(|r| r.get(2).as_i64().unwrap_or(0))
        .sum();
    println!(
        "{}",
        json!({
            "target": target, "phase": phase, "secs": secs,
            "durability": (target == "sqlite").then_some(durability_name),
            "rows_read": report.rows_read, "rows_written": report.rows_written,
            "pages": report.pages, "windows": report.windows,
            "peak_rss_kib": rss, "count": target_rows.len(), "version_sum": version_sum,
        })
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> sync_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let page_size: u32 = arg("page-size").map_or(1000, |p| p.parse().expect("--page-size N"));
    if args.get(1).map(String::as_str) == Some("child") {
        let [target, db, api, phase] = [2, 3, 4, 5].map(|i| args[i].clone());
        return child(&target, &db, &api, &phase, page_size).await;
    }
    let sizes: Vec<usize> = arg("sizes")
        .unwrap_or_else(|| "100000,1000000".into())
        .split(',')
        .map(|s| s.parse().expect("--sizes N,M"))
        .collect();
    let targets = arg("targets").unwrap_or_else(|| "sqlite,pg".into());
    let postgres = arg("postgres")
        .or_else(|| std::env::var("SYNC_BENCH_POSTGRES_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let dir = std::path::PathBuf::from(arg("dir").unwrap_or_else(|| "/tmp/sync-e2e".into()));
    // Checked before any child runs.
    let (_, durability_name) = durability();
    std::fs::create_dir_all(&dir).expect("the bench directory");
    let exe = std::env::current_exe().expect("this binary");
    let mut table = Vec::new();
    for &n in &sizes {
        for target in targets.split(',') {
            let local = match arg("api-url") {
                Some(_) => None,
                None => Some(DemoApi::start(n).expect("the demo api starts")),
            };
            let api = arg("api-url").unwrap_or_else(|| local.as_ref().unwrap().url().to_owned());
            if local.is_none() {
                admin(&api, "/admin/reset").await?;
            }
            let db = match target {
                "sqlite" => {
                    let path = dir.join(format!("e2e-{n}.db"));
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                    path.display().to_string()
                }
                _ => format!("{postgres}#e2e_{n}_{}", std::process::id()),
            };
            for phase in ["full", "incremental"] {
                if phase == "incremental" {
                    admin(&api, "/admin/mutate?fraction=0.01").await?;
                }
                let expected = admin(&api, "/admin/state").await?["expected_version_sum"].clone();
                let out = Command::new(&exe)
                    .args([
                        "child",
                        target,
                        &db,
                        &api,
                        phase,
                        "--page-size",
                        &page_size.to_string(),
                        "--sqlite-durability",
                        durability_name,
                    ])
                    .output()
                    .expect("the child runs");
                let line = String::from_utf8_lossy(&out.stdout);
                let mut result: serde_json::Value = serde_json::from_str(line.trim())
                    .unwrap_or_else(|_| {
                        panic!(
                            "{target} {phase} failed: {}",
                            String::from_utf8_lossy(&out.stderr)
                        )
                    });
                let ok = result["count"] == json!(n) && result["version_sum"] == expected;
                result["records"] = json!(n);
                result["verified"] = json!(ok);
                let secs = result["secs"].as_f64().unwrap_or(0.0);
                result["records_per_s"] =
                    json!((result["rows_read"].as_f64().unwrap_or(0.0) / secs).round());
                println!("{result}");
                table.push(result);
            }
            if target != "sqlite" {
                drop_schema(&db).await;
            }
        }
    }
    println!("\n| target | records | phase | wall s | records/s | rows written | peak RSS MiB | verified |");
    println!("|---|---:|---|---:|---:|---:|---:|---|");
    for r in &table {
        let target = match r["durability"].as_str() {
            Some(d) => format!("{} ({d})", r["target"].as_str().unwrap_or("")),
            None => r["target"].as_str().unwrap_or("").to_string(),
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} | {:.1} | {} |",
            target,
            r["records"],
            r["phase"].as_str().unwrap_or(""),
            r["secs"].as_f64().unwrap_or(0.0),
            r["records_per_s"].as_f64().unwrap_or(0.0),
            r["rows_written"],
            r["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            r["verified"]
        );
    }
    Ok(())
}
