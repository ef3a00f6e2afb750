//! What the command prints: progress bars on a terminal, plain lines otherwise, JSON with
//! `--json`.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use sync_connectors::rest::{Pipeline, PipelineReport};
use sync_core::{Error, LedgerEntry, Progress, ProgressEvent, StoredCheckpoint, SyncLogEntry};

/// How a run is shown while it goes.
pub(crate) struct RunDisplay {
    json: bool,
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
}

impl RunDisplay {
    /// Bars on a terminal (one per stream), nothing but the summary otherwise.
    pub(crate) fn new(json: bool, pipeline: &Pipeline, only: Option<&[String]>) -> RunDisplay {
        let bars = (!json && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::new();
            let style = ProgressStyle::with_template("{spinner} {prefix:>16} {elapsed:>4} {msg}")
                .expect("a valid template");
            let bars = pipeline
                .stream_names()
                .filter(|s| only.map_or(true, |o| o.iter().any(|n| n == s)))
                .map(|s| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(s.to_owned());
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    (s.to_owned(), bar)
                })
                .collect();
            (multi, bars)
        });
        RunDisplay { json, bars }
    }

    /// The progress sender of `stream`: it drives the stream's bar, or prints retries as
    /// plain lines.
    pub(crate) fn progress(&self, stream: &str) -> Progress {
        if self.json {
            return Progress::none();
        }
        let (progress, mut events) = Progress::channel(256);
        let bar = self
            .bars
            .as_ref()
            .and_then(|(_, bars)| bars.get(stream).cloned());
        let stream = stream.to_owned();
        tokio::spawn(async move {
            let (mut read, mut written) = (0, 0);
            while let Some(event) = events.recv().await {
                match (event, &bar) {
                    (ProgressEvent::Page { rows_fetched, .. }, _) => read = rows_fetched,
                    (ProgressEvent::Promoted { rows_promoted, .. }, _) => written = rows_promoted,
                    (ProgressEvent::Retry { attempt, error }, None) => {
                        eprintln!("{stream}: retry {attempt}: {error}")
                    }
                    (ProgressEvent::Retry { attempt, error }, Some(b)) => {
                        b.println(format!("{stream}: retry {attempt}: {error}"))
                    }
                    _ => {}
                }
                if let Some(b) = &bar {
                    b.set_message(format!("read {read}  written {written}"));
                }
            }
        });
        progress
    }

    /// Ends the bars and prints the summary.
    pub(crate) fn finish(&self, report: &PipelineReport) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.values() {
                bar.finish_and_clear();
            }
        }
        if self.json {
            let streams: Vec<_> = report
                .streams
                .iter()
                .map(|s| match &s.result {
                    Ok(r) => json!({
                        "stream": s.stream, "sync": s.sync, "ok": true,
                        "pages": r.pages, "rows_read": r.rows_read, "rows_written": r.rows_written,
                        "rows_rejected": r.rows_rejected, "windows": r.windows, "complete": r.complete,
                        "position": r.position.as_ref().map(|p| p.to_string()),
                        "elapsed_ms": s.elapsed.as_millis() as u64,
                        "rows_per_s": rate(r.rows_read, s.elapsed),
                    }),
                    Err(e) => json!({
                        "stream": s.stream, "sync": s.sync, "ok": false,
                        "elapsed_ms": s.elapsed.as_millis() as u64, "error": error_json(e),
                    }),
                })
                .collect();
            println!(
                "{}",
                json!({ "streams": streams, "failed": report.failed() })
            );
            return;
        }
        for s in &report.streams {
            match &s.result {
                Ok(r) => println!(
                    "{}: {} read in {} pages, {} written, {} rejected, {} windows, {:.2} s, {:.0} records/s{}",
                    s.stream,
                    r.rows_read,
                    r.pages,
                    r.rows_written,
                    r.rows_rejected,
                    r.windows,
                    s.elapsed.as_secs_f64(),
                    rate(r.rows_read, s.elapsed),
                    if r.complete { "" } else { " (stopped at a limit; resumes next run)" }
                ),
                Err(e) => println!("{}: failed: {e}", s.stream),
            }
        }
    }
}

fn rate(rows: u64, elapsed: std::time::Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn error_json(e: &Error) -> serde_json::Value {
    let context: serde_json::Map<String, serde_json::Value> = e
        .context()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({
        "kind": e.kind().as_str(),
        "retry": format!("{:?}", e.retry_class()).to_lowercase(),
        "message": e.message(),
        "context": context,
    })
}

/// A failed command.
pub(crate) fn error(json: bool, e: &Error) {
    if json {
        println!("{}", json!({ "error": error_json(e) }));
    } else {
        eprintln!("sync: {e}");
    }
}

/// One stream of `sync status`.
pub(crate) struct StatusRow {
    pub(crate) stream: String,
    pub(crate) sync: String,
    pub(crate) stored: Option<StoredCheckpoint>,
    pub(crate) last: Option<LedgerEntry>,
}

pub(crate) fn status(json: bool, rows: &[StatusRow]) {
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "stream": r.stream, "sync": r.sync,
                    "position": r.stored.as_ref().map(|s| s.state.position.to_string()),
                    "version": r.stored.as_ref().map(|s| s.version),
                    "updated_at": r.stored.as_ref().map(|s| s.updated_at.to_rfc3339()),
                    "last_window": r.last,
                })
            })
            .collect();
        println!("{}", json!({ "streams": v }));
        return;
    }
    for r in rows {
        match &r.stored {
            None => println!("{}: never synced", r.stream),
            Some(s) => println!(
                "{}: at {} (checkpoint version {}, {}){}",
                r.stream,
                s.state.position,
                s.version,
                s.updated_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.last.as_ref().map_or(String::new(), |l| format!(
                    "; last window ({} .. {}] wrote {}",
                    l.low, l.high, l.rows_written
                ))
            ),
        }
    }
}

pub(crate) fn history(json: bool, sync: &str, ledger: &[LedgerEntry], log: &[SyncLogEntry]) {
    if json {
        println!("{}", json!({ "sync": sync, "ledger": ledger, "log": log }));
        return;
    }
    println!("{sync}: {} windows", ledger.len());
    for l in ledger {
        println!(
            "  {} {} ({} .. {}] read {} written {} rejected {} in {} ms",
            l.committed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            l.strategy,
            l.low,
            l.high,
            l.rows_read,
            l.rows_written,
            l.rows_rejected,
            l.duration_ms
        );
    }
    println!("log:");
    for e in log {
        println!(
            "  {} {:?} {}: {}",
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            e.level,
            e.event,
            e.message
        );
    }
}

pub(crate) fn reset(json: bool, sync: &str) {
    if json {
        println!("{}", json!({ "reset": sync }));
    } else {
        println!("{sync}: reset; the next run starts from the beginning");
    }
}
