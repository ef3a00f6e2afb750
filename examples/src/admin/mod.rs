//! The admin HTTP API of a sync engine (axum), a thin layer over
//! [`sync_core::jobs::SyncJobs`]:
//!
//! | method and path | what |
//! |---|---|
//! | `PUT /{provider}/integrations/{tenant}` | create or replace an integration |
//! | `GET /{provider}/integrations` | list a provider's integrations |
//! | `POST /{provider}/sync` | trigger (`tenant`, `streams`, `sync_type`, idempotency key in the body or the `Idempotency-Key` header) |
//! | `POST /{provider}/sync/stop` | stop gracefully (`tenant`, `stream`, `job_id` narrow it) |
//! | `POST /{provider}/sync/pause`, `.../resume` | pause and resume a scope |
//! | `GET /{provider}/sync/status` | integrations, checkpoints, counts by status, open jobs |
//! | `GET /{provider}/sync/history` | ledger, sync log and jobs of one stream |
//! | `POST /{provider}/sync/retry` | requeue failed jobs (all of a scope, or `job_id`) |
//! | `POST /{provider}/sync/replay` | replay a ledger window of a sequence-window stream |
//! | `POST /{provider}/sync/reset` | reset a stream's checkpoint (`confirm` = `provider/tenant/stream`) |
//! | `POST /admin/foundation-sync`, `/admin/incremental-sync` | seed 001: full or incremental sync of an integration |
//! | `GET /admin/sync-status` | seed 001: status of every integration |
//! | `POST /admin/table-migration` | seed 001: create missing target tables, add new columns |
//!
//! Every route needs `Authorization: Bearer <token>`. Errors are JSON with a stable code
//! ([`ApiError`]); a request that fails validation changes nothing.

mod client;
mod error;
mod extract;
mod seed_routes;
mod sync_routes;

use std::fmt;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use sync_core::jobs::SyncJobs;
use sync_core::Stager;

use crate::engine::Catalog;
pub use client::AdminClient;
pub use error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The operations.
    pub jobs: SyncJobs,
    /// The streams each provider offers.
    pub catalog: Arc<Catalog>,
    /// The store the runs write to (table migration).
    pub stager: Arc<dyn Stager>,
    token: Arc<str>,
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("jobs", &self.jobs)
            .field("token", &"***")
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// State for the router; `token` is the bearer token clients must present (at least 16
    /// bytes).
    pub fn new(
        jobs: SyncJobs,
        catalog: Arc<Catalog>,
        stager: Arc<dyn Stager>,
        token: &str,
    ) -> sync_core::Result<Self> {
        if token.len() < 16 {
            return Err(sync_core::Error::config(
                "the admin token must be at least 16 bytes",
            ));
        }
        Ok(AdminState {
            jobs,
            catalog,
            stager,
            token: token.into(),
        })
    }
}

/// The router of every admin route.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/{provider}/integrations/{tenant}",
            put(sync_routes::put_integration),
        )
        .route("/{provider}/integrations", get(sync_routes::integrations))
        .route("/{provider}/sync", post(sync_routes::trigger))
        .route("/{provider}/sync/stop", post(sync_routes::stop))
        .route("/{provider}/sync/pause", post(sync_routes::pause))
        .route("/{provider}/sync/resume", post(sync_routes::resume))
        .route("/{provider}/sync/status", get(sync_routes::status))
        .route("/{provider}/sync/history", get(sync_routes::history))
        .route("/{provider}/sync/retry", post(sync_routes::retry))
        .route("/{provider}/sync/replay", post(sync_routes::replay))
        .route("/{provider}/sync/reset", post(sync_routes::reset))
        .route("/admin/foundation-sync", post(seed_routes::foundation_sync))
        .route(
            "/admin/incremental-sync",
            post(seed_routes::incremental_sync),
        )
        .route("/admin/sync-status", get(seed_routes::sync_status))
        .route("/admin/table-migration", post(seed_routes::table_migration))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Refuses requests without the bearer token (compared in constant time).
async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), state.token.as_bytes()) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::unauthorized())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
