//! A loopback fake of SQS speaking the AWS JSON 1.0 protocol, fed by a fake SNS FIFO topic.
//!
//! It reproduces: `ReceiveMessage` (MaxNumberOfMessages 1..=10, long poll on a logical clock:
//! an empty queue whose next message becomes visible within `WaitTimeSeconds` jumps the clock
//! there instead of sleeping), the visibility timeout (an undeleted message comes back with a
//! new receipt handle and a larger `ApproximateReceiveCount`), FIFO group blocking while a
//! message of the group is in flight, a redrive policy (`maxReceiveCount` into a DLQ),
//! `DeleteMessageBatch` (a stale receipt handle or an expired visibility fails the entry),
//! 128-bit `SequenceNumber`s increasing per group with gaps, SNS envelopes with their own
//! sequence numbers, JSON error bodies (`__type`), injected failures, and a full SigV4 check of
//! every request (computed here independently of the connector's signer).
//! shared/reference/api-semantics.md, section 5, is the contract it follows.
//!
//! ```no_run
//! # async fn demo() -> sync_core::Result<()> {
//! use std::sync::Arc;
//! use sync_connectors::fakes::sqs::{builder, change, start};
//! use sync_connectors::sqs::SqsChangeFeed;
//! use sync_core::memory::MemoryStore;
//!
//! let (server, fake) = start().await;
//! fake.publish("828", change("828"));
//! let store = Arc::new(MemoryStore::new());
//! let feed = SqsChangeFeed::new(builder(&server, "changes").build()?, store.clone(), store)?;
//! let report = feed.poll().await?;
//! # let _ = report;
//! # Ok(()) }
//! ```

mod actions;
mod sigv4;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value as Json};
use wiremock::matchers::method;
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use actions::{delete_batch, receive};
use sigv4::verify_signature;

/// The loopback HTTP server the fake runs on (wiremock's); dropping it stops the fake.
pub use wiremock::MockServer;

/// The access key id the fake accepts.
pub const ACCESS_KEY: &str = "AKIAFAKEFAKEFAKE0001";
/// The secret access key the fake signs with (a test value; never printed).
pub const SECRET_KEY: &str = "fake/Secret+Key/do-not-print-0123456789";
/// The region of the fake queue.
pub const REGION: &str = "eu-west-1";
/// The queue URL requests must name.
pub const QUEUE_URL: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/restaurants.fifo";

/// The recorded responses the fake answers with, by file name.
const FIXTURES: &[(&str, &str)] = &[
    (
        "error_invalid_signature.json",
        include_str!("../../tests/fixtures/sqs/error_invalid_signature.json"),
    ),
    (
        "error_queue_does_not_exist.json",
        include_str!("../../tests/fixtures/sqs/error_queue_does_not_exist.json"),
    ),
    (
        "error_throttling.json",
        include_str!("../../tests/fixtures/sqs/error_throttling.json"),
    ),
    (
        "receive_message.json",
        include_str!("../../tests/fixtures/sqs/receive_message.json"),
    ),
];

/// A recorded SQS response by file name (`receive_message.json`, `error_throttling.json`,
/// ...), `None` for a name the fake does not hold.
pub fn fixture(name: &str) -> Option<&'static str> {
    FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A fixture the fake itself needs (compiled in, so always there).
fn own(name: &str) -> String {
    fixture(name).map(str::to_owned).unwrap_or_default()
}

/// One message in the fake queue.
#[derive(Debug, Clone)]
pub struct FakeMessage {
    /// The SQS message id.
    pub id: String,
    /// The body (an SNS envelope, or a raw body).
    pub body: String,
    /// The FIFO message group.
    pub group: String,
    /// The deduplication id.
    pub dedup: String,
    /// The 128-bit SQS sequence number.
    pub seq: u128,
    /// Receives so far.
    pub receive_count: u32,
    /// Logical second it becomes visible again.
    pub visible_at: u64,
    /// The receipt handle of the last receive.
    pub receipt: Option<String>,
    /// Logical second it was sent.
    pub sent: u64,
}

