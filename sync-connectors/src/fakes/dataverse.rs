//! A loopback fake of the Dataverse Web API (shared/reference/api-semantics.md, section 4):
//! the Entra ID token endpoint and `$batch` with its own multipart parser (independent of
//! the connector's), sequential processing, atomic changesets, `Prefer:
//! odata.continue-on-error`, upsert / update-only / create-only by alternate key, deletes,
//! reserved characters in keys (400), the first-insert race, 429 with `Retry-After`, and a
//! record of every way the client broke the contract (key attributes in the body, LF line
//! endings, more than 1000 operations, missing headers, a missing bearer token).
//!
//! ```no_run
//! # async fn demo() -> sync_core::Result<()> {
//! use sync_connectors::dataverse::DataverseSink;
//! use sync_connectors::fakes::dataverse::{builder, restaurants, start};
//!
//! let (server, fake) = start(&[("tr_restaurants", &["tr_restaurantid"])]).await;
//! let sink = DataverseSink::new(builder(&server).with_entity(restaurants()).build()?)?;
//! // ... deliver, then look at what the fake holds:
//! let keys = fake.keys("tr_restaurants");
//! # let _ = (sink, keys);
//! # Ok(()) }
//! ```

mod multipart;
mod ops;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};
use sync_core::RetryPolicy;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::dataverse::{DataverseBuilder, DataverseConfig, EntityMapping};
use crate::http::{HttpConfig, Secret};
use ops::{apply, check_headers, error, http_part};

/// The loopback HTTP server the fake runs on (wiremock's); dropping it stops the fake.
pub use wiremock::MockServer;

/// The Entra ID tenant of the fake.
pub const TENANT: &str = "contoso-tenant";
/// The path of the fake's token endpoint.
pub const TOKEN_PATH: &str = "/contoso-tenant/oauth2/v2.0/token";
/// The Web API's base path.
pub const API: &str = "/api/data/v9.2/";
/// The application (client) id the token endpoint accepts.
pub const CLIENT_ID: &str = "app-client-id";
/// The client secret the token endpoint accepts (a test value; never printed).
pub const CLIENT_SECRET: &str = "app-secret-do-not-print";

/// The recorded responses the fake answers with, by file name.
const FIXTURES: &[(&str, &str)] = &[
    (
        "batch_response_continue_on_error.txt",
        include_str!("../../tests/fixtures/dataverse/batch_response_continue_on_error.txt"),
    ),
    (
        "error_concurrency.json",
        include_str!("../../tests/fixtures/dataverse/error_concurrency.json"),
    ),
    (
        "error_duplicate.json",
        include_str!("../../tests/fixtures/dataverse/error_duplicate.json"),
    ),
    (
        "error_not_found.json",
        include_str!("../../tests/fixtures/dataverse/error_not_found.json"),
    ),
    (
        "error_throttled.json",
        include_str!("../../tests/fixtures/dataverse/error_throttled.json"),
    ),
    (
        "error_validation.json",
        include_str!("../../tests/fixtures/dataverse/error_validation.json"),
    ),
    (
        "token.json",
        include_str!("../../tests/fixtures/dataverse/token.json"),
    ),
];

/// A recorded Dataverse response by file name (`token.json`, `error_throttled.json`,
/// `error_validation.json`, ...), `None` for a name the fake does not hold.
pub fn fixture(name: &str) -> Option<&'static str> {
    FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A fixture the fake itself needs (compiled in, so always there).
fn own(name: &str) -> String {
    fixture(name).map(str::to_owned).unwrap_or_default()
}

