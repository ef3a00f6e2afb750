//! `snapshot_into` and `restore_snapshot`: a rollback puts back exactly the snapshotted
//! targets and the checkpoints that describe them, together; fences keep growing; bad
//! requests are typed errors that change nothing. Skipped without `SYNC_TEST_POSTGRES_URL`.

use std::sync::Arc;

use sync_core::stager::{PromoteMode, StagingRun, ValidationRules};
use sync_core::testkit::{batch, commit, item, keyed_schema, log_entry};
use sync_core::{Checkpoint, ErrorKind, Position, Row, Stager, StreamSchema};
use sync_store_postgres::{PostgresConfig, PostgresStore};

async fn store(name: &str) -> Option<PostgresStore> {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return None;
    };
    let schema = format!("sync_snapshot_test_{}_{name}", std::process::id());
    let config = PostgresConfig::new(url)
        .with_schema(schema)
        .with_run_lease(None);
    Some(PostgresStore::open(config).await.unwrap())
}

async fn begin(store: &PostgresStore, sync: &str, schema: &Arc<StreamSchema>) -> StagingRun {
    store.ensure_stream(schema).await.unwrap();
    let fence = store.acquire_fence(sync).await.unwrap();
    store
        .begin(sync, schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap()
}

/// Stages and promotes `rows` into `schema`'s target under `sync`, advancing its offset.
async fn load(store: &PostgresStore, sync: &str, schema: &Arc<StreamSchema>, rows: Vec<Row>) {
    let run = begin(store, sync, schema).await;
    let stored = store.load(sync).await.unwrap();
    let (from, version) = match &stored {
        Some(s) => (s.state.position.clone(), Some(s.version)),
        None => (Position::Start, None),
    };
    let to = Position::Offset(version.unwrap_or(0) + 1);
    store
        .stage(&run, batch(schema, rows, Position::Start, to.clone()))
        .await
        .unwrap();
    store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let c = commit(sync, version, run.fence, from, to);
    store
        .promote(&run, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap();
}

fn items(range: std::ops::Range<usize>, version: i64) -> Vec<Row> {
    range
        .map(|i| item(&format!("k{i:03}"), version, None))
        .collect()
}

#[tokio::test]
async fn restore_puts_back_targets_and_checkpoints_together() {
    let Some(store) = store("restore").await else {
        return;
    };
    let snapshot = format!("{}_backup", store.schema_name());
    let (a, b) = (keyed_schema("a"), keyed_schema("b"));
    load(&store, "sync/a", &a, items(0..10, 1)).await;
    let rows_before = store.read_target("a").await.unwrap();
    let checkpoint_before = store.load("sync/a").await.unwrap();
    let (streams, syncs) = (
        vec!["a".to_owned(), "b".to_owned()],
        vec!["sync/a".to_owned(), "sync/b".to_owned()],
    );
    store
        .snapshot_into(&snapshot, &streams, &syncs)
        .await
        .unwrap();

    // After the backup: newer versions, more rows, a table that did not exist.
    load(&store, "sync/a", &a, items(5..15, 2)).await;
    load(&store, "sync/b", &b, items(0..3, 1)).await;
    let fence_after = store.acquire_fence("sync/a").await.unwrap();
    assert_ne!(store.read_target("a").await.unwrap(), rows_before);

    let log = [
        log_entry("sync/a", "rollback"),
        log_entry("sync/b", "rollback"),
    ];
    store
        .restore_snapshot(&snapshot, &streams, &syncs, &log)
        .await
        .unwrap();
    assert_eq!(store.read_target("a").await.unwrap(), rows_before);
    for (sync, entry) in syncs.iter().zip(&log) {
        let logged = store.sync_log(sync, usize::MAX).await.unwrap();
        assert_eq!(logged.last(), Some(entry), "the rollback is logged with it");
    }
    assert!(store.read_target("b").await.unwrap().is_empty());
    assert_eq!(store.load("sync/a").await.unwrap(), checkpoint_before);
    assert_eq!(store.load("sync/b").await.unwrap(), None);
    // Fences are not restored: they only grow.
    assert!(store.acquire_fence("sync/a").await.unwrap() > fence_after);
    // The restored state syncs on from its checkpoint.
    load(&store, "sync/a", &a, items(5..15, 2)).await;
    assert_eq!(store.read_target("a").await.unwrap().len(), 15);
    assert_eq!(store.load("sync/a").await.unwrap().unwrap().version, 2);
    store.drop_snapshot(&snapshot).await.unwrap();
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn bad_restores_are_typed_errors_that_change_nothing() {
    let Some(store) = store("bad").await else {
        return;
    };
    let snapshot = format!("{}_backup", store.schema_name());
    let a = keyed_schema("a");
    load(&store, "sync/a", &a, items(0..4, 1)).await;
    let (streams, syncs) = (vec!["a".to_owned()], vec!["sync/a".to_owned()]);

    let log = [log_entry("sync/a", "rollback")];
    let logged_before = store.sync_log("sync/a", usize::MAX).await.unwrap();
    let missing = store
        .restore_snapshot(&snapshot, &streams, &syncs, &log)
        .await;
    assert_eq!(missing.unwrap_err().kind(), ErrorKind::Config);
    store
        .snapshot_into(&snapshot, &streams, &syncs)
        .await
        .unwrap();
    let reserved = store
        .restore_snapshot(&snapshot, &["_sync_fences".to_owned()], &syncs, &log)
        .await;
    assert_eq!(reserved.unwrap_err().kind(), ErrorKind::Config);
    assert_eq!(
        store.sync_log("sync/a", usize::MAX).await.unwrap(),
        logged_before
    );

    load(&store, "sync/a", &a, items(0..8, 2)).await;
    let rows = store.read_target("a").await.unwrap();
    let _open = begin(&store, "sync/a", &a).await;
    let logged_before = store.sync_log("sync/a", usize::MAX).await.unwrap();
    let open = store
        .restore_snapshot(&snapshot, &streams, &syncs, &log)
        .await;
    assert_eq!(open.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(store.read_target("a").await.unwrap(), rows);
    assert_eq!(store.load("sync/a").await.unwrap().unwrap().version, 2);
    assert_eq!(
        store.sync_log("sync/a", usize::MAX).await.unwrap(),
        logged_before,
        "a refused rollback logs nothing"
    );
    store.drop_snapshot(&snapshot).await.unwrap();
    store.drop_schema().await.unwrap();
}
