//! A loopback fake of the Square API (wiremock) reproducing the contract of
//! `shared/reference/api-semantics.md` section 1, with fixtures shaped like Square's
//! documented responses (`tests/fixtures/square/`):
//!
//! - bearer auth and a `Square-Version` header required (401 / 400 otherwise);
//! - opaque cursors that encode the original query: a cursor sent with another query, or
//!   after [`FakeSquare::expire_cursors`], is `400 INVALID_CURSOR`; the last page has no cursor;
//! - advisory limits: pages are cut at [`State::page_clamp`] whatever the limit asked, and
//!   with [`State::empty_pages`] every page after the first is preceded by an empty page that
//!   still has a cursor;
//! - SearchCatalogObjects: `object_types`, `include_deleted_objects`, `begin_time` exclusive,
//!   `limit` ≤ 1000 (others ignored), `latest_time` (the catalog's last update);
//! - BatchRetrieveInventoryCounts: `updated_after` (strict), `location_ids`, newest first,
//!   `limit` 1..=1000;
//! - SearchOrders: `location_ids` 1..=10, `date_time_filter.updated_at` inclusive at both
//!   ends (`end_at` defaults to now), sort field must equal the filtered field, default sort
//!   `DESC`, `limit` ≤ 1000;
//! - ListPayments: `location_id` (default: the first location), `begin_time` on `created_at`
//!   defaulting to now minus one year, `updated_at_begin_time`/`updated_at_end_time`
//!   inclusive, `sort_field`, `sort_order` (default `DESC`), `limit` > 100 ignored;
//! - SearchVendors (no limit), ListLocations (no paging);
//! - a `Date` header carrying the fake's clock ([`State::now`]);
//! - injected faults per path ([`FakeSquare::fail`]): any status, body and content type.
#![allow(dead_code, unreachable_pub, clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value as J};
use sync_connectors::http::HttpConfig;
use sync_connectors::square::{SquareConfig, SquareSource};
use sync_core::memory::MemoryStore;
use sync_core::{Checkpoint, RetryPolicy, Row, SyncContext, Value};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const TOKEN: &str = "EAAAtest-token-123";

pub fn fixture(name: &str) -> J {
    let path = format!(
        "{}/tests/fixtures/square/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_text(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/square/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn time_of(v: &J, field: &str) -> Option<DateTime<Utc>> {
    v.get(field).and_then(J::as_str).map(t)
}

/// A fault served instead of the normal answer.
#[derive(Debug, Clone)]
pub struct Fault {
    pub path: String,
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    /// Requests to the path answered normally before the fault starts.
    pub after: u32,
    pub times: u32,
}

/// What the fake holds; tests change it between runs.
#[derive(Debug)]
pub struct State {
    pub now: DateTime<Utc>,
    pub catalog: Vec<J>,
    pub locations: Vec<J>,
    pub counts: Vec<J>,
    pub orders: Vec<J>,
    pub payments: Vec<J>,
    pub vendors: Vec<J>,
    /// The largest page the server returns, whatever the limit asked.
    pub page_clamp: usize,
    /// Every page after the first is preceded by an empty page that has a cursor.
    pub empty_pages: bool,
    pub faults: VecDeque<Fault>,
    cursors: HashMap<String, (String, usize, bool)>,
    issued: u64,
}

impl State {
    fn cursor(&mut self, query: &str, offset: usize, empty_first: bool) -> String {
        self.issued += 1;
        let c = format!(
            "CUR{:08x}{:04}",
            self.issued.wrapping_mul(2_654_435_761),
            self.issued
        );
        self.cursors
            .insert(c.clone(), (query.to_owned(), offset, empty_first));
        c
    }

    /// Resolves a request's cursor: the offset it stands for, `Err` for INVALID_CURSOR, and
    /// whether this answer is the injected empty page.
    fn offset(&mut self, cursor: Option<&str>, query: &str) -> Result<(usize, bool), ()> {
        let Some(c) = cursor else {
            return Ok((0, false));
        };
        match self.cursors.get_mut(c) {
            Some((q, offset, empty_first)) if q == query => {
                let empty = std::mem::replace(empty_first, false);
                Ok((*offset, empty))
            }
            _ => Err(()),
        }
    }

    /// One page of `all` for `query`, as (items, next cursor).
    fn page(
        &mut self,
        all: Vec<J>,
        cursor: Option<&str>,
        query: &str,
        limit: usize,
    ) -> Result<(Vec<J>, Option<String>), ResponseTemplate> {
        let (offset, empty) = self.offset(cursor, query).map_err(|()| invalid_cursor())?;
        if empty {
            let next = self.cursor(query, offset, false);
            return Ok((Vec::new(), Some(next)));
        }
        let size = limit.min(self.page_clamp).max(1);
        let items: Vec<J> = all.iter().skip(offset).take(size).cloned().collect();
        let end = offset + items.len();
        let empty_first = self.empty_pages;
        let next = (end < all.len()).then(|| self.cursor(query, end, empty_first));
        Ok((items, next))
    }

    pub fn latest_time(&self) -> Option<String> {
        self.catalog
            .iter()
            .filter_map(|o| time_of(o, "updated_at"))
            .max()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

pub fn error_body(status: u16, category: &str, code: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errors": [{"category": category, "code": code, "detail": detail}]
    }))
}

