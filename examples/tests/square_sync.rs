//! Seed 001's flow end to end against the Square fake on 127.0.0.1 (paged at 40 records so
//! cursors are followed): after the foundation sync, after an incremental sync, after the
//! rollback and after the sync that follows it, every table is checked against the fake's
//! data; the rollback must restore the targets and their checkpoints exactly; the sync after
//! it must converge. On a real SQLite file always, on PostgreSQL (a schema of its own) when
//! `SYNC_TEST_POSTGRES_URL` is set.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as J;
use sync_connectors::fakes::square::{SquareData, SquareDataSet};
use sync_core::{ErrorKind, StoredCheckpoint};
use sync_examples::square_sync::backup::SquareTargets;
use sync_examples::square_sync::integrity::IntegrityReport;
use sync_examples::square_sync::rollback::ROLLBACK_EVENT;
use sync_examples::square_sync::rows::{same_values, NamedRows};
use sync_examples::square_sync::run::{schema_of, SyncReport};
use sync_examples::square_sync::tables::{synced_tables, unsourced_tables, SEED_TABLES};
use sync_examples::square_sync::{DemoConfig, SquareSyncDemo};

/// Big enough for several pages per stream and location group, small enough for a debug
/// build.
fn data_set() -> SquareDataSet {
    SquareDataSet {
        locations: 4,
        categories: 6,
        items: 40,
        variations: 55,
        vendors: 3,
        vendor_infos: 30,
        orders: 150,
        max_line_items: 5,
        tender_share: 0.3,
        payments: 20,
    }
}

/// Every target table and every checkpoint, as read from the database.
#[derive(Debug)]
struct Snapshot {
    tables: BTreeMap<&'static str, NamedRows>,
    checkpoints: Vec<Option<StoredCheckpoint>>,
}

async fn snapshot(demo: &SquareSyncDemo) -> Snapshot {
    let mut tables = BTreeMap::new();
    let mut checkpoints = Vec::new();
    for t in synced_tables() {
        let schema = schema_of(demo.source.as_ref(), t.stream).unwrap();
        let rows = NamedRows::of_target(demo.targets.stager.as_ref(), schema)
            .await
            .unwrap();
        tables.insert(t.stream, rows);
        checkpoints.push(demo.targets.checkpoints.load(&t.sync_name()).await.unwrap());
    }
    Snapshot {
        tables,
        checkpoints,
    }
}

fn assert_same_snapshot(a: &Snapshot, b: &Snapshot, what: &str) {
    for (name, rows) in &a.tables {
        let other = &b.tables[name];
        assert_eq!(rows.keys(), other.keys(), "{what}: keys of {name}");
        assert_eq!(
            rows.checksum(),
            other.checksum(),
            "{what}: values of {name}"
        );
        for (x, y) in rows.rows.iter().zip(&other.rows) {
            assert!(same_values(x, y), "{what}: {name}: {x:?} != {y:?}");
        }
    }
    assert_eq!(a.checkpoints, b.checkpoints, "{what}: checkpoints");
}

fn count(data: &SquareData, kind: &str) -> usize {
    data.catalog_of(kind).count()
}

fn children(data: &SquareData, list: &str) -> usize {
    data.orders
        .iter()
        .map(|o| o[list].as_array().map_or(0, Vec::len))
        .sum()
}

fn live_export_rows(data: &SquareData) -> usize {
    let live = |o: &&J| o["is_deleted"] != true;
    let items: BTreeSet<&str> = data
        .catalog_of("ITEM")
        .filter(live)
        .filter_map(|o| o["id"].as_str())
        .collect();
    data.catalog_of("ITEM_VARIATION")
        .filter(live)
        .filter(|v| {
            v["item_variation_data"]["item_id"]
                .as_str()
                .is_some_and(|i| items.contains(i))
        })
        .count()
}

