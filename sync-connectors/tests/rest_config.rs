//! Pipeline files: every paginator in TOML and JSON, bad configs rejected with a typed
//! error before any I/O, secrets kept out of `Debug`, and a POST search API driven by a body
//! template.

mod support;

use serde_json::json;
use support::*;
use sync_connectors::rest::{Pipeline, PipelineConfig, RestSource, RestStreamConfig};
use sync_core::{ErrorKind, PageSelector, Source};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const COLUMNS: &str = r#"
[[streams.columns]]
name = "id"
type = "text"
nullable = false

[[streams.columns]]
name = "updated_at"
type = "timestamp"

[[streams.columns]]
name = "price"
type = { decimal = { precision = 12, scale = 2 } }
source_field = "amount"
"#;

fn pipeline_toml(stream: &str) -> String {
    format!(
        r#"
name = "shop"
database = "sqlite://shop.db"
concurrency = 2
auth = {{ type = "bearer", token = "s3cr3t-token" }}
rate_limit = {{ requests_per_second = 5.0, max_concurrent = 1 }}

[[streams]]
name = "orders"
base_url = "https://api.example.com/v2"
path = "/orders"
records_path = "data.items"
primary_key = ["id"]
cursor = {{ field = "updated_at", param = "updated_since", until_param = "updated_before" }}
{stream}
{COLUMNS}"#
    )
}

