//! `restaurant-delta`: seed 000, "TR Delta Sync". Restaurants from a core REST API into a
//! `restaurants` table and on to Dynamics 365 (a loopback Dataverse fake), in windows
//! `(StartSequenceNo, EndSequenceNo]` of a change queue fed by SNS → SQS and by direct
//! appends. Everything runs in-process on 127.0.0.1.
//!
//! Run: `cargo run --release -p sync-examples --bin restaurant-delta [-- --database URL]`

use std::process::ExitCode;

use clap::Parser;
use sync_connectors::http::redact_url;
use sync_examples::restaurant_delta::{
    open_fresh, Change, HistoryRow, Integrity, Producer, RestaurantDelta, RunStep, Step,
    ENTITY_SET, POSTGRES_SCHEMA, QUEUE, RACE_QUEUE, STREAM,
};
use sync_examples::store::DatabaseUrl;

/// Seed 000: sequence windows of a change queue into a table and on to Dataverse.
#[derive(Debug, Parser)]
#[command(name = "restaurant-delta", version)]
struct Args {
    /// The database: `sqlite://FILE` (removed first) or `postgres://...` (the schema
    /// `restaurant_delta` is dropped first).
    #[arg(long, default_value = "sqlite://restaurant-delta.db")]
    database: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        // The integrity check found a problem (printed).
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("restaurant-delta: {e}");
            // 2: a bad database URL or configuration; 3: the run failed.
            ExitCode::from(if e.kind() == sync_core::ErrorKind::Config {
                2
            } else {
                3
            })
        }
    }
}

async fn run(args: &Args) -> sync_core::Result<bool> {
    let (store, backend) = open_fresh(&args.database).await?;
    println!("database           {}", shown(&args.database));
    let mut demo = RestaurantDelta::start(store, backend).await?;
    let report = demo.run(&mut print_step).await?;
    print_integrity(&report.integrity);
    look_inside(&args.database);
    Ok(report.integrity.is_ok())
}

/// The database URL without credentials.
fn shown(url: &str) -> String {
    if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("{} (schema {POSTGRES_SCHEMA})", redact_url(url))
    }
}

fn print_step(step: &Step) {
    match step {
        Step::Started {
            core,
            dataverse,
            sqs,
        } => {
            println!("core api           {core}/restaurants, /restaurants/{{id}}");
            println!("dataverse fake     {dataverse}/api/data/v9.2/$batch ({ENTITY_SET})");
            println!("sqs fake           {sqs} (SNS FIFO topic -> SQS FIFO queue)");
        }
        Step::Snapshot { restaurants, pages } => {
            println!();
            println!("initial state      full sync of the restaurant list: {restaurants} restaurants in {pages} pages, sequence number 0");
            println!("                   (not sent to Dataverse: the seed updates D365 only for SequenceNo > 0)");
        }
        Step::Enqueued(entries) => {
            println!();
            println!("change queue       {QUEUE}");
            println!("                   SequenceNo  RestaurantId  producer                  change at the core api");
            for e in entries {
                let via = match e.via {
                    Producer::Sns => "SNS -> SQS".to_owned(),
                    Producer::SnsRedelivered => {
                        format!("SNS -> SQS, delivered {}x", e.duplicates + 1)
                    }
                    Producer::Direct => "direct append".to_owned(),
                };
                let change = match &e.change {
                    Change::Opened => "opened".to_owned(),
                    Change::Seats(n) => format!("now {n} seats"),
                };
                println!(
                    "                   {:>10}  {:>12}  {via:<24}  {change}",
                    e.seq.0, e.id
                );
            }
        }
        Step::SinkFault { throttled } => {
            println!();
            println!("dataverse fault    the next {throttled} $batch requests get 429 Too Many Requests (Retry-After: 0),");
            println!("                   as many as the sink's attempts: the next delivery fails");
        }
        Step::SilentChange { id, seats } => {
            println!();
            println!("lost notification  restaurant {id} now has {seats} seats at the core api; no queue entry says so");
        }
        Step::Run(run) | Step::Replay(run) => print_run(run),
        Step::Race(r) => {
            println!();
            println!(
                "racing producers   {} producers appended {} entries each to {} while {} runs followed the queue",
                r.producers, r.entries_each, RACE_QUEUE, r.runs
            );
            let windows: Vec<String> = r
                .windows
                .iter()
                .map(|(a, b)| format!("({a}, {b}]"))
                .collect();
            println!("                   windows {}", windows.join(" "));
            println!(
                "                   {} entries, {}",
                r.entries,
                if r.covered_once {
                    "each in exactly one window: none skipped, none read twice"
                } else {
                    "NOT covered exactly once"
                }
            );
        }
        Step::HighWaterMark(h) => {
            println!();
            println!("late commit        producer A took #{} for {} and has not committed; producer B took #{} for {} and committed",
                h.slow.0, h.slow.1, h.fast.0, h.fast.1);
            println!("                   (shown on sync-core's reference queue, which models a plain database sequence)");
            let seen: Vec<String> = h.naive_sees.iter().map(|s| format!("#{s}")).collect();
            println!("                   a reader of SequenceNo > 0 sees {}: checkpointing #{} would skip #{} forever",
                seen.join(", "), h.fast.0, h.slow.0);
            println!("                   safe high-water mark {} -> the run stops at {}, nothing skipped", h.mark_while_open, h.position_while_open);
            println!(
                "                   A commits: mark {} -> window ({}, {}] promotes {}",
                h.mark_after,
                h.window_after.0,
                h.window_after.1,
                h.promoted_after.join(", ")
            );
            println!("                   here: {}", h.store_guarantee);
        }
    }
}