/// The target equals the fake's data: the integrity check passes (every table's keys and
/// value checksum equal to what the API serves, every foreign key resolved), and the counts
/// and order keys agree with the fake's raw records, counted independently here.
async fn assert_target_equals_fake(demo: &SquareSyncDemo, what: &str) -> IntegrityReport {
    let report = demo.integrity().await.unwrap();
    let report = report
        .into_result()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    for t in &report.tables {
        assert_eq!(t.checksums.0, t.checksums.1, "{what}: {}", t.table);
    }
    let data = demo.fake.data();
    let snap = snapshot(demo).await;
    let rows = |name: &str| snap.tables[name].rows.len();
    let deleted_variations: BTreeSet<&str> = data
        .catalog_of("ITEM_VARIATION")
        .filter(|v| v["is_deleted"] == true)
        .filter_map(|v| v["id"].as_str())
        .collect();
    let expected = [
        ("locations", data.locations.len()),
        ("vendors", data.vendors.len()),
        ("catalog_categories", count(&data, "CATEGORY")),
        ("catalog_items", count(&data, "ITEM")),
        ("catalog_item_variations", count(&data, "ITEM_VARIATION")),
        (
            "catalog_vendor_info",
            count(&data, "ITEM_VARIATION_VENDOR_INFO"),
        ),
        ("inventory_counts", data.counts.len()),
        ("orders", data.orders.len()),
        ("order_line_items", children(&data, "line_items")),
        ("order_tenders", children(&data, "tenders")),
        ("order_fulfillments", children(&data, "fulfillments")),
        ("payments", data.payments.len()),
        ("square_item_library_export", live_export_rows(&data)),
    ];
    for (name, n) in expected {
        assert_eq!(rows(name), n, "{what}: rows of {name}");
    }
    assert!(rows("catalog_item_location_availability") > 0);
    let availability = &snap.tables["catalog_item_location_availability"];
    let live_availability = availability
        .rows
        .iter()
        .filter(|r| {
            availability
                .text(r, "variation_id")
                .is_some_and(|v| !deleted_variations.contains(v))
        })
        .count();
    let table = report
        .tables
        .iter()
        .find(|t| t.table == "catalog_item_location_availability")
        .unwrap();
    assert_eq!(live_availability, table.expected, "{what}: availability");
    let orders = &snap.tables["orders"];
    let target_ids: BTreeSet<&str> = orders
        .rows
        .iter()
        .filter_map(|r| orders.text(r, "id"))
        .collect();
    let fake_ids: BTreeSet<&str> = data
        .orders
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(target_ids, fake_ids, "{what}: order ids");
    report
}

/// Records of `after` that `before` lacks or holds differently, keyed by `key`.
fn changed(before: &[J], after: &[J], key: impl Fn(&J) -> String) -> Vec<J> {
    let old: BTreeMap<String, &J> = before.iter().map(|o| (key(o), o)).collect();
    after
        .iter()
        .filter(|o| old.get(&key(o)) != Some(o))
        .cloned()
        .collect()
}

fn written(report: &SyncReport, stream: &str) -> u64 {
    report.table(stream).unwrap().rows_written
}

