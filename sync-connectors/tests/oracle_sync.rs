//! The Oracle source under the sync-core strategies, end to end into `MemoryStore`: full
//! then incremental equal the source in both modes with a clamped `limit`; a record updated
//! mid-scan is drift for the offset strategy (it fails or rescans, never skips) and nothing
//! for keyset reads; every failure is a typed error that leaves the checkpoint and the target
//! as they were.

mod oracle_support;

use std::sync::Arc;
use std::time::Duration;

use oracle_support::*;
use sync_connectors::oracle::{OracleMode, OracleSource};
use sync_connectors::rest::StrategySpec;
use sync_core::memory::MemoryStore;
use sync_core::strategy::DriftPolicy;
use sync_core::{Checkpoint, ErrorKind, Position, RetryClass, RetryPolicy, RunReport, SyncContext};

const SYNC: &str = "crm/accounts";

fn incremental() -> StrategySpec {
    StrategySpec::Incremental {
        lookback: 0,
        settle_lag: 120_000,
        missing_cursor: Default::default(),
        pages_per_window: 1,
    }
}

fn full() -> StrategySpec {
    StrategySpec::full()
}

/// Runs `strategy` over the fake in `mode` with `page_size` into `store`.
async fn run(
    fake: &OracleFake,
    store: &Arc<MemoryStore>,
    mode: OracleMode,
    strategy: StrategySpec,
    page_size: u32,
) -> sync_core::Result<RunReport> {
    let config = builder(&fake.base_url(), mode)
        .with_strategy(strategy)
        .with_page_size(page_size)
        .build()?;
    let strategy = config.strategy()?;
    let source = Arc::new(OracleSource::with_client(config, client())?);
    let ctx = SyncContext::new(SYNC, source, store.clone(), store.clone()).with_retry(
        RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
    );
    strategy.run(&ctx).await
}

/// The target as (PartyId, name): the name carries the version.
fn target(store: &MemoryStore) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = store
        .target_rows("accounts")
        .iter()
        .map(|r| (party_id(r), r.get(2).as_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

fn source_state(fake: &OracleFake) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = fake
        .state
        .lock()
        .unwrap()
        .accounts
        .iter()
        .map(|a| (a.party_id, a.name.clone()))
        .collect();
    v.sort();
    v
}

async fn checkpoint(store: &MemoryStore) -> Option<Position> {
    store.load(SYNC).await.unwrap().map(|s| s.state.position)
}

#[tokio::test]
async fn full_then_incremental_equal_the_source_in_both_modes() {
    for mode in [OracleMode::Keyset, OracleMode::Offset] {
        let fake = OracleFake::start(130).await;
        // Pages of 500 asked, 25 served.
        fake.set_max_limit(25);
        let store = Arc::new(MemoryStore::new());
        let report = run(&fake, &store, mode, full(), 500).await.unwrap();
        assert_eq!((report.rows_written, report.pages), (130, 6), "{mode:?}");
        assert_eq!(target(&store), source_state(&fake), "{mode:?}");

        for id in [1003, 1050, 1051, 1129] {
            fake.touch(id);
        }
        let before = fake.requests().len();
        let report = run(&fake, &store, mode, incremental(), 500).await.unwrap();
        // The record at the checkpoint (the newest one) is read again and skipped.
        assert_eq!(report.rows_written, 4, "{mode:?}");
        assert_eq!(fake.requests().len() - before, 1, "{mode:?}: one page");
        assert_eq!(target(&store), source_state(&fake), "{mode:?}");
        let q = fake.requests().last().unwrap().0["q"].clone();
        assert!(
            q.starts_with("LastUpdateDate >= '2024-05-01T12:01:26+00:00'"),
            "{q}"
        );
    }
}

#[tokio::test]
async fn an_incremental_read_in_keyset_mode_survives_updates_mid_scan() {
    let fake = OracleFake::start(200).await;
    fake.set_max_limit(25);
    // Records already read, and one not yet read, change while the sync pages.
    for (at, id) in [(2, 1005), (3, 1030), (5, 1100), (6, 1199)] {
        fake.touch_at(at, id);
    }
    let store = Arc::new(MemoryStore::new());
    let report = run(&fake, &store, OracleMode::Keyset, incremental(), 25)
        .await
        .unwrap();
    assert!(report.complete);
    assert_eq!(target(&store), source_state(&fake));
    let keyset_pages = fake
        .requests()
        .iter()
        .filter(|(q, _)| q.get("q").is_some_and(|q| q.contains("PartyId >")))
        .count();
    assert!(keyset_pages >= 8, "{keyset_pages}");
    assert!(fake.requests().iter().all(|(q, _)| q["offset"] == "0"));
}

#[tokio::test]
async fn an_update_mid_scan_is_drift_for_the_offset_strategy_never_a_skip() {
    let fake = OracleFake::start(100).await;
    fake.set_max_limit(25);
    let store = Arc::new(MemoryStore::new());
    let offset = |drift| StrategySpec::Offset { drift };
    // Page 1 (request 0) lands; before the second request 1005 moves to the end.
    fake.touch_at(1, 1005);
    let e = run(
        &fake,
        &store,
        OracleMode::Offset,
        offset(DriftPolicy::Fail),
        25,
    )
    .await
    .unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_class()),
        (ErrorKind::Drift, RetryClass::Permanent)
    );
    let committed = checkpoint(&store).await;
    assert_eq!(committed, Some(Position::Offset(25)));
    assert_eq!(store.target_rows("accounts").len(), 25);
    // Failing again does not move it.
    let e = run(
        &fake,
        &store,
        OracleMode::Offset,
        offset(DriftPolicy::Fail),
        25,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Drift);
    assert_eq!(checkpoint(&store).await, committed);
    // Rescanning from 0 reads everything.
    let report = run(
        &fake,
        &store,
        OracleMode::Offset,
        offset(DriftPolicy::Restart),
        25,
    )
    .await
    .unwrap();
    assert!(report.complete);
    assert_eq!(target(&store), source_state(&fake));
    assert_eq!(checkpoint(&store).await, Some(Position::Offset(100)));
}

