//! Seed 004 end to end: the `opportunity-batches` binary run as a child process on a real
//! SQLite file (and PostgreSQL when `SYNC_TEST_POSTGRES_URL` is set), stopped by SIGINT and
//! killed by SIGKILL mid-run, resumed, reset; and the library's demo. The target is checked
//! against the seeded source every time: every `OptyId` once, every value equal.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::Arc;

use sync_connectors::fakes::oracle::{backdated_opportunities, opportunities};
use sync_core::{Row, Value};
use sync_examples::opportunity_batches::demo::DemoOptions;
use sync_examples::opportunity_batches::source::row_of;
use sync_examples::opportunity_batches::{
    run_demo, BatchDatabase, BatchPipeline, OpportunitySource, RunOptions, SourceSettings,
    TargetCheck, STREAM,
};

const SEED: u64 = 4;
const RECORDS: usize = 2_000;

/// Where a scenario writes: a SQLite file or a PostgreSQL schema.
struct Target {
    url: String,
    schema: Option<String>,
}

impl Target {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--database".to_owned(),
            self.url.clone(),
            "--seed".into(),
            SEED.to_string(),
            "--records".into(),
            RECORDS.to_string(),
        ];
        if let Some(schema) = &self.schema {
            args.extend(["--schema".to_owned(), schema.clone()]);
        }
        args
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_opportunity-batches"));
        command.args(self.args()).args(args);
        command
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    async fn database(&self) -> BatchDatabase {
        BatchDatabase::open(&self.url, self.schema.as_deref())
            .await
            .expect("the test database")
    }

    /// The target as the store reads it, compared with `source`.
    async fn check(&self, source: &[Row]) -> TargetCheck {
        let target = self
            .database()
            .await
            .stager
            .read_target(STREAM)
            .await
            .unwrap();
        TargetCheck::compare(source, &target)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The seeded source (plus `imported` back-dated records) as target rows, by `OptyId`.
fn source_rows(imported: usize) -> Vec<Row> {
    let mut all = opportunities(SEED, RECORDS);
    all.extend(backdated_opportunities(SEED, imported, RECORDS));
    all.sort_by_key(|o| o.opty_id);
    all.iter().map(|o| row_of(o).unwrap()).collect()
}

/// `status` as key/value pairs.
fn status(target: &Target) -> BTreeMap<String, String> {
    let out = target.output(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

fn offset_of(state: &BTreeMap<String, String>) -> u64 {
    state["current_offset"].parse().unwrap()
}

/// The offset after a printed batch line (`batch N offset FROM -> TO rows ...`).
fn batch_end(line: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["batch", _, "offset", _, "->", to, ..] => to.parse().ok(),
        _ => None,
    }
}

/// A slowed-down `run` as a child process, and its stdout read until `batches` batches were
/// promoted; returns the child, the rest of its stdout and the lines read.
fn run_until_batches(
    target: &Target,
    batches: usize,
    extra: &[&str],
) -> (Child, Lines<BufReader<ChildStdout>>, Vec<String>) {
    let mut args = vec!["run", "--batch-size", "50", "--delay-ms", "20"];
    args.extend_from_slice(extra);
    let mut child = target
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();
    while seen.iter().filter(|l| batch_end(l).is_some()).count() < batches {
        let line = lines
            .next()
            .expect("the run prints its batches before it ends")
            .unwrap();
        seen.push(line);
    }
    (child, lines, seen)
}

fn send_sigint(child: &Child) {
    // `kill` rather than libc::kill: the workspace forbids unsafe code, tests included.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Asserts the stored state is mid-way, not complete, and that the target holds exactly the
/// records before the offset, equal to the source's, none twice.
fn assert_consistent_mid_way(target: &Target, source: &[Row], rt: &tokio::runtime::Runtime) -> u64 {
    let state = status(target);
    let offset = offset_of(&state);
    assert!(offset > 0 && offset < RECORDS as u64, "{state:?}");
    assert_eq!(state["is_complete"], "false");
    assert_eq!(state["total_synced"], offset.to_string());
    let check = rt.block_on(target.check(source));
    assert_eq!(check.target_rows as u64, offset, "{check:?}");
    assert!(
        check.duplicated.is_empty() && check.differing.is_empty() && check.unexpected.is_empty(),
        "{check:?}"
    );
    offset
}

fn sigint_kill_resume_drift_and_reset(target: &Target) {
    let rt = runtime();
    let source = source_rows(0);

    // SIGINT after three batches: the batch in flight is promoted, then a clean exit.
    let (mut child, rest, seen) = run_until_batches(target, 3, &[]);
    send_sigint(&child);
    let rest: Vec<String> = rest.map(Result::unwrap).collect();
    let code = child.wait().unwrap().code();
    let all: Vec<&String> = seen.iter().chain(&rest).collect();
    assert_eq!(code, Some(130), "{all:#?}");
    assert!(
        all.iter()
            .any(|l| l.starts_with("Ctrl+C: finishing the batch in flight")),
        "{all:#?}"
    );
    let stopped = all
        .iter()
        .find(|l| l.starts_with("stopped by Ctrl+C"))
        .expect("the stop message");
    let last_batch = all.iter().rev().find_map(|l| batch_end(l)).unwrap();
    let offset = assert_consistent_mid_way(target, &source, &rt);
    // The checkpoint is the last batch promoted, no further and no less.
    assert_eq!(offset, last_batch, "{all:#?}");
    assert!(
        stopped.contains(&format!("offset {offset} is committed")),
        "{stopped}"
    );

    // A resume that must fail on drift commits nothing of it.
    let out = target.output(&[
        "run",
        "--delay-ms",
        "0",
        "--import-backdated",
        "10",
        "--on-drift",
        "fail",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("drift"), "{}", text(&out));
    assert_eq!(offset_of(&status(target)), offset);

    // Run again to completion: the target equals the source.
    let out = target.output(&["run", "--delay-ms", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("every OptyId once"), "{}", text(&out));
    let state = status(target);
    assert_eq!(
        (offset_of(&state), state["is_complete"].as_str()),
        (RECORDS as u64, "true")
    );
    let check = rt.block_on(target.check(&source));
    assert!(check.is_equal(), "{check:?}");

    // reset needs its confirmation; then a run from 0 gives the same target.
    let out = target.output(&["reset"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = target.output(&["reset", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(offset_of(&status(target)), 0);

    // SIGKILL mid-run (after the reset): the checkpoint is where a committed batch left it,
    // and the resume ends with the same target.
    let offset = kill_mid_run(target);
    let out = target.output(&["run", "--delay-ms", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("resuming:  offset {offset}")),
        "{}",
        text(&out)
    );
    let check = rt.block_on(target.check(&source));
    assert!(check.is_equal(), "{check:?}");
    assert_eq!(offset_of(&status(target)), RECORDS as u64);

    // Killed again, then 30 back-dated records are imported before the offset: the resume
    // notices the shift, rescans, and skips none of them.
    let out = target.output(&["reset", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let offset = kill_mid_run(target);
    let out = target.output(&["run", "--delay-ms", "0", "--import-backdated", "30"]);
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains(&format!("drift: the source shifted before offset {offset}")),
        "{printed}"
    );
    let with_imports = source_rows(30);
    let check = rt.block_on(target.check(&with_imports));
    assert!(check.is_equal(), "{check:?}");
    assert_eq!(offset_of(&status(target)), with_imports.len() as u64);
}

/// SIGKILLs a run after three batches; returns the offset it left, checked mid-way.
fn kill_mid_run(target: &Target) -> u64 {
    let (mut child, _rest, _seen) = run_until_batches(target, 3, &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    let state = status(target);
    let offset = offset_of(&state);
    assert!(offset > 0 && offset < RECORDS as u64, "{state:?}");
    assert_eq!(state["is_complete"], "false");
    assert_eq!(state["total_synced"], offset.to_string());
    offset
}

#[test]
fn sqlite_sigint_sigkill_drift_and_reset_keep_the_target_equal_to_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        url: format!("sqlite://{}", dir.path().join("opportunities.db").display()),
        schema: None,
    };
    sigint_kill_resume_drift_and_reset(&target);
}

fn postgres_url() -> Option<String> {
    std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

#[test]
fn postgres_sigint_sigkill_drift_and_reset_keep_the_target_equal_to_the_source() {
    let Some(url) = postgres_url() else {
        eprintln!("SYNC_TEST_POSTGRES_URL is not set; skipping");
        return;
    };
    let target = Target {
        url,
        schema: Some(format!(
            "sync_test_{}_opportunity_batches",
            std::process::id()
        )),
    };
    sigint_kill_resume_drift_and_reset(&target);
    runtime().block_on(async {
        target
            .database()
            .await
            .drop_postgres_schema()
            .await
            .unwrap()
    });
}

/// The library's demo: stopped after a few batches, the source shifted before the offset,
/// resumed; the seed's resume would have skipped the imports, this one loses nothing.
async fn demo_on(url: &str, schema: Option<&str>) {
    let source = Arc::new(
        OpportunitySource::start(SourceSettings {
            seed: SEED,
            records: RECORDS,
            ..SourceSettings::default()
        })
        .await
        .unwrap(),
    );
    let database = BatchDatabase::open(url, schema).await.unwrap();
    let pipeline =
        BatchPipeline::new(source.clone(), database.clone(), RunOptions::default()).unwrap();
    let options = DemoOptions::default();
    let report = run_demo(&pipeline, &options, Arc::new(|_| {}))
        .await
        .unwrap();

    let stopped = &report.state_after_stop;
    assert!(report.stopped.report.stopped);
    assert_eq!(stopped.current_offset, report.stopped.offset);
    assert!(!stopped.is_complete);
    assert_eq!(stopped.target_rows, stopped.current_offset);
    assert!(
        report.stopped.batches > options.stop_after,
        "the batch in flight is finished"
    );

    // Every import sorts before the offset and was never synced: the naive resume skips them.
    assert_eq!(report.naive.skipped.len(), options.imported);
    assert!(!report.resumed.drift.is_empty(), "{:?}", report.resumed);
    assert!(report.state.is_complete);
    assert_eq!(report.state.current_offset, source.len() as u64);
    assert!(report.check.is_equal(), "{:?}", report.check);
    // And independently of the demo's own check: the store's rows against the fake's.
    let target = database.stager.read_target(STREAM).await.unwrap();
    let check = TargetCheck::compare(&source.rows().unwrap(), &target);
    assert!(
        check.is_equal() && check.target_rows == RECORDS + options.imported,
        "{check:?}"
    );
    let ids: Vec<i64> = target
        .iter()
        .map(|r| match r.get(0) {
            Value::Integer(i) => *i,
            other => panic!("OptyId is an integer, not {other:?}"),
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "every OptyId once");
    database.drop_postgres_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_on_sqlite_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    demo_on(&url, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_on_postgres_loses_and_duplicates_nothing() {
    let Some(url) = postgres_url() else {
        eprintln!("SYNC_TEST_POSTGRES_URL is not set; skipping");
        return;
    };
    let schema = format!("sync_test_{}_opportunity_demo", std::process::id());
    demo_on(&url, Some(&schema)).await;
}

#[test]
fn bad_options_are_configuration_errors_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        url: format!("sqlite://{}", dir.path().join("bad.db").display()),
        schema: None,
    };
    for args in [
        &["run", "--batch-size", "0"][..],
        &["--schema", "s", "status"][..],
        &["run", "--batch-size", "many"][..],
    ] {
        let out = target.output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("error"), "{args:?}: {}", text(&out));
    }
    let unknown = Target {
        url: "mysql://db.example/crm".into(),
        schema: None,
    };
    let out = unknown.output(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("sqlite:// or postgres://"),
        "{}",
        text(&out)
    );
    // The refused run committed nothing.
    let state = status(&target);
    assert_eq!(
        (
            state["current_offset"].as_str(),
            state["target_rows"].as_str()
        ),
        ("0", "0")
    );
}

/// A second Ctrl+C aborts at once: the batch in flight (its answer takes a second) is not
/// committed, and what was committed before is consistent.
#[test]
fn a_second_sigint_aborts_the_batch_in_flight_and_leaves_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        url: format!("sqlite://{}", dir.path().join("abort.db").display()),
        schema: None,
    };
    let mut child = target
        .command(&["run", "--batch-size", "50", "--delay-ms", "1000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();
    // The first batch is promoted while the second one's answer is still a second away.
    while !seen.iter().any(|l| batch_end(l).is_some()) {
        seen.push(lines.next().expect("a batch line").unwrap());
    }
    send_sigint(&child);
    while !seen
        .last()
        .is_some_and(|l| l.starts_with("Ctrl+C: finishing"))
    {
        seen.push(lines.next().expect("the stop message").unwrap());
    }
    send_sigint(&child);
    seen.extend(lines.map(Result::unwrap));
    assert_eq!(child.wait().unwrap().code(), Some(131), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with("aborted: the batch in flight is rolled back")),
        "{seen:#?}"
    );
    let last_batch = seen.iter().rev().find_map(|l| batch_end(l)).unwrap();
    let offset = assert_consistent_mid_way(&target, &source_rows(0), &runtime());
    assert_eq!(offset, last_batch, "{seen:#?}");
}
