//! A loopback fake of the Square API (a wiremock server on 127.0.0.1) reproducing the
//! contract of `shared/reference/api-semantics.md` section 1, which the
//! [`square`](crate::square) connector is written against:
//!
//! - bearer auth and a `Square-Version` header required (401 / 400 otherwise);
//! - opaque cursors that encode the original query: a cursor sent with another query, or
//!   after [`FakeSquare::expire_cursors`], is `400 INVALID_CURSOR`; the last page has no cursor;
//! - advisory limits: pages are cut at [`SquareState::page_clamp`] whatever the limit asked,
//!   and with [`SquareState::empty_pages`] every page after the first is preceded by an empty
//!   page that still has a cursor;
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
//! - a `Date` header carrying the fake's clock ([`SquareState::now`]);
//! - injected faults per path ([`FakeSquare::fail`]): any status, body and content type.
//!
//! [`FakeSquare::start`] serves a small hand-written catalog (the connector tests' fixtures);
//! [`FakeSquare::start_seeded`] serves a deterministic data set of realistic size
//! ([`SquareDataSet`]), and the mutation helpers ([`FakeSquare::change_price`],
//! [`FakeSquare::add_order`], [`FakeSquare::delete_catalog_object`], ...) change it the way
//! Square would: a new `version`, `updated_at` at the fake's clock, tombstones for deletes.
//!
//! ```no_run
//! # async fn demo() -> sync_core::Result<()> {
//! use sync_connectors::fakes::square::{FakeSquare, SquareDataSet};
//! let fake = FakeSquare::start_seeded(&SquareDataSet::small(), 7).await;
//! let source = fake.source();
//! # Ok(()) }
//! ```

// The handlers' error is the error response itself (wiremock's `ResponseTemplate`), built
// at most once per request: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod dataset;
mod endpoints;
mod mutate;

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value as J};
use sync_core::RetryPolicy;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::http::HttpConfig;
use crate::square::{SquareConfig, SquareSource};

pub use dataset::{SquareData, SquareDataSet};

/// The access token the fake accepts (anything else is 401).
pub const TOKEN: &str = "EAAAtest-token-123";

/// The fixtures of [`FakeSquare::start`], compiled in.
fn fixture_text(name: &str) -> &'static str {
    match name {
        "catalog.json" => include_str!("../../tests/fixtures/square/catalog.json"),
        "locations.json" => include_str!("../../tests/fixtures/square/locations.json"),
        "inventory_counts.json" => {
            include_str!("../../tests/fixtures/square/inventory_counts.json")
        }
        "orders.json" => include_str!("../../tests/fixtures/square/orders.json"),
        "payments.json" => include_str!("../../tests/fixtures/square/payments.json"),
        "vendors.json" => include_str!("../../tests/fixtures/square/vendors.json"),
        _ => include_str!("../../tests/fixtures/square/invalid_cursor.json"),
    }
}

/// The list `field` of the fixture `name` (empty if the fixture lacks it).
fn fixture_list(name: &str, field: &str) -> Vec<J> {
    serde_json::from_str::<J>(fixture_text(name))
        .ok()
        .and_then(|v| v.get(field).and_then(J::as_array).cloned())
        .unwrap_or_default()
}

/// Parses an RFC 3339 time.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// RFC 3339 with milliseconds, as Square writes its times.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn time_of(v: &J, field: &str) -> Option<DateTime<Utc>> {
    v.get(field).and_then(J::as_str).and_then(parse_time)
}

/// A fault served instead of the normal answer.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The request path it applies to.
    pub path: String,
    /// The status served.
    pub status: u16,
    /// The body served.
    pub body: String,
    /// The body's content type.
    pub content_type: &'static str,
    /// Requests to the path answered normally before the fault starts.
    pub after: u32,
    /// How many requests get the fault.
    pub times: u32,
}

/// One list of records the fake serves, shared copy-on-write: cloning it (a
/// [`SquareState::data`] copy) costs a reference count, and the first change through it
/// after a clone copies the list once (`Arc::make_mut`), so the examples' integrity checks
/// of a large data set do not hold the fake's data twice. It reads and changes as a
/// `Vec<serde_json::Value>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shared(Arc<Vec<J>>);

impl std::ops::Deref for Shared {
    type Target = Vec<J>;
    fn deref(&self) -> &Vec<J> {
        &self.0
    }
}

impl std::ops::DerefMut for Shared {
    fn deref_mut(&mut self) -> &mut Vec<J> {
        Arc::make_mut(&mut self.0)
    }
}

impl From<Vec<J>> for Shared {
    fn from(list: Vec<J>) -> Self {
        Shared(Arc::new(list))
    }
}

impl<'a> IntoIterator for &'a Shared {
    type Item = &'a J;
    type IntoIter = std::slice::Iter<'a, J>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl serde::Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// What the fake holds; tests and examples change it between runs.
#[derive(Debug)]
pub struct SquareState {
    /// The fake's clock: the `Date` header, the default `end_at`, the stamp of mutations.
    pub now: DateTime<Utc>,
    /// The lists served; the state derefs to them (`state.catalog`, `state.orders`, ...).
    pub data: SquareData,
    /// The largest page the server returns, whatever the limit asked.
    pub page_clamp: usize,
    /// Every page after the first is preceded by an empty page that has a cursor.
    pub empty_pages: bool,
    /// Faults served instead of answers, in order.
    pub faults: VecDeque<Fault>,
    cursors: HashMap<String, (String, usize, bool)>,
    issued: u64,
}

impl SquareState {
    fn new(now: DateTime<Utc>, data: SquareData) -> Self {
        SquareState {
            now,
            data,
            page_clamp: 1000,
            empty_pages: false,
            faults: VecDeque::new(),
            cursors: HashMap::new(),
            issued: 0,
        }
    }

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

