//! Square inventory counts end to end against the fake: BatchRetrieveInventoryCounts with
//! `updated_after` and a cursor, newest first, the server's clock as the high watermark, and
//! the latest count winning.

mod square_support;

use std::sync::Arc;

use serde_json::json;
use square_support::*;
use sync_core::memory::MemoryStore;
use sync_core::{
    IncrementalConfig, IncrementalStrategy, PageRequest, PageSelector, Source, Strategy,
};

const RETRIEVE: &str = "/v2/inventory/counts/batch-retrieve";

fn incremental() -> IncrementalStrategy {
    IncrementalStrategy::new(IncrementalConfig::new("inventory_counts")).unwrap()
}

fn counts(
    store: &MemoryStore,
    source: &sync_connectors::square::SquareSource,
) -> Vec<(String, String, String, serde_json::Value)> {
    target(store, source, "inventory_counts")
        .iter()
        .map(|r| {
            (
                r["catalog_object_id"].as_str().unwrap().to_owned(),
                r["location_id"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
                r["quantity"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn counts_sync_incrementally_by_updated_after_across_newest_first_pages() {
    let fake = FakeSquare::start().await;
    fake.with(|s| {
        s.page_clamp = 1;
        s.empty_pages = true;
    });
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("inventory_counts", source.clone(), &store);
    let first = incremental().run(&ctx).await.unwrap();
    assert_eq!(first.rows_written, 4);
    assert_eq!(
        counts(&store, &source),
        vec![
            (
                "VAR-COFFEE-S".into(),
                "L1".into(),
                "IN_STOCK".into(),
                json!("79")
            ),
            (
                "VAR-COFFEE-S".into(),
                "L1".into(),
                "WASTE".into(),
                json!("1.25")
            ),
            (
                "VAR-COFFEE-S".into(),
                "L2".into(),
                "IN_STOCK".into(),
                json!("30.5")
            ),
            (
                "VAR-TEA-L".into(),
                "L1".into(),
                "IN_STOCK".into(),
                json!("12")
            ),
        ]
    );
    // The window ends at the server's clock, not at the last (oldest) count read.
    assert_eq!(
        checkpoint(&store, "inventory_counts").await.unwrap(),
        "(2024-05-01T12:30:00Z, *)"
    );
    let bodies = fake.bodies(RETRIEVE).await;
    assert_eq!(bodies[0]["limit"], 1, "the watermark probe");
    assert!(bodies[1].get("updated_after").is_none());
    assert!(bodies.iter().all(|b| b["limit"].as_i64().unwrap() <= 1000));

    // One count changes; the next run asks for what changed after the checkpoint.
    fake.with(|s| {
        s.now = t("2024-05-01T13:00:00Z");
        s.counts[0]["quantity"] = json!("70");
        s.counts[0]["calculated_at"] = json!("2024-05-01T12:40:00.000Z");
    });
    let second = incremental().run(&ctx).await.unwrap();
    assert_eq!(second.rows_written, 1);
    assert_eq!(counts(&store, &source)[0].3, json!("70"));
    let bodies = fake.bodies(RETRIEVE).await;
    let read = bodies.iter().rev().find(|b| b["limit"] != 1).unwrap();
    assert_eq!(read["updated_after"], "2024-05-01T12:29:59.999Z");
}

#[tokio::test]
async fn a_page_holding_one_count_twice_keeps_the_newest() {
    let fake = FakeSquare::start().await;
    fake.with(|s| {
        let mut older = s.counts[0].clone();
        older["quantity"] = json!("50");
        older["calculated_at"] = json!("2024-05-01T08:00:00.000Z");
        s.counts.push(older);
    });
    let source = fake.source();
    let page = source
        .fetch_page(&PageRequest {
            stream: "inventory_counts".into(),
            selector: PageSelector::First,
            since: None,
            until: None,
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 4, "one row per (object, location, state)");
    let store = Arc::new(MemoryStore::new());
    incremental()
        .run(&context("inventory_counts", source.clone(), &store))
        .await
        .unwrap();
    assert_eq!(counts(&store, &source)[0].3, json!("79"));
}

#[tokio::test]
async fn configured_locations_filter_the_counts() {
    let fake = FakeSquare::start().await;
    let config = sync_connectors::square::SquareConfig {
        location_ids: Some(vec!["L2".into()]),
        ..fake.config()
    };
    let source = Arc::new(sync_connectors::square::SquareSource::new(config).unwrap());
    let store = Arc::new(MemoryStore::new());
    incremental()
        .run(&context("inventory_counts", source.clone(), &store))
        .await
        .unwrap();
    assert_eq!(counts(&store, &source).len(), 1);
    assert_eq!(
        fake.bodies(RETRIEVE).await[1]["location_ids"],
        json!(["L2"])
    );
}
