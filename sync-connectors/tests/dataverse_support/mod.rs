//! A loopback fake of the Dataverse Web API: the Entra ID token endpoint and `$batch` with
//! its own multipart parser (independent of the connector's), sequential processing,
//! atomic changesets, `Prefer: odata.continue-on-error`, upsert / update-only / create-only
//! by alternate key, deletes, the first-insert race, 429 with `Retry-After`, and a record of
//! every way the client broke the contract (key attributes in the body, LF line endings,
//! more than 1000 operations, missing headers, a missing bearer token).
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};
use sync_connectors::dataverse::{DataverseBuilder, DataverseConfig, EntityMapping};
use sync_connectors::http::{HttpConfig, Secret};
use sync_core::RetryPolicy;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TENANT: &str = "contoso-tenant";
pub const TOKEN_PATH: &str = "/contoso-tenant/oauth2/v2.0/token";
pub const API: &str = "/api/data/v9.2/";
pub const CLIENT_ID: &str = "app-client-id";
pub const CLIENT_SECRET: &str = "app-secret-do-not-print";

pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/dataverse/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The access token the fake's token endpoint issues.
pub fn access_token() -> String {
    let v: Json = serde_json::from_str(&fixture("token.json")).unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// One operation as the fake parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenOp {
    pub method: String,
    pub entity_set: String,
    /// Key attribute -> decoded value, as text.
    pub key: BTreeMap<String, String>,
    /// The raw key segment of the URL, between the parentheses.
    pub raw_key: String,
    pub content_id: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub body: Option<Map<String, Json>>,
}

/// One `$batch` request as the fake saw it.
#[derive(Debug, Clone)]
pub struct SeenBatch {
    pub headers: BTreeMap<String, String>,
    /// Operations per changeset (a request outside a changeset is a changeset of one here).
    pub changesets: Vec<Vec<SeenOp>>,
}

impl SeenBatch {
    pub fn ops(&self) -> impl Iterator<Item = &SeenOp> {
        self.changesets.iter().flatten()
    }
}

/// A persistent failure of the operations on one key.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Default)]
pub struct State {
    /// entity set -> key (attribute=value, joined by ',') -> attributes.
    pub tables: BTreeMap<String, BTreeMap<String, Map<String, Json>>>,
    pub batches: Vec<SeenBatch>,
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
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// The record of `entity_set` with key text `key` (`tr_restaurantid=828`).
    pub fn record(&self, entity_set: &str, key: &str) -> Option<Map<String, Json>> {
        self.state().tables.get(entity_set)?.get(key).cloned()
    }

