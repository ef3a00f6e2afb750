//! Staging on PostgreSQL: an UNLOGGED staging table emptied under a run (as crash recovery
//! does) makes the run start over instead of resuming a lost fill, and rows it numbers from 1
//! again after an emptied window are validated like any others; values PostgreSQL cannot
//! hold are typed errors; decimals without a declared scale are not rounded.

use std::sync::Arc;

use sync_core::checkpoint::{CheckpointCommit, CheckpointState};
use sync_core::memory::MemorySource;
use sync_core::stager::{PromoteMode, ValidationRules};
use sync_core::testkit::{item, keyed_schema};
use sync_core::{
    CheckpointDelta, Column, ColumnType, ErrorKind, FullConfig, FullStrategy, Key, Position,
    RecordBatch, RetryPolicy, RunLimits, Stager, Strategy, StreamSchema, SyncContext, Value,
};
use sync_store_postgres::{PostgresConfig, PostgresStore};

fn url() -> Option<String> {
    std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

async fn store(name: &str) -> Option<Arc<PostgresStore>> {
    let url = url()?;
    let schema = format!("sync_test_{}_{name}", std::process::id());
    Some(Arc::new(
        PostgresStore::open(PostgresConfig::new(url).with_schema(schema))
            .await
            .unwrap(),
    ))
}

/// Empties the staging table of `sync`'s open run and restarts its sequence, as crash
/// recovery does to an UNLOGGED table.
async fn empty_as_crash_recovery_does(store: &PostgresStore, sync: &str) {
    let (admin, connection) = tokio_postgres::connect(&url().unwrap(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let schema_name = store.schema_name().to_string();
    let id: i64 = admin
        .query_one(
            &format!("SELECT id FROM \"{schema_name}\".\"_sync_runs\" WHERE sync = $1"),
            &[&sync],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!(
            "TRUNCATE \"{schema_name}\".\"_sync_stage_{id}\" RESTART IDENTITY"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_staging_table_emptied_under_a_run_makes_the_fill_start_over() {
    let Some(store) = store("unlogged").await else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    let schema = keyed_schema("items");
    let source = Arc::new(MemorySource::new((*schema).clone()));
    for i in 0..30 {
        source.upsert(item(&format!("k{i:02}"), 1, None).values().to_vec());
    }
    let ctx = SyncContext::new("unlogged", source.clone(), store.clone(), store.clone())
        .with_retry(RetryPolicy::none());
    let full = FullStrategy::new(FullConfig {
        page_size: 10,
        ..FullConfig::new("items")
    })
    .unwrap();
    full.run(&ctx).await.unwrap();
    let limited = ctx.clone().with_limits(RunLimits {
        max_pages: Some(2),
        max_errors: None,
    });
    assert!(
        !full.run(&limited).await.unwrap().complete,
        "two pages staged, the fill left open"
    );
    // What crash recovery does to an UNLOGGED table.
    empty_as_crash_recovery_does(&store, "unlogged").await;
    let report = full.run(&ctx).await.unwrap();
    assert!(report.complete);
    assert_eq!(report.pages, 3, "the fill started over");
    assert_eq!(
        store.read_target("items").await.unwrap(),
        source.rows("items"),
        "no live row was deleted"
    );
    drop(ctx);
    (*store).clone().drop_schema().await.unwrap();
}

#[tokio::test]
async fn rows_numbered_from_one_again_after_a_crash_are_still_validated() {
    let Some(store) = store("renumbered").await else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    let schema = keyed_schema("items");
    store.ensure_stream(&schema).await.unwrap();
    let fence = sync_core::Checkpoint::acquire_fence(store.as_ref(), "renumbered")
        .await
        .unwrap();
    let batch = |rows: Vec<sync_core::Row>, from: u64, to: u64| {
        let from = if from == 0 {
            Position::Start
        } else {
            Position::Offset(from)
        };
        RecordBatch::new(
            schema.clone(),
            rows,
            CheckpointDelta::new(from, Position::Offset(to)).unwrap(),
        )
        .unwrap()
    };
    let commit = |expected: Option<u64>, batch: &RecordBatch| CheckpointCommit {
        sync: "renumbered".into(),
        expected_version: expected,
        fence,
        delta: batch.delta().clone(),
        state: CheckpointState::at(batch.delta().to.clone()),
        ledger: None,
        log: Vec::new(),
    };
    // A window promoted without closing the run (as the offset strategy does): its rows were
    // numbered 1 to 5 and validated up to 5.
    let run = store
        .begin("renumbered", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    let first = batch(
        (0..5).map(|i| item(&format!("k{i}"), 1, None)).collect(),
        0,
        5,
    );
    store.stage(&run, first.clone()).await.unwrap();
    store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let version = store
        .promote(&run, &PromoteMode::Upsert, &commit(None, &first), false)
        .await
        .unwrap()
        .checkpoint_version;
    // Crash recovery empties the UNLOGGED staging table and starts its sequence over.
    empty_as_crash_recovery_does(&store, "renumbered").await;
    let run = store
        .begin("renumbered", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    assert!(run.resumed, "nothing staged was lost: the run goes on");
    // Numbered 1 and 2 again, below the old mark; the second lacks a required value.
    let lacking = sync_core::Row::new(vec![
        Value::from("k6"),
        Value::from(1),
        Value::Null,
        Value::Null,
        Value::Null,
    ]);
    let second = batch(vec![item("k5", 1, None), lacking], 5, 7);
    store.stage(&run, second.clone()).await.unwrap();
    let report = store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!((report.valid, report.quarantined), (1, 1));
    let promoted = store
        .promote(
            &run,
            &PromoteMode::Upsert,
            &commit(Some(version), &second),
            true,
        )
        .await
        .unwrap();
    assert_eq!((promoted.inserted, promoted.quarantined), (1, 1));
    assert_eq!(store.read_target("items").await.unwrap().len(), 6);
    assert_eq!(store.quarantined("renumbered").await.unwrap().len(), 1);
    (*store).clone().drop_schema().await.unwrap();
}

#[tokio::test]
async fn nul_characters_and_mistyped_delete_keys_are_typed_errors_and_decimals_keep_their_scale() {
    let Some(store) = store("values").await else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    let schema = Arc::new(
        StreamSchema::builder("vals")
            .with_column(Column::required("id", ColumnType::Integer))
            .with_column(Column::new("note", ColumnType::Text))
            .with_column(Column::new(
                "amount",
                ColumnType::Decimal {
                    precision: Some(10),
                    scale: None,
                },
            ))
            .with_primary_key(["id"])
            .build()
            .unwrap(),
    );
    store.ensure_stream(&schema).await.unwrap();
    let fence = sync_core::Checkpoint::acquire_fence(store.as_ref(), "v")
        .await
        .unwrap();
    let run = store
        .begin("v", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    let row = |note: &str| {
        sync_core::Row::new(vec![
            Value::from(1),
            Value::from(note),
            Value::Decimal("1.5".parse().unwrap()),
        ])
    };
    let batch = |rows, to| {
        RecordBatch::new(
            schema.clone(),
            rows,
            CheckpointDelta {
                from: Position::Start,
                to,
            },
        )
        .unwrap()
    };
    let err = store
        .stage(&run, batch(vec![row("a\0b")], Position::Page(1)))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.context_value("column")),
        (ErrorKind::InvalidInput, Some("note"))
    );
    let wrong_key = batch(vec![], Position::Page(1)).with_deletes(vec![Key::text("ABCDEFGH")]);
    assert_eq!(
        store.stage(&run, wrong_key).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    store
        .stage(&run, batch(vec![row("fine")], Position::Page(1)))
        .await
        .unwrap();
    store
        .validate(&run, &sync_core::ValidationRules::default())
        .await
        .unwrap();
    let commit = sync_core::testkit::commit("v", None, fence, Position::Start, Position::Page(1));
    store
        .promote(&run, &sync_core::PromoteMode::Upsert, &commit, true)
        .await
        .unwrap();
    assert_eq!(
        store.read_target("vals").await.unwrap(),
        vec![row("fine")],
        "1.5 stays 1.5"
    );
    (*store).clone().drop_schema().await.unwrap();
}
