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
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use hmac::{KeyInit, Mac};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const ACCESS_KEY: &str = "AKIAFAKEFAKEFAKE0001";
pub const SECRET_KEY: &str = "fake/Secret+Key/do-not-print-0123456789";
pub const REGION: &str = "eu-west-1";
pub const QUEUE_URL: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/restaurants.fifo";

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/sqs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub id: String,
    pub body: String,
    pub group: String,
    pub dedup: String,
    pub seq: u128,
    pub receive_count: u32,
    pub visible_at: u64,
    pub receipt: Option<String>,
    pub sent: u64,
}

#[derive(Debug, Default)]
pub struct State {
    /// Logical seconds.
    pub clock: u64,
    pub visibility_timeout: u64,
    pub messages: Vec<FakeMessage>,
    pub dead_letters: Vec<FakeMessage>,
    /// The redrive policy's maxReceiveCount.
    pub max_receive_count: Option<u32>,
    pub deleted: Vec<String>,
    /// (target, request body) of every request.
    pub calls: Vec<(String, Json)>,
    /// WaitTimeSeconds of each receive.
    pub waits: Vec<u64>,
    pub violations: Vec<String>,
    /// The next request to this action fails with (status, body).
    pub fail_next: BTreeMap<String, VecDeque<(u16, String)>>,
    /// Entries of the next DeleteMessageBatch fail with ReceiptHandleIsInvalid.
    pub fail_next_deletes: bool,
    next_seq: BTreeMap<String, u128>,
    next_sns_seq: u128,
    counter: u64,
}

#[derive(Debug, Clone, Default)]
pub struct FakeSqs(pub Arc<Mutex<State>>);

impl FakeSqs {
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
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
        let body = serde_json::to_string_pretty(&envelope).unwrap();
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

