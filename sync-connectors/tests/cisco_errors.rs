//! Cisco answers recorded in the documented shapes (Search Devices, Get Device Details with
//! Cisco's timestamp format, the error envelope), bad answers as typed errors, and configs
//! rejected without I/O.

mod cisco_support;

use chrono::{Duration, Utc};
use cisco_support::*;
use sync_connectors::cisco::{CiscoConfig, CiscoSource};
use sync_connectors::http::Secret;
use sync_core::{ErrorKind, Key, PageRequest, PageSelector, RetryClass, Source, Value};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/cisco/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn first_hour() -> PageRequest {
    PageRequest {
        stream: "devices".into(),
        selector: PageSelector::First,
        since: Some(vec![Value::Timestamp(Utc::now() - Duration::hours(1))]),
        until: None,
        limit: 50,
    }
}

async fn serving(status: u16, name: &str, at: &str) -> (MockServer, CiscoSource) {
    let server = MockServer::start().await;
    Mock::given(path(at))
        .respond_with(ResponseTemplate::new(status).set_body_raw(fixture(name), "application/json"))
        .mount(&server)
        .await;
    let config = CiscoConfig::builder(
        format!("{}/rws/api/v1", server.uri()),
        USER,
        Secret::new(API_KEY),
    )
    .build()
    .unwrap();
    (server, CiscoSource::new(config).unwrap())
}

#[tokio::test]
async fn the_documented_search_answer_decodes() {
    let (_server, source) = serving(200, "search_devices.json", "/rws/api/v1/devices").await;
    let page = source.fetch_page(&first_hour()).await.unwrap();
    assert_eq!(page.next, None);
    let row = &page.rows[0];
    assert_eq!(row.get(0), &Value::from("8988216716970004975"));
    assert_eq!(row.get(1), &Value::from("ACTIVATED"));
    assert_eq!(row.get(2), &Value::from("hphlr rp1"));
    assert_eq!(row.get(3), &Value::from("CP_Basic_ON"));
    assert_eq!(
        row.get(4),
        &Value::Null,
        "search results have no dateUpdated"
    );
    assert_eq!(page.rows[1].get(1), &Value::from("DEACTIVATED"));
}

#[tokio::test]
async fn documented_device_details_read_the_cisco_timestamp_format() {
    let (_server, source) = serving(
        200,
        "device_details.json",
        "/rws/api/v1/devices/8988216716970004975",
    )
    .await;
    let rows = source
        .fetch_latest("devices", &[Key::text("8988216716970004975")])
        .await
        .unwrap();
    let at = Value::Timestamp("2016-07-06T22:04:04.380Z".parse().unwrap());
    assert_eq!(
        rows[0].get(4),
        &at,
        "dateUpdated 2016-07-06 22:04:04.380+0000"
    );
    assert_eq!(rows[0].get(5), &at, "the cursor");
}

#[tokio::test]
async fn the_recorded_error_envelopes_classify() {
    let (_s, source) = serving(400, "error_rate_limit.json", "/rws/api/v1/devices").await;
    let e = source.fetch_page(&first_hour()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_class()),
        (ErrorKind::RateLimited, RetryClass::Transient)
    );
    assert_eq!(e.context_value("detail"), Some("Rate Limit Exceeded"));
    let (_s, source) = serving(401, "error_credentials.json", "/rws/api/v1/devices").await;
    let e = source.fetch_page(&first_hour()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.retry_class()),
        (ErrorKind::Remote, RetryClass::Permanent)
    );
    assert_eq!(e.context_value("error_code"), Some("10000001"));
    assert_eq!(e.context_value("endpoint"), Some("devices"));
    assert_eq!(e.context_value("page"), Some("1"));
    assert!(!e.to_string().contains(API_KEY));
}

#[tokio::test(start_paused = true)]
async fn bad_answers_are_typed_permanent_errors() {
    let cases = [
        (Fault::Html, ErrorKind::InvalidInput),
        (Fault::Truncated, ErrorKind::InvalidInput),
        (Fault::NoLastPage, ErrorKind::InvalidInput),
        (
            Fault::Status(400, "10000024", "Invalid apiVersion"),
            ErrorKind::Remote,
        ),
    ];
    for (fault, kind) in cases {
        let fake = CiscoFake::start(devices(3, |i| Duration::minutes(i as i64))).await;
        fake.fault(fault.clone());
        let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
        let e = source.fetch_page(&first_hour()).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.retry_class()),
            (kind, RetryClass::Permanent),
            "{fault:?}: {e}"
        );
        assert_eq!(e.context_value("connector"), Some("cisco"), "{fault:?}");
        assert!(e.context_value("window").is_some(), "{fault:?}");
    }
    // Wrong credentials, seen by the health check.
    let fake = CiscoFake::start(devices(1, |_| Duration::minutes(1))).await;
    CiscoSource::new(config(&fake).build().unwrap())
        .unwrap()
        .check()
        .await
        .unwrap();
    let wrong = CiscoConfig::builder(&fake.base_url, USER, Secret::new("wrong"))
        .with_http(paused_http())
        .build()
        .unwrap();
    let e = CiscoSource::new(wrong).unwrap().check().await.unwrap_err();
    assert_eq!(
        (e.context_value("status"), e.context_value("error_code")),
        (Some("401"), Some("10000001"))
    );
}

#[test]
fn invalid_configs_are_rejected_without_io() {
    let b = || {
        CiscoConfig::builder(
            "https://restapi1.jasper.com/rws/api/v1",
            USER,
            Secret::new(API_KEY),
        )
    };
    let cases = [
        ("page over 50", b().with_page_size(51)),
        ("no page", b().with_page_size(0)),
        ("reserved filter", b().with_filter("pageNumber", "2")),
        ("windows under a second", b().with_windows(60_000, 10)),
        ("full window past a year", b().with_full_window_days(364)),
        ("negative lag", b().with_incremental(-1, 0)),
        (
            "bad url",
            CiscoConfig::builder("restapi1.jasper.com", USER, Secret::new(API_KEY)),
        ),
        (
            "empty key",
            CiscoConfig::builder("https://h/rws/api/v1", USER, Secret::new("")),
        ),
    ];
    for (what, builder) in cases {
        let e = builder.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{what}: {e}");
    }
    let config = b().build().unwrap();
    assert!(!format!("{config:?}").contains(API_KEY));
    assert_eq!(config.rate_limit.requests_per_second, Some(5.0));
    assert_eq!(config.rate_limit.max_concurrent, Some(1));
    // Serde data: the key never serializes, unknown fields are refused.
    let json = serde_json::to_value(&config).unwrap();
    assert!(!json.to_string().contains(API_KEY));
    let mut extra = json;
    extra["page_limit"] = 5.into();
    assert!(serde_json::from_value::<CiscoConfig>(extra).is_err());
    let parsed: CiscoConfig = serde_json::from_str(
        r#"{"base_url": "https://restapi1.jasper.com/rws/api/v1", "username": "u", "api_key": "k"}"#,
    )
    .unwrap();
    assert_eq!((parsed.page_size, parsed.full_window_days), (50, 30));
}
