//! Oracle errors: both body formats (the `o:errorDetails` JSON of framework version 4 and
//! later, plain text before) reach the error as `detail` and `error_code`; the HTTP status
//! decides kind and retry class; bad answers are typed errors naming connector, resource and
//! page.

mod oracle_support;

use oracle_support::*;
use sync_connectors::oracle::{OracleMode, OracleSource};
use sync_core::{Error, ErrorKind, PageRequest, PageSelector, RetryClass, Source};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn first() -> PageRequest {
    PageRequest {
        stream: "accounts".into(),
        selector: PageSelector::First,
        since: None,
        until: None,
        limit: 100,
    }
}

async fn fetch_error(fake: &OracleFake, version: u32, filter: Option<&str>) -> Error {
    let mut b = builder(&fake.base_url(), OracleMode::Keyset).with_framework_version(version);
    if let Some(f) = filter {
        b = b.with_filter(f);
    }
    let source = OracleSource::with_client(b.build().unwrap(), client()).unwrap();
    source.fetch_page(&first()).await.unwrap_err()
}

#[tokio::test]
async fn framework_v4_errors_carry_the_o_error_details() {
    let fake = OracleFake::start(5).await;
    fake.fault(Fault::Status(404, "The requested resource was not found."));
    let e = fetch_error(&fake, 4, None).await;
    assert_eq!(
        (e.kind(), e.retry_class()),
        (ErrorKind::Remote, RetryClass::Permanent)
    );
    assert_eq!(
        e.context_value("detail"),
        Some("The requested resource was not found.")
    );
    assert_eq!(e.context_value("error_code"), Some("FND-999"));
    assert_eq!(e.context_value("error_format"), Some("json"));
    assert_eq!(e.context_value("status"), Some("404"));
    assert_eq!(e.context_value("connector"), Some("oracle"));
    assert_eq!(e.context_value("resource"), Some("accounts"));
    assert_eq!(e.context_value("page"), Some("start"));
}

#[tokio::test]
async fn the_health_check_tries_one_record() {
    let fake = OracleFake::start(5).await;
    let source = OracleSource::with_client(
        builder(&fake.base_url(), OracleMode::Keyset)
            .build()
            .unwrap(),
        client(),
    )
    .unwrap();
    source.check().await.unwrap();
    assert_eq!(fake.requests()[0].0["limit"], "1");
    fake.fault(Fault::Status(401, "Unauthorized"));
    let e = source.check().await.unwrap_err();
    assert_eq!(e.context_value("status"), Some("401"));
}

#[tokio::test]
async fn earlier_framework_versions_answer_plain_text_which_is_the_detail() {
    let fake = OracleFake::start(5).await;
    fake.fault(Fault::Status(
        400,
        "Invalid operation create for the specified resource.",
    ));
    let e = fetch_error(&fake, 2, None).await;
    assert_eq!(e.kind(), ErrorKind::Remote);
    assert_eq!(
        e.context_value("detail"),
        Some("Invalid operation create for the specified resource.")
    );
    assert_eq!(e.context_value("error_format"), Some("text"));
    assert_eq!(e.context_value("error_code"), None);
}