    pub fn in_queue(&self) -> usize {
        self.state().messages.len()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

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
pub fn builder(server: &MockServer, change_queue: &str) -> sync_connectors::sqs::SqsBuilder {
    use sync_connectors::http::{HttpConfig, Secret};
    use sync_connectors::sqs::{AwsCredentials, IdType, SqsConfig};
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
                fixture("error_invalid_signature.json"),
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
                    fixture("error_queue_does_not_exist.json"),
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

fn visible(st: &State) -> Vec<usize> {
    // FIFO: per group, the messages before the first one in flight.
    let mut blocked = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, m) in st.messages.iter().enumerate() {
        if blocked.contains(&m.group) {
            continue;
        }
        if m.visible_at > st.clock {
            blocked.insert(m.group.clone());
            continue;
        }
        out.push(i);
    }
    out
}

fn receive(st: &mut State, body: &Json) -> ResponseTemplate {
    let max = body["MaxNumberOfMessages"].as_u64().unwrap_or(1);
    if !(1..=10).contains(&max) {
        return aws_error(
            400,
            "InvalidParameterValue",
            "MaxNumberOfMessages must be 1 to 10",
        );
    }
    let wait = body["WaitTimeSeconds"].as_u64().unwrap_or(0);
    st.waits.push(wait);
    let names = body["MessageSystemAttributeNames"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for want in [
        "SequenceNumber",
        "MessageGroupId",
        "ApproximateReceiveCount",
    ] {
        if !names.iter().any(|n| n == want || n == "All") {
            st.violations.push(format!("{want} not asked for"));
        }
    }
    let mut picked = visible(st);
    if picked.is_empty() && wait > 0 {
        // Long poll without real waiting: jump to the next message that becomes visible.
        let next = st
            .messages
            .iter()
            .map(|m| m.visible_at)
            .filter(|&t| t > st.clock)
            .min();
        if let Some(t) = next.filter(|&t| t <= st.clock + wait) {
            st.clock = t;
        } else {
            st.clock += wait;
        }
        picked = visible(st);
    }
    let timeout = body["VisibilityTimeout"]
        .as_u64()
        .unwrap_or(st.visibility_timeout);
    let mut out = Vec::new();
    let mut moved = Vec::new();
    // FIFO returns consecutive messages of a group together; a few groups are enough here.
    let mut taken = 0;
    for i in picked {
        if taken == max {
            break;
        }
        let clock = st.clock;
        let redrive = st.max_receive_count;
        let m = &mut st.messages[i];
        if redrive.is_some_and(|r| m.receive_count >= r) {
            moved.push(i);
            continue;
        }
        m.receive_count += 1;
        m.visible_at = clock + timeout;
        let receipt = format!("AQEB{}-{}", m.id, m.receive_count);
        m.receipt = Some(receipt.clone());
        out.push(json!({
            "MessageId": m.id,
            "ReceiptHandle": receipt,
            "MD5OfBody": hex(&Sha256::digest(m.body.as_bytes()))[..32].to_owned(),
            "Body": m.body,
            "Attributes": {
                "ApproximateReceiveCount": m.receive_count.to_string(),
                "SentTimestamp": (1_700_000_000_000u64 + m.sent * 1000).to_string(),
                "ApproximateFirstReceiveTimestamp": (1_700_000_000_000u64 + clock * 1000).to_string(),
                "SequenceNumber": m.seq.to_string(),
                "MessageGroupId": m.group,
                "MessageDeduplicationId": m.dedup,
                "SenderId": "AIDAIO23YVJENQZJOL4VO",
            }
        }));
        taken += 1;
    }
    for i in moved.into_iter().rev() {
        let m = st.messages.remove(i);
        st.dead_letters.push(m);
    }
    let body = if out.is_empty() {
        json!({})
    } else {
        json!({ "Messages": out })
    };
    ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/x-amz-json-1.0")
}

fn delete_batch(st: &mut State, body: &Json) -> ResponseTemplate {
    let entries = body["Entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() || entries.len() > 10 {
        return aws_error(400, "TooManyEntriesInBatchRequest", "1 to 10 entries");
    }
    let fail_all = std::mem::take(&mut st.fail_next_deletes);
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for e in entries {
        let id = e["Id"].as_str().unwrap_or("").to_owned();
        let handle = e["ReceiptHandle"].as_str().unwrap_or("");
        let clock = st.clock;
        let pos = st
            .messages
            .iter()
            .position(|m| m.receipt.as_deref() == Some(handle) && m.visible_at > clock);
        match pos {
            Some(i) if !fail_all => {
                let m = st.messages.remove(i);
                st.deleted.push(m.id);
                ok.push(json!({"Id": id}));
            }
            _ => failed.push(json!({
                "Id": id, "SenderFault": true, "Code": "ReceiptHandleIsInvalid",
                "Message": "The receipt handle has expired."
            })),
        }
    }
    ResponseTemplate::new(200).set_body_raw(
        json!({"Successful": ok, "Failed": failed}).to_string(),
        "application/x-amz-json-1.0",
    )
}

type HmacSha256 = hmac::Hmac<Sha256>;

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Recomputes the SigV4 signature of `req` from the headers it names.
fn verify_signature(req: &Request) -> Result<(), String> {
    let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let auth = h("authorization").ok_or("no authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or(format!("authorization shape {auth:?}"))?;
    let (credential, rest) = rest
        .split_once(", SignedHeaders=")
        .ok_or("no SignedHeaders")?;
    let (signed, signature) = rest.split_once(", Signature=").ok_or("no Signature")?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5
        || parts[0] != ACCESS_KEY
        || parts[2] != REGION
        || parts[3] != "sqs"
        || parts[4] != "aws4_request"
    {
        return Err(format!("credential scope {credential:?}"));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("signature is not 64 hex digits".into());
    }
    let amz_date = h("x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(parts[1]) {
        return Err("x-amz-date and credential date differ".into());
    }
    let names: Vec<&str> = signed.split(';').collect();
    for must in ["content-type", "host", "x-amz-date", "x-amz-target"] {
        if !names.contains(&must) {
            return Err(format!("{must} not signed"));
        }
    }
    let mut canonical = format!("POST\n{}\n\n", req.url.path());
    for n in &names {
        canonical.push_str(&format!(
            "{n}:{}\n",
            h(n).ok_or(format!("signed header {n} missing"))?.trim()
        ));
    }
    canonical.push_str(&format!("\n{signed}\n{}", hex(&Sha256::digest(&req.body))));
    let scope = format!("{}/{REGION}/sqs/aws4_request", parts[1]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k = mac(format!("AWS4{SECRET_KEY}").as_bytes(), parts[1]);
    let k = mac(&k, REGION);
    let k = mac(&k, "sqs");
    let k = mac(&k, "aws4_request");
    if hex(&mac(&k, &to_sign)) != signature {
        return Err("signature does not match".into());
    }
    Ok(())
}
