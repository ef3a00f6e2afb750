//! `SquareConfig` and `SquareSource` without a server: serde data with defaults and
//! `deny_unknown_fields`, validation without I/O, secrets kept out of `Debug`, the streams'
//! schemas and capabilities, and typed errors for bad requests.

use sync_connectors::square::{SquareConfig, SquareSource, PRODUCTION_URL, STREAMS};
use sync_core::{ErrorKind, PageRequest, PageSelector, Source, StrategyKind, Value};

#[test]
fn config_is_serde_data_with_defaults() {
    let config: SquareConfig =
        serde_json::from_str(r#"{"access_token": "EAAA-secret-1"}"#).unwrap();
    assert_eq!(config.base_url, PRODUCTION_URL);
    assert_eq!(config.square_version, "2025-08-20");
    assert_eq!(config.location_ids, None);
    assert_eq!(
        config.payments_created_since.to_rfc3339(),
        "1970-01-01T00:00:00+00:00"
    );
    assert_eq!(config.http.error_body_excerpt_bytes, 4096);
    config.validate().unwrap();
    let typo =
        serde_json::from_str::<SquareConfig>(r#"{"access_token": "x", "locations": ["L1"]}"#);
    assert!(typo.unwrap_err().to_string().contains("unknown field"));
    let toml: SquareConfig = toml::from_str(
        "access_token = \"EAAA-secret-2\"\nbase_url = \"https://connect.squareupsandbox.com\"\nlocation_ids = [\"L1\"]\n",
    )
    .unwrap();
    assert_eq!(toml.location_ids, Some(vec!["L1".to_string()]));
}

#[test]
fn debug_and_serialization_never_show_the_token() {
    let config = SquareConfig::builder("EAAA-very-secret").build().unwrap();
    let printed = format!("{config:?} {}", serde_json::to_string(&config).unwrap());
    assert!(!printed.contains("very-secret"), "{printed}");
    let source = SquareSource::new(config).unwrap();
    assert!(!format!("{source:?}").contains("very-secret"));
}

#[test]
fn build_validates_without_io() {
    let bad = [
        (SquareConfig::builder(" ").build(), "access_token"),
        (SquareConfig::builder("a b").build(), "access_token"),
        (
            SquareConfig::builder("t").with_base_url("ftp://x").build(),
            "base_url",
        ),
        (
            SquareConfig::builder("t")
                .with_base_url("https://x/?k=v")
                .build(),
            "base_url",
        ),
        (
            SquareConfig::builder("t")
                .with_square_version("latest")
                .build(),
            "square_version",
        ),
        (
            SquareConfig::builder("t")
                .with_location_ids(Vec::<String>::new())
                .build(),
            "location_ids",
        ),
        (
            SquareConfig::builder("t").with_location_ids([""]).build(),
            "location_ids",
        ),
    ];
    for (result, field) in bad {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert_eq!(err.context_value("field"), Some(field), "{err}");
    }
    // An unreachable host is fine: nothing connects before the first request.
    let config = SquareConfig::builder("t")
        .with_base_url("http://10.255.255.1:9")
        .build()
        .unwrap();
    SquareSource::new(config).unwrap();
}

#[test]
fn every_stream_has_a_schema_and_one_capability_set() {
    let source = SquareSource::new(SquareConfig::builder("t").build().unwrap()).unwrap();
    assert_eq!(SquareSource::streams(), &STREAMS[..]);
    for stream in STREAMS {
        let schema = source.schema(stream).unwrap();
        assert_eq!(schema.name(), stream);
        let cursor = !schema.cursor().is_empty();
        assert_eq!(
            cursor,
            !matches!(stream, "locations" | "vendors"),
            "{stream}"
        );
    }
    let keys = |s: &str| {
        let schema = source.schema(s).unwrap();
        schema
            .primary_key()
            .iter()
            .map(|&i| schema.columns()[i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys("order_line_items"), ["order_id", "uid"]);
    assert_eq!(
        keys("catalog_item_location_availability"),
        ["variation_id", "location_id"]
    );
    assert_eq!(
        keys("inventory_counts"),
        ["catalog_object_id", "location_id", "state"]
    );
    assert_eq!(
        source.schema("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let caps = source.capabilities();
    assert_eq!(
        caps.strategies,
        vec![StrategyKind::Full, StrategyKind::Incremental]
    );
    assert!(!caps.fetch_latest && !caps.keyset);
}

#[tokio::test]
async fn requests_the_source_cannot_serve_are_typed_errors() {
    let source = SquareSource::new(SquareConfig::builder("t").build().unwrap()).unwrap();
    let request = |stream: &str, selector: PageSelector, since: Option<Vec<Value>>| PageRequest {
        stream: stream.into(),
        selector,
        since,
        until: None,
        limit: 10,
    };
    let cases = [
        (
            request("nope", PageSelector::First, None),
            ErrorKind::NotFound,
        ),
        (
            request("orders", PageSelector::Offset(10), None),
            ErrorKind::InvalidInput,
        ),
        (
            request("orders", PageSelector::Token("not json".into()), None),
            ErrorKind::InvalidInput,
        ),
        (
            request("orders", PageSelector::First, Some(vec![Value::from(3)])),
            ErrorKind::InvalidInput,
        ),
    ];
    for (req, kind) in cases {
        let err = source.fetch_page(&req).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
    }
}