#[test]
fn every_paginator_parses_from_toml() {
    let paginators = [
        r#"paginator = { type = "single" }"#,
        r#"paginator = { type = "offset", stop = { has_more = "meta.has_more" } }"#,
        r#"paginator = { type = "offset", stop = { total = "total" } }"#,
        r#"paginator = { type = "offset", stop = { count = "count" } }"#,
        r#"paginator = { type = "offset", stop = { next_offset = "next_offset" } }"#,
        r#"paginator = { type = "offset", offset_param = "skip", limit_param = "take", stop = "empty_page" }"#,
        r#"paginator = { type = "page_number", page_param = "pageNumber", size_param = "pageSize", stop = { last_page_flag = "lastPage" } }"#,
        r#"paginator = { type = "page_number", first_page = 0, stop = { page_count = "pages" } }"#,
        r#"paginator = { type = "cursor_token", param = "cursor", from = { body = "cursor" } }"#,
        r#"paginator = { type = "cursor_token", from = { header = "X-Next" }, limit_param = "limit" }"#,
        r#"paginator = { type = "next_link", from = "link_header" }"#,
        r#"paginator = { type = "next_link", from = { body = "@odata.nextLink" } }"#,
        r#"paginator = { type = "keyset", key_param = "after_id", cursor_param = "after_ts" }"#,
        r#"total_field = "total"
paginator = { type = "time_window", slice_ms = 86400000, max_records = 10000, start = "2024-01-01T00:00:00Z", inner = { type = "page_number", stop = "empty_page" } }"#,
    ];
    for p in paginators {
        let config =
            PipelineConfig::from_toml(&pipeline_toml(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(config.streams[0].columns[2].field_name(), "amount");
        Pipeline::new(config).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

#[test]
fn json_pipelines_parse_the_same() {
    let toml = PipelineConfig::from_toml(&pipeline_toml(
        r#"paginator = { type = "offset", stop = { has_more = "has_more" } }"#,
    ))
    .unwrap();
    let json = serde_json::to_string(&toml).unwrap();
    let back = PipelineConfig::from_json(&json);
    // The secret does not serialize, so the JSON round trip has a token of "***": still valid.
    let back = back.unwrap();
    assert_eq!(back.streams[0].name, "orders");
    assert!(!json.contains("s3cr3t-token"), "{json}");
}

#[test]
fn bad_configs_are_typed_config_errors_before_any_io() {
    let ok = r#"paginator = { type = "offset" }"#;
    let cases = [
        (
            pipeline_toml(&format!("{ok}\nsurprise = 1")),
            "unknown field",
        ),
        (
            pipeline_toml(r#"paginator = { type = "sideways" }"#),
            "unknown variant",
        ),
        (
            pipeline_toml(&format!("{ok}\nquery = {{ q = \"{{{{sinse}}}}\" }}")),
            "placeholder",
        ),
        (
            pipeline_toml(
                r#"paginator = { type = "keyset", key_param = "k", cursor_param = "c" }"#,
            )
            .replace(
                r#"primary_key = ["id"]"#,
                r#"primary_key = ["id", "updated_at"]"#,
            ),
            "keyset",
        ),
        (
            pipeline_toml(
                r#"paginator = { type = "time_window", slice_ms = 0, start = "2024-01-01T00:00:00Z", inner = { type = "single" } }"#,
            ),
            "slice",
        ),
        (pipeline_toml(&format!("{ok}\npage_size = 0")), "page_size"),
        (
            pipeline_toml(&format!("{ok}\nmethod = \"GET\"\nbody = {{ a = 1 }}")),
            "body",
        ),
        (
            pipeline_toml(ok).replace("https://api.example.com/v2", "ftp://x"),
            "http",
        ),
        (
            pipeline_toml(ok).replace("concurrency = 2", "concurrency = 0"),
            "concurrency",
        ),
        (
            pipeline_toml(ok).replace("field = \"updated_at\"", "field = \"id\""),
            "cursor",
        ),
        (
            // Hostile names round-trip (the stores quote them); one past 63 bytes cannot.
            pipeline_toml(ok)
                .replace("name = \"id\"", &format!("name = \"{}\"", "a".repeat(64)))
                .replace(
                    r#"primary_key = ["id"]"#,
                    &format!(r#"primary_key = ["{}"]"#, "a".repeat(64)),
                ),
            "longer than 63 bytes",
        ),
    ];
    for (text, what) in cases {
        match PipelineConfig::from_toml(&text) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Config, "{what}: {e}");
                assert!(e.to_string().contains(what), "{what}: {e}");
            }
            Ok(_) => panic!("{what}: accepted"),
        }
    }
    let twice = format!(
        "{}\n[[streams]]\nname = \"orders\"\nbase_url = \"http://x\"\nprimary_key = [\"id\"]\n[[streams.columns]]\nname = \"id\"\ntype = \"text\"\n",
        pipeline_toml(ok)
    );
    let e = PipelineConfig::from_toml(&twice).unwrap_err();
    assert!(e.message().contains("same name"), "{e}");
}

#[test]
fn debug_output_never_shows_secrets() {
    let config = PipelineConfig::from_toml(&pipeline_toml(
        r#"paginator = { type = "offset" }
headers = { "X-Api-Key" = "header-secret" }"#,
    ))
    .unwrap();
    let pipeline = Pipeline::new(config.clone()).unwrap();
    for text in [format!("{config:?}"), format!("{pipeline:?}")] {
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(!text.contains("header-secret"), "{text}");
    }
}

#[tokio::test]
async fn a_post_search_api_pages_through_its_body_template() {
    // Square-style: POST with the cursor and the filter in the body, the cursor absent on the
    // first page, the limit a number.
    let items = Items::new(9);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/orders/search"))
        .respond_with(move |req: &Request| {
            let body: serde_json::Value = req.body_json().unwrap();
            assert!(body["limit"].is_u64(), "{body}");
            assert_eq!(body["query"]["sort"]["sort_field"], "UPDATED_AT");
            let start = match body.get("cursor") {
                None => 0,
                Some(c) => c.as_str().unwrap().parse().unwrap(),
            };
            let limit = body["limit"].as_u64().unwrap() as usize;
            let all = items.matching(None);
            let rows: Vec<_> = all.iter().skip(start).take(limit).map(Item::json).collect();
            let end = start + rows.len();
            let mut out = json!({ "orders": rows });
            if end < all.len() {
                out["cursor"] = json!(end.to_string());
            }
            ResponseTemplate::new(200).set_body_json(out)
        })
        .mount(&server)
        .await;
    let mut stream: RestStreamConfig = items_stream(&server.uri());
    stream.path = "/v2/orders/search".into();
    stream.method = sync_connectors::http::Method::Post;
    stream.records_path = "orders".into();
    stream.body = Some(json!({
        "cursor": "{{cursor}}",
        "limit": "{{limit}}",
        "query": {
            "filter": {"date_time_filter": {"updated_at": {"start_at": "{{since}}"}}},
            "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
        },
    }));
    stream.paginator = serde_json::from_value(
        json!({"type": "cursor_token", "param": "cursor", "from": {"body": "cursor"}}),
    )
    .unwrap();
    let source = RestSource::new(stream, client()).unwrap();
    let mut selector = Some(PageSelector::First);
    let mut got = Vec::new();
    while let Some(s) = selector.take() {
        let page = source.fetch_page(&request(s, 4)).await.unwrap();
        got.extend(page.rows.iter().map(id_of));
        selector = page.next;
    }
    assert_eq!(got, expected_ids(0..9));
    let first: serde_json::Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(first.get("cursor"), None, "no cursor on the first page");
    assert_eq!(
        first["query"]["filter"]["date_time_filter"]["updated_at"].get("start_at"),
        None,
        "no lower bound without a checkpoint"
    );
}

#[test]
fn the_readme_pipeline_and_the_bench_pipeline_parse() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    std::env::set_var("SHOP_TOKEN", "token-from-the-environment");
    let config = PipelineConfig::from_toml(block).unwrap();
    assert!(!format!("{config:?}").contains("token-from-the-environment"));
    Pipeline::new(config).unwrap();
    let bench = include_str!("../../examples/pipelines/bench.toml");
    let config = PipelineConfig::from_toml(bench).unwrap();
    assert_eq!(config.streams[0].columns.len(), 6);
}

#[tokio::test]
async fn a_pipeline_runs_every_stream_and_a_failed_one_does_not_stop_the_others() {
    let items = Items::new(40);
    let server = MockServer::start().await;
    for p in ["/a/items", "/b/items"] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(offset_responder(items.clone(), 1000))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/broken/items"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such collection"))
        .mount(&server)
        .await;
    let stream = |name: &str, prefix: &str| {
        let mut s = items_stream(&server.uri());
        s.name = name.into();
        s.path = format!("{prefix}/items");
        s
    };
    let config = PipelineConfig {
        name: "multi".into(),
        database: None,
        http: Default::default(),
        auth: None,
        rate_limit: None,
        concurrency: 2,
        retry: sync_core::RetryPolicy::none(),
        limits: Default::default(),
        streams: vec![
            stream("a", "/a"),
            stream("broken", "/broken"),
            stream("b", "/b"),
        ],
    };
    let pipeline = Pipeline::new(config).unwrap();
    let store = std::sync::Arc::new(sync_core::memory::MemoryStore::new());
    let report = pipeline
        .run(store.clone(), store.clone(), None, |_| {
            sync_core::Progress::none()
        })
        .await;
    let names: Vec<&str> = report.streams.iter().map(|s| s.stream.as_str()).collect();
    assert_eq!(names, ["a", "broken", "b"], "reported in pipeline order");
    assert_eq!(report.failed(), 1);
    let e = report.streams[1].result.as_ref().unwrap_err();
    assert!(e.to_string().contains("no such collection"), "{e}");
    for (stream, sync) in [("a", "multi/a"), ("b", "multi/b")] {
        assert_eq!(store.target_rows(stream).len(), 40, "{stream}");
        assert!(sync_core::Checkpoint::load(store.as_ref(), sync)
            .await
            .unwrap()
            .is_some());
    }
    // Only the streams named run.
    let only = ["b".to_string()];
    let report = pipeline
        .run(store.clone(), store.clone(), Some(&only), |_| {
            sync_core::Progress::none()
        })
        .await;
    assert_eq!(report.streams.len(), 1);
    assert_eq!(report.failed(), 0);
}