fn invalid_cursor() -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_raw(fixture_text("invalid_cursor.json"), "application/json")
}

fn bad_value(detail: &str) -> ResponseTemplate {
    error_body(400, "INVALID_REQUEST_ERROR", "INVALID_VALUE", detail)
}

/// The fake server and its state.
pub struct FakeSquare {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
}

impl FakeSquare {
    /// A fake holding the fixtures, its clock at 2024-05-01T12:30:00Z.
    pub async fn start() -> FakeSquare {
        let list = |name: &str, field: &str| fixture(name)[field].as_array().cloned().unwrap();
        let state = Arc::new(Mutex::new(State {
            now: t("2024-05-01T12:30:00Z"),
            catalog: list("catalog.json", "objects"),
            locations: list("locations.json", "locations"),
            counts: list("inventory_counts.json", "counts"),
            orders: list("orders.json", "orders"),
            payments: list("payments.json", "payments"),
            vendors: list("vendors.json", "vendors"),
            page_clamp: 1000,
            empty_pages: false,
            faults: VecDeque::new(),
            cursors: HashMap::new(),
            issued: 0,
        }));
        let server = MockServer::start().await;
        let s = state.clone();
        Mock::given(wiremock::matchers::any())
            .respond_with(move |req: &Request| {
                let mut st = s.lock().unwrap();
                let now = st.now;
                let response = handle(&mut st, req);
                response.insert_header("date", httpdate::fmt_http_date(now.into()))
            })
            .mount(&server)
            .await;
        FakeSquare { server, state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Serves `status` with `body` for the next `times` requests to `path`.
    pub fn fail(
        &self,
        path: &str,
        times: u32,
        status: u16,
        body: &str,
        content_type: &'static str,
    ) {
        self.fail_after(path, 0, times, status, body, content_type);
    }

    /// Answers `after` requests to `path` normally, then serves `status` with `body` `times`
    /// times.
    pub fn fail_after(
        &self,
        path: &str,
        after: u32,
        times: u32,
        status: u16,
        body: &str,
        content_type: &'static str,
    ) {
        self.with(|s| {
            s.faults.push_back(Fault {
                path: path.into(),
                status,
                body: body.into(),
                content_type,
                after,
                times,
            })
        });
    }

    /// Removes every injected fault.
    pub fn heal(&self) {
        self.with(|s| s.faults.clear());
    }

    /// Forgets every cursor issued: the next request with one gets INVALID_CURSOR.
    pub fn expire_cursors(&self) {
        self.with(|s| s.cursors.clear());
    }

    /// Replaces (or adds) the catalog object with `object["id"]`.
    pub fn put_catalog(&self, object: J) {
        self.with(|s| put(&mut s.catalog, object));
    }

    /// Replaces (or adds) the order with `order["id"]`.
    pub fn put_order(&self, order: J) {
        self.with(|s| put(&mut s.orders, order));
    }

    /// The JSON bodies of the requests received at `path`, in order.
    pub async fn bodies(&self, path: &str) -> Vec<J> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == path)
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(J::Null))
            .collect()
    }

    /// The query pairs of the requests received at `path`, in order.
    pub async fn queries(&self, path: &str) -> Vec<HashMap<String, String>> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == path)
            .map(|r| {
                r.url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .collect()
    }

    pub async fn count(&self, path: &str) -> usize {
        self.bodies(path).await.len()
    }

    /// A config for this fake: test token, short timeouts.
    pub fn config(&self) -> SquareConfig {
        SquareConfig::builder(TOKEN)
            .with_base_url(self.uri())
            .with_http(HttpConfig {
                total_timeout_ms: Some(10_000),
                error_body_excerpt_bytes: 4096,
                ..HttpConfig::default()
            })
            .with_retry(
                RetryPolicy::default()
                    .with_max_attempts(3)
                    .with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
            )
            .build()
            .unwrap()
    }

    /// A config whose client has no timers (for paused-clock tests).
    pub fn paused_config(&self) -> SquareConfig {
        SquareConfig::builder(TOKEN)
            .with_base_url(self.uri())
            .with_http(HttpConfig {
                connect_timeout_ms: None,
                read_timeout_ms: None,
                total_timeout_ms: None,
                pool_idle_timeout_ms: None,
                error_body_excerpt_bytes: 4096,
                ..HttpConfig::default()
            })
            .build()
            .unwrap()
    }

    pub fn source(&self) -> Arc<SquareSource> {
        Arc::new(SquareSource::new(self.config()).unwrap())
    }
}

