//! `SqsChangeFeed` and `SqsClient` against the loopback SQS fake: long-poll receives of SNS
//! envelopes, appends keyed by message id, deletes after the append, redelivery after a crash,
//! dead letters, errors and the configuration.

mod sqs_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sqs_support::{builder, change, fixture, start, FakeSqs};
use sync_connectors::http::{HttpConfig, Secret};
use sync_connectors::sqs::{AwsCredentials, Envelope, IdType, SqsChangeFeed, SqsClient, SqsConfig};
use sync_core::memory::MemoryStore;
use sync_core::{ChangeQueue, ErrorKind, Key, QueueEntry, Result, RetryClass, SequenceNo, Window};

const Q: &str = "restaurant_changes";

/// A change queue whose next append commits and then reports an error, as a process that
/// dies (or loses its connection) right after the append's transaction committed.
#[derive(Debug)]
struct CrashAfterAppend {
    inner: Arc<MemoryStore>,
    armed: AtomicBool,
}

#[async_trait]
impl ChangeQueue for CrashAfterAppend {
    async fn append(&self, queue: &str, entities: &[Key]) -> Result<Vec<SequenceNo>> {
        let seqs = self.inner.append(queue, entities).await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            return Err(sync_core::Error::new(
                ErrorKind::InjectedFault,
                "crash after append",
            ));
        }
        Ok(seqs)
    }
    async fn read_window(&self, queue: &str, window: Window) -> Result<Vec<QueueEntry>> {
        self.inner.read_window(queue, window).await
    }
    async fn safe_high_water_mark(&self, queue: &str) -> Result<SequenceNo> {
        self.inner.safe_high_water_mark(queue).await
    }
}

async fn entries(store: &MemoryStore) -> Vec<String> {
    store
        .read_window(
            Q,
            Window::new(SequenceNo(0), SequenceNo(u128::MAX)).unwrap(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entity.0[0].as_str().unwrap().to_owned())
        .collect()
}

fn feed(server: &wiremock::MockServer, store: &Arc<MemoryStore>) -> SqsChangeFeed {
    SqsChangeFeed::new(
        builder(server, Q).build().unwrap(),
        store.clone(),
        store.clone(),
    )
    .unwrap()
}

fn publish_all(fake: &FakeSqs, ids: &[&str]) {
    for id in ids {
        fake.publish(id, change(id));
    }
}

#[tokio::test]
async fn notifications_are_appended_in_order_then_deleted() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    publish_all(&fake, &["828", "834", "383", "674"]);
    let report = feed(&server, &store).poll().await.unwrap();
    assert_eq!(report.received, 4);
    assert_eq!(report.appended, (1..=4).map(SequenceNo).collect::<Vec<_>>());
    assert_eq!(report.deleted, 4);
    assert_eq!(entries(&store).await, ["828", "834", "383", "674"]);
    assert_eq!(fake.in_queue(), 0);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let receive = &fake.calls("ReceiveMessage")[0];
    assert_eq!(receive["WaitTimeSeconds"], 20);
    assert_eq!(receive["MaxNumberOfMessages"], 10);
    assert!(receive["ReceiveRequestAttemptId"].is_string());
    // The journal is empty again once everything was deleted.
    let journal = sync_core::Checkpoint::load(&*store, "sqs-feed/restaurant_changes")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(journal.state.extra["pending"], serde_json::json!([]));
}

