//! Square payments and vendors end to end against the fake: ListPayments per location on
//! `updated_at` (with `begin_time` set so the one-year default does not apply, `limit` at
//! most 100) and SearchVendors as a full scan compared on `version`.

mod square_support;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use square_support::*;
use sync_core::memory::MemoryStore;
use sync_core::{
    ErrorKind, FullConfig, FullStrategy, IncrementalConfig, IncrementalStrategy, Strategy,
};

const PAYMENTS: &str = "/v2/payments";
const VENDORS: &str = "/v2/vendors/search";

fn incremental(stream: &str) -> IncrementalStrategy {
    IncrementalStrategy::new(IncrementalConfig::new(stream)).unwrap()
}

#[tokio::test]
async fn payments_sync_per_location_on_updated_at() {
    let fake = FakeSquare::start().await;
    fake.with(|s| s.page_clamp = 1);
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("payments", source.clone(), &store);
    let first = incremental("payments").run(&ctx).await.unwrap();
    // PAY-2 was created more than a year ago: found because begin_time is set.
    assert_eq!(first.rows_written, 3);
    assert_eq!(
        column(&store, &source, "payments", "id"),
        vec![json!("PAY-1"), json!("PAY-2"), json!("PAY-3")]
    );
    assert_eq!(
        checkpoint(&store, "payments").await.unwrap(),
        "(2024-05-01T12:30:00Z, *)"
    );
    let queries = fake.queries(PAYMENTS).await;
    let reads: Vec<&HashMap<String, String>> = queries
        .iter()
        .filter(|q| q["sort_order"] == "ASC")
        .collect();
    let locations: Vec<&str> = reads
        .iter()
        .filter(|q| !q.contains_key("cursor"))
        .map(|q| q["location_id"].as_str())
        .collect();
    assert_eq!(locations, vec!["L1", "L2", "L3"], "one read per location");
    for q in &reads {
        assert_eq!(q["begin_time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(q["sort_field"], "UPDATED_AT");
        assert_eq!(
            q["limit"], "100",
            "the strategy's 1000 capped at ListPayments' maximum"
        );
        assert_eq!(q["updated_at_end_time"], "2024-05-01T12:30:00.001Z");
    }

    // PAY-1 is refunded later; the next run reads from the checkpoint.
    fake.with(|s| {
        s.now = t("2024-05-01T13:00:00Z");
        s.payments[0]["updated_at"] = json!("2024-05-01T12:50:00.000Z");
        s.payments[0]["refunded_money"] = json!({"amount": 990, "currency": "USD"});
        s.payments[0]["version_token"] = json!("vt-1b");
    });
    let second = incremental("payments").run(&ctx).await.unwrap();
    assert_eq!(second.rows_written, 1);
    let rows = target(&store, &source, "payments");
    assert_eq!(
        (
            rows[0]["refunded_amount"].clone(),
            rows[0]["version_token"].clone()
        ),
        (json!(990), json!("vt-1b"))
    );
    assert_eq!(rows[0]["card_details"]["card"]["card_brand"], "VISA");
    let queries = fake.queries(PAYMENTS).await;
    let last = queries
        .iter()
        .rev()
        .find(|q| q["sort_order"] == "ASC")
        .unwrap();
    assert_eq!(last["updated_at_begin_time"], "2024-05-01T12:29:59.999Z");
}

#[tokio::test]
async fn vendors_are_a_full_scan_compared_on_version() {
    let fake = FakeSquare::start().await;
    fake.with(|s| {
        s.page_clamp = 2;
        s.empty_pages = true;
    });
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("vendors", source.clone(), &store);
    let full = FullStrategy::new(FullConfig::new("vendors")).unwrap();
    let first = full.run(&ctx).await.unwrap();
    assert_eq!((first.rows_written, first.pages), (3, 3), "[2] [] [1]");
    let bodies = fake.bodies(VENDORS).await;
    assert_eq!(
        bodies[0]["sort"],
        json!({"field": "CREATED_AT", "order": "ASC"})
    );
    assert!(bodies[1].get("cursor").is_some());

    // One vendor changes, one is gone: the snapshot replaces the table.
    fake.with(|s| {
        s.vendors[1]["version"] = json!(2);
        s.vendors[1]["name"] = json!("Bakehouse & Co");
        s.vendors.retain(|v| v["id"] != "VENDOR-OLD");
    });
    full.run(&ctx).await.unwrap();
    let rows = target(&store, &source, "vendors");
    let got: Vec<(serde_json::Value, serde_json::Value)> = rows
        .iter()
        .map(|r| (r["id"].clone(), r["version"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("VENDOR-ACME"), json!(3)),
            (json!("VENDOR-BAKE"), json!(2))
        ]
    );
    assert_eq!(rows[0]["contacts"][0]["name"], "Joe");

    let err = incremental("vendors").run(&ctx).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Config,
        "no change filter, no cursor: {err}"
    );
}