    pub fn keys(&self, entity_set: &str) -> Vec<String> {
        self.state()
            .tables
            .get(entity_set)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn batches(&self) -> Vec<SeenBatch> {
        self.state().batches.clone()
    }

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
                .set_body_raw(fixture("token.json"), "application/json; charset=utf-8"),
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
        .with_rate_limit(sync_connectors::http::RateLimit::none())
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
                .set_body_raw(fixture("error_throttled.json"), "application/json");
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
        let body = String::from_utf8(req.body.clone()).unwrap();
        if body.replace("\r\n", "").contains('\n') {
            st.violations
                .push("batch body has a bare LF line ending".into());
        }
        let parsed = match parse_batch(&headers, &body, &self.base) {
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

fn check_headers(h: &BTreeMap<String, String>, violations: &mut Vec<String>) {
    let want = [
        ("odata-version", "4.0"),
        ("odata-maxversion", "4.0"),
        ("accept", "application/json"),
        ("if-none-match", "null"),
    ];
    for (name, value) in want {
        if h.get(name).map(String::as_str) != Some(value) {
            violations.push(format!("header {name} is {:?}", h.get(name)));
        }
    }
    if h.get("authorization") != Some(&format!("Bearer {}", access_token())) {
        violations.push("no bearer token from the token endpoint".into());
    }
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json")
        .set_body_json(serde_json::json!({"error": {"code": code, "message": message}}))
}

fn http_part(
    content_id: Option<&str>,
    status: u16,
    extra: &[(String, String)],
    body: &str,
) -> String {
    let reason = match status {
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        _ => "Status",
    };
    let mut s =
        String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        s.push_str(&format!("Content-ID: {id}\r\n"));
    }
    s.push_str(&format!(
        "\r\nHTTP/1.1 {status} {reason}\r\nOData-Version: 4.0\r\n"
    ));
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if body.is_empty() {
        s.push_str("\r\n\r\n");
    } else {
        s.push_str(&format!(
            "Content-Type: application/json; odata.metadata=minimal\r\n\r\n{body}\r\n"
        ));
    }
    s
}

/// Applies one operation; returns status, extra headers and body.
fn apply(st: &mut State, op: &SeenOp) -> (u16, Vec<(String, String)>, String) {
    let key = key_text(&op.key);
    if let Some(v) = op
        .key
        .values()
        .find(|v| v.contains(['/', '<', '>', '*', '%', '&', ':', '\\', '?', '+', '#']))
    {
        return (
            400,
            vec![],
            format!(r#"{{"error":{{"code":"0x80060888","message":"Bad key value {v:?}"}}}}"#),
        );
    }
    if let Some(f) = st.fail.get(&key) {
        return (f.status, vec![], f.body.clone());
    }
    if let Some(n) = st.throttle_ops.get_mut(&key) {
        if *n > 0 {
            *n -= 1;
            return (
                429,
                vec![("Retry-After".into(), "3".into())],
                fixture("error_concurrency.json"),
            );
        }
    }
    if let Some(attrs) = st.key_attributes.get(&op.entity_set).cloned() {
        let got: BTreeSet<&String> = op.key.keys().collect();
        if got != attrs.iter().collect::<BTreeSet<_>>() {
            st.violations.push(format!(
                "key {:?} is not the alternate key {attrs:?}",
                op.key
            ));
        }
        if let Some(body) = &op.body {
            for a in &attrs {
                if body.contains_key(a) {
                    st.violations
                        .push(format!("key attribute {a} repeated in the body"));
                }
            }
        }
    }
    let raced = op.method == "PATCH" && op.if_match.is_none() && st.race_once.remove(&key);
    let exists = st
        .tables
        .get(&op.entity_set)
        .is_some_and(|t| t.contains_key(&key));
    if raced && !exists {
        let mut other = Map::new();
        other.insert("created_by".into(), "another writer".into());
        st.foreign.push((op.entity_set.clone(), key.clone(), other));
        return (412, vec![], fixture("error_duplicate.json"));
    }
    let table = st.tables.entry(op.entity_set.clone()).or_default();
    match op.method.as_str() {
        "DELETE" => match table.remove(&key) {
            Some(_) => (204, vec![], String::new()),
            None => (404, vec![], fixture("error_not_found.json")),
        },
        "PATCH" => {
            let exists = table.contains_key(&key);
            if op.if_match.as_deref() == Some("*") && !exists {
                return (404, vec![], fixture("error_not_found.json"));
            }
            if op.if_none_match.as_deref() == Some("*") && exists {
                return (412, vec![], fixture("error_duplicate.json"));
            }
            let record = table.entry(key.clone()).or_default();
            record.remove("created_by");
            for (k, v) in op.body.clone().unwrap_or_default() {
                record.insert(k, v);
            }
            for (k, v) in &op.key {
                record.insert(k.clone(), Json::String(v.clone()));
            }
            let id = format!("{}({})", op.entity_set, op.raw_key);
            (204, vec![("OData-EntityId".into(), id)], String::new())
        }
        other => (
            405,
            vec![],
            format!(r#"{{"error":{{"code":"","message":"method {other}"}}}}"#),
        ),
    }
}

pub fn key_text(key: &BTreeMap<String, String>) -> String {
    key.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn boundary(ct: &str) -> Option<String> {
    ct.split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
        .next()
}

/// Splits a multipart body strictly on CRLF delimiters.
fn split(body: &str, boundary: &str) -> Result<Vec<String>, String> {
    let open = format!("--{boundary}\r\n");
    let close = format!("--{boundary}--");
    let end = body.find(&close).ok_or("no closing delimiter")?;
    let inner = &body[..end];
    let inner = inner
        .strip_prefix(&open)
        .ok_or("does not start with a delimiter")?;
    Ok(inner
        .split(&format!("\r\n{open}"))
        .map(|p| p.strip_suffix("\r\n").unwrap_or(p).to_owned())
        .collect())
}

fn head(part: &str) -> Result<(BTreeMap<String, String>, String), String> {
    let (h, rest) = part
        .split_once("\r\n\r\n")
        .ok_or("part without blank line")?;
    let mut headers = BTreeMap::new();
    for line in h.split("\r\n") {
        let (k, v) = line
            .split_once(':')
            .ok_or(format!("bad header line {line:?}"))?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    Ok((headers, rest.to_owned()))
}

fn parse_batch(
    headers: &BTreeMap<String, String>,
    body: &str,
    base: &str,
) -> Result<Vec<Vec<SeenOp>>, String> {
    let ct = headers.get("content-type").ok_or("no content type")?;
    if !ct.starts_with("multipart/mixed") {
        return Err(format!("content type {ct}"));
    }
    let b = boundary(ct).ok_or("no boundary")?;
    let mut out = Vec::new();
    for part in split(body, &b)? {
        let (mime, rest) = head(&part)?;
        let pct = mime.get("content-type").cloned().unwrap_or_default();
        if pct.starts_with("multipart/mixed") {
            let inner = boundary(&pct).ok_or("changeset without boundary")?;
            let mut ops = Vec::new();
            for p in split(&rest, &inner)? {
                ops.push(parse_op(&p, base)?);
            }
            out.push(ops);
        } else {
            out.push(vec![parse_op(&part, base)?]);
        }
    }
    Ok(out)
}

fn parse_op(part: &str, base: &str) -> Result<SeenOp, String> {
    let (mime, rest) = head(part)?;
    if mime.get("content-type").map(String::as_str) != Some("application/http")
        || mime.get("content-transfer-encoding").map(String::as_str) != Some("binary")
    {
        return Err(format!("operation part headers {mime:?}"));
    }
    let (line, rest) = rest.split_once("\r\n").ok_or("no request line")?;
    let mut words = line.split(' ');
    let method = words.next().unwrap_or("").to_owned();
    let url = words.next().ok_or("no url")?;
    if words.next() != Some("HTTP/1.1") {
        return Err(format!("request line {line:?}"));
    }
    let rel = url
        .strip_prefix(base)
        .ok_or(format!("url {url} not under {base}"))?;
    let (set, raw_key) = rel
        .strip_suffix(')')
        .and_then(|r| r.split_once('('))
        .ok_or(format!("url {rel} has no key"))?;
    let (headers, body) = match rest.split_once("\r\n\r\n") {
        Some((h, b)) => (h.to_owned(), b.to_owned()),
        None => (rest.trim_end_matches("\r\n").to_owned(), String::new()),
    };
    let mut hs = BTreeMap::new();
    for l in headers.split("\r\n").filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once(':').ok_or(format!("bad header {l:?}"))?;
        hs.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let body = if body.trim().is_empty() {
        None
    } else {
        if !hs
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return Err("body without json content type".into());
        }
        Some(serde_json::from_str(body.trim()).map_err(|e| format!("body: {e}"))?)
    };
    Ok(SeenOp {
        method,
        entity_set: set.to_owned(),
        key: parse_key(raw_key)?,
        raw_key: raw_key.to_owned(),
        content_id: mime.get("content-id").cloned(),
        if_match: hs.get("if-match").cloned(),
        if_none_match: hs.get("if-none-match").cloned(),
        body,
    })
}

/// `a='x''y',b=2` (percent-encoded) -> {a: "x'y", b: "2"}.
fn parse_key(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let decoded = percent_decode(raw)?;
    let mut out = BTreeMap::new();
    let mut rest = decoded.as_str();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or(format!("key {decoded:?}"))?;
        let (value, next) = if let Some(q) = after.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = q.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().map(|(_, c)| *c) == Some('\'') {
                        chars.next();
                        value.push('\'');
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    value.push(c);
                }
            }
            let end = end.ok_or("unterminated string key")?;
            (value, &q[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        out.insert(name.to_owned(), value);
        rest = next.strip_prefix(',').unwrap_or(next);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("short escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad escape")?);
            i += 3;
        } else {
            if !(bytes[i].is_ascii_alphanumeric() || b"-._~'=,".contains(&bytes[i])) {
                return Err(format!("unencoded byte {:?} in key", bytes[i] as char));
            }
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "key is not utf-8".into())
}
