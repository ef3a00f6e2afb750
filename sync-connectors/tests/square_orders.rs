//! Square orders and their child tables end to end against the fake: SearchOrders filtered
//! and sorted on `updated_at` with inclusive bounds, an order updated between runs (its new
//! version replaces the old one, its children follow, the inclusive overlap adds no
//! duplicates), locations fanned out in groups of ten, and empty pages with a cursor.

mod square_support;

use std::sync::Arc;

use serde_json::json;
use square_support::*;
use sync_core::memory::MemoryStore;
use sync_core::{IncrementalConfig, IncrementalStrategy, Source, Strategy, Value};

const SEARCH: &str = "/v2/orders/search";

fn incremental(stream: &str, lookback_ms: i64) -> IncrementalStrategy {
    let mut config = IncrementalConfig::new(stream);
    config.lookback = lookback_ms;
    IncrementalStrategy::new(config).unwrap()
}

async fn sync(
    fake: &FakeSquare,
    store: &Arc<MemoryStore>,
    stream: &str,
    lookback_ms: i64,
) -> sync_core::RunReport {
    let ctx = context(stream, fake.source(), store);
    incremental(stream, lookback_ms).run(&ctx).await.unwrap()
}

#[tokio::test]
async fn orders_and_line_items_follow_an_update_without_duplicates() {
    let fake = FakeSquare::start().await;
    // An order updated exactly at the first run's upper bound (the server's clock).
    fake.put_order(
        json!({"id": "ORDER-4", "location_id": "L2", "state": "OPEN", "version": 1,
        "updated_at": "2024-05-01T12:30:00.000Z",
        "line_items": [{"uid": "LI-4A", "name": "Water", "quantity": "1"}]}),
    );
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    assert_eq!(sync(&fake, &store, "orders", 0).await.rows_written, 4);
    assert_eq!(
        sync(&fake, &store, "order_line_items", 0)
            .await
            .rows_written,
        5
    );
    // The watermark is the server's Date header (12:30:00), not the local clock.
    assert_eq!(
        checkpoint(&store, "orders").await.unwrap(),
        "(2024-05-01T12:30:00Z, *)"
    );
    let bodies = fake.bodies(SEARCH).await;
    let read = bodies
        .iter()
        .find(|b| b["query"]["sort"]["sort_order"] == "ASC")
        .unwrap();
    assert_eq!(read["query"]["sort"]["sort_field"], "UPDATED_AT");
    assert_eq!(read["location_ids"], json!(["L1", "L2", "L3"]));
    assert_eq!(
        read["query"]["filter"]["date_time_filter"]["updated_at"]["end_at"],
        "2024-05-01T12:30:00.000Z",
        "the upper bound is pinned explicitly"
    );

    // ORDER-1 changes: version 4, one line item gone, one changed, one new.
    fake.with(|s| s.now = t("2024-05-01T13:00:00Z"));
    let mut order = fixture("orders.json")["orders"][0].clone();
    order["version"] = json!(4);
    order["updated_at"] = json!("2024-05-01T12:45:00.000Z");
    order["line_items"] = json!([
        {"uid": "LI-1A", "name": "Coffee", "quantity": "3", "total_money": {"amount": 810, "currency": "USD"}},
        {"uid": "LI-1C", "name": "Scone", "quantity": "1", "total_money": {"amount": 300, "currency": "USD"}}
    ]);
    fake.put_order(order);

    // start_at is inclusive: ORDER-4, on the checkpoint, comes back and is skipped.
    let orders = sync(&fake, &store, "orders", 0).await;
    assert_eq!((orders.rows_read, orders.rows_written), (2, 1));
    // With a lookback of a minute the overlap is wider; the keyed upsert absorbs it.
    let items = sync(&fake, &store, "order_line_items", 60_000).await;
    assert_eq!(items.rows_read, 3, "ORDER-4's line and ORDER-1's two");
    let bodies = fake.bodies(SEARCH).await;
    let reads: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["query"]["sort"]["sort_order"] == "ASC")
        .collect();
    assert_eq!(
        reads[2]["query"]["filter"]["date_time_filter"]["updated_at"],
        json!({"start_at": "2024-05-01T12:30:00.000Z", "end_at": "2024-05-01T13:00:00.000Z"})
    );
    assert_eq!(
        reads[3]["query"]["filter"]["date_time_filter"]["updated_at"]["start_at"],
        "2024-05-01T12:29:00.000Z"
    );

    let rows = target(&store, &source, "orders");
    assert_eq!(rows.len(), 4, "no duplicate orders");
    let one = rows.iter().find(|r| r["id"] == "ORDER-1").unwrap();
    assert_eq!(one["version"], 4);
    let lines: Vec<(String, String, serde_json::Value, i64)> =
        target(&store, &source, "order_line_items")
            .iter()
            .map(|r| {
                (
                    r["order_id"].as_str().unwrap().to_owned(),
                    r["uid"].as_str().unwrap().to_owned(),
                    r["quantity"].clone(),
                    r["order_version"].as_i64().unwrap(),
                )
            })
            .collect();
    assert_eq!(
        lines,
        vec![
            ("ORDER-1".into(), "LI-1A".into(), json!("3"), 4),
            // Gone from version 4: kept with the old order_version (no deletes pass through).
            ("ORDER-1".into(), "LI-1B".into(), json!("1.5"), 3),
            ("ORDER-1".into(), "LI-1C".into(), json!("1"), 4),
            ("ORDER-2".into(), "LI-2A".into(), json!("1"), 1),
            ("ORDER-3".into(), "LI-3A".into(), json!("1"), 5),
            ("ORDER-4".into(), "LI-4A".into(), json!("1"), 1),
        ]
    );
    // Current children are those whose order_version is the order's version.
    let current = lines
        .iter()
        .filter(|l| l.0 == "ORDER-1" && l.3 == 4)
        .count();
    assert_eq!(current, 2);
}

