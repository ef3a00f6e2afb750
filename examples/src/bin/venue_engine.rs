//! `venue-engine`: seed 003's queue-managed sync engine, driven over its admin HTTP API.
//!
//! ```text
//! venue-engine [--database sqlite://venue-engine.db] [--workers 2] [--scale 1.0]
//! ```
//!
//! Starts four venues' point-of-sale APIs and the engine (admin API + workers) on 127.0.0.1,
//! then registers, triggers, stops, fails, retries, resumes and checks the venues' syncs,
//! printing the queue's statuses as it goes. See `sync_examples::venue_engine`.

use std::process::ExitCode;

use clap::Parser;
use sync_examples::store::{open_engine_store, DatabaseUrl};
use sync_examples::venue_engine::{self, WalkthroughOptions};

/// Seed 003's venue sync engine.
#[derive(Debug, Parser)]
#[command(name = "venue-engine", version)]
struct Args {
    /// The database of targets, checkpoints and the job queue.
    #[arg(long, default_value = "sqlite://venue-engine.db")]
    database: String,
    /// Worker loops.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Multiplies every venue's item count.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.scale > 0.0 && args.scale <= 100.0) || args.workers == 0 {
        eprintln!("venue-engine: --scale must be in (0, 100] and --workers at least 1");
        return ExitCode::from(2);
    }
    let store = match open_engine_store(&args.database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("venue-engine: {e}");
            return ExitCode::from(2);
        }
    };
    let options = WalkthroughOptions {
        scale: args.scale,
        workers: args.workers,
        ..WalkthroughOptions::default()
    };
    let mut say = |line: String| println!("{line}");
    match venue_engine::run(&store, &options, &mut say).await {
        Ok(report) if report.all_match() => {
            let w = &report.workers;
            println!(
                "workers: {} attempts: {} completed, {} stopped, {} retried, {} failed, {} deferred, {} released; {} ms in runs",
                w.claimed, w.completed, w.stopped, w.retried, w.failed, w.deferred, w.released, w.run_ms
            );
            println!();
            println!("every venue's table equals its API.");
            if let Some(file) = DatabaseUrl::sqlite_file(&args.database) {
                println!("look inside:");
                println!("  sqlite3 {file} \"select status, count(*) from _sync_jobs group by 1\"");
                println!(
                    "  sqlite3 {file} \"select count(*), sum(version) from 'items__market-hall'\""
                );
            }
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("venue-engine: a venue's table differs from its API");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("venue-engine: {e}");
            ExitCode::from(3)
        }
    }
}