async fn run_flow(config: DemoConfig) -> SquareTargets {
    let mut demo = SquareSyncDemo::start(&config).await.unwrap();
    demo.fake.with(|s| s.page_clamp = 40);

    // Foundation: every table in full.
    let foundation = demo.sync().await.unwrap();
    assert_eq!(foundation.tables.len(), 16);
    assert_target_equals_fake(&demo, "after the foundation sync").await;
    for state in &foundation.state {
        assert_eq!(state.commits, Some(1), "{}", state.table.stream);
    }
    let before_sync = snapshot(&demo).await;

    // Changes at Square, then an incremental sync that finds exactly them.
    let old = demo.fake.data();
    let mutations = demo.mutate();
    assert!(
        mutations.lines().iter().all(|(_, n)| *n > 0),
        "{mutations:?}"
    );
    let new = demo.fake.data();
    let id = |o: &J| o["id"].as_str().unwrap_or_default().to_owned();
    let changed_orders = changed(&old.orders, &new.orders, id);
    let first = demo.sync().await.unwrap();
    assert_eq!(written(&first, "orders"), changed_orders.len() as u64);
    let lines: usize = changed_orders
        .iter()
        .map(|o| o["line_items"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(written(&first, "order_line_items"), lines as u64);
    let tenders: usize = changed_orders
        .iter()
        .map(|o| o["tenders"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(written(&first, "order_tenders"), tenders as u64);
    assert_eq!(
        written(&first, "payments"),
        changed(&old.payments, &new.payments, id).len() as u64
    );
    let catalog = |kind: &str| {
        let of = |d: &SquareData| d.catalog_of(kind).cloned().collect::<Vec<_>>();
        changed(&of(&old), &of(&new), id).len() as u64
    };
    for (stream, kind) in [
        ("catalog_categories", "CATEGORY"),
        ("catalog_items", "ITEM"),
        ("catalog_item_variations", "ITEM_VARIATION"),
    ] {
        assert_eq!(written(&first, stream), catalog(kind), "{stream}");
    }
    let count_key = |c: &J| {
        format!(
            "{}/{}/{}",
            c["catalog_object_id"], c["location_id"], c["state"]
        )
    };
    assert_eq!(
        written(&first, "inventory_counts"),
        changed(&old.counts, &new.counts, count_key).len() as u64
    );
    assert_eq!(
        written(&first, "vendors"),
        changed(&old.vendors, &new.vendors, id).len() as u64
    );
    assert_target_equals_fake(&demo, "after the incremental sync").await;

    // Rollback: targets and checkpoints exactly as before the incremental sync, the reason
    // in every table's log, and the target behind the source again (a typed failure).
    let rollback = demo
        .rollback("test: undo the incremental sync")
        .await
        .unwrap();
    assert_eq!(rollback.tables, 16);
    let after_rollback = snapshot(&demo).await;
    assert_same_snapshot(&before_sync, &after_rollback, "after the rollback");
    for t in synced_tables() {
        let log = demo
            .targets
            .checkpoints
            .sync_log(&t.sync_name(), 50)
            .await
            .unwrap();
        assert!(
            log.iter().any(|e| e.event == ROLLBACK_EVENT
                && e.message.contains("test: undo the incremental sync")),
            "{}: {log:?}",
            t.stream
        );
    }
    let behind = demo.integrity().await.unwrap();
    assert!(!behind.passed());
    let failure = behind.into_result().unwrap_err();
    assert!(
        failure.failures.iter().any(|f| f.starts_with("orders:")),
        "{failure}"
    );

    // The next incremental sync reads from the restored checkpoints and converges.
    let second = demo.sync().await.unwrap();
    assert_target_equals_fake(&demo, "after the sync that follows the rollback").await;
    for (a, b) in first.tables.iter().zip(&second.tables) {
        assert_eq!(a.rows_written, b.rows_written, "{}", a.table.stream);
    }
    let repeat = demo.sync().await.unwrap();
    for t in &repeat.tables {
        if t.table.detection.label() == "version" || t.table.detection.label() == "timestamp" {
            assert_eq!(t.rows_written, 0, "nothing new: {}", t.table.stream);
        }
    }
    // Every rebuild of the export was one promotion (one ledger window, one transaction):
    // readers saw the previous export or the new one. The rollback keeps the history.
    let export = demo
        .targets
        .checkpoints
        .ledger("square/square_item_library_export")
        .await
        .unwrap();
    assert_eq!(export.len(), 4, "{export:?}");
    demo.targets.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_flow_keeps_every_table_equal_to_square_and_rolls_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("square.db");
    let mut config = DemoConfig::new(format!("sqlite://{}", db.display()));
    config.data_set = data_set();
    config.seed = 11;
    run_flow(config).await;
    assert!(dir.path().join("square.db.backup").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_flow_keeps_every_table_equal_to_square_and_rolls_back_exactly() {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!("square_sync_test_{}_{nanos}", std::process::id());
    let mut config = DemoConfig::new(url);
    config.postgres_schema = Some(schema);
    config.data_set = data_set();
    config.seed = 12;
    let targets = run_flow(config).await;
    targets.drop_postgres_schemas().await.unwrap();
}

#[tokio::test]
async fn every_seed_table_is_synced_or_named_as_having_no_api_source() {
    assert_eq!(SEED_TABLES.len(), 21);
    let synced: BTreeSet<&str> = synced_tables().iter().map(|t| t.seed_table).collect();
    let unsourced: BTreeSet<&str> = unsourced_tables().iter().map(|(t, _)| *t).collect();
    assert_eq!(synced.len(), 16);
    assert_eq!(unsourced.len(), 5);
    assert!(synced.is_disjoint(&unsourced));
    for t in SEED_TABLES {
        assert!(synced.contains(t.seed_table) || unsourced.contains(t.seed_table));
    }
}

#[tokio::test]
async fn bad_database_urls_and_missing_backups_are_typed_errors() {
    let err = SquareTargets::open("mysql://localhost/x", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = SquareTargets::open("sqlite://", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("empty.db").display());
    let targets = SquareTargets::open(&url, None).await.unwrap();
    let err = targets
        .backup
        .restore(&["orders".to_owned()], &["square/orders".to_owned()], &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    targets.backup.snapshot(&[], &[]).await.unwrap();
    let err = targets
        .backup
        .restore(&["_sync_fences".to_owned()], &[], &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}
