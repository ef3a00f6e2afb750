//! Integration configs: one row per `(provider, tenant)`, the whole config as jsonb next to
//! the columns an operator filters on.

use sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Order, Query, SelectStatement};
use sync_core::jobs::Integration;
use sync_core::{Error, ErrorKind, Result};

use super::tables::{col, now};
use crate::sql::{id, table, INTEGRATIONS};

/// Validates `integration` (with its schedule) and builds its upsert.
pub(super) fn put(schema: &str, integration: &Integration) -> Result<InsertStatement> {
    integration.validate()?;
    if let Some(s) = &integration.schedule {
        s.validate()?;
    }
    let config = serde_json::to_value(integration)?;
    Ok(Query::insert()
        .into_table(table(schema, INTEGRATIONS))
        .columns(["provider", "tenant", "enabled", "config", "updated_at"].map(id))
        .values_panic([
            integration.provider.as_str().into(),
            integration.tenant.as_str().into(),
            integration.enabled.into(),
            Expr::val(config),
            now(),
        ])
        .on_conflict(
            OnConflict::columns([id("provider"), id("tenant")])
                .update_columns([id("enabled"), id("config"), id("updated_at")])
                .to_owned(),
        )
        .to_owned())
}

/// The integrations of one provider and tenant, one provider, or all, by provider and tenant.
pub(super) fn select(
    schema: &str,
    provider: Option<&str>,
    tenant: Option<&str>,
) -> SelectStatement {
    let mut q = Query::select()
        .column(id("config"))
        .from(table(schema, INTEGRATIONS))
        .order_by(id("provider"), Order::Asc)
        .order_by(id("tenant"), Order::Asc)
        .to_owned();
    if let Some(p) = provider {
        q.and_where(col("provider").eq(p));
    }
    if let Some(t) = tenant {
        q.and_where(col("tenant").eq(t));
    }
    q
}

/// Rows of [`select`] as integrations.
pub(super) fn read(rows: &[tokio_postgres::Row]) -> Result<Vec<Integration>> {
    rows.iter()
        .map(|row| {
            let config: serde_json::Value = row.try_get(0).map_err(crate::error::classify)?;
            serde_json::from_value(config).map_err(|e| {
                Error::new(ErrorKind::CorruptState, "stored integration is malformed")
                    .with_source(e)
            })
        })
        .collect()
}
