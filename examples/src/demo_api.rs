//! An in-process demo REST API with the contract of the shared bench's fake API, on
//! 127.0.0.1 and a random port, and the [`RestStreamConfig`] that describes its records.
//!
//! | route | what |
//! |---|---|
//! | `GET /items?limit&offset&updated_since` | records with `updated_at >= updated_since` (inclusive; RFC 3339 or epoch milliseconds), ordered by (`updated_at`, `id`), `limit` records from `offset`: `{"items","total","offset","limit","count","has_more","next_offset"}`; `limit` defaults to 100 and is clamped to [`MAX_LIMIT`] silently; a bad parameter is `400 {"error": "..."}` |
//! | `POST /admin/mutate?fraction=0.01` | the next mutation generation (see [`DemoApi::mutate`]); answers with the state |
//! | `POST /admin/reset` | back to generation 0 |
//! | `GET /admin/state` | `{"records","generation","mutated_total","expected_version_sum","max_updated_at","requests","items_served"}` |
//! | `GET /healthz` | `ok` |
//!
//! Each record's JSON is serialized once (and again when it changes), so a page is a
//! concatenation of ready bytes and serving costs little next to the sync being shown.

mod gate;
mod record;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDateTime, SecondsFormat};
use sync_connectors::rest::{
    CursorConfig, CursorFormat, OffsetStop, PaginatorConfig, RestStreamConfig,
};
use sync_core::{Column, ColumnType, Row, SourceOrdering};
use tokio::sync::oneshot;

use gate::Gate;
use record::{Record, DAY_MS, T0_MS};

/// The largest page `/items` serves; larger limits are clamped to it.
pub const MAX_LIMIT: u32 = 10_000;
/// The page size when a request names none.
const DEFAULT_LIMIT: u64 = 100;
/// The seed of the records (the shared bench's default).
const SEED: u64 = 42;

/// The records and their mutation history.
struct World {
    generation: u64,
    mutated_total: u64,
    /// (version, updated_at in epoch milliseconds) per record index.
    meta: Vec<(i64, i64)>,
    /// The wire form of each record.
    json: Vec<Box<str>>,
    /// Record indices ordered by (updated_at, id); ids sort as their indices.
    order: Vec<u32>,
}

impl World {
    fn new(records: usize) -> World {
        let records = u32::try_from(records).expect("at most u32::MAX records");
        let meta: Vec<(i64, i64)> = (0..records).map(|i| (1, T0_MS + i64::from(i))).collect();
        let json = meta
            .iter()
            .zip(0u64..)
            .map(|(&(v, ms), i)| Record::generate(SEED, i, v, ms).json())
            .collect();
        World {
            generation: 0,
            mutated_total: 0,
            meta,
            json,
            order: (0..records).collect(),
        }
    }

    /// Generation g: every record with `i % k == (g * 7919) % k` gets its next version and
    /// moves to `T0 + g days + rank ms`.
    fn mutate(&mut self, stride: u64) -> usize {
        self.generation += 1;
        let g = self.generation;
        let residue = g.wrapping_mul(7919) % stride;
        let mut rank = 0;
        for i in (residue..self.meta.len() as u64).step_by(stride as usize) {
            let meta = &mut self.meta[i as usize];
            *meta = (meta.0 + 1, T0_MS + g as i64 * DAY_MS + rank);
            self.json[i as usize] = Record::generate(SEED, i, meta.0, meta.1).json();
            rank += 1;
        }
        let meta = &self.meta;
        self.order
            .sort_unstable_by_key(|&i| (meta[i as usize].1, i));
        self.mutated_total += rank as u64;
        rank as usize
    }

    fn expected_version_sum(&self) -> i64 {
        self.meta.iter().map(|m| m.0).sum()
    }

    fn state(&self, shared: &Shared) -> String {
        let max = self
            .order
            .last()
            .map_or(T0_MS, |&i| self.meta[i as usize].1);
        serde_json::json!({
            "records": self.meta.len(),
            "generation": self.generation,
            "mutated_total": self.mutated_total,
            "expected_version_sum": self.expected_version_sum(),
            "max_updated_at": DateTime::from_timestamp_millis(max)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            "requests": shared.requests.load(Ordering::Relaxed),
            "items_served": shared.items_served.load(Ordering::Relaxed),
        })
        .to_string()
    }

