//! The device-sync example (seed 002) end to end on a real SQLite file and, when
//! `SYNC_TEST_POSTGRES_URL` is set, on PostgreSQL in its own schema, against the Cisco Control
//! Center fake on 127.0.0.1. After every step the target is read back and compared with the
//! fake's devices: the newest listing of each ICCID changed since the full sync's window
//! began, without the incomplete ones, which the quarantine holds with their reasons.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sync_connectors::fakes::cisco::API_KEY;
use sync_core::{Checkpoint, ErrorKind, Position, RetryClass, Stager};
use sync_examples::device_sync::{DeviceSync, DeviceSyncOptions, RunLine, STREAM, SYNC};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

/// (status, rate plan, communication plan) by ICCID.
type Devices = BTreeMap<String, (String, String, String)>;

fn options() -> DeviceSyncOptions {
    DeviceSyncOptions {
        devices: 600,
        days: 45,
        seed: 11,
        duplicates: 2,
        incomplete: 3,
        max_pages: 4,
        backlog_modified: 150,
        backlog_added: 30,
        // A faster account than Control Center's five calls a second, so the test is quick;
        // the fake still refuses anything faster than this.
        calls_per_second: 50,
    }
}

/// What the target must hold: the fake's newest listing per ICCID changed at or after
/// `since`, incomplete ones left out.
fn expected(sync: &DeviceSync, since: DateTime<Utc>) -> Devices {
    sync.fake()
        .latest_since(since)
        .into_iter()
        .filter(|d| d.null_fields.is_empty())
        .map(|d| (d.iccid, (d.status, d.rate_plan, d.communication_plan)))
        .collect()
}

/// The target read back: iccid, status, rate_plan, communication_plan are its first columns.
async fn target(stager: &dyn Stager) -> Devices {
    let rows = stager.read_target(STREAM).await.unwrap();
    let text = |r: &sync_core::Row, i: usize| r.get(i).as_str().unwrap_or_default().to_owned();
    let devices: Devices = rows
        .iter()
        .map(|r| (text(r, 0), (text(r, 1), text(r, 2), text(r, 3))))
        .collect();
    assert_eq!(devices.len(), rows.len(), "an ICCID is in the target twice");
    devices
}

fn checkpoint_at(position: &Position) -> DateTime<Utc> {
    sync_examples::device_sync::checkpoint_time(position).expect("a timestamp checkpoint")
}

/// Every run but the last stopped at the page limit; the last completed within it.
fn limited_runs_converge(runs: &[RunLine], max_pages: u64) {
    let (last, before) = runs.split_last().expect("at least one run");
    assert!(!before.is_empty(), "the backlog should take several runs");
    for r in before {
        assert!(!r.complete, "run {} stopped early: {r:?}", r.run);
        assert_eq!(r.pages, max_pages, "run {}", r.run);
    }
    assert!(last.complete && last.pages <= max_pages, "{last:?}");
}

