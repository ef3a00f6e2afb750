//! device-sync: seed 002, the Cisco device sync. A loopback fake of Cisco IoT Control Center
//! serves a seeded fleet of 3,000 devices; the Cisco connector syncs the last month plus one
//! day through staging (duplicates kept newest, incomplete devices quarantined, promoted once
//! after the last page), then incremental syncs by `modifiedSince` under a pages-per-run
//! limit, through rate-limit answers and 5xx faults, and a 401 that changes nothing.
//!
//! Run: `cargo run --release -p sync-examples --bin device-sync`
//! (`-- --database postgres://user@host/db` for PostgreSQL, in schema `device_sync`).

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use sync_core::{Checkpoint, LedgerEntry, Position, Stager};
use sync_examples::device_sync::{checkpoint_time, DeviceSync, DeviceSyncOptions, RunLine, SYNC};
use sync_examples::store::{remove_sqlite_file, DatabaseUrl};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Seed 002: a full sync of the last 30+ days from Cisco Control Center, then incremental syncs.
#[derive(Debug, Parser)]
#[command(name = "device-sync")]
struct Args {
    /// `sqlite://FILE` (the file is replaced) or `postgres://...` (schema `device_sync`,
    /// dropped and created again).
    #[arg(long, default_value = "sqlite://device-sync.db")]
    database: String,
    /// Devices in the fleet.
    #[arg(long, default_value_t = DeviceSyncOptions::default().devices)]
    devices: usize,
    /// Pages per run (the seed's MaxPagesToProcess).
    #[arg(long, default_value_t = DeviceSyncOptions::default().max_pages)]
    max_pages: u64,
    /// The fleet's seed.
    #[arg(long, default_value_t = DeviceSyncOptions::default().seed)]
    seed: u64,
}

/// The store of `url`, emptied first.
async fn open(url: &str) -> AnyResult<(Arc<dyn Stager>, Arc<dyn Checkpoint>)> {
    Ok(match DatabaseUrl::parse(url)? {
        DatabaseUrl::Sqlite(path) => {
            remove_sqlite_file(&path, &[])?;
            let store = Arc::new(SqliteStore::open(SqliteConfig::new(path)).await?);
            (store.clone(), store)
        }
        DatabaseUrl::Postgres(url) => {
            let config = PostgresConfig::new(url).with_schema("device_sync");
            PostgresStore::open(config.clone())
                .await?
                .drop_schema()
                .await?;
            let store = Arc::new(PostgresStore::open(config).await?);
            (store.clone(), store)
        }
    })
}

/// `url` with its password, if any, replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or("-".into(), |t| {
        t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
    })
}

fn position(p: &Position) -> String {
    match (p, checkpoint_time(p)) {
        (Position::Start, _) => "start".into(),
        (_, Some(t)) => time(Some(t)),
        (other, None) => other.to_string(),
    }
}

fn run_header() {
    println!(
        "     {:>3}  {:>5}  {:>7}  {:>7}  {:>11}  {:<24}  readers see",
        "run", "pages", "devices", "written", "quarantined", "checkpoint"
    );
}

fn run_line(r: &RunLine) {
    println!(
        "     {:>3}  {:>5}  {:>7}  {:>7}  {:>11}  {:<24}  {} rows{}",
        r.run,
        r.pages,
        r.rows_read,
        r.rows_written,
        r.rows_rejected,
        time(r.checkpoint),
        r.target_rows,
        if r.complete {
            ""
        } else {
            "  (page limit: resumes next run)"
        }
    );
}

fn ledger_line(w: &LedgerEntry) {
    println!(
        "     {:<11}  ({} .. {}]  read {:>5}  written {:>5}  rejected {:>2}",
        w.strategy.to_string(),
        position(&w.low),
        position(&w.high),
        w.rows_read,
        w.rows_written,
        w.rows_rejected
    );
}