/// What the fake queue holds and saw, and the faults armed in it.
#[derive(Debug, Default)]
pub struct State {
    /// Logical seconds.
    pub clock: u64,
    /// The queue's default visibility timeout, in seconds.
    pub visibility_timeout: u64,
    /// Messages in the queue, in send order.
    pub messages: Vec<FakeMessage>,
    /// Messages the redrive policy moved out.
    pub dead_letters: Vec<FakeMessage>,
    /// The redrive policy's maxReceiveCount.
    pub max_receive_count: Option<u32>,
    /// Ids of deleted messages.
    pub deleted: Vec<String>,
    /// (target, request body) of every request.
    pub calls: Vec<(String, Json)>,
    /// WaitTimeSeconds of each receive.
    pub waits: Vec<u64>,
    /// Every way a client broke the contract.
    pub violations: Vec<String>,
    /// The next request to this action fails with (status, body).
    pub fail_next: BTreeMap<String, VecDeque<(u16, String)>>,
    /// Entries of the next DeleteMessageBatch fail with ReceiptHandleIsInvalid.
    pub fail_next_deletes: bool,
    next_seq: BTreeMap<String, u128>,
    next_sns_seq: u128,
    counter: u64,
}

/// The fake, shared with its responder.
#[derive(Debug, Clone, Default)]
pub struct FakeSqs(pub Arc<Mutex<State>>);

impl FakeSqs {
    /// Its state, locked (a poisoned lock is taken over: the state stays readable).
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `message` (a JSON value) to the fake SNS FIFO topic in `group`; it lands in
    /// the queue wrapped in an SNS envelope. Returns the SQS message id.
    pub fn publish(&self, group: &str, message: Json) -> String {
        let mut st = self.state();
        st.counter += 1;
        st.next_sns_seq += 1_000_000_007;
        let sns_id = format!("5e3c{:04x}-77fa-5184-9de9-{:012x}", st.counter, st.counter);
        let sns_seq = 10_000_000_000_000_004_000u128 + st.next_sns_seq;
        let envelope = json!({
            "Type": "Notification",
            "MessageId": sns_id,
            "SequenceNumber": sns_seq.to_string(),
            "TopicArn": "arn:aws:sns:eu-west-1:111122223333:Restaurants.fifo",
            "Message": message.to_string(),
            "Timestamp": "2024-01-01T00:00:00.000Z",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        });
        let body = serde_json::to_string_pretty(&envelope).unwrap_or_default();
        Self::enqueue(&mut st, group, body, sns_id)
    }

    /// A raw body (not an SNS envelope) into the queue.
    pub fn send_raw(&self, group: &str, body: &str) -> String {
        let mut st = self.state();
        st.counter += 1;
        let dedup = format!("raw-{}", st.counter);
        Self::enqueue(&mut st, group, body.to_owned(), dedup)
    }

    fn enqueue(st: &mut State, group: &str, body: String, dedup: String) -> String {
        // Per group: increasing, with gaps, beyond u64::MAX.
        let gap = 1 + (st.counter as u128 * 7919) % 1000;
        let seq = st
            .next_seq
            .entry(group.to_owned())
            .or_insert(18_849_496_460_467_696_128);
        *seq += gap;
        let seq = *seq;
        let id = format!("{:08x}-4cc7-4302-9e22-{:012x}", st.counter, seq % 1_000_000);
        let sent = st.clock;
        st.messages.push(FakeMessage {
            id: id.clone(),
            body,
            group: group.to_owned(),
            dedup,
            seq,
            receive_count: 0,
            visible_at: 0,
            receipt: None,
            sent,
        });
        id
    }

    /// Moves the logical clock.
    pub fn advance(&self, secs: u64) {
        self.state().clock += secs;
    }

