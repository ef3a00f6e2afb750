//! How the SQLite store promotes: a load into an empty target renames the run's row table,
//! anything the rename cannot keep intact is upserted, a key staged twice moves the run to its
//! staging table, and the upsert runs in short ranges whatever the columns are called.

use std::sync::Arc;

use sync_core::stager::{PromoteMode, PromoteReport, ReplaceScope, StagingRun, ValidationRules};
use sync_core::testkit::{batch, commit, ids, item, keyed_schema};
use sync_core::{Checkpoint, Column, ColumnType, Position, Row, Stager, StreamSchema, Value};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

async fn store() -> (SqliteStore, std::path::PathBuf) {
    let path = tempfile::tempdir().unwrap().keep().join("store.db");
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    (store, path)
}

/// Names in `sqlite_master` of `kind` matching the LIKE `pattern`, in order.
fn names(path: &std::path::Path, kind: &str, pattern: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = ?1 AND name LIKE ?2 ESCAPE '\\' \
             ORDER BY name",
        )
        .unwrap();
    stmt.query_map([kind, pattern], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

async fn begin(store: &SqliteStore, schema: &Arc<StreamSchema>) -> StagingRun {
    store.ensure_stream(schema).await.unwrap();
    let fence = store.acquire_fence("s").await.unwrap();
    store
        .begin("s", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap()
}

/// Stages `rows` in one batch, validates and promotes them with `mode`, closing the run.
async fn load(
    store: &SqliteStore,
    schema: &Arc<StreamSchema>,
    rows: Vec<Row>,
    mode: PromoteMode,
) -> PromoteReport {
    let run = begin(store, schema).await;
    let expected = store.load("s").await.unwrap();
    let (from, version) = match &expected {
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
    let c = commit("s", version, run.fence, from, to);
    store.promote(&run, &mode, &c, true).await.unwrap()
}

fn items(range: std::ops::Range<usize>, version: i64) -> Vec<Row> {
    range
        .map(|i| item(&format!("k{i:03}"), version, None))
        .collect()
}

/// Into an empty target the row table becomes the target; into a loaded one, the upsert (in
/// ranges of a few rows) and the replace apply, counted exactly.
#[tokio::test]
async fn a_load_into_an_empty_target_renames_the_row_table() {
    let (store, path) = store().await;
    let schema = keyed_schema("items");
    let first = load(
        &store,
        &schema,
        items(0..30, 1),
        PromoteMode::Replace(ReplaceScope::All),
    )
    .await;
    assert_eq!((first.inserted, first.updated, first.deleted), (30, 0, 0));
    assert_eq!(store.read_target("items").await.unwrap(), items(0..30, 1));
    assert_eq!(
        names(&path, "index", "sqlite\\_autoindex\\_items%"),
        ["sqlite_autoindex_items_1"],
        "the renamed row table's primary key is the target's"
    );
    assert!(names(&path, "table", "\\_sync\\_stage%").is_empty());

    // 10 dropped from the snapshot, 10 unchanged, 10 newer, 20 new.
    let mut second = items(10..20, 1);
    second.extend(items(20..30, 2));
    second.extend(items(30..50, 1));
    let report = load(
        &store,
        &schema,
        second.clone(),
        PromoteMode::Replace(ReplaceScope::All),
    )
    .await;
    assert_eq!(
        (
            report.inserted,
            report.updated,
            report.unchanged,
            report.deleted
        ),
        (20, 10, 10, 10)
    );
    assert_eq!(store.read_target("items").await.unwrap(), second);
    assert!(names(&path, "table", "\\_sync\\_stage%").is_empty());
}

/// A target with an index of its own, or a database with a view, is filled by the upsert: the
/// rename would drop the index and could change the view.
#[tokio::test]
async fn a_target_with_its_own_index_or_a_view_is_upserted_into() {
    for extra in [
        "CREATE INDEX \"items_by_version\" ON \"items\" (\"version\")",
        "CREATE VIEW \"recent\" AS SELECT \"id\" FROM \"items\" WHERE \"version\" > 1",
    ] {
        let (store, path) = store().await;
        let schema = keyed_schema("items");
        store.ensure_stream(&schema).await.unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(extra, [])
            .unwrap();
        let report = load(&store, &schema, items(0..20, 2), PromoteMode::Upsert).await;
        assert_eq!((report.inserted, report.updated), (20, 0));
        assert_eq!(store.read_target("items").await.unwrap(), items(0..20, 2));
        let kept =
            names(&path, "index", "items_by_version").len() + names(&path, "view", "recent").len();
        assert_eq!(kept, 1, "{extra}");
    }
}

/// A key staged in two batches cannot stay in the row table: the run moves to its staging
/// table, keeps both rows (a resumed run counts them) and validation keeps the newest.
#[tokio::test]
async fn a_key_staged_twice_moves_the_run_to_its_staging_table() {
    let (store, path) = store().await;
    let schema = keyed_schema("twice");
    let run = begin(&store, &schema).await;
    let first = batch(
        &schema,
        vec![item("a", 1, None), item("b", 1, None)],
        Position::Start,
        Position::Page(1),
    );
    store.stage(&run, first).await.unwrap();
    assert_eq!(names(&path, "table", "%\\_rows").len(), 1);
    let second = batch(
        &schema,
        vec![item("c", 1, None), item("a", 2, None)],
        Position::Page(1),
        Position::Page(2),
    );
    store.stage(&run, second).await.unwrap();
    assert!(
        names(&path, "table", "%\\_rows").is_empty(),
        "the row table was moved into the staging table"
    );
    let resumed = store
        .begin("s", schema.clone(), run.fence, serde_json::Value::Null)
        .await
        .unwrap();
    assert_eq!(resumed.staged_rows, 4);
    let report = store
        .validate(&resumed, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!((report.valid, report.duplicates_dropped), (3, 1));
    let c = commit("s", None, run.fence, Position::Start, Position::Page(2));
    let promoted = store
        .promote(&resumed, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap();
    assert_eq!(promoted.inserted, 3);
    assert_eq!(
        store.read_target("twice").await.unwrap(),
        vec![item("a", 2, None), item("b", 1, None), item("c", 1, None)]
    );
}

/// Columns named after the rowid's aliases do not confuse the upsert's ranges.
#[tokio::test]
async fn columns_named_rowid_do_not_confuse_the_upsert() {
    let (store, _) = store().await;
    let schema = Arc::new(
        StreamSchema::builder("aliases")
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::new("rowid", ColumnType::Text))
            .with_column(Column::new("oid", ColumnType::Integer))
            .with_column(Column::required("version", ColumnType::Integer))
            .with_primary_key(["id"])
            .with_version("version")
            .build()
            .unwrap(),
    );
    let rows = |version: i64, n: usize| -> Vec<Row> {
        (0..n)
            .map(|i| {
                Row::new(vec![
                    Value::from(format!("k{i:03}")),
                    Value::from("zzz"),
                    Value::from(-(i as i64)),
                    Value::from(version),
                ])
            })
            .collect()
    };
    load(&store, &schema, rows(1, 30), PromoteMode::Upsert).await;
    let mut next = rows(2, 20);
    next.extend(rows(1, 30).into_iter().skip(20));
    let report = load(&store, &schema, next.clone(), PromoteMode::Upsert).await;
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (0, 20, 10)
    );
    assert_eq!(store.read_target("aliases").await.unwrap(), next);
    assert_eq!(ids(&store.read_target("aliases").await.unwrap()).len(), 30);
}