fn put(list: &mut Vec<J>, item: J) {
    match list.iter().position(|o| o["id"] == item["id"]) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}

fn handle(st: &mut State, req: &Request) -> ResponseTemplate {
    let path = req.url.path().to_owned();
    if let Some(i) = st.faults.iter().position(|f| f.path == path) {
        let f = &mut st.faults[i];
        if f.after > 0 {
            f.after -= 1;
            return normal(st, req, &path);
        }
        let r = ResponseTemplate::new(f.status).set_body_raw(f.body.clone(), f.content_type);
        f.times -= 1;
        if f.times == 0 {
            st.faults.remove(i);
        }
        return r;
    }
    normal(st, req, &path)
}

fn normal(st: &mut State, req: &Request, path: &str) -> ResponseTemplate {
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return error_body(
            401,
            "AUTHENTICATION_ERROR",
            "UNAUTHORIZED",
            "This request could not be authorized.",
        );
    }
    if req.headers.get("square-version").is_none() {
        return bad_value("Square-Version is required");
    }
    let body: J = if req.body.is_empty() {
        J::Null
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(_) => {
                return error_body(
                    400,
                    "INVALID_REQUEST_ERROR",
                    "INVALID_REQUEST_BODY",
                    "bad json",
                )
            }
        }
    };
    let query: HashMap<String, String> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let result = match (req.method.as_str(), path) {
        ("POST", "/v2/catalog/search") => catalog_search(st, &body),
        ("GET", "/v2/locations") => Ok(json!({"locations": st.locations})),
        ("POST", "/v2/inventory/counts/batch-retrieve") => inventory(st, &body),
        ("POST", "/v2/orders/search") => orders(st, &body),
        ("GET", "/v2/payments") => payments(st, &query),
        ("POST", "/v2/vendors/search") => vendors(st, &body),
        _ => {
            return error_body(
                404,
                "INVALID_REQUEST_ERROR",
                "NOT_FOUND",
                "no such endpoint",
            )
        }
    };
    match result {
        Ok(json) => ResponseTemplate::new(200).set_body_json(json),
        Err(r) => r,
    }
}

/// The query of a request without its cursor, as the key cursors are tied to.
fn fingerprint(body: &J) -> String {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("cursor");
    }
    b.to_string()
}

fn limit_of(body: &J, default: usize, max: usize) -> Result<usize, ResponseTemplate> {
    match body.get("limit").and_then(J::as_i64) {
        None => Ok(default),
        Some(l) if l >= 1 && l as usize <= max => Ok(l as usize),
        Some(_) => Err(bad_value("limit is out of range")),
    }
}

