//! Validation and promotion paths that depend on size and on the target: the duplicate probe
//! of a large fill (a unique index built and rolled back) and of a small one (grouping), and
//! the plain insert into an empty target, with the deletes and the replace that follow it.

use std::sync::Arc;

use sync_core::testkit::{batch, commit, ids, item, key, keyed_schema};
use sync_core::{
    Checkpoint, Position, PromoteMode, ReplaceScope, Row, Stager, StagingRun, ValidationRules,
};
use sync_store_postgres::{PostgresConfig, PostgresStore};

async fn store(name: &str) -> Option<Arc<PostgresStore>> {
    let url = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let schema = format!("sync_test_{}_{name}", std::process::id());
    Some(Arc::new(
        PostgresStore::open(PostgresConfig::new(url).with_schema(schema))
            .await
            .unwrap(),
    ))
}

/// Stages `pages` in order into a new run of `sync` (under a new fence when none is given).
async fn staged(
    store: &PostgresStore,
    sync: &str,
    fence: Option<sync_core::FenceToken>,
    pages: Vec<(Vec<Row>, Vec<sync_core::Key>)>,
) -> (StagingRun, sync_core::FenceToken, Position) {
    let schema = keyed_schema("items");
    store.ensure_stream(&schema).await.unwrap();
    let fence = match fence {
        Some(f) => f,
        None => store.acquire_fence(sync).await.unwrap(),
    };
    let run = store
        .begin(sync, schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    let mut at = Position::Start;
    for (i, (rows, deletes)) in pages.into_iter().enumerate() {
        let to = Position::Page(i as u64 + 1);
        let b = batch(&schema, rows, at.clone(), to.clone()).with_deletes(deletes);
        at = store.stage(&run, b).await.unwrap();
    }
    (run, fence, at)
}

fn items(range: std::ops::Range<usize>, version: i64) -> Vec<Row> {
    range
        .map(|i| item(&format!("k{i:06}"), version, None))
        .collect()
}

#[tokio::test]
async fn a_large_fill_with_a_key_staged_twice_keeps_the_newest() {
    let Some(store) = store("large_dupes").await else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    // More rows than the grouping probe takes: the unique index finds the duplicates.
    let pages = vec![
        (items(0..15_000, 1), vec![]),
        (items(15_000..30_000, 1), vec![]),
        (vec![item("k000007", 3, None)], vec![]),
        (
            vec![item("k000007", 2, None), item("k014999", 1, None)],
            vec![],
        ),
    ];
    let (run, fence, at) = staged(&store, "large", None, pages).await;
    let report = store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!((report.valid, report.duplicates_dropped), (30_000, 3));
    let promoted = store
        .promote(
            &run,
            &PromoteMode::Replace(ReplaceScope::All),
            &commit("large", None, fence, Position::Start, at),
            true,
        )
        .await
        .unwrap();
    assert_eq!((promoted.inserted, promoted.updated), (30_000, 0));
    let target = store.read_target("items").await.unwrap();
    assert_eq!(target.len(), 30_000);
    assert_eq!(
        target[7],
        item("k000007", 3, None),
        "the newest version won"
    );
    (*store).clone().drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_small_fill_with_a_key_staged_twice_keeps_the_last_staged_on_a_tie() {
    let Some(store) = store("small_dupes").await else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    let mut tie = item("k000001", 1, None);
    tie = Row::new(
        tie.values()
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, v)| if i == 4 { "the last".into() } else { v })
            .collect(),
    );
    let pages = vec![(items(0..10, 1), vec![]), (vec![tie.clone()], vec![])];
    let (run, fence, at) = staged(&store, "small", None, pages).await;
    let report = store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!((report.valid, report.duplicates_dropped), (10, 1));
    store
        .promote(
            &run,
            &PromoteMode::Upsert,
            &commit("small", None, fence, Position::Start, at),
            true,
        )
        .await
        .unwrap();
    assert_eq!(store.read_target("items").await.unwrap()[1], tie);
    (*store).clone().drop_schema().await.unwrap();
}