    /// The body of `/items` for these parameters, or the message of a 400.
    fn page(&self, q: &HashMap<String, String>) -> Result<(Vec<u8>, u64), &'static str> {
        let limit = match q.get("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<u64>() {
                Ok(l) if l > 0 => l.min(u64::from(MAX_LIMIT)),
                _ => return Err("limit must be a positive integer"),
            },
        };
        let offset = match q.get("offset") {
            None => 0,
            Some(o) => o
                .parse::<u64>()
                .map_err(|_| "offset must be a non-negative integer")?,
        };
        let start = match q.get("updated_since").filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => {
                let since = parse_instant(s)
                    .ok_or("updated_since must be an rfc 3339 timestamp or epoch milliseconds")?;
                self.order
                    .partition_point(|&i| self.meta[i as usize].1 < since)
            }
        };
        let matching = &self.order[start..];
        let from = usize::try_from(offset).map_or(matching.len(), |o| o.min(matching.len()));
        let to = from + (matching.len() - from).min(limit as usize);
        let mut body = Vec::with_capacity((to - from) * 440 + 160);
        body.extend_from_slice(br#"{"items":["#);
        for (n, &i) in matching[from..to].iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(self.json[i as usize].as_bytes());
        }
        let count = (to - from) as u64;
        let has_more = to < matching.len();
        let next = if has_more {
            (offset + count).to_string()
        } else {
            "null".into()
        };
        body.extend_from_slice(
            format!(
                r#"],"total":{},"offset":{offset},"limit":{limit},"count":{count},"has_more":{has_more},"next_offset":{next}}}"#,
                matching.len()
            )
            .as_bytes(),
        );
        Ok((body, count))
    }
}

/// Epoch milliseconds, RFC 3339 (a space for the `T` tolerated), or a naive time in UTC.
fn parse_instant(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let s = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// What the server and the in-process handle share.
struct Shared {
    records: usize,
    world: RwLock<World>,
    requests: AtomicU64,
    items_served: AtomicU64,
    gate: Gate,
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "error": message }).to_string(),
    )
}

async fn items(
    State(api): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let n = api.requests.fetch_add(1, Ordering::Relaxed);
    api.gate.pass(n).await;
    let page = api.read().page(&q);
    match page {
        Ok((body, count)) => {
            api.items_served.fetch_add(count, Ordering::Relaxed);
            json(StatusCode::OK, body)
        }
        Err(message) => bad_request(message),
    }
}

async fn mutate(
    State(api): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let fraction = match q.get("fraction").map(|f| f.parse::<f64>()) {
        None => 0.01,
        Some(Ok(f)) if f > 0.0 && f <= 1.0 => f,
        Some(_) => return bad_request("fraction must be a number in (0, 1]"),
    };
    let mut world = api.write();
    world.mutate(stride(fraction));
    json(StatusCode::OK, world.state(&api))
}

async fn reset(State(api): State<Arc<Shared>>) -> Response {
    let fresh = World::new(api.records);
    let mut world = api.write();
    *world = fresh;
    json(StatusCode::OK, world.state(&api))
}

async fn state(State(api): State<Arc<Shared>>) -> Response {
    json(StatusCode::OK, api.read().state(&api))
}

fn stride(fraction: f64) -> u64 {
    assert!(
        fraction > 0.0 && fraction <= 1.0,
        "the fraction of records to mutate must be in (0, 1], not {fraction}"
    );
    (1.0 / fraction).round().max(1.0) as u64
}

/// The demo API, served on 127.0.0.1 from a thread of its own until dropped.
///
/// ```no_run
/// let api = sync_examples::demo_api::DemoApi::start(1_000)?;
/// let stream = sync_examples::demo_api::items_stream(api.url());
/// # Ok::<_, std::io::Error>(())
/// ```
pub struct DemoApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for DemoApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoApi")
            .field("url", &self.url)
            .field("records", &self.shared.records)
            .field("generation", &self.shared.read().generation)
            .finish_non_exhaustive()
    }
}

