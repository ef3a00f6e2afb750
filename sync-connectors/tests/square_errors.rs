//! Square failures end to end against the fake: 429 `RATE_LIMITED` retried with backoff (no
//! `Retry-After`), `INVALID_CURSOR` permanent, an HTML 502 page, a truncated body, a 200
//! carrying `errors`, wrong shapes and a bad token; each a typed error that leaves the
//! checkpoint and the target as they were, the next good run going on from there.

mod square_support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use square_support::*;
use sync_connectors::square::SquareSource;
use sync_core::memory::MemoryStore;
use sync_core::{
    ErrorKind, IncrementalConfig, IncrementalStrategy, RetryClass, RetryPolicy, RunLimits,
    Strategy, SyncContext,
};

const SEARCH: &str = "/v2/catalog/search";
const JSON: &str = "application/json";

fn incremental(stream: &str) -> IncrementalStrategy {
    IncrementalStrategy::new(IncrementalConfig::new(stream)).unwrap()
}

/// The state a failure must not touch.
async fn snapshot(
    store: &MemoryStore,
    source: &SquareSource,
    stream: &str,
) -> (
    Option<String>,
    Vec<serde_json::Map<String, serde_json::Value>>,
) {
    (
        checkpoint(store, stream).await,
        target(store, source, stream),
    )
}

fn bump_coffee(fake: &FakeSquare) {
    let mut coffee = fixture("catalog.json")["objects"][2].clone();
    coffee["version"] = json!(1714557960000i64);
    coffee["updated_at"] = json!("2024-05-01T10:06:00.000Z");
    coffee["item_data"]["name"] = json!("Coffee (new roast)");
    fake.put_catalog(coffee);
}

#[tokio::test(start_paused = true)]
async fn rate_limited_is_retried_with_backoff_then_succeeds() {
    let fake = FakeSquare::start().await;
    let source = Arc::new(SquareSource::new(fake.paused_config()).unwrap());
    let store = Arc::new(MemoryStore::new());
    let ctx = SyncContext::new(
        "square/catalog_items",
        source.clone(),
        store.clone(),
        store.clone(),
    )
    .with_retry(
        RetryPolicy::default().with_backoff(Duration::from_secs(1), Duration::from_secs(30)),
    );
    let body = fixture_text("rate_limited.json");
    // The watermark probe answers, then the first page is rate limited twice (no Retry-After).
    fake.fail_after(SEARCH, 1, 2, 429, &body, JSON);
    let started = tokio::time::Instant::now();
    let report = incremental("catalog_items").run(&ctx).await.unwrap();
    // Full jitter under caps of 1 s then 2 s: some wait, never more than the caps.
    let waited = started.elapsed();
    assert!(
        waited > Duration::ZERO && waited <= Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(report.rows_written, 3);
    assert_eq!(fake.count(SEARCH).await, 1 + 3, "two 429s, then the page");
    // The watermark probe retries by the config's policy, too.
    fake.fail(SEARCH, 2, 429, &body, JSON);
    bump_coffee(&fake);
    let report = incremental("catalog_items").run(&ctx).await.unwrap();
    assert_eq!(report.rows_written, 1);
}

#[tokio::test]
async fn rate_limited_is_typed_transient_and_exhausts_without_moving_the_checkpoint() {
    let fake = FakeSquare::start().await;
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("catalog_items", source.clone(), &store);
    incremental("catalog_items").run(&ctx).await.unwrap();
    let before = snapshot(&store, &source, "catalog_items").await;
    bump_coffee(&fake);
    fake.fail_after(
        SEARCH,
        1,
        100,
        429,
        &fixture_text("rate_limited.json"),
        JSON,
    );
    let err = incremental("catalog_items").run(&ctx).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.retry_class()),
        (ErrorKind::RateLimited, RetryClass::Exhausted),
        "{err}"
    );
    assert_eq!(err.retry_after(), None, "square sends no Retry-After");
    assert_eq!(err.context_value("code"), Some("RATE_LIMITED"));
    assert_eq!(err.context_value("connector"), Some("square"));
    assert_eq!(
        err.context_value("endpoint"),
        Some("POST /v2/catalog/search")
    );
    assert_eq!(snapshot(&store, &source, "catalog_items").await, before);
    fake.heal();
    assert_eq!(
        incremental("catalog_items")
            .run(&ctx)
            .await
            .unwrap()
            .rows_written,
        1
    );
}

#[tokio::test]
async fn an_expired_cursor_is_invalid_cursor_permanent_and_changes_nothing() {
    let fake = FakeSquare::start().await;
    fake.with(|s| s.page_clamp = 1);
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("catalog_items", source.clone(), &store);
    incremental("catalog_items").run(&ctx).await.unwrap();
    bump_coffee(&fake);
    fake.put_catalog(
        json!({"type": "ITEM", "id": "ITEM-SCONE", "updated_at": "2024-05-01T10:07:00.000Z",
        "version": 1, "item_data": {"name": "Scone"}}),
    );
    // A read stopped after one page, then the cursor it kept expires on the server.
    let limited = ctx.clone().with_limits(RunLimits {
        max_pages: Some(1),
        max_errors: None,
    });
    assert!(
        !incremental("catalog_items")
            .run(&limited)
            .await
            .unwrap()
            .complete
    );
    let before = snapshot(&store, &source, "catalog_items").await;
    fake.expire_cursors();
    let err = incremental("catalog_items").run(&ctx).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.retry_class()),
        (ErrorKind::Remote, RetryClass::Permanent),
        "{err}"
    );
    assert!(
        err.message()
            .contains("INVALID_CURSOR: The provided cursor is invalid or expired."),
        "{err}"
    );
    assert_eq!(err.context_value("page"), Some("next"));
    assert_eq!(err.context_value("status"), Some("400"));
    assert_eq!(
        fake.count(SEARCH).await,
        4 + 2 + 2,
        "a permanent error is not retried"
    );
    assert_eq!(snapshot(&store, &source, "catalog_items").await, before);
}

