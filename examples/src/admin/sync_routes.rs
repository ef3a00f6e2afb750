//! The `/{provider}/...` routes (seed 003's sync engine, plus integrations, pause, replay and
//! reset).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sync_core::jobs::{
    check_name, Enqueued, Integration, JobAction, JobId, JobKey, JobScope, Schedule, Trigger,
};
use sync_core::{SequenceNo, StrategyKind, Window};

use super::error::ApiError;
use super::extract::{Body, Params};
use super::AdminState;

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

fn ok(value: Value) -> Reply {
    Ok((StatusCode::OK, Json(value)))
}

/// The body of `PUT /{provider}/integrations/{tenant}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntegrationBody {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    credentials_ref: Option<String>,
    strategy: StrategyKind,
    streams: Vec<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    settings: Value,
}

fn yes() -> bool {
    true
}

pub(super) async fn put_integration(
    State(state): State<AdminState>,
    Path((provider, tenant)): Path<(String, String)>,
    Body(body): Body<IntegrationBody>,
) -> Reply {
    let mut integration = Integration::new(&provider, &tenant, body.strategy, body.streams);
    integration.enabled = body.enabled;
    integration.schedule = body.schedule;
    integration.credentials_ref = body.credentials_ref;
    integration.priority = body.priority;
    integration.settings = body.settings;
    if let Some(n) = body.max_attempts {
        integration.max_attempts = n;
    }
    integration.validate()?;
    if let Some(s) = &integration.schedule {
        s.validate()?;
    }
    for stream in &integration.streams {
        state.catalog.tenant_source(&integration, stream)?;
    }
    state.jobs.put_integration(&integration).await?;
    ok(json!({ "integration": integration }))
}

pub(super) async fn integrations(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
) -> Reply {
    check_name("provider", &provider)?;
    let list = state.jobs.queue().integrations(Some(&provider)).await?;
    ok(json!({ "integrations": list }))
}

/// The body of `POST /{provider}/sync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerBody {
    tenant: String,
    #[serde(default)]
    streams: Option<Vec<String>>,
    #[serde(default)]
    sync_type: Option<StrategyKind>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    priority: Option<i32>,
}

/// The JSON of enqueued jobs.
pub(super) fn enqueued_json(enqueued: &[Enqueued]) -> Value {
    let jobs: Vec<Value> = enqueued
        .iter()
        .map(|e| json!({ "created": e.created, "job": e.job }))
        .collect();
    json!({ "jobs": jobs })
}

/// Triggers `trigger`; 202 when a job was created, 200 when every stream had one already.
pub(super) async fn run_trigger(state: &AdminState, trigger: Trigger) -> Reply {
    let enqueued = state.jobs.trigger(&trigger).await?;
    let status = if enqueued.iter().any(|e| e.created) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(enqueued_json(&enqueued))))
}

pub(super) async fn trigger(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Body(body): Body<TriggerBody>,
) -> Reply {
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("the Idempotency-Key header must be text"))?
                .to_string(),
        ),
        None => None,
    };
    let mut trigger = Trigger::new(provider, body.tenant);
    trigger.streams = body.streams;
    trigger.action = JobAction::Sync {
        strategy: body.sync_type,
    };
    trigger.idempotency_key = body.idempotency_key.or(header_key);
    trigger.priority = body.priority;
    run_trigger(&state, trigger).await
}

/// A scope in a body or a query: the provider from the path, narrowed by the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScopeBody {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    job_id: Option<i64>,
}

impl ScopeBody {
    fn scope(self, provider: &str) -> Result<JobScope, ApiError> {
        check_name("provider", provider)?;
        let mut scope = JobScope::provider(provider);
        if let Some(t) = self.tenant {
            check_name("tenant", &t)?;
            scope = scope.tenant(t);
        }
        if let Some(s) = self.stream {
            check_name("stream", &s)?;
            scope = scope.stream(s);
        }
        if let Some(id) = self.job_id {
            scope = scope.job(JobId(id));
        }
        Ok(scope)
    }
}

pub(super) async fn stop(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Body(body): Body<ScopeBody>,
) -> Reply {
    let n = state.jobs.stop(&body.scope(&provider)?).await?;
    ok(json!({ "stopped": n }))
}

pub(super) async fn pause(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Body(body): Body<ScopeBody>,
) -> Reply {
    let n = state.jobs.pause(&body.scope(&provider)?).await?;
    ok(json!({ "paused": n }))
}

pub(super) async fn resume(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Body(body): Body<ScopeBody>,
) -> Reply {
    let n = state.jobs.resume(&body.scope(&provider)?).await?;
    ok(json!({ "resumed": n }))
}

pub(super) async fn retry(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Body(body): Body<ScopeBody>,
) -> Reply {
    let n = state.jobs.retry_failed(&body.scope(&provider)?).await?;
    ok(json!({ "requeued": n }))
}

pub(super) async fn status(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Params(query): Params<ScopeBody>,
) -> Reply {
    let status = state.jobs.status(&query.scope(&provider)?).await?;
    ok(ApiError::json(status)?)
}

/// The query of `GET /{provider}/sync/history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    tenant: String,
    stream: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

pub(super) async fn history(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Params(query): Params<HistoryQuery>,
) -> Reply {
    if !(1..=1000).contains(&query.limit) {
        return Err(ApiError::invalid("limit must be 1 to 1000"));
    }
    let key = JobKey::new(provider, query.tenant, query.stream)?;
    let history = state.jobs.history(&key, query.limit).await?;
    ok(ApiError::json(history)?)
}

/// The body of `POST /{provider}/sync/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayBody {
    tenant: String,
    stream: String,
    low: u64,
    high: u64,
}

pub(super) async fn replay(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Body(body): Body<ReplayBody>,
) -> Reply {
    let key = JobKey::new(provider, body.tenant, body.stream)?;
    let window = Window::new(SequenceNo(body.low.into()), SequenceNo(body.high.into()))?;
    let enqueued = state.jobs.replay(&key, window).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(enqueued_json(std::slice::from_ref(&enqueued))),
    ))
}

/// The body of `POST /{provider}/sync/reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetBody {
    tenant: String,
    stream: String,
    confirm: String,
}

pub(super) async fn reset(
    State(state): State<AdminState>,
    Path(provider): Path<String>,
    Body(body): Body<ResetBody>,
) -> Reply {
    let key = JobKey::new(provider, body.tenant, body.stream)?;
    state.jobs.reset(&key, &body.confirm).await?;
    ok(json!({ "reset": key.sync_name() }))
}