fn print_run(run: &RunStep) {
    println!();
    let window = if run.promoted.0 == run.promoted.1 {
        "no new window".to_owned()
    } else {
        format!("window ({}, {}]", run.promoted.0, run.promoted.1)
    };
    println!("{:<18} {window}", run.label);
    println!(
        "                   {} look-ups at the core api, {} rows written, {} Dataverse $batch requests",
        run.lookups, run.rows_written, run.dataverse_batches
    );
    println!(
        "                   promoted {} -> {}, delivered {} -> {}, Dataverse holds {} records",
        run.promoted.0, run.promoted.1, run.delivered.0, run.delivered.1, run.dataverse_records
    );
    if let Some(e) = &run.error {
        println!("                   failed after promotion: {e}");
    }
    print_history(&run.history);
}

fn print_history(history: &[HistoryRow]) {
    println!("                   SynchronizationHistory (_sync_ledger)");
    println!("                   Id  StartSequenceNo  EndSequenceNo  status     read  written");
    for h in history {
        println!(
            "                   {:>2}  {:>15}  {:>13}  {:<9}  {:>4}  {:>7}",
            h.id,
            h.start,
            h.end,
            format!("{:?}", h.status).to_lowercase(),
            h.rows_read,
            h.rows_written
        );
    }
}

fn print_integrity(i: &Integrity) {
    println!();
    println!(
        "target == core     {} of {} restaurants equal the core api's latest state",
        i.target_rows, i.core_restaurants
    );
    println!(
        "dataverse          {} records for {} queued restaurants, latest values, no duplicates",
        i.dataverse_records, i.queued_restaurants
    );
    let w = |v: &[(u128, u128)]| {
        v.iter()
            .map(|(a, b)| format!("({a}, {b})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "history            committed {}; replayed {}; promoted {} = delivered {}",
        w(&i.committed),
        w(&i.replayed),
        i.promoted,
        i.delivered
    );
    if i.is_ok() {
        println!("integrity          ok: nothing lost, nothing duplicated");
    } else {
        for p in &i.problems {
            println!("PROBLEM            {p}");
        }
    }
}

fn look_inside(url: &str) {
    println!();
    match DatabaseUrl::sqlite_file(url) {
        Some(file) => {
            println!("look inside        sqlite3 {file} 'SELECT queue, seq, entity FROM _sync_queue ORDER BY queue, seq'");
            println!("                   sqlite3 {file} \"SELECT status, low, high, rows_read, rows_written FROM _sync_ledger WHERE sync = 'tr/restaurants'\"");
            println!("                   sqlite3 {file} 'SELECT id, name, seats, version FROM {STREAM} ORDER BY id'");
        }
        None => {
            println!("look inside        psql ... -c 'SELECT seq, entity FROM {POSTGRES_SCHEMA}._sync_queue ORDER BY seq'");
            println!("                   psql ... -c \"SELECT status, low, high FROM {POSTGRES_SCHEMA}._sync_ledger WHERE sync = 'tr/restaurants'\"");
        }
    }
}
