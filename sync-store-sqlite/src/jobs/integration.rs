//! Integrations in `_sync_integrations`: one row per `(provider, tenant)`, the schedule,
//! streams and settings as JSON text.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sync_core::jobs::Integration;
use sync_core::{Result, StrategyKind};

use super::row::{corrupt, json, micros, INTEGRATIONS};
use crate::error::SqliteResultExt;
use crate::sql::{execute, id, query_map};

const COLUMNS: [&str; 10] = [
    "provider",
    "tenant",
    "enabled",
    "schedule",
    "credentials_ref",
    "strategy",
    "streams",
    "max_attempts",
    "priority",
    "settings",
];

fn strategy_text(strategy: StrategyKind) -> Result<String> {
    match serde_json::to_value(strategy)? {
        serde_json::Value::String(s) => Ok(s),
        _ => Err(sync_core::Error::internal(
            "a strategy serializes as a string",
        )),
    }
}

/// Inserts or replaces an integration (validated by the caller).
pub(super) fn put(conn: &Connection, i: &Integration, now: DateTime<Utc>) -> Result<()> {
    let schedule = i.schedule.as_ref().map(serde_json::to_string).transpose()?;
    let settings = (!serde_json::Value::is_null(&i.settings))
        .then(|| serde_json::to_string(&i.settings))
        .transpose()?;
    let values: [sea_query::Value; 10] = [
        i.provider.clone().into(),
        i.tenant.clone().into(),
        i64::from(i.enabled).into(),
        schedule.into(),
        i.credentials_ref.clone().into(),
        strategy_text(i.strategy)?.into(),
        serde_json::to_string(&i.streams)?.into(),
        i64::from(i.max_attempts).into(),
        i64::from(i.priority).into(),
        settings.into(),
    ];
    let stmt = Query::insert()
        .into_table(id(INTEGRATIONS))
        .columns(COLUMNS.map(id).into_iter().chain([id("updated_at")]))
        .values_panic(
            values
                .into_iter()
                .chain([micros(now).into()])
                .map(Expr::val),
        )
        .on_conflict(
            OnConflict::columns([id("provider"), id("tenant")])
                .update_columns(COLUMNS[2..].iter().copied().chain(["updated_at"]).map(id))
                .to_owned(),
        )
        .to_owned();
    execute(conn, &stmt).map(drop)
}

fn select() -> SelectStatement {
    Query::select()
        .columns(COLUMNS.map(id))
        .from(id(INTEGRATIONS))
        .order_by(id("provider"), Order::Asc)
        .order_by(id("tenant"), Order::Asc)
        .to_owned()
}

fn read(r: &rusqlite::Row<'_>) -> Result<Integration> {
    let int = |i: usize| r.get::<_, i64>(i).db();
    let opt_text = |i: usize| r.get::<_, Option<String>>(i).db();
    let strategy: String = r.get(5).db()?;
    Ok(Integration {
        provider: r.get(0).db()?,
        tenant: r.get(1).db()?,
        enabled: int(2)? != 0,
        schedule: opt_text(3)?
            .map(|s| json("integration schedule", &s))
            .transpose()?,
        credentials_ref: opt_text(4)?,
        strategy: serde_json::from_value(serde_json::Value::String(strategy))
            .map_err(|e| corrupt("integration strategy").with_source(e))?,
        streams: json("integration streams", &r.get::<_, String>(6).db()?)?,
        max_attempts: u32::try_from(int(7)?).map_err(|_| corrupt("integration attempts"))?,
        priority: i32::try_from(int(8)?).map_err(|_| corrupt("integration priority"))?,
        settings: opt_text(9)?
            .map(|s| json("integration settings", &s))
            .transpose()?
            .unwrap_or_default(),
    })
}

/// One integration.
pub(super) fn get(conn: &Connection, provider: &str, tenant: &str) -> Result<Option<Integration>> {
    let q = select()
        .and_where(Expr::col(id("provider")).eq(provider))
        .and_where(Expr::col(id("tenant")).eq(tenant))
        .to_owned();
    Ok(query_map(conn, &q, read)?.pop())
}

/// The integrations of one provider or all, ordered by provider, then tenant.
pub(super) fn list(conn: &Connection, provider: Option<&str>) -> Result<Vec<Integration>> {
    let mut q = select();
    if let Some(p) = provider {
        q.and_where(Expr::col(id("provider")).eq(p));
    }
    query_map(conn, &q, read)
}