/// The access token the fake's token endpoint issues.
pub fn access_token() -> String {
    serde_json::from_str::<Json>(&own("token.json"))
        .ok()
        .and_then(|v| v["access_token"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One operation as the fake parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenOp {
    /// `PATCH` or `DELETE`.
    pub method: String,
    /// The entity set (`tr_restaurants`).
    pub entity_set: String,
    /// Key attribute -> decoded value, as text.
    pub key: BTreeMap<String, String>,
    /// The raw key segment of the URL, between the parentheses.
    pub raw_key: String,
    /// The part's `Content-ID`.
    pub content_id: Option<String>,
    /// The `If-Match` header (`*`: update only).
    pub if_match: Option<String>,
    /// The `If-None-Match` header (`*`: create only).
    pub if_none_match: Option<String>,
    /// The JSON body.
    pub body: Option<Map<String, Json>>,
}

/// One `$batch` request as the fake saw it.
#[derive(Debug, Clone)]
pub struct SeenBatch {
    /// The request headers, names lowercase.
    pub headers: BTreeMap<String, String>,
    /// Operations per changeset (a request outside a changeset is a changeset of one here).
    pub changesets: Vec<Vec<SeenOp>>,
}

impl SeenBatch {
    /// Every operation, in order.
    pub fn ops(&self) -> impl Iterator<Item = &SeenOp> {
        self.changesets.iter().flatten()
    }
}

/// A persistent failure of the operations on one key.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The status of the operation's response part.
    pub status: u16,
    /// Its JSON error body.
    pub body: String,
}

/// What the fake holds and what it saw, and the faults armed in it.
#[derive(Debug, Default)]
pub struct State {
    /// entity set -> key (attribute=value, joined by ',') -> attributes.
    pub tables: BTreeMap<String, BTreeMap<String, Map<String, Json>>>,
    /// Every `$batch` request, in order.
    pub batches: Vec<SeenBatch>,
    /// Every way a client broke the contract.
    pub violations: Vec<String>,
    /// Key attributes per entity set, to catch them in a body.
    pub key_attributes: BTreeMap<String, Vec<String>>,
    /// The next `$batch` requests answered 429 with these `Retry-After` seconds.
    pub throttle_batches: VecDeque<u64>,
    /// Keys whose next operation is answered 429 with `Retry-After: 3`, this many times.
    pub throttle_ops: BTreeMap<String, u32>,
    /// Keys created by "another writer" just before our first upsert of them lands, which
    /// then fails with 412 "matching key values already exists".
    pub race_once: BTreeSet<String>,
    /// Keys whose operations fail with this status and body.
    pub fail: BTreeMap<String, Failure>,
    /// Answer the next `$batch` with this status, content type and body instead.
    pub canned: VecDeque<(u16, String, String)>,
    /// Records "another writer" committed while a changeset ran (outside its rollback).
    foreign: Vec<(String, String, Map<String, Json>)>,
}

/// The fake, shared with its responder.
#[derive(Debug, Clone, Default)]
pub struct FakeDataverse(pub Arc<Mutex<State>>);

impl FakeDataverse {
    /// Its state, locked (a poisoned lock is taken over: the state stays readable).
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `entity_set` with key text `key` (`tr_restaurantid=828`).
    pub fn record(&self, entity_set: &str, key: &str) -> Option<Map<String, Json>> {
        self.state().tables.get(entity_set)?.get(key).cloned()
    }

    /// The key texts of `entity_set`, in order.
    pub fn keys(&self, entity_set: &str) -> Vec<String> {
        self.state()
            .tables
            .get(entity_set)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every `$batch` request seen.
    pub fn batches(&self) -> Vec<SeenBatch> {
        self.state().batches.clone()
    }

    /// Every contract violation seen.
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }
}

/// Starts the fake: token endpoint and `$batch`.
pub async fn start(key_attributes: &[(&str, &[&str])]) -> (MockServer, FakeDataverse) {
    let server = MockServer::start().await;
    let fake = FakeDataverse::default();
    for (set, attrs) in key_attributes {
        fake.state().key_attributes.insert(
            set.to_string(),
            attrs.iter().map(|a| a.to_string()).collect(),
        );
    }
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(format!("client_id={CLIENT_ID}")))
        .and(body_string_contains(format!(
            "client_secret={CLIENT_SECRET}"
        )))
        .and(body_string_contains("scope="))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(own("token.json"), "application/json; charset=utf-8"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}$batch")))
        .respond_with(BatchResponder {
            fake: fake.clone(),
            base: format!("{}{API}", server.uri()),
        })
        .mount(&server)
        .await;
    (server, fake)
}

/// A config for the fake: client credentials against its token endpoint, no timeouts (for
/// paused-clock tests), no proactive rate limit, fast retries.
pub fn builder(server: &MockServer) -> DataverseBuilder {
    DataverseConfig::builder(format!("{}{API}", server.uri()))
        .with_client_credentials(TENANT, CLIENT_ID, Secret::new(CLIENT_SECRET))
        .with_token_url(format!("{}{TOKEN_PATH}", server.uri()))
        .with_rate_limit(crate::http::RateLimit::none())
        .with_retry(RetryPolicy::default().with_backoff(
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

/// The restaurants mapping of the seed: id -> tr_restaurantid (alternate key).
pub fn restaurants() -> EntityMapping {
    EntityMapping::new("restaurants", "tr_restaurants")
        .with_key("id", "tr_restaurantid")
        .with_attribute("name", "tr_name")
        .with_attribute("seats", "tr_seats")
}

struct BatchResponder {
    fake: FakeDataverse,
    base: String,
}

impl Respond for BatchResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.fake.state();
        if let Some(after) = st.throttle_batches.pop_front() {
            return ResponseTemplate::new(429)
                .insert_header("retry-after", after.to_string().as_str())
                .set_body_raw(own("error_throttled.json"), "application/json");
        }
        if let Some((status, ct, body)) = st.canned.pop_front() {
            return ResponseTemplate::new(status).set_body_raw(body, ct.as_str());
        }
        let headers: BTreeMap<String, String> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        check_headers(&headers, &mut st.violations);
        let Ok(body) = String::from_utf8(req.body.clone()) else {
            st.violations.push("batch body is not utf-8".into());
            return error(400, "0x0", "malformed batch: not utf-8");
        };
        if body.replace("\r\n", "").contains('\n') {
            st.violations
                .push("batch body has a bare LF line ending".into());
        }
        let parsed = match multipart::parse_batch(&headers, &body, &self.base) {
            Ok(p) => p,
            Err(e) => {
                st.violations.push(format!("unparseable batch: {e}"));
                return error(400, "0x0", &format!("malformed batch: {e}"));
            }
        };
        let ops: usize = parsed.iter().map(Vec::len).sum();
        if ops > 1000 {
            st.violations.push(format!("{ops} operations in one batch"));
            return error(
                400,
                "0x0",
                "The number of requests in the batch exceeds 1000.",
            );
        }
        let continue_on_error = headers
            .get("prefer")
            .is_some_and(|p| p.contains("odata.continue-on-error"));
        st.batches.push(SeenBatch {
            headers: headers.clone(),
            changesets: parsed.clone(),
        });
        let boundary = format!("batchresponse_{:08x}", st.batches.len());
        let mut out = String::new();
        let mut failed_once = false;
        for (n, changeset) in parsed.iter().enumerate() {
            if failed_once && !continue_on_error {
                break;
            }
            // A failing operation changes nothing, so a changeset of one needs no snapshot.
            let snapshot = (changeset.len() > 1).then(|| st.tables.clone());
            let mut parts = Vec::new();
            let mut failure = None;
            for op in changeset {
                let (status, extra, body) = apply(&mut st, op);
                if status >= 400 {
                    failure = Some((op.content_id.clone(), status, extra, body));
                    break;
                }
                parts.push((op.content_id.clone(), status, extra, body));
            }
            out.push_str(&format!("--{boundary}\r\n"));
            match failure {
                Some((id, status, extra, body)) => {
                    // An atomic changeset: everything it did is undone, one error answers.
                    if let Some(snapshot) = snapshot {
                        st.tables = snapshot;
                    }
                    failed_once = true;
                    out.push_str(&http_part(id.as_deref(), status, &extra, &body));
                }
                None => {
                    let inner = format!("changesetresponse_{n:04}");
                    out.push_str(&format!(
                        "Content-Type: multipart/mixed; boundary={inner}\r\n\r\n"
                    ));
                    for (id, status, extra, body) in parts {
                        out.push_str(&format!("--{inner}\r\n"));
                        out.push_str(&http_part(id.as_deref(), status, &extra, &body));
                    }
                    out.push_str(&format!("--{inner}--\r\n"));
                }
            }
            for (set, key, record) in std::mem::take(&mut st.foreign) {
                st.tables.entry(set).or_default().insert(key, record);
            }
        }
        out.push_str(&format!("--{boundary}--\r\n"));
        let status = if failed_once && !continue_on_error {
            400
        } else {
            200
        };
        ResponseTemplate::new(status)
            .insert_header("odata-version", "4.0")
            .set_body_raw(
                out,
                format!("multipart/mixed; boundary={boundary}").as_str(),
            )
    }
}

/// The key text of a decoded alternate key (`a=1,b=x`).
pub fn key_text(key: &BTreeMap<String, String>) -> String {
    key.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