#[tokio::test]
async fn an_older_copy_never_replaces_a_newer_version() {
    let fake = FakeSquare::start().await;
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    sync(&fake, &store, "orders", 0).await;
    // The server hands back a stale copy (lower version) at a later updated_at.
    fake.with(|s| s.now = t("2024-05-01T13:00:00Z"));
    let mut stale = fixture("orders.json")["orders"][2].clone();
    stale["version"] = json!(2);
    stale["state"] = json!("OPEN");
    stale["updated_at"] = json!("2024-05-01T12:50:00.000Z");
    fake.put_order(stale);
    sync(&fake, &store, "orders", 0).await;
    let rows = target(&store, &source, "orders");
    let three = rows.iter().find(|r| r["id"] == "ORDER-3").unwrap();
    assert_eq!(
        (three["version"].clone(), three["state"].clone()),
        (json!(5), json!("COMPLETED"))
    );
}

#[tokio::test]
async fn fulfillments_refunds_returns_and_tenders_are_child_tables() {
    let fake = FakeSquare::start().await;
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    for stream in [
        "order_fulfillments",
        "order_refunds",
        "order_returns",
        "order_tenders",
    ] {
        sync(&fake, &store, stream, 0).await;
    }
    let f = target(&store, &source, "order_fulfillments");
    assert_eq!(
        (f.len(), f[0]["type"].clone(), f[0]["order_id"].clone()),
        (1, json!("PICKUP"), json!("ORDER-1"))
    );
    assert_eq!(f[0]["details"]["recipient"]["display_name"], "Ann");
    let r = target(&store, &source, "order_refunds");
    assert_eq!(
        (
            r[0]["id"].clone(),
            r[0]["amount"].clone(),
            r[0]["order_version"].clone()
        ),
        (json!("REFUND-1"), json!(250), json!(5))
    );
    let ret = target(&store, &source, "order_returns");
    assert_eq!(
        (
            ret[0]["uid"].clone(),
            ret[0]["total_amount"].clone(),
            ret[0]["tax_amount"].clone()
        ),
        (json!("RET-1"), json!(-250), json!(-20))
    );
    let tenders = target(&store, &source, "order_tenders");
    assert_eq!(
        (
            tenders[0]["id"].clone(),
            tenders[0]["payment_id"].clone(),
            tenders[0]["tip_amount"].clone()
        ),
        (json!("TENDER-1"), json!("PAY-1"), json!(100))
    );
}

#[tokio::test]
async fn more_than_ten_locations_fan_out_in_groups_with_empty_pages() {
    let fake = FakeSquare::start().await;
    fake.with(|s| {
        for i in 4..=23 {
            s.locations.push(
                json!({"id": format!("L{i}"), "name": format!("Shop {i}"), "status": "ACTIVE"}),
            );
        }
        s.orders.push(
            json!({"id": "ORDER-FAR", "location_id": "L23", "version": 1,
            "updated_at": "2024-05-01T11:30:00.000Z", "line_items": []}),
        );
        s.page_clamp = 1;
        s.empty_pages = true;
    });
    let store = Arc::new(MemoryStore::new());
    let report = sync(&fake, &store, "orders", 0).await;
    assert_eq!(report.rows_written, 4);
    let groups: Vec<usize> = fake
        .bodies(SEARCH)
        .await
        .iter()
        .filter(|b| b["query"]["sort"]["sort_order"] == "ASC" && b.get("cursor").is_none())
        .map(|b| b["location_ids"].as_array().unwrap().len())
        .collect();
    assert_eq!(
        groups,
        vec![10, 10, 3],
        "23 locations in groups of at most ten"
    );
    assert!(fake
        .bodies(SEARCH)
        .await
        .iter()
        .all(|b| b["limit"].as_i64().unwrap() <= 1000));
}

#[tokio::test]
async fn configured_locations_are_the_only_ones_read() {
    let fake = FakeSquare::start().await;
    let config = sync_connectors::square::SquareConfig {
        location_ids: Some(vec!["L2".into()]),
        ..fake.config()
    };
    let source = Arc::new(sync_connectors::square::SquareSource::new(config).unwrap());
    let store = Arc::new(MemoryStore::new());
    let ctx = context("orders", source.clone(), &store);
    incremental("orders", 0).run(&ctx).await.unwrap();
    assert_eq!(
        column(&store, &source, "orders", "id"),
        vec![json!("ORDER-2")]
    );
    assert_eq!(fake.count("/v2/locations").await, 0);
    let mark = source.high_watermark("orders").await.unwrap();
    assert_eq!(
        mark,
        Some(vec![Value::Timestamp(t("2024-05-01T12:30:00Z"))])
    );
}