async fn scenario(stager: Arc<dyn Stager>, checkpoints: Arc<dyn Checkpoint>) {
    let opts = options();
    let sync = DeviceSync::start(opts.clone(), stager.clone(), checkpoints.clone())
        .await
        .unwrap();

    // 1. No checkpoint: the incremental sync asks for the full sync, calling nothing.
    let refusal = sync.without_checkpoint().await.unwrap();
    assert_eq!((refusal.kind, refusal.calls), (ErrorKind::Unsupported, 0));
    assert!(refusal.message.contains("full sync"), "{}", refusal.message);
    assert!(checkpoints.load(SYNC).await.unwrap().is_none());

    // 2. The full sync of the last 31 days, page-limited: nothing visible before the last run.
    let mut told = Vec::new();
    let full = sync.full_sync(&mut |r| told.push(r.clone())).await.unwrap();
    assert_eq!(told, full.runs);
    limited_runs_converge(&full.runs, opts.max_pages);
    for r in &full.runs[..full.runs.len() - 1] {
        assert_eq!((r.target_rows, r.checkpoint), (0, None), "run {}", r.run);
    }
    let age = Utc::now() - full.since;
    assert!(
        age >= Duration::days(31) && age < Duration::days(31) + Duration::minutes(5),
        "the window starts {age} ago"
    );
    let want = expected(&sync, full.since);
    assert!(want.len() > 300, "{} devices in the window", want.len());
    assert_eq!(target(&*stager).await, want);
    assert_eq!(full.runs.last().unwrap().target_rows, want.len());

    // Duplicates: the fake lists two ICCIDs twice; the target keeps the newest listing.
    assert_eq!(full.duplicates.len(), opts.duplicates);
    for d in &full.duplicates {
        let (newest, oldest) = (&d.listed[1].0, &d.listed[0].0);
        assert_ne!(newest, oldest);
        assert_eq!(d.kept.as_ref(), Some(newest), "{}", d.iccid);
        assert_eq!(&want[&d.iccid].1, newest);
    }
    // The quarantine holds exactly the incomplete devices, each with its missing field.
    let mut bad: Vec<(String, String)> = sync
        .fake()
        .devices()
        .into_iter()
        .filter(|d| !d.null_fields.is_empty() && d.modified >= full.since)
        .map(|d| {
            let column = match d.null_fields[0] {
                "ratePlan" => "rate_plan",
                "communicationPlan" => "communication_plan",
                other => panic!("unexpected null field {other}"),
            };
            (d.iccid, format!("missing required field \"{column}\""))
        })
        .collect();
    bad.sort();
    assert_eq!(bad.len(), opts.incomplete);
    let quarantined: Vec<(String, String)> = full
        .quarantined
        .iter()
        .map(|q| (q.iccid.clone(), q.reason.clone()))
        .collect();
    assert_eq!(quarantined, bad);
    let ledger = sync.ledger().await.unwrap();
    assert_eq!(ledger.windows.len(), 1, "one full window");
    assert_eq!(ledger.rows_rejected, opts.incomplete as u64);
    assert_eq!(ledger.rows_written, want.len() as u64);
    let after_full = checkpoints.load(SYNC).await.unwrap().unwrap();

    // 3. A backlog of changes and new devices, page-limited, converges with nothing lost.
    let backlog = sync.backlog(&mut |_| {}).await.unwrap();
    assert_eq!(
        (backlog.modified, backlog.added),
        (opts.backlog_modified, opts.backlog_added)
    );
    assert_eq!(backlog.after, checkpoint_at(&after_full.state.position));
    limited_runs_converge(&backlog.runs, opts.max_pages);
    let mut last = backlog.after;
    for r in &backlog.runs {
        let at = r.checkpoint.expect("a checkpoint");
        assert!(at >= last, "the checkpoint went back in run {}", r.run);
        last = at;
    }
    assert!(
        last > backlog.after,
        "the checkpoint moved past the backlog"
    );
    let full_want = want;
    let want = expected(&sync, full.since);
    assert!(want.len() >= full_want.len() + opts.backlog_added);
    let changed = full_want
        .iter()
        .filter(|(iccid, fields)| want.get(*iccid) != Some(fields))
        .count();
    assert!(
        changed > 0,
        "the backlog changed devices of the full window"
    );
    assert_eq!(target(&*stager).await, want);

    // 4. Transient faults are retried as the policy says, and the result is still exact.
    let faults = sync.transient_faults().await.unwrap();
    let answered: Vec<(u16, Option<&str>)> = faults
        .attempts
        .iter()
        .map(|a| (a.status, a.error_code.as_deref()))
        .collect();
    assert_eq!(
        answered,
        [
            (400, Some("40000029")),
            (400, Some("40000029")),
            (503, Some("50000001")),
            (500, Some("50000002")),
        ]
    );
    assert!(faults.attempts[2].next_after_ms >= 1000, "Retry-After: 1");
    assert_eq!(faults.retries.len(), 4, "{:?}", faults.retries);
    assert!(faults.run.complete);
    assert_eq!(target(&*stager).await, expected(&sync, full.since));

    // 5. A 401 fails the run permanently; target and checkpoint stay; the next run completes.
    let target_before = target(&*stager).await;
    let checkpoint_before = checkpoints.load(SYNC).await.unwrap().unwrap();
    let ledger_before = sync.ledger().await.unwrap().windows.len();
    let permanent = sync.permanent_failure().await.unwrap();
    assert_eq!(
        (permanent.kind, permanent.retry_class),
        (ErrorKind::Remote, RetryClass::Permanent)
    );
    assert_eq!(permanent.calls_before_failure, 2);
    assert_eq!(permanent.error_code.as_deref(), Some("10000001"));
    assert!(permanent.target_unchanged && permanent.checkpoint_unchanged);
    assert!(!permanent.message.contains(API_KEY));
    assert!(!permanent.message.contains("Basic "));
    assert_eq!(target(&*stager).await, target_before);
    let checkpoint_now = checkpoints.load(SYNC).await.unwrap().unwrap();
    assert_eq!(
        (checkpoint_now.state, checkpoint_now.version),
        (checkpoint_before.state, checkpoint_before.version)
    );
    assert_eq!(sync.ledger().await.unwrap().windows.len(), ledger_before);
    assert_ne!(target_before, expected(&sync, full.since), "changes wait");
    let runs = sync.catch_up(&mut |_| {}).await.unwrap();
    assert!(runs.last().unwrap().complete);
    assert_eq!(target(&*stager).await, expected(&sync, full.since));

    // The example's own check agrees, and the ledger's windows chain.
    assert!(sync.verify().await.unwrap().is_exact());
    let ledger = sync.ledger().await.unwrap();
    for w in ledger.windows.windows(2) {
        assert_eq!(w[1].low, w[0].high, "the ledger's windows chain");
    }
    assert_eq!(sync.quarantined().await.unwrap(), full.quarantined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_sync_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.path().join("device-sync.db")))
            .await
            .unwrap(),
    );
    scenario(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_sync_on_postgres() {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    let schema = format!("device_sync_test_{}", std::process::id());
    let store = Arc::new(
        PostgresStore::open(PostgresConfig::new(url).with_schema(schema))
            .await
            .unwrap(),
    );
    scenario(store.clone(), store.clone()).await;
    (*store).clone().drop_schema().await.unwrap();
}
