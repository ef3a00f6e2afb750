//! Seed 003's venue engine end to end: the walkthrough drives the admin API over real HTTP
//! on 127.0.0.1, workers run the venues' syncs into a real SQLite file (and PostgreSQL when
//! `SYNC_TEST_POSTGRES_URL` is set, in a schema of its own), and every venue's table is
//! checked against its point-of-sale API.

use std::sync::Arc;

use sync_core::jobs::JobStatus;
use sync_examples::store::EngineStore;
use sync_examples::venue_engine::{self, WalkthroughOptions, WalkthroughReport};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

fn options() -> WalkthroughOptions {
    WalkthroughOptions {
        scale: 0.5,
        ..WalkthroughOptions::default()
    }
}

fn check(report: &WalkthroughReport, lines: &[String]) {
    let text = lines.join("\n");
    // Every venue's table equals its API, row for row, in a table of its own.
    assert_eq!(report.venues.len(), 4);
    for venue in &report.venues {
        assert!(venue.matches, "{venue:?}\n{text}");
        assert_eq!(venue.rows, venue.records, "{venue:?}");
        assert_eq!(venue.table, format!("items__{}", venue.venue));
    }
    let jobs = |name: &str| {
        report
            .venues
            .iter()
            .find(|v| v.venue == name)
            .map(|v| v.jobs.clone())
            .unwrap()
    };
    use JobStatus::*;
    // The stopped venue: cancelled mid-run, then a second job that resumed and completed.
    assert_eq!(jobs("market-hall"), vec![Cancelled, Completed], "{text}");
    let market = report
        .venues
        .iter()
        .find(|v| v.venue == "market-hall")
        .unwrap();
    assert!(
        report.rows_when_stopped >= 5 * 1000 && report.rows_when_stopped < market.records,
        "stopped with {} of {} rows\n{text}",
        report.rows_when_stopped,
        market.records
    );
    let total_pages = market.records.div_ceil(1000) as u64;
    assert!(
        report.resumed_pages < total_pages,
        "the resumed run fetched {} of {total_pages} pages",
        report.resumed_pages
    );
    // The offline venue: failed after its attempts, retried once it came back: one job.
    assert_eq!(jobs("old-town-grill"), vec![Completed], "{text}");
    assert!(!report.offline_error.is_empty());
    // Incremental: exactly the changed items written.
    assert_eq!(jobs("harbor-cafe"), vec![Completed, Completed]);
    assert!(report.mutated > 0);
    assert_eq!(report.incremental_rows, report.mutated as u64);
    assert_eq!(jobs("north-bistro"), vec![Completed]);
    // A bad config was refused with the API's code.
    assert!(
        report.rejected_config.starts_with("invalid_input:"),
        "{}",
        report.rejected_config
    );
    // The queue statuses as the seed lists them, visible after the first runs.
    let after = &report.snapshots[1];
    assert_eq!(after.step, "after the first runs");
    assert_eq!(after.counts.get("completed"), Some(&2), "{after:?}");
    assert_eq!(after.counts.get("failed"), Some(&1), "{after:?}");
    assert_eq!(after.counts.get("cancelled"), Some(&1), "{after:?}");
    let end = report.snapshots.last().unwrap();
    assert_eq!(end.counts.get("completed"), Some(&5), "{end:?}");
    assert_eq!(end.counts.get("failed"), Some(&0), "{end:?}");
    assert!(report.history_windows > 0);
    // Every attempt the workers claimed ended one counted way; five jobs completed, the
    // cancelled one stopped, and the offline venue's attempts failed before it came back.
    let w = &report.workers;
    assert_eq!((w.claimed, w.running), (w.ended(), 0), "{w:?}");
    assert_eq!(w.completed, 5, "{w:?}");
    assert!(w.retried + w.failed >= 1, "{w:?}");
    assert_eq!(w.lost, 0, "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.path().join("venues.db")))
            .await
            .unwrap(),
    );
    let store = EngineStore::sqlite(sqlite);
    let mut lines = vec![];
    let report = venue_engine::run(&store, &options(), &mut |l| lines.push(l))
        .await
        .unwrap();
    check(&report, &lines);

    // A second walkthrough on the same database resets the checkpoints it finds and ends
    // equal again.
    let mut again = vec![];
    let report = venue_engine::run(&store, &options(), &mut |l| again.push(l))
        .await
        .unwrap();
    assert!(report.all_match(), "{}", again.join("\n"));
    assert!(again.iter().any(|l| l.contains("reset")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_on_postgres() {
    let Ok(url) = std::env::var("SYNC_TEST_POSTGRES_URL") else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    let schema = format!("venue_engine_{}", std::process::id());
    let pg = Arc::new(
        PostgresStore::open(PostgresConfig::new(url).with_schema(&schema))
            .await
            .unwrap(),
    );
    let store = EngineStore::postgres(pg.clone());
    let mut lines = vec![];
    let report = venue_engine::run(&store, &options(), &mut |l| lines.push(l))
        .await
        .unwrap();
    check(&report, &lines);
    drop(store);
    Arc::try_unwrap(pg).unwrap().drop_schema().await.unwrap();
}

#[tokio::test]
async fn the_client_refuses_names_that_would_change_the_request() {
    // Nothing listens on port 9: a request sent would fail as `Remote`, not `InvalidInput`.
    let client =
        sync_examples::admin::AdminClient::new("http://127.0.0.1:9", "t".repeat(16)).unwrap();
    for tenant in ["a&stream=x", "../admin", "a b", ""] {
        let err = client.status("pos", Some(tenant)).await.unwrap_err();
        assert_eq!(
            err.kind(),
            sync_core::ErrorKind::InvalidInput,
            "{tenant}: {err}"
        );
        let err = client.trigger("pos", tenant).await.unwrap_err();
        assert_eq!(
            err.kind(),
            sync_core::ErrorKind::InvalidInput,
            "{tenant}: {err}"
        );
    }
    let err = client.history("pos", "v", "items?x=1").await.unwrap_err();
    assert_eq!(err.kind(), sync_core::ErrorKind::InvalidInput);
    let err = client.status("pos", Some("venue-1")).await.unwrap_err();
    assert_eq!(
        err.kind(),
        sync_core::ErrorKind::Remote,
        "a valid name is sent: {err}"
    );
}