#[tokio::test]
async fn a_q_the_server_rejects_is_a_permanent_400_with_its_detail() {
    let fake = OracleFake::start(5).await;
    for version in [4, 2] {
        let e = fetch_error(&fake, version, Some("Nope > 1")).await;
        assert_eq!(
            (e.kind(), e.retry_class(), e.context_value("status")),
            (ErrorKind::Remote, RetryClass::Permanent, Some("400"))
        );
        let detail = e.context_value("detail").unwrap();
        assert!(detail.contains("attribute Nope is not defined"), "{detail}");
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_transient() {
    let fake = OracleFake::start(5).await;
    for status in [429, 503] {
        fake.fault(Fault::Status(status, "Service busy, try again later."));
        let e = fetch_error(&fake, 4, None).await;
        assert!(e.is_transient(), "{status}: {e}");
        assert_eq!(
            e.context_value("detail"),
            Some("Service busy, try again later.")
        );
    }
}

#[tokio::test]
async fn the_recorded_error_bodies_parse_in_both_formats() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oracle");
    let cases = [
        (
            "error_v4.json",
            "application/vnd.oracle.adf.error+json",
            "URL request parameter q with value LastUpdateDate >> '2024-05-01' is not valid.",
            Some("27024"),
        ),
        (
            "error_plain.txt",
            "text/plain",
            "Invalid operation create for the specified resource.",
            None,
        ),
    ];
    for (file, content_type, detail, code) in cases {
        let server = MockServer::start().await;
        let body = std::fs::read(format!("{fixtures}/{file}")).unwrap();
        Mock::given(path(RESOURCE_PATH))
            .respond_with(ResponseTemplate::new(400).set_body_raw(body, content_type))
            .mount(&server)
            .await;
        let base = format!("{}/crmRestApi/resources/11.13.18.05", server.uri());
        let source = OracleSource::with_client(
            builder(&base, OracleMode::Keyset).build().unwrap(),
            client(),
        )
        .unwrap();
        let e = source.fetch_page(&first()).await.unwrap_err();
        assert_eq!(e.context_value("detail"), Some(detail), "{file}");
        assert_eq!(e.context_value("error_code"), code, "{file}");
        if code.is_some() {
            assert_eq!(e.context_value("error_path"), Some("q"));
        }
    }
}

#[tokio::test]
async fn bad_answers_are_typed_permanent_errors() {
    let cases = [
        (Fault::Html, ErrorKind::InvalidInput),
        (Fault::Truncated, ErrorKind::InvalidInput),
        (Fault::NoHasMore, ErrorKind::InvalidInput),
        (Fault::WrongCount, ErrorKind::InvalidInput),
        (Fault::Reversed, ErrorKind::Remote),
    ];
    for (fault, kind) in cases {
        let fake = OracleFake::start(5).await;
        fake.fault(fault.clone());
        let e = fetch_error(&fake, 4, None).await;
        assert_eq!(
            (e.kind(), e.retry_class()),
            (kind, RetryClass::Permanent),
            "{fault:?}: {e}"
        );
        assert_eq!(e.context_value("connector"), Some("oracle"), "{fault:?}");
        assert_eq!(e.context_value("page"), Some("start"), "{fault:?}");
    }
}

#[test]
fn invalid_configs_are_rejected_without_io() {
    let base = "https://pod.fa.em2.oraclecloud.com/crmRestApi/resources/latest";
    let cases: Vec<(&str, sync_connectors::oracle::OracleBuilder)> = vec![
        ("not a url", builder("pod/crmRestApi", OracleMode::Keyset)),
        (
            "v1 has no q",
            builder(base, OracleMode::Keyset).with_framework_version(1),
        ),
        (
            "page over max",
            builder(base, OracleMode::Keyset).with_page_size(501),
        ),
        (
            "unknown cursor",
            builder(base, OracleMode::Keyset).with_cursor("nope"),
        ),
        (
            "text cursor",
            builder(base, OracleMode::Keyset).with_cursor("name"),
        ),
        (
            "attribute with a quote",
            builder(base, OracleMode::Keyset).with_column(
                sync_core::Column::new("x", sync_core::ColumnType::Text)
                    .with_source_field("X' or 1=1"),
            ),
        ),
        (
            "blank filter",
            builder(base, OracleMode::Keyset).with_filter("  "),
        ),
    ];
    for (what, b) in cases {
        let e = b.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{what}: {e}");
    }
    let config = builder(base, OracleMode::Keyset)
        .with_auth(sync_connectors::http::Auth::Basic {
            username: "u".into(),
            password: sync_connectors::http::Secret::new("hunter2"),
        })
        .build()
        .unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
    // The config is serde data: it round-trips, and unknown fields are refused.
    let json = serde_json::to_value(&config).unwrap();
    let back: sync_connectors::oracle::OracleConfig = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back.resource, "accounts");
    let mut extra = json;
    extra["limit"] = 5.into();
    assert!(serde_json::from_value::<sync_connectors::oracle::OracleConfig>(extra).is_err());
}
