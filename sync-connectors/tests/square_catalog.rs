//! The Square catalog and locations end to end against the fake: incremental syncs by the
//! server's `latest_time`, tombstones kept as soft deletes, version bumps, empty pages that
//! are not the end, resumed reads with the original query, and the child streams.

mod square_support;

use std::sync::Arc;

use serde_json::json;
use square_support::*;
use sync_core::memory::MemoryStore;
use sync_core::{
    ErrorKind, FullConfig, FullStrategy, IncrementalConfig, IncrementalStrategy, PageRequest,
    PageSelector, RunLimits, Source, Strategy, Value,
};

fn incremental(stream: &str) -> IncrementalStrategy {
    IncrementalStrategy::new(IncrementalConfig::new(stream)).unwrap()
}

const SEARCH: &str = "/v2/catalog/search";

#[tokio::test]
async fn catalog_items_sync_incrementally_with_a_tombstone_and_a_version_bump() {
    let fake = FakeSquare::start().await;
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("catalog_items", source.clone(), &store);

    let first = incremental("catalog_items").run(&ctx).await.unwrap();
    assert_eq!(first.rows_written, 3);
    assert_eq!(
        column(&store, &source, "catalog_items", "name"),
        vec![json!("Iced tea"), json!("Muffin"), json!("Coffee")]
    );
    assert_eq!(
        column(&store, &source, "catalog_items", "is_deleted"),
        vec![json!(false); 3]
    );
    // The checkpoint is the server's latest_time (the vendor info at 10:00:04), not our clock.
    assert_eq!(
        checkpoint(&store, "catalog_items").await.unwrap(),
        "(2024-05-01T10:00:04Z, *)"
    );
    let bodies = fake.bodies(SEARCH).await;
    assert_eq!(
        bodies[0]["limit"], 1,
        "the watermark probe asks for one object"
    );
    assert_eq!(bodies[1]["object_types"], json!(["ITEM"]));
    assert_eq!(bodies[1]["include_deleted_objects"], true);
    assert!(
        bodies[1].get("begin_time").is_none(),
        "the first sync reads everything"
    );

    // Between runs: the iced tea is deleted (a tombstone), the coffee gets a new version.
    fake.put_catalog(json!({
        "type": "ITEM", "id": "AA27W3M2GGTF3H6AVPNB77CK", "updated_at": "2024-05-01T10:05:00.000Z",
        "version": 1714557900000i64, "is_deleted": true, "present_at_all_locations": false
    }));
    let mut coffee = fixture("catalog.json")["objects"][2].clone();
    coffee["version"] = json!(1714557960000i64);
    coffee["updated_at"] = json!("2024-05-01T10:06:00.000Z");
    coffee["item_data"]["name"] = json!("Coffee (new roast)");
    fake.put_catalog(coffee);

    let second = incremental("catalog_items").run(&ctx).await.unwrap();
    assert_eq!(second.rows_written, 2);
    let rows = target(&store, &source, "catalog_items");
    assert_eq!(
        rows.len(),
        3,
        "the tombstone replaces the row, it adds none"
    );
    let tea = rows
        .iter()
        .find(|r| r["id"] == "AA27W3M2GGTF3H6AVPNB77CK")
        .unwrap();
    assert_eq!(
        (tea["is_deleted"].clone(), tea["version"].clone()),
        (json!(true), json!(1714557900000i64))
    );
    let coffee = rows
        .iter()
        .find(|r| r["id"] == "W62UWFY35CWMYGVWK6TWJDNI")
        .unwrap();
    assert_eq!(coffee["name"], "Coffee (new roast)");
    assert_eq!(coffee["version"], 1714557960000i64);
    let bodies = fake.bodies(SEARCH).await;
    // begin_time is exclusive: one millisecond before the checkpoint.
    assert_eq!(bodies[3]["begin_time"], "2024-05-01T10:00:03.999Z");
    assert_eq!(
        checkpoint(&store, "catalog_items").await.unwrap(),
        "(2024-05-01T10:06:00Z, *)"
    );

    // Nothing changed: the object at the checkpoint is read again and not written again.
    let third = incremental("catalog_items").run(&ctx).await.unwrap();
    assert_eq!((third.rows_read, third.rows_written), (1, 0));
    assert_eq!(target(&store, &source, "catalog_items").len(), 3);
}

#[tokio::test]
async fn the_watermark_is_latest_time_and_rows_past_the_bound_wait_for_the_next_run() {
    let fake = FakeSquare::start().await;
    let source = fake.source();
    let mark = source.high_watermark("catalog_items").await.unwrap();
    assert_eq!(
        mark,
        Some(vec![Value::Timestamp(t("2024-05-01T10:00:04Z"))])
    );
    let page = source
        .fetch_page(&PageRequest {
            stream: "catalog_items".into(),
            selector: PageSelector::First,
            since: Some(vec![Value::Timestamp(t("2024-05-01T10:00:00.123Z"))]),
            until: Some(vec![Value::Timestamp(t("2024-05-01T10:00:02Z"))]),
            limit: 100,
        })
        .await
        .unwrap();
    let ids: Vec<&Value> = page.rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        ids,
        vec![
            &text("W62UWFY35CWMYGVWK6TWJDNI"),
            &text("AA27W3M2GGTF3H6AVPNB77CK")
        ],
        "since and until are both inclusive; the muffin at 10:00:03 is past the bound"
    );
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn an_empty_page_with_a_cursor_is_not_the_end() {
    let fake = FakeSquare::start().await;
    fake.with(|s| {
        s.page_clamp = 1;
        s.empty_pages = true;
    });
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("catalog_items", source.clone(), &store);
    let report = incremental("catalog_items").run(&ctx).await.unwrap();
    // [coffee] [] [tea] [] [muffin]: five pages, two of them empty with a cursor.
    assert_eq!((report.pages, report.rows_written), (5, 3));
    assert_eq!(fake.count(SEARCH).await, 1 + 5);
}

