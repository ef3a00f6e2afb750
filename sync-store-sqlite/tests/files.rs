//! The database file itself: corrupt and foreign files, newer schema versions, ordered
//! migrations of an older file (one from before the job tables too), and hostile
//! identifiers next to a canary table.

use std::sync::Arc;
use std::time::Duration;

use sync_core::jobs::{EnqueueRequest, JobKey, JobQueue};
use sync_core::memory::MemorySource;
use sync_core::stager::{PromoteMode, ValidationRules};
use sync_core::testkit::{batch, commit, ids, item, items_schema, key, keyed_schema};
use sync_core::{
    Checkpoint, Column, ColumnType, ErrorKind, FullConfig, FullStrategy, Position, Row, Stager,
    Strategy, StreamSchema, SyncContext, Value,
};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

/// Undoes migration 7 (the job queue's tables; their indexes go with them).
const DROP_JOB_TABLES: &str = "DROP TABLE \"_sync_integrations\"; DROP TABLE \"_sync_jobs\";
     DROP TABLE \"_sync_job_keys\"; DROP TABLE \"_sync_job_pauses\";";

fn db_path() -> std::path::PathBuf {
    tempfile::tempdir().unwrap().keep().join("store.db")
}

#[tokio::test]
async fn a_foreign_file_is_a_clear_error_not_a_panic() {
    let path = db_path();
    std::fs::write(&path, b"this is a text file, not a database\n".repeat(200)).unwrap();
    let err = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Storage, "file is not a sqlite database")
    );
    assert!(
        err.to_string().contains("store.db"),
        "the error names the file: {err}"
    );
}