#[tokio::test]
async fn into_an_empty_target_deletes_still_apply_and_a_later_replace_deletes_the_rest() {
    let Some(store) = store("empty_target").await else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    // First snapshot into the empty target: k000002 is staged and deleted in the same run.
    let pages = vec![(items(0..5, 1), vec![]), (vec![], vec![key("k000002")])];
    let (run, fence, at) = staged(&store, "replace", None, pages).await;
    store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let first = store
        .promote(
            &run,
            &PromoteMode::Replace(ReplaceScope::All),
            &commit("replace", None, fence, Position::Start, at.clone()),
            true,
        )
        .await
        .unwrap();
    assert_eq!((first.inserted, first.deleted), (5, 1));
    assert_eq!(
        ids(&store.read_target("items").await.unwrap()),
        ["k000000", "k000001", "k000003", "k000004"]
    );
    // The second snapshot lacks k000000 and k000004 and holds k000001 newer: an upsert and a
    // replace into a target that is not empty.
    let mut rows = items(1..4, 1);
    rows[0] = item("k000001", 2, None);
    let (run, _, _) = staged(&store, "replace", Some(fence), vec![(rows, vec![])]).await;
    store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let second = store
        .promote(
            &run,
            &PromoteMode::Replace(ReplaceScope::All),
            &commit("replace", Some(1), fence, at.clone(), at),
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            second.inserted,
            second.updated,
            second.unchanged,
            second.deleted
        ),
        (1, 1, 1, 2)
    );
    let target = store.read_target("items").await.unwrap();
    assert_eq!(ids(&target), ["k000001", "k000002", "k000003"]);
    assert_eq!(target[0], item("k000001", 2, None));
    (*store).clone().drop_schema().await.unwrap();
}

/// The primary-key constraint of `schema.items`: its name and its index's OID.
async fn primary_key(admin: &tokio_postgres::Client, schema: &str) -> (String, u32) {
    let row = admin
        .query_one(
            "SELECT c.conname::text, c.conindid FROM pg_constraint c \
             JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = $1 AND t.relname = 'items' AND c.contype = 'p'",
            &[&schema],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn the_key_of_an_empty_target_is_built_again_unless_something_depends_on_it() {
    let Some(store) = store("rebuilt_key").await else {
        return eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
    };
    let url = std::env::var("SYNC_TEST_POSTGRES_URL").unwrap();
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let schema = store.schema_name().to_string();
    store.ensure_stream(&keyed_schema("items")).await.unwrap();
    let before = primary_key(&admin, &schema).await;
    let (run, fence, at) = staged(&store, "rebuilt", None, vec![(items(0..50, 1), vec![])]).await;
    store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let promote = |run, fence, from: Position, to: Position, expected| {
        let store = store.clone();
        async move {
            store
                .promote(
                    &run,
                    &PromoteMode::Replace(ReplaceScope::All),
                    &commit("rebuilt", expected, fence, from, to),
                    true,
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(
        promote(run, fence, Position::Start, at.clone(), None)
            .await
            .inserted,
        50
    );
    let after = primary_key(&admin, &schema).await;
    assert_eq!(after.0, before.0, "the same constraint name");
    assert_ne!(after.1, before.1, "its index was built again");
    assert_eq!(store.read_target("items").await.unwrap().len(), 50);

    // Emptied, and referenced by a foreign key: the key stays as it is.
    admin
        .batch_execute(&format!(
            "DELETE FROM \"{schema}\".items; \
             CREATE TABLE \"{schema}\".refs (item text REFERENCES \"{schema}\".items (id))"
        ))
        .await
        .unwrap();
    let (run, _, _) = staged(
        &store,
        "rebuilt",
        Some(fence),
        vec![(items(0..20, 2), vec![])],
    )
    .await;
    store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!(
        promote(run, fence, at.clone(), at, Some(1)).await.inserted,
        20
    );
    assert_eq!(primary_key(&admin, &schema).await, after, "untouched");
    let target = store.read_target("items").await.unwrap();
    assert_eq!(target.len(), 20);
    assert_eq!(target[0], item("k000000", 2, None));
    (*store).clone().drop_schema().await.unwrap();
}
