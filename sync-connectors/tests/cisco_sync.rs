//! The device sync end to end into `MemoryStore`, on a paused clock: a full sync of the last
//! 30 days plus one, then incremental syncs, equal the source; devices changed during a read
//! are not lost; the fake never has to refuse a call; `40000029` answers are retried; a
//! checkpoint older than a year, or none, asks for the full sync; every failure is a typed
//! error that leaves the checkpoint and the target as they were.

mod cisco_support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use cisco_support::*;
use sync_connectors::cisco::{CiscoConfig, CiscoSource};
use sync_core::memory::MemoryStore;
use sync_core::{
    CheckpointState, CursorKey, ErrorKind, Position, RetryClass, RetryPolicy, RunReport,
    SyncContext, Value,
};

const SYNC: &str = "jasper/devices";

/// 200 devices changed within the last 25 days, 50 changed 40 to 60 days ago.
fn fleet() -> Vec<Device> {
    let mut v = devices(200, |i| Duration::minutes(60 + 180 * i as i64));
    let mut old = devices(250, |i| Duration::days(40) + Duration::hours(10 * i as i64));
    v.extend(old.drain(200..));
    v
}

fn cisco(fake: &CiscoFake) -> CiscoConfig {
    // No settle lag: the fake's changes are stamped with the wall clock, and the tests sync
    // right after making them.
    config(fake).with_incremental(0, 60_000).build().unwrap()
}

/// One account: the fake, the store and one source (one client, so one rate limit, for
/// every run, as in a long-lived process).
struct Account {
    fake: CiscoFake,
    store: Arc<MemoryStore>,
    config: CiscoConfig,
    source: Arc<CiscoSource>,
}

impl Account {
    async fn start(devices: Vec<Device>) -> Account {
        let fake = CiscoFake::start(devices).await;
        let config = cisco(&fake);
        let source = Arc::new(CiscoSource::new(config.clone()).unwrap());
        Account {
            fake,
            store: Arc::new(MemoryStore::new()),
            config,
            source,
        }
    }

    async fn run(&self, full: bool) -> sync_core::Result<RunReport> {
        let strategy = if full {
            self.config.full_strategy()?
        } else {
            self.config.incremental_strategy()?
        };
        let ctx = SyncContext::new(
            SYNC,
            self.source.clone(),
            self.store.clone(),
            self.store.clone(),
        )
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(4)
                .with_backoff(StdDuration::from_millis(500), StdDuration::from_secs(5)),
        );
        strategy.run(&ctx).await
    }
}