#[tokio::test]
async fn fifo_sequence_numbers_are_kept_as_128_bit_values() {
    let (server, fake) = start().await;
    fake.publish("g", change("1"));
    fake.publish("g", change("2"));
    let client = SqsClient::new(builder(&server, Q).build().unwrap()).unwrap();
    let messages = client.receive().await.unwrap();
    assert_eq!(messages.len(), 2);
    let (a, b) = (&messages[0], &messages[1]);
    assert!(a.sequence_number.unwrap().0 > u64::MAX as u128);
    assert!(
        b.sequence_number > a.sequence_number,
        "increasing within the group"
    );
    assert!(a.sns_sequence_number.unwrap().0 > i64::MAX as u128);
    assert_eq!(a.message_group_id.as_deref(), Some("g"));
    assert_eq!(a.receive_count, 1);
    assert_eq!(a.entity, Ok(Key::text("1")));
    assert_eq!(a.idempotency_key(), a.sns_message_id.as_deref().unwrap());
}

#[tokio::test]
async fn the_documented_message_shape_is_read() {
    let (server, fake) = start().await;
    fake.state()
        .fail_next
        .entry("ReceiveMessage".into())
        .or_default()
        .push_back((200, fixture("receive_message.json")));
    let client = SqsClient::new(builder(&server, Q).build().unwrap()).unwrap();
    let m = client.receive().await.unwrap().remove(0);
    assert_eq!(m.entity, Ok(Key::text("828")));
    assert_eq!(
        m.sequence_number,
        Some(SequenceNo(18_849_496_460_467_696_128))
    );
    assert_eq!(
        m.sns_sequence_number,
        Some(SequenceNo(10_000_000_000_000_004_000))
    );
    assert_eq!(
        m.sns_message_id.as_deref(),
        Some("a7c9d2fa-77fa-5184-9de9-89391027cc7d")
    );
    assert_eq!(m.message_group_id.as_deref(), Some("828"));
}

#[tokio::test]
async fn a_crash_between_append_and_delete_redelivers_and_does_not_duplicate() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(CrashAfterAppend {
        inner: store.clone(),
        armed: AtomicBool::new(true),
    });
    let config = builder(&server, Q).build().unwrap();
    let feed = SqsChangeFeed::new(config, queue, store.clone()).unwrap();
    publish_all(&fake, &["828", "834", "383"]);
    let err = feed.poll().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InjectedFault);
    assert_eq!(
        entries(&store).await,
        ["828", "834", "383"],
        "the append committed"
    );
    assert_eq!(fake.in_queue(), 3, "nothing was deleted");

    // The visibility timeout passes; the messages come back.
    fake.advance(31);
    fake.publish("674", change("674"));
    let report = feed.poll().await.unwrap();
    assert_eq!((report.received, report.duplicates), (4, 3));
    assert_eq!(report.appended, [SequenceNo(4)]);
    assert_eq!(report.deleted, 4);
    assert_eq!(entries(&store).await, ["828", "834", "383", "674"]);
    assert_eq!(fake.in_queue(), 0);
}

#[tokio::test]
async fn a_failed_delete_is_recognised_when_the_message_comes_back() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    let feed = feed(&server, &store);
    publish_all(&fake, &["1", "2"]);
    fake.state().fail_next_deletes = true;
    let report = feed.poll().await.unwrap();
    assert_eq!(report.appended.len(), 2);
    assert_eq!(report.delete_failed.len(), 2);
    assert!(report.delete_failed[0]
        .1
        .starts_with("ReceiptHandleIsInvalid"));
    fake.advance(31);
    let report = feed.poll().await.unwrap();
    assert_eq!(
        (report.duplicates, report.deleted, report.appended.len()),
        (2, 2, 0)
    );
    assert_eq!(entries(&store).await, ["1", "2"]);
}