#[tokio::test]
async fn a_read_stopped_by_a_limit_resumes_with_the_original_query() {
    let fake = FakeSquare::start().await;
    fake.with(|s| s.page_clamp = 1);
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("catalog_items", source.clone(), &store);
    let limited = ctx.clone().with_limits(RunLimits {
        max_pages: Some(2),
        max_errors: None,
    });
    let partial = incremental("catalog_items").run(&limited).await.unwrap();
    assert!(!partial.complete);
    assert_eq!(
        checkpoint(&store, "catalog_items").await,
        None,
        "an unordered window commits at its end"
    );
    // The resumed read sends the cursor with the very same query, or the fake says INVALID_CURSOR.
    let rest = incremental("catalog_items").run(&ctx).await.unwrap();
    assert!(rest.complete);
    assert_eq!(target(&store, &source, "catalog_items").len(), 3);
    // [probe, page 1, page 2] then [probe, page 3 with its cursor, ...].
    let bodies = fake.bodies(SEARCH).await;
    let mut resumed = bodies[4].clone();
    assert!(resumed.get("cursor").is_some(), "{resumed}");
    resumed.as_object_mut().unwrap().remove("cursor");
    assert_eq!(resumed, bodies[1], "the original query");
}

#[tokio::test]
async fn categories_variations_availability_and_vendor_info() {
    let fake = FakeSquare::start().await;
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    for stream in [
        "catalog_categories",
        "catalog_item_variations",
        "catalog_item_location_availability",
        "catalog_vendor_info",
    ] {
        let ctx = context(stream, source.clone(), &store);
        incremental(stream).run(&ctx).await.unwrap();
    }
    let categories = target(&store, &source, "catalog_categories");
    assert_eq!(categories.len(), 2);
    assert_eq!(categories[1]["parent_category_id"], "CAT-BEVERAGES");
    let variations = target(&store, &source, "catalog_item_variations");
    assert_eq!(variations.len(), 2);
    assert_eq!(
        (
            variations[0]["price_amount"].clone(),
            variations[0]["item_id"].clone()
        ),
        (json!(250), json!("W62UWFY35CWMYGVWK6TWJDNI"))
    );
    assert_eq!(variations[1]["inventory_alert_threshold"], 5);
    let availability: Vec<(String, String, bool, serde_json::Value)> =
        target(&store, &source, "catalog_item_location_availability")
            .iter()
            .map(|r| {
                (
                    r["variation_id"].as_str().unwrap().to_owned(),
                    r["location_id"].as_str().unwrap().to_owned(),
                    r["present"].as_bool().unwrap(),
                    r["sold_out"].clone(),
                )
            })
            .collect();
    assert_eq!(
        availability,
        vec![
            ("VAR-COFFEE-S".into(), "L2".into(), true, json!(true)),
            ("VAR-COFFEE-S".into(), "L3".into(), false, json!(null)),
            ("VAR-TEA-L".into(), "L1".into(), true, json!(null)),
        ]
    );
    let vendor_info = target(&store, &source, "catalog_vendor_info");
    assert_eq!(vendor_info.len(), 1);
    assert_eq!(
        (
            vendor_info[0]["vendor_id"].clone(),
            vendor_info[0]["item_variation_id"].clone(),
            vendor_info[0]["price_amount"].clone()
        ),
        (json!("VENDOR-ACME"), json!("VAR-COFFEE-S"), json!(120))
    );
    let types: Vec<serde_json::Value> = fake
        .bodies(SEARCH)
        .await
        .iter()
        .map(|b| b["object_types"].clone())
        .collect();
    assert!(
        types.contains(&json!(["ITEM_VARIATION_VENDOR_INFO"]))
            && types.contains(&json!(["CATEGORY"]))
    );
}

#[tokio::test]
async fn locations_sync_in_full_and_refuse_the_incremental_strategy() {
    let fake = FakeSquare::start().await;
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("locations", source.clone(), &store);
    let full = FullStrategy::new(FullConfig::new("locations")).unwrap();
    assert_eq!(full.run(&ctx).await.unwrap().rows_written, 3);
    // A location Square no longer lists is removed by the full snapshot's replace.
    fake.with(|s| s.locations.retain(|l| l["id"] != "L3"));
    full.run(&ctx).await.unwrap();
    assert_eq!(
        column(&store, &source, "locations", "id"),
        vec![json!("L1"), json!("L2")]
    );
    let err = incremental("locations").run(&ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    // Every request carried the bearer token and the Square-Version header.
    for r in fake.server.received_requests().await.unwrap() {
        assert_eq!(r.headers.get("square-version").unwrap(), "2025-08-20");
        assert_eq!(
            r.headers.get("authorization").unwrap(),
            &format!("Bearer {TOKEN}")[..]
        );
    }
}
