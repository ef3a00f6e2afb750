//! Seed 001: every table of a Square-fed database synced incrementally, with per-table
//! checkpoints, a full-rebuild export, an integrity check and a consistent rollback.
//!
//! A fake Square account (the connector's loopback fake: 9 locations, 867 items, 1,002
//! variations, 9,018 inventory counts, 3,039 orders, ...) runs on 127.0.0.1; the example
//! syncs it into `./square-sync.db` (or `--database postgres://...`): the foundation sync,
//! changes at Square, an incremental sync, the integrity check, a rollback, and the
//! incremental sync that brings the target back to the source.
//!
//! Run: `cargo run --release -p sync-examples --bin square-sync`

use clap::Parser;
use sync_examples::square_sync::integrity::IntegrityReport;
use sync_examples::square_sync::run::{SyncReport, SyncStateRow};
use sync_examples::square_sync::tables::{Feed, SEED_TABLES};
use sync_examples::square_sync::{run_demo, DemoConfig, DemoStep};
use sync_examples::store::{remove_sqlite_file, DatabaseUrl};

#[derive(Debug, Parser)]
#[command(
    about = "Seed 001: Square multi-table incremental sync with integrity check and rollback"
)]
struct Args {
    /// `sqlite://FILE` (recreated) or `postgres://...` (the schema `--schema`, recreated).
    #[arg(long, default_value = "sqlite://square-sync.db")]
    database: String,
    /// The PostgreSQL schema the example owns (dropped and recreated).
    #[arg(long, default_value = "square_sync")]
    schema: String,
    /// The seed of the fake account's data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Prints rows under headers, every column as wide as its widest cell.
fn print_table(indent: &str, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{indent}{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line(row.clone());
    }
}

fn print_seed_tables() {
    println!("seed 001's tables and what feeds them:");
    let rows: Vec<Vec<String>> = SEED_TABLES
        .iter()
        .map(|t| match t.feed {
            Feed::Stream { stream, detection } => vec![
                t.seed_table.to_owned(),
                format!("square stream {stream}"),
                detection.label().to_owned(),
                String::new(),
            ],
            Feed::Export => vec![
                t.seed_table.to_owned(),
                "derived from the synced catalog".to_owned(),
                "full rebuild".to_owned(),
                String::new(),
            ],
            Feed::NoApiSource(why) => vec![
                t.seed_table.to_owned(),
                "not synced: no Square API serves it".to_owned(),
                "-".to_owned(),
                why.to_owned(),
            ],
        })
        .collect();
    print_table("  ", &["seed table", "fed by", "detection", "why"], &rows);
}

fn print_sync(title: &str, report: &SyncReport) {
    println!(
        "\n{title}: {} rows written in {} ms",
        report.rows_written(),
        report.duration_ms
    );
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.stream.to_owned(),
                t.table.detection.label().to_owned(),
                t.rows_read.to_string(),
                t.rows_written.to_string(),
                format!("{} ms", t.duration_ms),
            ]
        })
        .collect();
    print_table(
        "  ",
        &["table", "detection", "read", "changed", "time"],
        &rows,
    );
    print_state("sync_state after it", &report.state);
}

fn print_state(title: &str, state: &[SyncStateRow]) {
    println!("  {title} (one checkpoint per table, committed with its rows):");
    let rows: Vec<Vec<String>> = state
        .iter()
        .map(|s| {
            let mut position = s.position.clone().unwrap_or_else(|| "(none)".into());
            if position.chars().count() > 64 {
                position = position.chars().take(61).collect::<String>() + "...";
            }
            vec![
                s.table.sync_name(),
                position,
                s.commits.map_or("-".into(), |c| c.to_string()),
                s.updated_at
                    .map_or("-".into(), |t| t.format("%H:%M:%S%.3f").to_string()),
            ]
        })
        .collect();
    print_table("    ", &["sync", "position", "commits", "committed"], &rows);
}

fn print_integrity(title: &str, report: &IntegrityReport) {
    let verdict = if report.passed() { "PASS" } else { "DIFFERS" };
    println!("\nintegrity check {title}: {verdict}");
    let mark = |ok: bool| if ok { "pass" } else { "FAIL" }.to_owned();
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.to_owned(),
                t.expected.to_string(),
                t.actual.to_string(),
                t.missing.to_string(),
                t.extra.to_string(),
                t.differing.to_string(),
                format!("{:016x}", t.checksums.1),
                mark(t.passed()),
                t.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        "  ",
        &[
            "table", "source", "target", "missing", "extra", "differ", "checksum", "", "note",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = report
        .foreign_keys
        .iter()
        .map(|f| {
            vec![
                f.rule.to_owned(),
                f.checked.to_string(),
                f.violations.to_string(),
                mark(f.passed()),
                f.example.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        "  ",
        &["foreign key", "checked", "broken", "", "first broken"],
        &rows,
    );
}

fn print_step(step: &DemoStep) {
    match step {
        DemoStep::Started { url, backup } => {
            println!("fake square:  {url} (seed 001's data set)");
            println!("backups:      {backup}, taken before every sync\n");
            print_seed_tables();
        }
        DemoStep::Foundation(r) => print_sync("foundation sync (every table in full)", r),
        DemoStep::Mutated(m) => {
            println!("\nchanges at square:");
            for (what, n) in m.lines() {
                println!("  {n:>4}  {what}");
            }
        }
        DemoStep::Incremental(n, r) => print_sync(&format!("incremental sync #{n}"), r),
        DemoStep::Integrity(title, r) => print_integrity(title, r),
        DemoStep::RolledBack(r) => {
            println!(
                "\nrollback: {} tables and their checkpoints restored from the {} in one transaction",
                r.tables, r.backup
            );
            println!("  reason logged in every table's sync log: {}", r.reason);
            print_state("sync_state after the rollback", &r.state);
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message, never a Debug dump (which could be long, and must show no URL).
            eprintln!("square-sync failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = DemoConfig::new(&args.database);
    config.seed = args.seed;
    let sqlite_file = DatabaseUrl::sqlite_file(&args.database);
    if let Some(file) = &sqlite_file {
        remove_sqlite_file(file, &[".backup"])?;
    } else {
        config.postgres_schema = Some(args.schema.clone());
        let targets = sync_examples::square_sync::backup::SquareTargets::open(
            &args.database,
            Some(&args.schema),
        )
        .await?;
        targets.drop_postgres_schemas().await?;
    }
    run_demo(&config, &mut print_step).await?;
    println!("\nlook inside:");
    match &sqlite_file {
        Some(file) => {
            println!("  sqlite3 {file} \"SELECT sync, event, message FROM _sync_log WHERE event = 'rollback' LIMIT 3\"");
            println!("  sqlite3 {file} 'SELECT sync, version, state FROM _sync_checkpoints'");
            println!("  sqlite3 {file} 'SELECT o.id, count(l.uid) FROM orders o JOIN order_line_items l ON l.order_id = o.id GROUP BY o.id ORDER BY o.updated_at DESC LIMIT 5'");
            println!("  sqlite3 {file} 'SELECT item_name, variation_name, price_amount, vendor_name FROM square_item_library_export LIMIT 5'");
        }
        None => {
            let s = &args.schema;
            // The URL may hold a password: it is not printed.
            println!("  psql \"$DATABASE_URL\" -c 'SELECT sync, version, state FROM {s}._sync_checkpoints'");
            println!("  psql \"$DATABASE_URL\" -c 'SELECT item_name, price_amount FROM {s}.square_item_library_export LIMIT 5'");
        }
    }
    Ok(())
}