impl DemoApi {
    /// Builds `records` records (version 1, `updated_at` = 2024-01-01T00:00:00Z + i ms) and
    /// serves them on 127.0.0.1 at a port the system picks. Works inside or outside a tokio
    /// runtime: the server runs on a runtime and thread of its own.
    pub fn start(records: usize) -> io::Result<DemoApi> {
        let shared = Arc::new(Shared {
            records,
            world: RwLock::new(World::new(records)),
            requests: AtomicU64::new(0),
            items_served: AtomicU64::new(0),
            gate: Gate::new(),
        });
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let router = Router::new()
            .route("/items", get(items))
            .route("/admin/mutate", get(mutate).post(mutate))
            .route("/admin/reset", axum::routing::post(reset))
            .route("/admin/state", get(state))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("demo-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Accept errors are retried inside `serve`; it ends only on shutdown.
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        Ok(DemoApi {
            shared,
            addr,
            url: format!("http://{addr}"),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies the next mutation generation g (1, 2, ...) in process, as
    /// `POST /admin/mutate?fraction=` does: with stride k = round(1 / `fraction`), every
    /// record with `i % k == (g * 7919) % k` gets its next version, a new name, price and
    /// payload, and `updated_at` = 2024-01-01 + g days + its rank in milliseconds, which
    /// moves it past every other record. Returns the number of records changed (N / k,
    /// rounded).
    ///
    /// # Panics
    ///
    /// If `fraction` is not in (0, 1].
    pub fn mutate(&self, fraction: f64) -> usize {
        let stride = stride(fraction);
        self.shared.write().mutate(stride)
    }

    /// Number of records.
    pub fn records(&self) -> usize {
        self.shared.records
    }

    /// Mutation generations applied.
    pub fn generation(&self) -> u64 {
        self.shared.read().generation
    }

    /// The sum of the records' versions: what `sum(version)` of a correct sync's target is.
    pub fn expected_version_sum(&self) -> i64 {
        self.shared.read().expected_version_sum()
    }

    /// Every record as the row a sync of [`items_stream`] writes, ordered by key (as
    /// [`Stager::read_target`](sync_core::Stager::read_target) returns a target).
    pub fn rows(&self) -> Vec<Row> {
        let meta = self.shared.read().meta.clone();
        meta.iter()
            .zip(0u64..)
            .map(|(&(v, ms), i)| Record::generate(SEED, i, v, ms).row())
            .collect()
    }

    /// Requests `/items` has received.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Holds every `/items` request after the first `served` ones (counted since the start)
    /// until [`DemoApi::release`]: a sync paging through the API is then provably mid-run,
    /// its earlier pages answered, the next one waiting.
    pub fn hold_after(&self, served: u64) {
        self.shared.gate.hold_from(served);
    }

    /// Lets held requests (and every later one) through.
    pub fn release(&self) {
        self.shared.gate.release();
    }

    /// Resolves once a request is being held.
    pub async fn wait_held(&self) {
        self.shared.gate.wait_held().await;
    }
}

impl Drop for DemoApi {
    /// Releases held requests, stops accepting, lets open connections finish and waits for
    /// the server thread.
    fn drop(&mut self) {
        // A held request would keep its connection, and so the graceful shutdown, open.
        self.shared.gate.release();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `items` stream of the demo API at `url`: `GET /items`, records at `items`, offset
/// paging until `has_more` is false, the cursor `updated_at` sent as `updated_since`
/// (inclusive, RFC 3339 with milliseconds), records ordered by (cursor, key), `total` the
/// number of matching records, and the columns `id` (text, the key), `updated_at`
/// (timestamp), `version` (integer, the version guard: an older version never overwrites a
/// newer one), `name` (text), `price` (decimal(12,2)) and `payload` (JSON). 1,000 records
/// per page; the strategy defaults to incremental.
pub fn items_stream(url: &str) -> RestStreamConfig {
    let columns = [
        Column::required("id", ColumnType::Text),
        Column::required("updated_at", ColumnType::Timestamp),
        Column::required("version", ColumnType::Integer),
        Column::required("name", ColumnType::Text),
        Column::required(
            "price",
            ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
        ),
        Column::required("payload", ColumnType::Json),
    ];
    let mut stream = RestStreamConfig::new("items", url, "/items")
        .with_records_path("items")
        .with_primary_key(["id"])
        .with_version("version")
        .with_total_field("total")
        .with_ordering(SourceOrdering::ByCursorThenKey)
        .with_cursor(CursorConfig {
            field: "updated_at".into(),
            param: Some("updated_since".into()),
            until_param: None,
            format: CursorFormat::Rfc3339Millis,
            inclusive: true,
            until_inclusive: true,
        })
        .with_paginator(PaginatorConfig::Offset {
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            stop: OffsetStop::HasMore("has_more".into()),
        })
        .with_page_size(1000);
    stream.max_page_size = Some(MAX_LIMIT);
    for column in columns {
        stream = stream.with_column(column);
    }
    stream
}