#[tokio::main]
async fn main() -> AnyResult<()> {
    let args = Args::parse();
    let options = DeviceSyncOptions {
        devices: args.devices,
        max_pages: args.max_pages,
        seed: args.seed,
        ..DeviceSyncOptions::default()
    };
    let (stager, checkpoints) = open(&args.database).await?;
    let sync = DeviceSync::start(options, stager, checkpoints).await?;
    let started = Instant::now();

    let fleet = sync.fleet();
    println!("control center fake   {}", fleet.base_url);
    println!(
        "                      {} devices ({} listings) changed over {} days, {} in the last 31",
        fleet.devices, fleet.listings, fleet.days, fleet.in_window
    );
    println!(
        "                      {} ICCIDs listed twice, {} devices without a plan; {} calls/s, one at a time",
        fleet.duplicated, fleet.incomplete, fleet.calls_per_second
    );
    println!("database              {}", redact(&args.database));

    println!("\n1. incremental sync before any full sync (the seed's HasSynced = false)");
    let refusal = sync.without_checkpoint().await?;
    println!(
        "   refused ({:?}) after {} calls: {}",
        refusal.kind, refusal.calls, refusal.message
    );

    println!(
        "\n2. full sync of the last 30 days plus one, at most {} pages a run",
        args.max_pages
    );
    run_header();
    let full = sync.full_sync(&mut |r| run_line(r)).await?;
    println!("   window starts at     {}", time(Some(full.since)));
    println!(
        "   readers saw no half-replaced table: the window was promoted once, after its last page"
    );
    for d in &full.duplicates {
        let listed: Vec<String> = d
            .listed
            .iter()
            .map(|(plan, at)| format!("{plan} ({})", at.format("%b %d %H:%M")))
            .collect();
        println!(
            "   listed twice         {}  {}  -> kept {}",
            d.iccid,
            listed.join(", "),
            d.kept.as_deref().unwrap_or("nothing")
        );
    }
    for q in &full.quarantined {
        println!("   quarantined          {}  {}", q.iccid, q.reason);
    }

    println!(
        "\n3. backlog: devices changed and added since the checkpoint, at most {} pages a run",
        args.max_pages
    );
    let mut header = false;
    let backlog = sync
        .backlog(&mut |r| {
            if !header {
                run_header();
                header = true;
            }
            run_line(r)
        })
        .await?;
    println!(
        "   {} changed and {} added after {}, read in {} run{}: a run stopped by the page limit",
        backlog.modified,
        backlog.added,
        time(Some(backlog.after)),
        backlog.runs.len(),
        if backlog.runs.len() == 1 { "" } else { "s" }
    );
    println!(
        "   leaves its pages staged with the window's position; the next resumes there, and the"
    );
    println!(
        "   checkpoint moves when the window is promoted (Search Devices gives no change times)"
    );

    println!("\n4. transient faults: 40000029 twice, a 503 with Retry-After: 1, a 500");
    let faults = sync.transient_faults().await?;
    for a in &faults.attempts {
        println!(
            "   answered {} {:<9} next attempt {:>5} ms later  ({})",
            a.status,
            a.error_code.as_deref().unwrap_or("-"),
            a.next_after_ms,
            match a.retry_after_s {
                Some(s) => format!("Retry-After: {s} s, honoured exactly"),
                None => format!("full-jitter backoff up to {} ms", a.backoff_cap_ms),
            }
        );
    }
    println!(
        "   {} retries reported by the strategy; the run completed: {} changed devices, {} written",
        faults.retries.len(),
        faults.modified,
        faults.run.rows_written
    );

    println!("\n5. permanent failure: a 401 on the third call");
    let permanent = sync.permanent_failure().await?;
    println!(
        "   failed ({:?}, {:?}) after {} calls: {}, error code {}: {}",
        permanent.kind,
        permanent.retry_class,
        permanent.calls_before_failure,
        permanent.summary,
        permanent.error_code.as_deref().unwrap_or("-"),
        permanent.detail.as_deref().unwrap_or("-")
    );
    println!(
        "   target unchanged: {}, checkpoint unchanged: {}",
        permanent.target_unchanged, permanent.checkpoint_unchanged
    );
    println!("   the credentials work again; the next runs resume the staged fill:");
    run_header();
    sync.catch_up(&mut |r| run_line(r)).await?;

    let check = sync.verify().await?;
    println!(
        "\ntarget == source       {} devices, {} expected; missing {}, unexpected {}, different {}{}",
        check.target,
        check.expected,
        check.missing.len(),
        check.unexpected.len(),
        check.different.len(),
        if check.is_exact() { "  (exact)" } else { "  (NOT EXACT)" }
    );
    let ledger = sync.ledger().await?;
    println!(
        "ledger                 {} windows: read {}, written {}, quarantined {}",
        ledger.windows.len(),
        ledger.rows_read,
        ledger.rows_written,
        ledger.rows_rejected
    );
    for w in &ledger.windows {
        ledger_line(w);
    }
    println!("calls to the fake      {}", sync.fake().request_count());
    println!(
        "wall time              {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(file) = DatabaseUrl::sqlite_file(&args.database) {
        println!("\nlook inside:");
        println!("  sqlite3 {file} \"SELECT strategy, low, high, rows_read, rows_written, rows_rejected FROM _sync_ledger WHERE sync = '{SYNC}'\"");
        println!("  sqlite3 {file} \"SELECT reason, row FROM _sync_quarantine\"");
        println!("  sqlite3 {file} \"SELECT rate_plan, count(*) FROM devices GROUP BY rate_plan\"");
    } else {
        println!("\nlook inside (schema device_sync):");
        println!("  psql {} -c 'SELECT strategy, low, high, rows_read, rows_written, rows_rejected FROM device_sync._sync_ledger'", redact(&args.database));
        println!(
            "  psql {} -c 'SELECT reason, row FROM device_sync._sync_quarantine'",
            redact(&args.database)
        );
    }
    if !check.is_exact() {
        return Err("the target does not equal the source".into());
    }
    Ok(())
}