fn catalog_search(st: &mut State, body: &J) -> Result<J, ResponseTemplate> {
    let types: Vec<String> = match body.get("object_types").and_then(J::as_array) {
        Some(t) => t
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        None => vec!["ITEM".into(), "CATEGORY".into()],
    };
    let deleted = body
        .get("include_deleted_objects")
        .and_then(J::as_bool)
        .unwrap_or(false);
    let begin = body.get("begin_time").and_then(J::as_str).map(t);
    // Advisory: values <= 0 or > 1000 are ignored.
    let limit = match body.get("limit").and_then(J::as_i64) {
        Some(l) if (1..=1000).contains(&l) => l as usize,
        _ => 100,
    };
    let mut all: Vec<J> = st
        .catalog
        .iter()
        .filter(|o| types.iter().any(|ty| o["type"] == ty.as_str()))
        .filter(|o| deleted || !o["is_deleted"].as_bool().unwrap_or(false))
        // Exclusive: an object updated exactly at `begin_time` is not returned.
        .filter(|o| begin.map_or(true, |b| time_of(o, "updated_at").is_some_and(|u| u > b)))
        .cloned()
        .collect();
    all.sort_by_key(|o| {
        (
            time_of(o, "updated_at"),
            o["id"].as_str().unwrap_or("").to_owned(),
        )
    });
    let (objects, cursor) = st.page(
        all,
        body.get("cursor").and_then(J::as_str),
        &fingerprint(body),
        limit,
    )?;
    let mut out = json!({"objects": objects, "latest_time": st.latest_time()});
    if let Some(c) = cursor {
        out["cursor"] = json!(c);
    }
    Ok(out)
}