/// The target as (iccid, rate plan): the rate plan carries the version.
fn target(store: &MemoryStore) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = store
        .target_rows("devices")
        .iter()
        .map(|r| (iccid(r), r.get(2).as_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

/// What the sync should hold: every device changed since the full sync's window began.
fn expected(fake: &CiscoFake) -> Vec<(String, String)> {
    fake.modified_since(Utc::now() - Duration::days(31))
}

fn spaced_and_never_refused(fake: &CiscoFake) {
    let requests = fake.requests();
    assert_eq!(fake.rate_rejections(), 0);
    for w in requests.windows(2) {
        assert!(
            w[1].at - w[0].at >= StdDuration::from_millis(200),
            "calls closer than 200 ms"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_sync_of_30_days_plus_one_then_incremental_equal_the_source() {
    let a = Account::start(fleet()).await;
    let (fake, store) = (&a.fake, &a.store);
    let report = a.run(true).await.unwrap();
    assert!(report.complete);
    assert_eq!(report.rows_written, 200, "the devices of the last 31 days");
    assert_eq!(target(store), expected(fake));
    let first = fake.requests()[0].clone();
    let since = chrono::DateTime::parse_from_rfc3339(&first.query["modifiedSince"]).unwrap();
    let days = (Utc::now() - since.with_timezone(&Utc)).num_hours();
    assert!((31 * 24..31 * 24 + 1).contains(&days), "{days} hours back");

    // Recent and old devices change, new ones appear.
    for i in [3, 77, 150, 210, 249] {
        fake.touch(&format!("89882167169700{i:05}"));
    }
    for mut d in devices(3, |_| Duration::seconds(5)) {
        d.iccid = format!("{}9", d.iccid);
        fake.add(d);
    }
    let before = fake.requests().len();
    let report = a.run(false).await.unwrap();
    assert!(report.complete);
    assert_eq!(target(store), expected(fake));
    assert_eq!(store.target_rows("devices").len(), 205);
    let incremental = &fake.requests()[before];
    let from = chrono::DateTime::parse_from_rfc3339(&incremental.query["modifiedSince"]).unwrap();
    assert!(
        Utc::now() - from.with_timezone(&Utc) < Duration::minutes(5),
        "the incremental sync starts near the full sync's end"
    );
    let Some(Position::CursorKey(CursorKey { cursor, key: None })) = report.position else {
        panic!("{:?}", report.position)
    };
    assert!(matches!(cursor[0], Value::Timestamp(t) if Utc::now() - t < Duration::minutes(1)));
    spaced_and_never_refused(fake);
}

#[tokio::test(start_paused = true)]
async fn devices_changed_during_the_full_sync_are_not_lost() {
    let a = Account::start(fleet()).await;
    let (fake, store) = (&a.fake, &a.store);
    for (at, i) in [(2, 5), (3, 60), (6, 120), (9, 199), (12, 10)] {
        fake.touch_at(at, &format!("89882167169700{i:05}"));
    }
    a.run(true).await.unwrap();
    a.run(false).await.unwrap();
    assert_eq!(target(store), expected(fake));
    spaced_and_never_refused(fake);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_answers_are_retried_and_the_sync_completes() {
    let a = Account::start(fleet()).await;
    let (fake, store) = (&a.fake, &a.store);
    a.run(true).await.unwrap();
    fake.touch("8988216716970000042");
    fake.fault(Fault::Status(400, "40000029", "Rate Limit Exceeded"));
    fake.fault(Fault::Status(400, "40000029", "Rate Limit Exceeded"));
    let report = a.run(false).await.unwrap();
    assert!(report.complete);
    assert_eq!(target(store), expected(fake));
    assert_eq!(fake.rate_rejections(), 2);
}

#[tokio::test(start_paused = true)]
async fn without_a_checkpoint_or_with_one_older_than_a_year_the_full_sync_is_asked_for() {
    let a = Account::start(fleet()).await;
    let (fake, store) = (&a.fake, &a.store);
    let e = a.run(false).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_class()),
        (ErrorKind::Unsupported, RetryClass::Permanent)
    );
    assert!(e.to_string().contains("full sync"), "{e}");
    assert!(fake.requests().is_empty());

    a.run(true).await.unwrap();
    let old = CheckpointState::at(Position::CursorKey(CursorKey {
        cursor: vec![Value::Timestamp(Utc::now() - Duration::days(400))],
        key: None,
    }));
    store.set_checkpoint_text(SYNC, &old.to_stored());
    let calls = fake.requests().len();
    let e = a.run(false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.context_value("oldest").is_some());
    assert_eq!(
        fake.requests().len(),
        calls,
        "no call with a date the api refuses"
    );
    assert_eq!(
        store.checkpoint_text(SYNC).as_deref(),
        Some(old.to_stored().as_str())
    );

    // The full sync starts again from its window; incremental syncs go on from there.
    a.run(true).await.unwrap();
    fake.touch("8988216716970000007");
    a.run(false).await.unwrap();
    assert_eq!(target(store), expected(fake));
}

/// Each bad answer fails the run with a typed error and leaves the checkpoint and the target
/// as the last good run left them; the next good run goes on from there.
#[tokio::test(start_paused = true)]
async fn every_bad_answer_is_a_typed_error_and_changes_nothing() {
    let cases = [
        (
            Fault::Status(401, "10000001", "Invalid credentials"),
            ErrorKind::Remote,
        ),
        (
            Fault::Status(400, "10000024", "Invalid apiVersion"),
            ErrorKind::Remote,
        ),
        (Fault::Html, ErrorKind::InvalidInput),
        (Fault::Truncated, ErrorKind::InvalidInput),
        (Fault::NoLastPage, ErrorKind::InvalidInput),
    ];
    for (fault, kind) in cases {
        let a = Account::start(fleet()).await;
        let (fake, store) = (&a.fake, &a.store);
        a.run(true).await.unwrap();
        let before = (store.checkpoint_text(SYNC), target(store));
        for i in [1, 100, 230] {
            fake.touch(&format!("89882167169700{i:05}"));
        }
        fake.fault(fault.clone());
        let e = a.run(false).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.retry_class()),
            (kind, RetryClass::Permanent),
            "{fault:?}: {e}"
        );
        assert_eq!(e.context_value("connector"), Some("cisco"), "{fault:?}");
        let after = (store.checkpoint_text(SYNC), target(store));
        assert_eq!(
            after, before,
            "{fault:?} changed the checkpoint or the target"
        );
        a.run(false).await.unwrap();
        assert_eq!(target(store), expected(fake), "{fault:?}");
    }
}