#[tokio::test]
async fn invalid_cursor_from_the_server_mid_read_is_permanent() {
    let fake = FakeSquare::start().await;
    fake.with(|s| s.page_clamp = 1);
    let source = fake.source();
    let store = Arc::new(MemoryStore::new());
    let ctx = context("orders", source.clone(), &store);
    // The watermark probe and the first page answer; the second page's cursor is refused.
    fake.fail_after(
        "/v2/orders/search",
        2,
        1,
        400,
        &fixture_text("invalid_cursor.json"),
        JSON,
    );
    let err = incremental("orders").run(&ctx).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.retry_class()),
        (ErrorKind::Remote, RetryClass::Permanent)
    );
    assert_eq!(err.context_value("code"), Some("INVALID_CURSOR"));
    assert_eq!(checkpoint(&store, "orders").await, None);
    assert!(
        store.target_rows("orders").is_empty(),
        "nothing of the failed window is promoted"
    );
}

/// Each bad answer to a page fails the run with a typed error, leaves the checkpoint and the
/// target as the last good run left them, and the next good run goes on from there.
#[tokio::test]
async fn every_bad_answer_is_typed_and_changes_nothing() {
    let html = fixture_text("bad_gateway.html");
    let cases: Vec<(&str, u16, String, &'static str, ErrorKind, RetryClass, &str)> = vec![
        ("html 502", 502, html, "text/html", ErrorKind::Remote, RetryClass::Exhausted, "502 Bad Gateway"),
        ("truncated body", 200, r#"{"objects":[{"type":"ITEM","id":"W62U"#.into(), JSON, ErrorKind::InvalidInput, RetryClass::Exhausted, "truncated"),
        ("html 200", 200, "<html>maintenance</html>".into(), "text/html", ErrorKind::InvalidInput, RetryClass::Permanent, "html"),
        ("200 with errors", 200, r#"{"objects":[],"errors":[{"category":"INVALID_REQUEST_ERROR","code":"BAD_REQUEST","detail":"bad query"}]}"#.into(), JSON, ErrorKind::Remote, RetryClass::Permanent, "BAD_REQUEST: bad query"),
        ("wrong type", 200, r#"{"objects":"none"}"#.into(), JSON, ErrorKind::InvalidInput, RetryClass::Permanent, "shape"),
        ("missing id", 200, r#"{"objects":[{"type":"ITEM","updated_at":"2024-05-01T10:09:00Z"}]}"#.into(), JSON, ErrorKind::InvalidInput, RetryClass::Permanent, "shape"),
        ("bad timestamp", 200, r#"{"objects":[{"type":"ITEM","id":"X","updated_at":"yesterday"}]}"#.into(), JSON, ErrorKind::InvalidInput, RetryClass::Permanent, "shape"),
        ("500 api error", 500, r#"{"errors":[{"category":"API_ERROR","code":"INTERNAL_SERVER_ERROR"}]}"#.into(), JSON, ErrorKind::Remote, RetryClass::Exhausted, "INTERNAL_SERVER_ERROR"),
    ];
    for (name, status, body, content_type, kind, class, text) in cases {
        let fake = FakeSquare::start().await;
        let source = fake.source();
        let store = Arc::new(MemoryStore::new());
        let ctx = context("catalog_items", source.clone(), &store);
        incremental("catalog_items").run(&ctx).await.unwrap();
        let before = snapshot(&store, &source, "catalog_items").await;
        bump_coffee(&fake);
        fake.fail_after(SEARCH, 1, 100, status, &body, content_type);
        let err = incremental("catalog_items").run(&ctx).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.retry_class()),
            (kind, class),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(text), "{name}: {err}");
        assert_eq!(err.context_value("stream"), Some("catalog_items"), "{name}");
        assert!(!err.to_string().contains(TOKEN), "{name}: the token leaked");
        assert_eq!(
            snapshot(&store, &source, "catalog_items").await,
            before,
            "{name} changed state"
        );
        fake.heal();
        assert_eq!(
            incremental("catalog_items")
                .run(&ctx)
                .await
                .unwrap()
                .rows_written,
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_bad_token_is_permanent_and_never_printed() {
    let fake = FakeSquare::start().await;
    let config = sync_connectors::square::SquareConfig {
        access_token: sync_connectors::http::Secret::new("EAAA-wrong-secret"),
        ..fake.config()
    };
    let source = Arc::new(SquareSource::new(config).unwrap());
    assert!(fake.source().check().await.is_ok());
    let err = source.check().await.unwrap_err();
    assert_eq!(
        (err.kind(), err.retry_class()),
        (ErrorKind::Remote, RetryClass::Permanent)
    );
    assert!(err.message().contains("UNAUTHORIZED"), "{err}");
    assert!(!format!("{err} {err:?} {source:?}").contains("wrong-secret"));
}