    /// One page of a result of `total` records for `query`: the range of it to serve and
    /// the next cursor.
    fn page(
        &mut self,
        total: usize,
        cursor: Option<&str>,
        query: &str,
        limit: usize,
    ) -> Result<(Range<usize>, Option<String>), ResponseTemplate> {
        let (offset, empty) = self.offset(cursor, query).map_err(|()| invalid_cursor())?;
        if empty {
            let next = self.cursor(query, offset, false);
            return Ok((offset..offset, Some(next)));
        }
        let size = limit.min(self.page_clamp).max(1);
        let range = offset.min(total)..(offset + size).min(total);
        let end = range.end;
        let empty_first = self.empty_pages;
        let next = (end < total).then(|| self.cursor(query, end, empty_first));
        Ok((range, next))
    }

    /// The catalog's last update (`latest_time` of SearchCatalogObjects).
    pub fn latest_time(&self) -> Option<String> {
        self.catalog
            .iter()
            .filter_map(|o| time_of(o, "updated_at"))
            .max()
            .map(rfc3339)
    }

    /// A copy of the data the fake serves (shared until either side changes).
    pub fn data(&self) -> SquareData {
        self.data.clone()
    }
}

impl std::ops::Deref for SquareState {
    type Target = SquareData;
    fn deref(&self) -> &SquareData {
        &self.data
    }
}

impl std::ops::DerefMut for SquareState {
    fn deref_mut(&mut self) -> &mut SquareData {
        &mut self.data
    }
}

/// A Square error body: `{"errors":[{"category","code","detail"}]}` with `status`.
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

/// A time field of a request: absent, valid, or a 400 `INVALID_VALUE`.
fn request_time(
    value: Option<&str>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, ResponseTemplate> {
    match value {
        None => Ok(None),
        Some(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| bad_value(&format!("{field} is not an RFC 3339 time"))),
    }
}

/// The fake server and its state.
pub struct FakeSquare {
    /// The wiremock server (for `received_requests`).
    pub server: MockServer,
    /// The data and settings the server answers from.
    pub state: Arc<Mutex<SquareState>>,
}

impl std::fmt::Debug for FakeSquare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSquare")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl FakeSquare {
    /// A fake holding the connector tests' fixtures, its clock at 2024-05-01T12:30:00Z.
    pub async fn start() -> FakeSquare {
        let data = SquareData {
            catalog: fixture_list("catalog.json", "objects").into(),
            locations: fixture_list("locations.json", "locations").into(),
            counts: fixture_list("inventory_counts.json", "counts").into(),
            orders: fixture_list("orders.json", "orders").into(),
            payments: fixture_list("payments.json", "payments").into(),
            vendors: fixture_list("vendors.json", "vendors").into(),
        };
        let now = parse_time("2024-05-01T12:30:00Z").unwrap_or_default();
        Self::start_with(now, data).await
    }

    /// A fake serving the deterministic data set `shape` generated from `seed`, its clock
    /// just after the newest record.
    pub async fn start_seeded(shape: &SquareDataSet, seed: u64) -> FakeSquare {
        let (now, data) = shape.generate(seed);
        Self::start_with(now, data).await
    }

    /// A fake serving `data`, its clock at `now`.
    pub async fn start_with(now: DateTime<Utc>, data: SquareData) -> FakeSquare {
        let state = Arc::new(Mutex::new(SquareState::new(now, data)));
        let server = MockServer::start().await;
        let s = state.clone();
        Mock::given(wiremock::matchers::any())
            .respond_with(move |req: &Request| {
                let mut st = s.lock().unwrap_or_else(|e| e.into_inner());
                let now = st.now;
                let response = endpoints::handle(&mut st, req);
                response.insert_header("date", httpdate::fmt_http_date(now.into()))
            })
            .mount(&server)
            .await;
        FakeSquare { server, state }
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    fn lock(&self) -> MutexGuard<'_, SquareState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut SquareState) -> R) -> R {
        f(&mut self.lock())
    }

    /// A copy of the data the fake serves now.
    pub fn data(&self) -> SquareData {
        self.lock().data()
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

    /// Replaces (or adds) the catalog object with `object["id"]`, as given.
    pub fn put_catalog(&self, object: J) {
        self.with(|s| put(&mut s.catalog, object));
    }

    /// Replaces (or adds) the order with `order["id"]`, as given.
    pub fn put_order(&self, order: J) {
        self.with(|s| put(&mut s.orders, order));
    }

    /// The JSON bodies of the requests received at `path`, in order.
    pub async fn bodies(&self, path: &str) -> Vec<J> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
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
            .unwrap_or_default()
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

    /// How many requests reached `path`.
    pub async fn count(&self, path: &str) -> usize {
        self.bodies(path).await.len()
    }

    /// A config for this fake: its token, short timeouts, quick retries.
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
            .expect("the fake's config is valid")
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
            .expect("the fake's config is valid")
    }

    /// A source over this fake ([`FakeSquare::config`]).
    pub fn source(&self) -> Arc<SquareSource> {
        Arc::new(SquareSource::new(self.config()).expect("the fake's config is valid"))
    }
}

pub(crate) fn put(list: &mut Vec<J>, item: J) {
    match list.iter().position(|o| o["id"] == item["id"]) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}
