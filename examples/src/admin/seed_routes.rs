//! Seed 001's admin endpoints: foundation (full) sync, incremental sync, sync status and
//! table migration.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sync_core::jobs::{check_name, JobAction, JobScope, Trigger};
use sync_core::StrategyKind;

use super::error::ApiError;
use super::extract::Body;
use super::sync_routes::run_trigger;
use super::AdminState;

type Reply = Result<(StatusCode, Json<Value>), ApiError>;

/// The body of the seed's sync endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedSyncBody {
    provider: String,
    tenant: String,
    #[serde(default)]
    streams: Option<Vec<String>>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

async fn seed_sync(state: &AdminState, body: SeedSyncBody, kind: StrategyKind) -> Reply {
    let mut trigger = Trigger::new(body.provider, body.tenant).with_action(JobAction::Sync {
        strategy: Some(kind),
    });
    trigger.streams = body.streams;
    trigger.idempotency_key = body.idempotency_key;
    run_trigger(state, trigger).await
}

/// `POST /admin/foundation-sync`: a full sync that establishes the foundation data.
pub(super) async fn foundation_sync(
    State(state): State<AdminState>,
    Body(body): Body<SeedSyncBody>,
) -> Reply {
    seed_sync(&state, body, StrategyKind::Full).await
}

/// `POST /admin/incremental-sync`: an incremental sync from the checkpoints.
pub(super) async fn incremental_sync(
    State(state): State<AdminState>,
    Body(body): Body<SeedSyncBody>,
) -> Reply {
    seed_sync(&state, body, StrategyKind::Incremental).await
}

/// `GET /admin/sync-status`: every integration, checkpoint and job count.
pub(super) async fn sync_status(State(state): State<AdminState>) -> Reply {
    let status = state.jobs.status(&JobScope::all()).await?;
    Ok((StatusCode::OK, Json(ApiError::json(status)?)))
}

/// The body of `POST /admin/table-migration`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MigrationBody {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /admin/table-migration`: creates every integration stream's missing target table
/// and adds the columns a stream gained; never drops anything.
pub(super) async fn table_migration(
    State(state): State<AdminState>,
    Body(body): Body<MigrationBody>,
) -> Reply {
    if let Some(p) = &body.provider {
        check_name("provider", p)?;
    }
    if let Some(t) = &body.tenant {
        check_name("tenant", t)?;
    }
    let integrations: Vec<_> = state
        .jobs
        .queue()
        .integrations(body.provider.as_deref())
        .await?
        .into_iter()
        .filter(|i| body.tenant.as_ref().map_or(true, |t| *t == i.tenant))
        .collect();
    let tables = state
        .catalog
        .migrate_tables(state.stager.as_ref(), &integrations)
        .await?;
    Ok((StatusCode::OK, Json(json!({ "tables": tables }))))
}
