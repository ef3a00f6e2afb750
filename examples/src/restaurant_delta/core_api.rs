//! The "core" restaurant API: the system of record the seed reads the latest state from,
//! a plain JSON REST API served in-process on 127.0.0.1 (a random port) with axum.
//!
//! | route | what |
//! |---|---|
//! | `GET /restaurants?offset&limit` | restaurants ordered by id, `limit` (default 50, at most 200) from `offset`: `{"restaurants": [...], "has_more": bool}` |
//! | `GET /restaurants/{id}` | one restaurant, or `404 {"error": "restaurant not found"}` |
//!
//! The example changes the data in process ([`CoreApi::open`], [`CoreApi::update`],
//! [`CoreApi::close`]) the way the core system's own users would, and counts the requests
//! so the report can show that a window fetches each distinct restaurant once.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sync_connectors::rest::{LookupConfig, OffsetStop, PaginatorConfig, RestStreamConfig};
use sync_core::{Error, Result, Row, SourceOrdering};
use tokio::sync::oneshot;

use super::restaurant::{columns, snapshot, timestamp, Restaurant};

/// The page size `/restaurants` serves when asked for none, and the most it serves.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

/// The restaurants and a logical clock of changes.
#[derive(Debug)]
struct Data {
    restaurants: BTreeMap<String, Restaurant>,
    clock_ms: i64,
}

#[derive(Debug)]
struct Shared {
    data: Mutex<Data>,
    list_requests: AtomicU64,
    lookup_requests: AtomicU64,
}

impl Shared {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The core API, served until dropped.
#[derive(Debug)]
pub struct CoreApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl CoreApi {
    /// Starts the API on 127.0.0.1 (a random port) on the current tokio runtime, holding the
    /// seeded snapshot ([`snapshot`]).
    pub async fn start() -> Result<CoreApi> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::internal("cannot bind the core api").with_source(e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal("the core api has no address").with_source(e))?;
        let restaurants = snapshot();
        let shared = Arc::new(Shared {
            data: Mutex::new(Data {
                clock_ms: restaurants.len() as i64,
                restaurants,
            }),
            list_requests: AtomicU64::new(0),
            lookup_requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/restaurants", get(list))
            .route("/restaurants/{id}", get(one))
            .with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the core api stopped");
            }
        });
        Ok(CoreApi {
            shared,
            addr,
            url: format!("http://{addr}"),
            shutdown: Some(shutdown),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A restaurant opens: version 1. Opening an id that exists is an error.
    pub fn open(&self, id: &str) -> Result<Restaurant> {
        let mut data = self.shared.data();
        if data.restaurants.contains_key(id) {
            return Err(
                Error::invalid_input("the restaurant exists already").with_context("id", id)
            );
        }
        data.clock_ms += 60_000;
        let r = Restaurant::generate(id, data.clock_ms);
        data.restaurants.insert(id.to_owned(), r.clone());
        Ok(r)
    }

    /// A restaurant changes: `seats` covers, its version and `updated_at` move on.
    pub fn update(&self, id: &str, seats: i64) -> Result<Restaurant> {
        let mut data = self.shared.data();
        data.clock_ms += 60_000;
        let clock = data.clock_ms;
        let r = data
            .restaurants
            .get_mut(id)
            .ok_or_else(|| Error::invalid_input("no such restaurant").with_context("id", id))?;
        r.seats = seats;
        r.version += 1;
        r.updated_at = timestamp(clock);
        Ok(r.clone())
    }

    /// A restaurant closes: the API answers 404 for it from now on.
    pub fn close(&self, id: &str) -> Option<Restaurant> {
        self.shared.data().restaurants.remove(id)
    }

    /// The current state of `id`.
    pub fn restaurant(&self, id: &str) -> Option<Restaurant> {
        self.shared.data().restaurants.get(id).cloned()
    }

    /// Every restaurant, ordered by id.
    pub fn restaurants(&self) -> Vec<Restaurant> {
        self.shared.data().restaurants.values().cloned().collect()
    }

    /// Every restaurant as a row of the stream, ordered by id.
    pub fn rows(&self) -> Vec<Row> {
        self.restaurants().iter().map(Restaurant::row).collect()
    }

    /// `GET /restaurants/{id}` requests served so far.
    pub fn lookup_requests(&self) -> u64 {
        self.shared.lookup_requests.load(Ordering::Relaxed)
    }

    /// `GET /restaurants` requests served so far.
    pub fn list_requests(&self) -> u64 {
        self.shared.list_requests.load(Ordering::Relaxed)
    }

    /// The `restaurants` stream of this API for the generic REST source: offset paging of
    /// the list stopped by `has_more`, the version guard, and the look-up by id
    /// (`/restaurants/{id}`, four requests at a time) that the sequence-window strategy
    /// calls. Its own strategy is the full sync of the snapshot.
    pub fn stream(&self) -> RestStreamConfig {
        let mut stream = RestStreamConfig::new("restaurants", &self.url, "/restaurants")
            .with_records_path("restaurants")
            .with_primary_key(["id"])
            .with_version("version")
            .with_ordering(SourceOrdering::ByKey)
            .with_page_size(50)
            .with_paginator(PaginatorConfig::Offset {
                offset_param: "offset".into(),
                limit_param: "limit".into(),
                stop: OffsetStop::HasMore("has_more".into()),
            })
            .with_strategy(sync_connectors::rest::StrategySpec::full())
            .with_lookup(LookupConfig::per_id("/restaurants/{id}"));
        for c in columns() {
            stream = stream.with_column(c);
        }
        stream
    }
}

impl Drop for CoreApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn list(
    State(api): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    api.list_requests.fetch_add(1, Ordering::Relaxed);
    let number = |name: &str, default: usize| match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| name.to_owned()),
    };
    let (offset, limit) = match (number("offset", 0), number("limit", DEFAULT_LIMIT)) {
        (Ok(o), Ok(l)) if l > 0 => (o, l.min(MAX_LIMIT)),
        (Err(name), _) | (_, Err(name)) => {
            return error(StatusCode::BAD_REQUEST, &format!("{name} must be a number"))
        }
        _ => return error(StatusCode::BAD_REQUEST, "limit must be at least 1"),
    };
    let data = api.data();
    let page: Vec<&Restaurant> = data.restaurants.values().skip(offset).take(limit).collect();
    let has_more = offset + page.len() < data.restaurants.len();
    Json(serde_json::json!({ "restaurants": page, "has_more": has_more })).into_response()
}

async fn one(State(api): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    api.lookup_requests.fetch_add(1, Ordering::Relaxed);
    match api.data().restaurants.get(&id) {
        Some(r) => Json(r).into_response(),
        None => error(StatusCode::NOT_FOUND, "restaurant not found"),
    }
}
