//! Seed 004: Oracle opportunities in offset-tracked batches, resumable after Ctrl+C or a
//! crash, with the offset-drift pitfall handled.
//!
//! An in-process fake of Oracle Fusion's `opportunities` resource (127.0.0.1, a random port)
//! serves a seeded data set, the same in every process; batches go into SQLite (default
//! `./opportunity-batches.db`) or PostgreSQL, each promoted with its offset in one
//! transaction.
//!
//! ```sh
//! cargo run --release -p sync-examples --bin opportunity-batches            # the whole demo
//! cargo run --release -p sync-examples --bin opportunity-batches -- run --batch-size 50
//! cargo run --release -p sync-examples --bin opportunity-batches -- status
//! cargo run --release -p sync-examples --bin opportunity-batches -- reset --yes
//! ```
//!
//! Exit codes: 0 done, 1 failed, 2 bad command line or configuration (or `reset` without
//! `--yes`), 130 stopped by Ctrl+C after committing the batch in flight, 131 aborted by a
//! second Ctrl+C.

mod output;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sync_core::strategy::DriftPolicy;
use sync_core::StopSignal;
use sync_examples::opportunity_batches::{
    run_demo, BatchDatabase, BatchPipeline, DemoOptions, OpportunitySource, RunOptions,
    SourceSettings, SYNC_NAME,
};
use sync_examples::store::{remove_sqlite_file, DatabaseUrl};

/// Exit code of a run stopped gracefully by Ctrl+C.
const STOPPED: u8 = 130;
/// Exit code when a second Ctrl+C aborts the batch in flight.
const ABORTED: i32 = 131;

#[derive(Debug, Parser)]
#[command(
    name = "opportunity-batches",
    about = "Seed 004: Oracle opportunities synced in offset-tracked batches (run, status, reset; the demo by default)"
)]
struct Cli {
    /// Where the batches go: sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(long, global = true, default_value = "sqlite://opportunity-batches.db")]
    database: String,
    /// PostgreSQL schema for the tables (the server's default when absent).
    #[arg(long, global = true)]
    schema: Option<String>,
    /// Seed of the fake's data set (the same seed gives the same opportunities).
    #[arg(long, global = true, default_value_t = 4)]
    seed: u64,
    /// Opportunities the fake holds.
    #[arg(long, global = true, default_value_t = 5_000)]
    records: usize,
    /// Milliseconds every answer of the fake waits (default: 100 for `run`, 0 for the demo).
    #[arg(long, global = true)]
    delay_ms: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sync from the stored offset to the end in batches; Ctrl+C stops after the batch in
    /// flight.
    Run {
        /// Records asked for per batch (Oracle serves 500 at most).
        #[arg(long, default_value_t = 100)]
        batch_size: u32,
        /// What to do when the source shifted before the offset.
        #[arg(long, value_enum, default_value_t = OnDrift::Restart)]
        on_drift: OnDrift,
        /// Before the run, import this many back-dated opportunities into the fake: records
        /// that land before the offset a stopped run reached.
        #[arg(long, default_value_t = 0)]
        import_backdated: usize,
    },
    /// Show the sync_state: current offset, total synced, last sync time, is complete.
    Status,
    /// Start over from offset 0 on the next run.
    Reset {
        /// Confirm the reset.
        #[arg(long)]
        yes: bool,
    },
    /// The whole demo in one process (the default).
    Demo {
        /// Records asked for per batch.
        #[arg(long, default_value_t = 100)]
        batch_size: u32,
        /// Batches promoted before the first run is stopped.
        #[arg(long, default_value_t = 5)]
        stop_after: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnDrift {
    /// Rescan from offset 0 (keyed upserts absorb the re-read).
    Restart,
    /// Fail the run; nothing of the drifted batch is committed.
    Fail,
}

use output::{describe, look_inside, print_drift, print_state, printing_listener};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let config = e
                .downcast_ref::<sync_core::Error>()
                .is_some_and(|e| e.kind() == sync_core::ErrorKind::Config);
            ExitCode::from(if config { 2 } else { 1 })
        }
    }
}