#[tokio::test]
async fn a_delete_after_the_visibility_timeout_fails_and_the_message_returns() {
    let (server, fake) = start().await;
    fake.publish("g", change("1"));
    let client = SqsClient::new(builder(&server, Q).build().unwrap()).unwrap();
    let first = client.receive().await.unwrap();
    fake.advance(31);
    let outcome = client
        .delete(&first.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(outcome.deleted.is_empty());
    assert_eq!(outcome.failed.len(), 1);
    let again = client.receive().await.unwrap();
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
}

#[tokio::test]
async fn the_long_poll_returns_a_message_that_becomes_visible_within_the_wait() {
    let (server, fake) = start().await;
    fake.publish("g", change("1"));
    let client = SqsClient::new(builder(&server, Q).build().unwrap()).unwrap();
    assert_eq!(client.receive().await.unwrap().len(), 1);
    fake.advance(15);
    // In flight until t=30; the 20 s wait reaches it.
    let again = client.receive().await.unwrap();
    assert_eq!((again.len(), again[0].receive_count), (1, 2));
    assert_eq!(fake.state().waits, [20, 20]);
    // Nothing within the wait: an empty answer, not an error.
    let empty = SqsClient::new(
        builder(&server, Q)
            .with_wait_time_seconds(1)
            .build()
            .unwrap(),
    )
    .unwrap()
    .receive()
    .await
    .unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn unreadable_messages_are_never_deleted_and_go_to_the_dead_letter_queue() {
    let (server, fake) = start().await;
    fake.state().max_receive_count = Some(3);
    let store = Arc::new(MemoryStore::new());
    let config = builder(&server, Q)
        .with_max_receive_count(3)
        .build()
        .unwrap();
    let feed = SqsChangeFeed::new(config, store.clone(), store.clone()).unwrap();
    let poison = fake.send_raw("g1", "<html>not an sns notification</html>");
    fake.publish("g1", change("after-poison"));
    fake.publish("g2", change("ok"));
    let mut dead = Vec::new();
    for _ in 0..3 {
        let r = feed.poll().await.unwrap();
        assert!(r.rejected.iter().all(|(id, _)| id == &poison));
        dead.extend(r.dead_letter_bound);
        fake.advance(31);
    }
    assert_eq!(
        dead,
        std::slice::from_ref(&poison),
        "reported once it reached max_receive_count"
    );
    assert_eq!(entries(&store).await, ["after-poison", "ok"]);
    assert_eq!(fake.in_queue(), 1, "only the poison message is left");
    // The redrive policy moves it on the next receive; the feed deleted nothing of it.
    let r = feed.poll().await.unwrap();
    assert_eq!(r.received, 0);
    assert_eq!(fake.state().dead_letters.len(), 1);
    assert_eq!(fake.state().dead_letters[0].id, poison);
    assert_eq!(fake.state().dead_letters[0].receive_count, 3);
}

#[tokio::test]
async fn the_same_notification_twice_in_one_receive_is_appended_once() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    fake.publish("a", change("7"));
    let body = fake.state().messages[0].body.clone();
    fake.send_raw("b", &body);
    let report = feed(&server, &store).poll().await.unwrap();
    assert_eq!(
        (report.received, report.duplicates, report.deleted),
        (2, 1, 2)
    );
    assert_eq!(entries(&store).await, ["7"]);
}

#[tokio::test]
async fn raw_delivery_and_integer_ids_at_a_nested_path() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    fake.send_raw("g", r#"{"restaurant":{"id":674}}"#);
    let config = builder(&server, Q)
        .with_envelope(Envelope::Raw)
        .with_id("restaurant.id", IdType::Integer)
        .build()
        .unwrap();
    let feed = SqsChangeFeed::new(config, store.clone(), store.clone()).unwrap();
    feed.poll().await.unwrap();
    let got = store
        .read_window(Q, Window::new(SequenceNo(0), SequenceNo(9)).unwrap())
        .await
        .unwrap();
    assert_eq!(got[0].entity, Key(vec![sync_core::Value::from(674)]));
}

#[tokio::test]
async fn throttling_is_retried_and_a_missing_queue_is_permanent() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    fake.publish("g", change("1"));
    fake.state()
        .fail_next
        .entry("ReceiveMessage".into())
        .or_default()
        .push_back((400, fixture("error_throttling.json")));
    let report = feed(&server, &store).poll().await.unwrap();
    assert_eq!(report.appended.len(), 1);

    let mut config = builder(&server, Q).build().unwrap();
    config.queue_url = "https://sqs.eu-west-1.amazonaws.com/111122223333/nope.fifo".into();
    let err = SqsClient::new(config).unwrap().receive().await.unwrap_err();
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert_eq!(err.context_value("aws_error"), Some("QueueDoesNotExist"));
    assert_eq!(err.context_value("connector"), Some("sqs"));
}

