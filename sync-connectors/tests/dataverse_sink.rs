//! `DataverseSink` against the loopback fake: upserts by alternate key in `$batch`
//! changesets, per-operation results mapped to records, the insert race, 429 with
//! `Retry-After`, deletes, malformed responses and the configuration.

mod dataverse_support;

use std::sync::Arc;
use std::time::Duration;

use dataverse_support::{builder, fixture, restaurants, start, Failure};
use serde_json::json;
use sync_connectors::dataverse::{
    DataverseConfig, DataverseSink, EntityMapping, LookupMapping, RecordAction,
};
use sync_core::{
    CheckpointDelta, Column, ColumnType, Delivery, ErrorKind, Key, Position, RetryClass, Row,
    SequenceNo, Sink, StreamSchema, Value,
};

const SET: &str = "tr_restaurants";
const KEYS: &[(&str, &[&str])] = &[("tr_restaurants", &["tr_restaurantid"])];

fn schema() -> Arc<StreamSchema> {
    Arc::new(
        StreamSchema::builder("restaurants")
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::new("name", ColumnType::Text))
            .with_column(Column::new("seats", ColumnType::Integer))
            .with_column(Column::new("owner", ColumnType::Text))
            .with_primary_key(["id"])
            .build()
            .unwrap(),
    )
}

fn row(id: &str, seats: i64) -> Row {
    Row::new(vec![
        Value::from(id),
        Value::from(format!("Restaurant {id}")),
        Value::from(seats),
        Value::Null,
    ])
}

fn delivery(upserts: Vec<Row>, deletes: Vec<&str>) -> Delivery {
    Delivery {
        sync: "tr/restaurants".into(),
        schema: schema(),
        upserts,
        deletes: deletes.into_iter().map(Key::text).collect(),
        delta: CheckpointDelta {
            from: Position::Sequence(SequenceNo(0)),
            to: Position::Sequence(SequenceNo(4)),
        },
    }
}

fn sink(server: &wiremock::MockServer) -> DataverseSink {
    DataverseSink::new(builder(server).with_entity(restaurants()).build().unwrap()).unwrap()
}

fn key(id: &str) -> String {
    format!("tr_restaurantid={id}")
}