async fn execute(cli: Cli) -> AnyResult<ExitCode> {
    let command = cli.command.unwrap_or(Command::Demo {
        batch_size: 100,
        stop_after: 5,
    });
    if let Command::Reset { yes: false } = command {
        println!("reset starts {SYNC_NAME} over from offset 0 on the next run; confirm with --yes");
        return Ok(ExitCode::from(2));
    }
    let demo = matches!(command, Command::Demo { .. });
    if demo {
        if let Some(path) = DatabaseUrl::sqlite_file(&cli.database) {
            remove_sqlite_file(&path, &[])?;
        }
    }
    // During `run`, Ctrl+C is caught from here on. Elsewhere it ends the process, which
    // is safe too: a promotion that did not commit leaves nothing behind.
    let stop = StopSignal::new();
    if matches!(command, Command::Run { .. }) {
        watch_ctrl_c(stop.clone())?;
    }

    let default_delay = if matches!(command, Command::Run { .. }) {
        100
    } else {
        0
    };
    let delay = Duration::from_millis(cli.delay_ms.unwrap_or(default_delay));
    let settings = SourceSettings {
        seed: cli.seed,
        records: cli.records,
        delay: (!delay.is_zero()).then_some(delay),
        ..SourceSettings::default()
    };
    let source = Arc::new(OpportunitySource::start(settings).await?);
    let database = BatchDatabase::open(&cli.database, cli.schema.as_deref()).await?;
    let (batch_size, drift) = match &command {
        Command::Run {
            batch_size,
            on_drift,
            ..
        } => (*batch_size, drift_policy(*on_drift)),
        Command::Demo { batch_size, .. } => (*batch_size, DriftPolicy::Restart),
        _ => (100, DriftPolicy::Restart),
    };
    let pipeline = BatchPipeline::new(
        source.clone(),
        database.clone(),
        RunOptions { batch_size, drift },
    )?;
    let code = match command {
        Command::Run {
            import_backdated, ..
        } => {
            println!("opportunity-batches run");
            describe(&pipeline, settings);
            if import_backdated > 0 {
                source.import_backdated(import_backdated);
                println!(
                    "  imported:  {import_backdated} back-dated opportunities (before any offset), {} in the source now",
                    source.len()
                );
            }
            let code = run(&pipeline, stop).await?;
            look_inside(&cli.database);
            code
        }
        Command::Status => {
            print_state(&pipeline.status().await?);
            ExitCode::SUCCESS
        }
        Command::Reset { .. } => {
            let before = pipeline.status().await?;
            pipeline.reset().await?;
            println!(
                "reset {SYNC_NAME}: the next run starts from offset 0 (was {}); the target keeps its {} rows, which the rescan upserts",
                before.current_offset, before.target_rows
            );
            ExitCode::SUCCESS
        }
        Command::Demo { stop_after, .. } => {
            println!("opportunity-batches demo");
            describe(&pipeline, settings);
            let code = demo_run(&pipeline, stop_after).await?;
            look_inside(&cli.database);
            code
        }
    };
    Ok(code)
}

fn drift_policy(on_drift: OnDrift) -> DriftPolicy {
    match on_drift {
        OnDrift::Restart => DriftPolicy::Restart,
        OnDrift::Fail => DriftPolicy::Fail,
    }
}

/// Raises `stop` on the first Ctrl+C (SIGINT) and exits at once on the second. The handler
/// is registered before this returns, so no SIGINT kills a batch half-way by default.
#[cfg(unix)]
fn watch_ctrl_c(stop: StopSignal) -> AnyResult<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupts = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        if interrupts.recv().await.is_some() {
            stopping(&stop);
            if interrupts.recv().await.is_some() {
                abort();
            }
        }
    });
    Ok(())
}

/// Raises `stop` on the first Ctrl+C and exits at once on the second.
#[cfg(not(unix))]
fn watch_ctrl_c(stop: StopSignal) -> AnyResult<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stopping(&stop);
            if tokio::signal::ctrl_c().await.is_ok() {
                abort();
            }
        }
    });
    Ok(())
}

fn stopping(stop: &StopSignal) {
    println!("Ctrl+C: finishing the batch in flight, then stopping (Ctrl+C again aborts it)");
    stop.stop();
}

fn abort() {
    println!("aborted: the batch in flight is rolled back; the next run resumes from the last committed offset");
    std::process::exit(ABORTED);
}

async fn run(pipeline: &BatchPipeline, stop: StopSignal) -> AnyResult<ExitCode> {
    let state = pipeline.status().await?;
    if state.current_offset == 0 {
        println!("  starting:  offset 0");
    } else {
        println!(
            "  resuming:  offset {} (complete: {}), last OptyId {}",
            state.current_offset,
            state.is_complete,
            state.last_key.as_deref().unwrap_or("-")
        );
    }
    let run = pipeline
        .run(stop, printing_listener(state.current_offset))
        .await?;
    print_drift(&run);
    if run.report.stopped {
        println!(
            "stopped by Ctrl+C after {} batches: offset {} is committed with its rows; run again to resume",
            run.batches, run.offset
        );
        return Ok(ExitCode::from(STOPPED));
    }
    let check = pipeline.verify().await?;
    println!(
        "complete:  offset {}, {} batches in this run, {} rows written",
        run.offset, run.batches, run.report.rows_written
    );
    println!("target:    {}", check.summary());
    Ok(ExitCode::SUCCESS)
}

async fn demo_run(pipeline: &BatchPipeline, stop_after: u64) -> AnyResult<ExitCode> {
    let options = DemoOptions {
        stop_after,
        ..DemoOptions::default()
    };
    println!("1. a run stopped after {stop_after} batches, as Ctrl+C stops it");
    let observe = output::demo_observer();
    let report = run_demo(pipeline, &options, observe).await?;
    Ok(if report.check.is_equal() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