#[tokio::test]
async fn a_full_fill_that_drifts_is_read_again() {
    let fake = OracleFake::start(100).await;
    fake.set_max_limit(25);
    fake.touch_at(2, 1001);
    let store = Arc::new(MemoryStore::new());
    let report = run(&fake, &store, OracleMode::Offset, full(), 25)
        .await
        .unwrap();
    assert!(report.complete);
    assert_eq!(target(&store), source_state(&fake));
}

#[tokio::test]
async fn a_transient_error_is_retried_and_the_sync_completes() {
    let fake = OracleFake::start(40).await;
    fake.fault(Fault::Status(503, "Service Unavailable"));
    let store = Arc::new(MemoryStore::new());
    let report = run(&fake, &store, OracleMode::Keyset, incremental(), 25)
        .await
        .unwrap();
    assert_eq!(report.rows_written, 40);
    assert_eq!(
        fake.requests().len(),
        3,
        "the 503, its retry, the second page"
    );
}

/// Each bad answer fails the run with a typed error and leaves the checkpoint and the target
/// as the last good run left them; the next good run goes on from there.
#[tokio::test]
async fn every_bad_answer_is_a_typed_error_and_changes_nothing() {
    let cases = [
        (
            Fault::Status(400, "URL request parameter q is not valid."),
            ErrorKind::Remote,
        ),
        (Fault::Status(401, "Unauthorized"), ErrorKind::Remote),
        (Fault::Html, ErrorKind::InvalidInput),
        (Fault::Truncated, ErrorKind::InvalidInput),
        (Fault::NoHasMore, ErrorKind::InvalidInput),
        (Fault::WrongCount, ErrorKind::InvalidInput),
        (Fault::Reversed, ErrorKind::Remote),
    ];
    for (fault, kind) in cases {
        let fake = OracleFake::start(60).await;
        let store = Arc::new(MemoryStore::new());
        run(&fake, &store, OracleMode::Keyset, incremental(), 25)
            .await
            .unwrap();
        let before = (store.load(SYNC).await.unwrap(), target(&store));
        for id in [1001, 1020, 1040] {
            fake.touch(id);
        }
        fake.fault(fault.clone());
        let e = run(&fake, &store, OracleMode::Keyset, incremental(), 25)
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.retry_class()),
            (kind, RetryClass::Permanent),
            "{fault:?}: {e}"
        );
        assert_eq!(e.context_value("connector"), Some("oracle"), "{fault:?}");
        let after = (store.load(SYNC).await.unwrap(), target(&store));
        assert_eq!(
            after, before,
            "{fault:?} changed the checkpoint or the target"
        );
        run(&fake, &store, OracleMode::Keyset, incremental(), 25)
            .await
            .unwrap();
        assert_eq!(target(&store), source_state(&fake), "{fault:?}");
    }
}