#[tokio::test]
async fn rows_are_upserted_by_alternate_key_in_one_batch_of_changesets() {
    let (server, fake) = start(KEYS).await;
    let sink = sink(&server);
    let receipt = sink
        .deliver(&delivery(
            vec![row("828", 40), row("834", 12), row("383", 80)],
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(receipt.delivered, 3);
    assert_eq!(
        fake.record(SET, &key("834")).unwrap(),
        json!({"tr_name": "Restaurant 834", "tr_seats": 12, "tr_restaurantid": "834"})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
    let batches = fake.batches();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.headers["prefer"], "odata.continue-on-error");
    assert_eq!(
        b.changesets.len(),
        3,
        "one changeset per operation by default"
    );
    let ids: Vec<_> = b.ops().map(|o| o.content_id.clone().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    for op in b.ops() {
        assert_eq!(op.method, "PATCH");
        assert_eq!(
            (op.if_match.as_deref(), op.if_none_match.as_deref()),
            (None, None)
        );
        assert!(!op.body.as_ref().unwrap().contains_key("tr_restaurantid"));
    }
    // The token was fetched once, for the environment's .default scope.
    let token_requests: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == dataverse_support::TOKEN_PATH)
        .collect();
    assert_eq!(token_requests.len(), 1);
    let form = String::from_utf8(token_requests[0].body.clone()).unwrap();
    assert!(form.contains("scope=http%3A%2F%2F127.0.0.1"), "{form}");
    assert!(form.contains(".default"), "{form}");
}

#[tokio::test]
async fn string_keys_are_quoted_with_doubled_single_quotes_and_percent_encoded() {
    let (server, fake) = start(KEYS).await;
    sink(&server)
        .deliver(&delivery(vec![row("Men's Shoes é", 3)], vec![]))
        .await
        .unwrap();
    let op = fake.batches()[0].ops().next().unwrap().clone();
    assert_eq!(op.raw_key, "tr_restaurantid='Men''s%20Shoes%20%C3%A9'");
    assert!(fake.record(SET, &key("Men's Shoes é")).is_some());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn keys_dataverse_cannot_address_are_refused_and_named_while_the_rest_is_delivered() {
    let (server, fake) = start(KEYS).await;
    let sink = sink(&server);
    let outcome = sink
        .send(&delivery(vec![row("a/b", 1), row("ok", 1)], vec![]))
        .await
        .unwrap();
    assert_eq!(outcome.delivered, 1);
    assert_eq!(outcome.failures.len(), 1);
    let f = &outcome.failures[0];
    assert_eq!(
        (f.key.clone(), f.status, f.retry),
        (Key::text("a/b"), None, RetryClass::Permanent)
    );
    assert!(f.message.contains("cannot address"), "{}", f.message);
    assert_eq!(fake.keys(SET), [key("ok")]);
    let err = sink
        .deliver(&delivery(vec![row("a/b", 1)], vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert!(
        err.context_value("records").unwrap().contains("a/b"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_operation_is_mapped_back_to_its_record_and_the_others_land() {
    let (server, fake) = start(KEYS).await;
    fake.state().fail.insert(
        key("834"),
        Failure {
            status: 400,
            body: fixture("error_validation.json"),
        },
    );
    let sink = sink(&server);
    let d = delivery(vec![row("828", 1), row("834", 1), row("383", 1)], vec![]);
    let outcome = sink.send(&d).await.unwrap();
    assert_eq!(outcome.delivered, 2);
    let f = &outcome.failures[0];
    assert_eq!(f.key, Key::text("834"));
    assert_eq!(f.action, RecordAction::Upsert);
    assert_eq!(
        (f.status, f.code.as_deref()),
        (Some(400), Some("0x80044331"))
    );
    assert!(f.message.contains("validation error"));
    assert_eq!(f.alternate_key.as_deref(), Some("tr_restaurantid='834'"));
    assert_eq!(fake.keys(SET), [key("383"), key("828")]);

    let err = sink.deliver(&d).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert_eq!(err.context_value("failed"), Some("1"));
    assert_eq!(err.context_value("connector"), Some("dataverse"));
    let records = err.context_value("records").unwrap();
    assert!(
        records.contains("tr_restaurantid='834'") && records.contains("0x80044331"),
        "{records}"
    );
}

#[tokio::test]
async fn the_first_insert_race_is_retried_as_an_update() {
    let (server, fake) = start(KEYS).await;
    fake.state().race_once.insert(key("674"));
    let outcome = sink(&server)
        .send(&delivery(vec![row("674", 9), row("125", 2)], vec![]))
        .await
        .unwrap();
    assert_eq!((outcome.delivered, outcome.race_retries), (2, 1));
    assert!(outcome.failures.is_empty());
    let record = fake.record(SET, &key("674")).unwrap();
    assert_eq!(record.get("tr_seats"), Some(&json!(9)));
    assert!(
        !record.contains_key("created_by"),
        "our values won: {record:?}"
    );
    let batches = fake.batches();
    assert_eq!(batches.len(), 2);
    let retried: Vec<_> = batches[1].ops().collect();
    assert_eq!(retried.len(), 1, "only the loser is sent again");
    assert_eq!(retried[0].if_match.as_deref(), Some("*"));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_batch_waits_for_retry_after() {
    let (server, fake) = start(KEYS).await;
    fake.state().throttle_batches.push_back(7);
    let started = tokio::time::Instant::now();
    let receipt = sink(&server)
        .deliver(&delivery(vec![row("1", 1)], vec![]))
        .await
        .unwrap();
    assert_eq!(receipt.delivered, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.keys(SET), [key("1")]);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_operation_is_sent_again_after_its_retry_after() {
    let (server, fake) = start(KEYS).await;
    fake.state().throttle_ops.insert(key("2"), 1);
    let started = tokio::time::Instant::now();
    let outcome = sink(&server)
        .send(&delivery(vec![row("1", 1), row("2", 1)], vec![]))
        .await
        .unwrap();
    assert_eq!((outcome.delivered, outcome.failures.len()), (2, 0));
    assert!(started.elapsed() >= Duration::from_secs(3));
    let batches = fake.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].ops().count(), 1);
}

#[tokio::test(start_paused = true)]
async fn throttling_that_never_ends_is_a_transient_rate_limited_error() {
    let (server, fake) = start(KEYS).await;
    fake.state().throttle_ops.insert(key("2"), 100);
    let err = sink(&server)
        .deliver(&delivery(vec![row("1", 1), row("2", 1)], vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.is_transient());
    assert_eq!(fake.keys(SET), [key("1")]);
}

#[tokio::test]
async fn a_failed_changeset_rolls_back_and_its_innocent_members_are_sent_again() {
    let (server, fake) = start(KEYS).await;
    fake.state().fail.insert(
        key("b"),
        Failure {
            status: 400,
            body: fixture("error_validation.json"),
        },
    );
    let config = builder(&server)
        .with_entity(restaurants())
        .with_changeset_size(3)
        .build()
        .unwrap();
    let outcome = DataverseSink::new(config)
        .unwrap()
        .send(&delivery(
            vec![row("a", 1), row("b", 1), row("c", 1)],
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(outcome.delivered, 2);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!(outcome.failures[0].key, Key::text("b"));
    let batches = fake.batches();
    assert_eq!(batches[0].changesets.len(), 1);
    assert_eq!(batches[0].changesets[0].len(), 3);
    assert_eq!(fake.keys(SET), [key("a"), key("c")]);
}

#[tokio::test]
async fn batches_hold_at_most_batch_size_operations() {
    let (server, fake) = start(KEYS).await;
    let config = builder(&server)
        .with_entity(restaurants())
        .with_batch_size(1000)
        .build()
        .unwrap();
    let rows: Vec<Row> = (0..2500).map(|i| row(&format!("r{i:04}"), i)).collect();
    let receipt = DataverseSink::new(config)
        .unwrap()
        .deliver(&delivery(rows, vec![]))
        .await
        .unwrap();
    assert_eq!(receipt.delivered, 2500);
    let sizes: Vec<usize> = fake.batches().iter().map(|b| b.ops().count()).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    assert!(fake.violations().is_empty());
    assert_eq!(fake.keys(SET).len(), 2500);
    assert!(
        DataverseConfig::builder("https://org.crm.dynamics.com/api/data/v9.2/")
            .with_entity(restaurants())
            .with_batch_size(1001)
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn deletes_remove_records_and_a_record_already_gone_counts_as_deleted() {
    let (server, fake) = start(KEYS).await;
    let sink = sink(&server);
    sink.deliver(&delivery(vec![row("x", 1)], vec![]))
        .await
        .unwrap();
    let receipt = sink
        .deliver(&delivery(vec![], vec!["x", "never"]))
        .await
        .unwrap();
    assert_eq!(receipt.delivered, 2);
    assert!(fake.keys(SET).is_empty());
    let ops: Vec<_> = fake.batches()[1].ops().map(|o| o.method.clone()).collect();
    assert_eq!(ops, ["DELETE", "DELETE"]);
    // Delivering the same again changes nothing (idempotent per key).
    sink.deliver(&delivery(vec![], vec!["x", "never"]))
        .await
        .unwrap();
}

#[tokio::test]
async fn lookups_are_sent_as_odata_bind_references() {
    let (server, fake) = start(KEYS).await;
    let mapping = restaurants().with_lookup(LookupMapping {
        column: "owner".into(),
        navigation_property: "tr_ownerid".into(),
        entity_set: "accounts".into(),
        key_attribute: Some("accountnumber".into()),
    });
    let config = builder(&server).with_entity(mapping).build().unwrap();
    let mut r = row("1", 1);
    r.values_mut()[3] = Value::from("O'Hara");
    DataverseSink::new(config)
        .unwrap()
        .deliver(&delivery(vec![r, row("2", 1)], vec![]))
        .await
        .unwrap();
    let ops: Vec<_> = fake.batches()[0].ops().cloned().collect();
    assert_eq!(
        ops[0].body.as_ref().unwrap()["tr_ownerid@odata.bind"],
        json!("/accounts(accountnumber='O''Hara')")
    );
    assert!(!ops[1]
        .body
        .as_ref()
        .unwrap()
        .contains_key("tr_ownerid@odata.bind"));
}

#[tokio::test]
async fn the_documented_continue_on_error_response_maps_to_its_two_records() {
    let (server, fake) = start(KEYS).await;
    fake.state().canned.push_back((
        200,
        "multipart/mixed; boundary=batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139".into(),
        fixture("batch_response_continue_on_error.txt"),
    ));
    let outcome = sink(&server)
        .send(&delivery(vec![row("long", 1), row("fine", 1)], vec![]))
        .await
        .unwrap();
    assert_eq!(outcome.delivered, 1);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!(outcome.failures[0].key, Key::text("long"));
    assert_eq!(outcome.failures[0].code.as_deref(), Some("0x80044331"));
}

#[tokio::test]
async fn responses_that_are_not_a_batch_response_are_typed_errors() {
    let cases = [
        (
            200,
            "text/html",
            "<html><body>Sign in</body></html>".to_owned(),
        ),
        (
            200,
            "multipart/mixed; boundary=b",
            "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n".to_owned(),
        ),
        (
            200,
            "multipart/mixed; boundary=b",
            "--b\r\nContent-Type: application/http\r\n\r\nnot http\r\n--b--\r\n".to_owned(),
        ),
    ];
    for (status, ct, body) in cases {
        let (server, fake) = start(KEYS).await;
        fake.state()
            .canned
            .push_back((status, ct.into(), body.clone()));
        let err = sink(&server)
            .deliver(&delivery(vec![row("1", 1)], vec![]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{body}: {err}");
        assert_eq!(err.retry_class(), RetryClass::Permanent);
        assert_eq!(err.context_value("endpoint"), Some("$batch"));
    }
}

#[tokio::test]
async fn a_bad_credential_is_a_permanent_error_without_the_secret() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path(dataverse_support::TOKEN_PATH))
        .respond_with(wiremock::ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided."
        })))
        .mount(&server)
        .await;
    let err = sink(&server)
        .deliver(&delivery(vec![row("1", 1)], vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert!(!format!("{err} {err:?}").contains(dataverse_support::CLIENT_SECRET));
}

#[test]
fn config_is_serde_data_that_never_shows_the_secret() {
    let text = r#"{
        "base_url": "https://org.crm.dynamics.com/api/data/v9.2",
        "auth": {"type": "oauth2_client_credentials",
                 "token_url": "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                 "client_id": "id", "client_secret": "s3cr3t-value",
                 "scopes": ["https://org.crm.dynamics.com/.default"], "client_auth": "body"},
        "entities": [{"stream": "restaurants", "entity_set": "tr_restaurants",
                      "alternate_key": [{"column": "id", "attribute": "tr_restaurantid"}],
                      "attributes": [{"column": "name", "attribute": "tr_name"}]}],
        "batch_size": 50
    }"#;
    let mut config: DataverseConfig = serde_json::from_str(text).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.base_url,
        "https://org.crm.dynamics.com/api/data/v9.2/"
    );
    assert_eq!(config.changeset_size, 1);
    assert_eq!(config.rate_limit.max_concurrent, Some(16));
    assert!(!format!("{config:?}").contains("s3cr3t-value"));
    let unknown = text.replace("\"batch_size\"", "\"batchsize\"");
    assert!(serde_json::from_str::<DataverseConfig>(&unknown).is_err());

    let built = DataverseConfig::builder("https://org.crm.dynamics.com/api/data/v9.2/")
        .with_client_credentials("tenant", "id", sync_connectors::http::Secret::new("x"))
        .with_entity(restaurants())
        .build()
        .unwrap();
    match &built.auth {
        sync_connectors::http::Auth::OAuth2ClientCredentials {
            token_url, scopes, ..
        } => {
            assert_eq!(
                token_url,
                "https://login.microsoftonline.com/tenant/oauth2/v2.0/token"
            );
            assert_eq!(scopes, &["https://org.crm.dynamics.com/.default"]);
        }
        other => panic!("{other:?}"),
    }
    // A key attribute also mapped into the body, and a mapping without a key, are refused.
    let twice = restaurants().with_attribute("id", "tr_restaurantid");
    let no_key = EntityMapping::new("restaurants", "tr_restaurants");
    for bad in [twice, no_key] {
        assert!(
            DataverseConfig::builder("https://org.crm.dynamics.com/api/data/v9.2/")
                .with_entity(bad)
                .build()
                .is_err()
        );
    }
}

#[tokio::test]
async fn a_mapping_naming_an_unknown_column_fails_the_delivery_as_config() {
    let (server, _fake) = start(KEYS).await;
    let config = builder(&server)
        .with_entity(restaurants().with_attribute("nope", "tr_nope"))
        .build()
        .unwrap();
    let err = DataverseSink::new(config)
        .unwrap()
        .deliver(&delivery(vec![row("1", 1)], vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