fn inventory(st: &mut State, body: &J) -> Result<J, ResponseTemplate> {
    let limit = limit_of(body, 1000, 1000)?;
    let after = body.get("updated_after").and_then(J::as_str).map(t);
    let locations: Option<Vec<String>> = body.get("location_ids").and_then(J::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    let mut all: Vec<J> = st
        .counts
        .iter()
        .filter(|c| after.map_or(true, |a| time_of(c, "calculated_at").is_some_and(|x| x > a)))
        .filter(|c| {
            locations
                .as_ref()
                .map_or(true, |l| l.iter().any(|id| c["location_id"] == id.as_str()))
        })
        .cloned()
        .collect();
    // Newest first.
    all.sort_by_key(|c| std::cmp::Reverse(time_of(c, "calculated_at")));
    let (counts, cursor) = st.page(
        all,
        body.get("cursor").and_then(J::as_str),
        &fingerprint(body),
        limit,
    )?;
    let mut out = json!({"counts": counts, "errors": []});
    if let Some(c) = cursor {
        out["cursor"] = json!(c);
    }
    Ok(out)
}

fn orders(st: &mut State, body: &J) -> Result<J, ResponseTemplate> {
    let limit = limit_of(body, 500, 1000)?;
    let locations: Vec<String> = body
        .get("location_ids")
        .and_then(J::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if locations.is_empty() || locations.len() > 10 {
        return Err(bad_value("location_ids must hold 1 to 10 ids"));
    }
    let query = &body["query"];
    let range = &query["filter"]["date_time_filter"]["updated_at"];
    let sort_field = query["sort"]["sort_field"].as_str().unwrap_or("CREATED_AT");
    if !range.is_null() && sort_field != "UPDATED_AT" {
        return Err(error_body(
            400,
            "INVALID_REQUEST_ERROR",
            "INVALID_SORT_FIELD",
            "sort_field must match the date_time_filter field",
        ));
    }
    let start = range.get("start_at").and_then(J::as_str).map(t);
    // An absent end defaults to the time of the first request for the cursor.
    let end = range
        .get("end_at")
        .and_then(J::as_str)
        .map(t)
        .unwrap_or(st.now);
    let field = if sort_field == "UPDATED_AT" {
        "updated_at"
    } else {
        "created_at"
    };
    let mut all: Vec<J> = st
        .orders
        .iter()
        .filter(|o| locations.iter().any(|l| o["location_id"] == l.as_str()))
        .filter(|o| {
            let u = time_of(o, "updated_at");
            // Inclusive at both ends.
            range.is_null() || u.is_some_and(|u| start.map_or(true, |s| u >= s) && u <= end)
        })
        .cloned()
        .collect();
    all.sort_by_key(|o| time_of(o, field));
    if query["sort"]["sort_order"].as_str().unwrap_or("DESC") == "DESC" {
        all.reverse();
    }
    let (orders, cursor) = st.page(
        all,
        body.get("cursor").and_then(J::as_str),
        &fingerprint(body),
        limit,
    )?;
    let mut out = json!({"orders": orders});
    if let Some(c) = cursor {
        out["cursor"] = json!(c);
    }
    Ok(out)
}

fn payments(st: &mut State, q: &HashMap<String, String>) -> Result<J, ResponseTemplate> {
    let location = match q.get("location_id") {
        Some(l) => l.clone(),
        None => st.locations[0]["id"].as_str().unwrap().to_owned(),
    };
    let begin = q
        .get("begin_time")
        .map(|s| t(s))
        .unwrap_or(st.now - chrono::Duration::days(365));
    let end = q.get("end_time").map(|s| t(s)).unwrap_or(st.now);
    let ubegin = q.get("updated_at_begin_time").map(|s| t(s));
    let uend = q.get("updated_at_end_time").map(|s| t(s));
    // A larger limit is ignored and the default (100) used.
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| (1..=100).contains(l))
        .unwrap_or(100);
    let field = match q.get("sort_field").map(String::as_str) {
        Some("UPDATED_AT") => "updated_at",
        _ => "created_at",
    };
    let mut all: Vec<J> = st
        .payments
        .iter()
        .filter(|p| p["location_id"] == location.as_str())
        .filter(|p| time_of(p, "created_at").is_some_and(|c| c >= begin && c <= end))
        .filter(|p| {
            let u = time_of(p, "updated_at");
            u.is_some_and(|u| ubegin.map_or(true, |b| u >= b) && uend.map_or(true, |e| u <= e))
        })
        .cloned()
        .collect();
    all.sort_by_key(|p| time_of(p, field));
    if q.get("sort_order").map_or("DESC", String::as_str) == "DESC" {
        all.reverse();
    }
    let mut key: Vec<(&String, &String)> = q.iter().filter(|(k, _)| *k != "cursor").collect();
    key.sort();
    let (payments, cursor) = st.page(
        all,
        q.get("cursor").map(String::as_str),
        &format!("{key:?}"),
        limit,
    )?;
    let mut out = json!({"payments": payments});
    if let Some(c) = cursor {
        out["cursor"] = json!(c);
    }
    Ok(out)
}

fn vendors(st: &mut State, body: &J) -> Result<J, ResponseTemplate> {
    let mut all = st.vendors.clone();
    all.sort_by_key(|v| time_of(v, "created_at"));
    let clamp = st.page_clamp;
    let (vendors, cursor) = st.page(
        all,
        body.get("cursor").and_then(J::as_str),
        &fingerprint(body),
        clamp,
    )?;
    let mut out = json!({"vendors": vendors});
    if let Some(c) = cursor {
        out["cursor"] = json!(c);
    }
    Ok(out)
}

// ---- helpers for the tests -----------------------------------------------------------------

/// A context for `stream` of `source` into `store`, retrying quickly.
pub fn context(stream: &str, source: Arc<SquareSource>, store: &Arc<MemoryStore>) -> SyncContext {
    SyncContext::new(
        format!("square/{stream}"),
        source,
        store.clone(),
        store.clone(),
    )
    .with_retry(
        RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
    )
}

/// The target rows of `stream` as JSON objects keyed by column, sorted by key.
pub fn target(
    store: &MemoryStore,
    source: &SquareSource,
    stream: &str,
) -> Vec<serde_json::Map<String, J>> {
    let schema = sync_core::Source::schema(source, stream).unwrap();
    let mut rows: Vec<Row> = store.target_rows(stream);
    rows.sort_by_key(|a| a.key(&schema));
    rows.iter()
        .map(|r| sync_core::record::serialize::row_to_json(&schema, r))
        .collect()
}

/// The value of `column` in each target row of `stream`, sorted by key.
pub fn column(store: &MemoryStore, source: &SquareSource, stream: &str, column: &str) -> Vec<J> {
    target(store, source, stream)
        .into_iter()
        .map(|r| r[column].clone())
        .collect()
}

/// The stored checkpoint of `stream`, as text.
pub async fn checkpoint(store: &MemoryStore, stream: &str) -> Option<String> {
    store
        .load(&format!("square/{stream}"))
        .await
        .unwrap()
        .map(|c| c.state.position.to_string())
}

pub fn text(v: &str) -> Value {
    Value::from(v)
}