    /// Messages still in the queue (in flight or not).
    pub fn in_queue(&self) -> usize {
        self.state().messages.len()
    }

    /// Every contract violation seen.
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    /// The request bodies of every call to `action` (`ReceiveMessage`).
    pub fn calls(&self, action: &str) -> Vec<Json> {
        self.state()
            .calls
            .iter()
            .filter(|(t, _)| t == &format!("AmazonSQS.{action}"))
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// A feed configuration for the fake: ids at `key` of the SNS message, no timeouts (paused
/// clock tests), fast retries.
pub fn builder(server: &MockServer, change_queue: &str) -> crate::sqs::SqsBuilder {
    use crate::http::{HttpConfig, Secret};
    use crate::sqs::{AwsCredentials, IdType, SqsConfig};
    SqsConfig::builder(
        QUEUE_URL,
        REGION,
        AwsCredentials::new(ACCESS_KEY, Secret::new(SECRET_KEY)),
        change_queue,
    )
    .with_endpoint(format!("{}/", server.uri()))
    .with_id("key", IdType::Text)
    .with_retry(sync_core::RetryPolicy::default().with_backoff(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(5),
    ))
    .with_http(HttpConfig {
        connect_timeout_ms: None,
        read_timeout_ms: None,
        total_timeout_ms: None,
        pool_idle_timeout_ms: None,
        ..HttpConfig::default()
    })
}

/// The published message of restaurant `id`.
pub fn change(id: &str) -> Json {
    json!({"entity": "restaurant", "key": id, "op": "upsert"})
}

/// Starts the fake on 127.0.0.1 (a random port), visibility timeout 30 s.
pub async fn start() -> (MockServer, FakeSqs) {
    let server = MockServer::start().await;
    let fake = FakeSqs::default();
    fake.state().visibility_timeout = 30;
    Mock::given(method("POST"))
        .respond_with(Responder(fake.clone()))
        .mount(&server)
        .await;
    (server, fake)
}

struct Responder(FakeSqs);

fn aws_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        json!({"__type": format!("com.amazonaws.sqs#{kind}"), "message": message}).to_string(),
        "application/x-amz-json-1.0",
    )
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.state();
        if let Err(problem) = verify_signature(req) {
            st.violations.push(problem);
            return ResponseTemplate::new(403).set_body_raw(
                own("error_invalid_signature.json"),
                "application/x-amz-json-1.0",
            );
        }
        let header = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        if header("content-type") != "application/x-amz-json-1.0" || req.url.path() != "/" {
            st.violations.push(format!(
                "content type {:?}, path {}",
                header("content-type"),
                req.url.path()
            ));
            return aws_error(400, "InvalidParameterValue", "not the json protocol");
        }
        let target = header("x-amz-target").to_owned();
        let body: Json = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(_) => return aws_error(400, "SerializationException", "bad json"),
        };
        st.calls.push((target.clone(), body.clone()));
        let action = target.strip_prefix("AmazonSQS.").unwrap_or("").to_owned();
        if let Some((status, text)) = st.fail_next.get_mut(&action).and_then(VecDeque::pop_front) {
            return ResponseTemplate::new(status).set_body_raw(text, "application/x-amz-json-1.0");
        }
        if body["QueueUrl"] != QUEUE_URL {
            return ResponseTemplate::new(400)
                .insert_header(
                    "x-amzn-query-error",
                    "AWS.SimpleQueueService.NonExistentQueue;Sender",
                )
                .set_body_raw(
                    own("error_queue_does_not_exist.json"),
                    "application/x-amz-json-1.0",
                );
        }
        match action.as_str() {
            "ReceiveMessage" => receive(&mut st, &body),
            "DeleteMessageBatch" => delete_batch(&mut st, &body),
            _ => aws_error(400, "UnknownOperationException", "unknown operation"),
        }
    }
}