#[tokio::test]
async fn a_wrong_secret_fails_the_signature_check_without_showing_the_secret() {
    let (server, fake) = start().await;
    let mut config = builder(&server, Q).build().unwrap();
    config.credentials.secret_access_key = Secret::new("wrong-secret-value-123");
    let err = SqsClient::new(config).unwrap().receive().await.unwrap_err();
    assert_eq!(err.context_value("status"), Some("403"));
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    assert!(!format!("{err} {err:?}").contains("wrong-secret-value-123"));
    assert_eq!(fake.violations(), ["signature does not match"]);
}

#[tokio::test]
async fn a_malformed_receive_response_is_a_typed_error_and_appends_nothing() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    fake.publish("g", change("1"));
    for body in [
        "<html>502 Bad Gateway</html>",
        r#"{"Messages":[{"MessageId":1}]}"#,
    ] {
        fake.state()
            .fail_next
            .entry("ReceiveMessage".into())
            .or_default()
            .push_back((200, body.into()));
        let err = feed(&server, &store).poll().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{body}");
        assert_eq!(err.retry_class(), RetryClass::Permanent);
    }
    assert!(entries(&store).await.is_empty());
    assert_eq!(fake.in_queue(), 1);
}

#[tokio::test]
async fn a_second_feed_on_the_same_journal_fences_the_first_out() {
    let (server, fake) = start().await;
    let store = Arc::new(MemoryStore::new());
    let (a, b) = (feed(&server, &store), feed(&server, &store));
    fake.publish("g1", change("1"));
    a.poll().await.unwrap();
    fake.publish("g2", change("2"));
    b.poll().await.unwrap();
    fake.publish("g3", change("3"));
    let err = a.poll().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced);
    assert_eq!(
        entries(&store).await,
        ["1", "2"],
        "the fenced feed appended nothing"
    );
    assert_eq!(fake.in_queue(), 1, "and deleted nothing");
}

#[test]
fn config_is_serde_data_that_never_shows_the_secret() {
    let text = r#"{
        "queue_url": "https://sqs.eu-west-1.amazonaws.com/111122223333/restaurants.fifo",
        "region": "eu-west-1",
        "credentials": {"access_key_id": "AKIA1", "secret_access_key": "s3cr3t-k3y",
                        "session_token": "t0k3n"},
        "change_queue": "restaurant_changes",
        "id_path": "key"
    }"#;
    let config: SqsConfig = serde_json::from_str(text).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.endpoint_url(),
        "https://sqs.eu-west-1.amazonaws.com/"
    );
    assert_eq!((config.max_messages, config.wait_time_seconds), (10, 20));
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cr3t-k3y") && !debug.contains("t0k3n"),
        "{debug}"
    );
    assert!(serde_json::from_str::<SqsConfig>(&text.replace("\"id_path\"", "\"idpath\"")).is_err());

    let creds = AwsCredentials::new("AKIA1", Secret::new("x"));
    let base = || SqsConfig::builder(sqs_support::QUEUE_URL, "eu-west-1", creds.clone(), "q");
    assert!(base().with_max_messages(11).build().is_err());
    assert!(base().with_wait_time_seconds(21).build().is_err());
    let short = HttpConfig {
        read_timeout_ms: Some(20_000),
        ..HttpConfig::default()
    };
    assert!(
        base().with_http(short).build().is_err(),
        "read timeout below the long poll"
    );
    assert!(base().build().is_ok());
}