#[tokio::test]
async fn a_corrupt_database_is_a_clear_error_not_a_panic() {
    let path = db_path();
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let schema = keyed_schema("items");
    store.ensure_stream(&schema).await.unwrap();
    drop(store);
    // Overwrite everything after the header with garbage: the schema pages are gone.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(100) {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let err = match SqliteStore::open(SqliteConfig::new(&path)).await {
        Err(e) => e,
        Ok(store) => store.read_target("items").await.unwrap_err(),
    };
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    assert!(
        ["database file is corrupt", "file is not a sqlite database"].contains(&err.message()),
        "unexpected message: {err}"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_library_is_refused() {
    let path = db_path();
    drop(SqliteStore::open(SqliteConfig::new(&path)).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE \"_sync_schema_version\" SET \"version\" = 99", [])
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert_eq!(err.context_value("schema_version"), Some("99"));
}

#[tokio::test]
async fn an_older_database_is_migrated_in_order_keeping_its_data() {
    let path = db_path();
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let schema = keyed_schema("items");
    let source = Arc::new(MemorySource::new((*schema).clone()));
    source.upsert(item("a", 1, None).values().to_vec());
    let store = Arc::new(store);
    let ctx = SyncContext::new("m", source, store.clone(), store.clone());
    FullStrategy::new(FullConfig::new("items"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap();
    drop(ctx);
    drop(store);
    // Make it a version-1 database: version 2 added the per-sync indexes, version 3 a column.
    let conn = rusqlite::Connection::open(&path).unwrap();
    for t in ["_sync_ledger", "_sync_log", "_sync_quarantine"] {
        conn.execute(&format!("DROP INDEX \"{t}_by_sync\""), [])
            .unwrap();
    }
    for column in [
        "validated_seq",
        "fence",
        "rows_staged",
        "deletes_staged",
        "rows_rejected",
        "null_columns",
        "row_table",
        "rows_unvalidated",
    ] {
        conn.execute(
            &format!("ALTER TABLE \"_sync_runs\" DROP COLUMN \"{column}\""),
            [],
        )
        .unwrap();
    }
    conn.execute_batch(DROP_JOB_TABLES).unwrap();
    conn.execute("UPDATE \"_sync_schema_version\" SET \"version\" = 1", [])
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    assert_eq!(
        store.read_target("items").await.unwrap(),
        vec![item("a", 1, None)]
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT \"version\" FROM \"_sync_schema_version\"",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%_by_sync'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let added: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('_sync_runs') WHERE name IN \
             ('validated_seq', 'fence', 'rows_staged', 'deletes_staged', 'rows_rejected', \
             'null_columns', 'row_table', 'rows_unvalidated')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        (version, indexes, added),
        (7, 3, 8),
        "migrations 2 to 7 ran"
    );
}

/// A run staged by a version-4 library (no counts in `_sync_runs`, no key index and no row
/// table) resumes after the migrations: the counts are filled in from its staging table,
/// validation still finds its missing required values, and the promotion applies its rows,
/// deletes and quarantine.
#[tokio::test]
async fn a_run_staged_before_the_counts_resumes_after_the_migration() {
    let path = db_path();
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let schema = items_schema("legacy");
    store.ensure_stream(&schema).await.unwrap();
    let fence = store.acquire_fence("s").await.unwrap();
    let run = store
        .begin("s", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    let gone = batch(
        &schema,
        vec![item("gone", 1, Some(1))],
        Position::Start,
        Position::Page(1),
    );
    store.stage(&run, gone).await.unwrap();
    store
        .validate(&run, &ValidationRules::default())
        .await
        .unwrap();
    let c = commit("s", None, fence, Position::Start, Position::Page(1));
    store
        .promote(&run, &PromoteMode::Upsert, &c, false)
        .await
        .unwrap();
    let mut no_version = item("v", 1, Some(1));
    no_version.values_mut()[1] = Value::Null;
    let rows = vec![item("a", 1, Some(1)), item("b", 1, Some(1)), no_version];
    let b =
        batch(&schema, rows, Position::Page(1), Position::Page(2)).with_deletes(vec![key("gone")]);
    store.stage(&run, b).await.unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(DROP_JOB_TABLES).unwrap();
    conn.execute_batch(
        "INSERT INTO \"_sync_stage_1\" (\"__sync_kind\", \"__sync_state\", \"id\", \"version\",
             \"updated\", \"deleted\", \"body\")
             SELECT 0, 0, \"id\", \"version\", \"updated\", \"deleted\", \"body\"
             FROM \"_sync_stage_1_rows\";
         DROP TABLE \"_sync_stage_1_rows\";
         ALTER TABLE \"_sync_runs\" DROP COLUMN \"row_table\";
         ALTER TABLE \"_sync_runs\" DROP COLUMN \"rows_unvalidated\";
         DROP INDEX \"_sync_stage_1_keys\";
         ALTER TABLE \"_sync_runs\" DROP COLUMN \"rows_staged\";
         ALTER TABLE \"_sync_runs\" DROP COLUMN \"deletes_staged\";
         ALTER TABLE \"_sync_runs\" DROP COLUMN \"rows_rejected\";
         ALTER TABLE \"_sync_runs\" DROP COLUMN \"null_columns\";
         UPDATE \"_sync_schema_version\" SET \"version\" = 4;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let resumed = store
        .begin("s", schema.clone(), fence, serde_json::Value::Null)
        .await
        .unwrap();
    assert_eq!(
        (resumed.run_id.as_str(), resumed.staged_rows),
        (run.run_id.as_str(), 4)
    );
    let report = store
        .validate(&resumed, &ValidationRules::default())
        .await
        .unwrap();
    assert_eq!((report.valid, report.quarantined), (2, 1));
    let c = commit("s", Some(1), fence, Position::Page(1), Position::Page(2));
    let promoted = store
        .promote(&resumed, &PromoteMode::Upsert, &c, true)
        .await
        .unwrap();
    assert_eq!(
        (promoted.inserted, promoted.deleted, promoted.quarantined),
        (2, 1, 1)
    );
    assert_eq!(ids(&store.read_target("legacy").await.unwrap()), ["a", "b"]);
}

#[tokio::test]
async fn hostile_identifiers_leave_a_canary_table_intact() {
    let path = db_path();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE canary (x INTEGER); INSERT INTO canary VALUES (42);")
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    for name in [
        "select",
        "Order",
        "a\"b",
        "x\"; DROP TABLE canary;--",
        &"n".repeat(63),
    ] {
        let other = if name == "Order" { "select" } else { "Order" };
        let schema = StreamSchema::builder(name)
            .with_column(Column::required(name, ColumnType::Text))
            .with_column(Column::new(other, ColumnType::Text))
            .with_primary_key([name])
            .build()
            .unwrap();
        let source = Arc::new(MemorySource::new(schema.clone()));
        source.upsert(vec![
            Value::from(name),
            Value::from("x\"; DROP TABLE canary;--"),
        ]);
        let store = Arc::new(store.clone());
        let ctx = SyncContext::new(name, source, store.clone(), store.clone());
        FullStrategy::new(FullConfig::new(name))
            .unwrap()
            .run(&ctx)
            .await
            .unwrap();
        let rows = store.read_target(name).await.unwrap();
        assert_eq!(
            rows,
            vec![Row::new(vec![
                Value::from(name),
                Value::from("x\"; DROP TABLE canary;--")
            ])]
        );
    }
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let canary: i64 = conn
        .query_row("SELECT x FROM canary", [], |r| r.get(0))
        .unwrap();
    assert_eq!(canary, 42);
}

#[tokio::test]
async fn names_sqlite_would_confuse_are_rejected_at_config_time() {
    let store = SqliteStore::open(SqliteConfig::new(db_path()))
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute_batch("CREATE TABLE canary (x INTEGER);")
        .unwrap();
    drop(conn);
    let table = |name: &str, cols: &[&str]| {
        let mut b = StreamSchema::builder(name);
        for c in cols {
            b = b.with_column(Column::required(*c, ColumnType::Text));
        }
        b.with_primary_key([cols[0]]).build().unwrap()
    };
    let cases = [
        (table("Canary", &["id"]), "a table with this name"),
        (table("_sync_ledger", &["id"]), "reserved prefix"),
        (table("t", &["id", "ID"]), "differ only in case"),
        (table("t", &["id", "__sync_seq"]), "reserved prefix"),
    ];
    for (schema, why) in cases {
        let err = store.ensure_stream(&schema).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{why}: {err}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}

fn version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row(
        "SELECT \"version\" FROM \"_sync_schema_version\"",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn job_tables(conn: &rusqlite::Connection) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN \
         ('_sync_integrations', '_sync_jobs', '_sync_job_keys', '_sync_job_pauses')",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// A version-6 database (the store's tables and a checkpoint, no job tables) opens, gains
/// the job tables by migration 7 and keeps its checkpoint; the one-open-job index holds.
#[tokio::test]
async fn a_database_from_before_the_job_tables_migrates() {
    let path = db_path();
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let fence = store.acquire_fence("acme/t1/s0").await.unwrap();
    store
        .commit(&commit(
            "acme/t1/s0",
            None,
            fence,
            Position::Start,
            Position::Page(1),
        ))
        .await
        .unwrap();
    drop(store);
    // What migration 7 added goes (its indexes with its tables): the file is as version 6 left it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(DROP_JOB_TABLES).unwrap();
    conn.execute("UPDATE \"_sync_schema_version\" SET \"version\" = 6", [])
        .unwrap();
    assert_eq!((version(&conn), job_tables(&conn)), (6, 0));
    drop(conn);

    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let checkpoint = store.load("acme/t1/s0").await.unwrap().unwrap();
    assert_eq!(checkpoint.state.position, Position::Page(1));
    let queue = store.job_queue();
    let job = queue
        .enqueue(&EnqueueRequest::sync(
            JobKey::new("acme", "t1", "s0").unwrap(),
        ))
        .await
        .unwrap()
        .job;
    assert_eq!(
        queue
            .claim("w", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap()
            .id,
        job.id
    );
    drop((queue, store));

    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!((version(&conn), job_tables(&conn)), (7, 4));
    // The database itself refuses a second open job for a key.
    let second = conn.execute(
        "INSERT INTO \"_sync_jobs\" (\"provider\", \"tenant\", \"stream\", \"action\", \"status\",
             \"priority\", \"attempts\", \"max_attempts\", \"next_run_at\", \"fence\",
             \"created_at\", \"updated_at\")
         VALUES ('acme', 't1', 's0', '{}', 'pending', 0, 0, 1, 0, 0, 0, 0)",
        [],
    );
    let code = second.unwrap_err().sqlite_error_code();
    assert_eq!(code, Some(rusqlite::ErrorCode::ConstraintViolation));
}
