//! The job queue's tables (migration 3), the job row as a [`Job`], and the expressions the
//! statements share: statuses, scopes, pauses and times on the server's clock.

use std::time::Duration;

use sea_query::{
    Alias, ColumnDef, Condition, ConditionalStatement, Expr, ExprTrait, ForeignKey,
    ForeignKeyAction, Index, IndexCreateStatement, IndexOrder, Query, ReturningClause,
    SelectStatement, Table, TableCreateStatement,
};
use sync_core::jobs::{Job, JobAction, JobId, JobKey, JobScope, JobStatus, StopIntent};
use sync_core::{Error, ErrorKind, Result};

use crate::sql::{acol, id, qcol, table, INTEGRATIONS, JOBS, JOB_KEYS, JOB_PAUSES};

/// The columns of a job row, in the order statements return them; after the id, those an
/// enqueue sets ([`INSERTED`]).
pub(super) const JOB_COLUMNS: [&str; 21] = [
    "id",
    "provider",
    "tenant",
    "stream",
    "action",
    "status",
    "priority",
    "attempts",
    "max_attempts",
    "next_run_at",
    "idempotency_key",
    "fence",
    "created_at",
    "updated_at",
    "last_error",
    "lease_owner",
    "lease_until",
    "stop_requested",
    "summary",
    "started_at",
    "finished_at",
];

/// The columns an enqueue sets: `JOB_COLUMNS[INSERTED]`.
pub(super) const INSERTED: std::ops::Range<usize> = 1..14;

/// The longest duration added to or taken from the server's clock (a thousand years), so a
/// huge lease or retention stays a valid timestamp.
const MAX_SPAN: Duration = Duration::from_secs(1000 * 366 * 86_400);

fn column(name: &str) -> ColumnDef {
    ColumnDef::new(id(name))
}

fn text(name: &str) -> ColumnDef {
    let mut c = column(name);
    c.text().not_null();
    c
}

fn integer(name: &str) -> ColumnDef {
    let mut c = column(name);
    c.integer().not_null();
    c
}

fn time(name: &str) -> ColumnDef {
    let mut c = column(name);
    c.timestamp_with_time_zone();
    c
}

/// `column IN (values)` (`column = value` for one) with the values inline.
fn in_literals(column: &str, values: &[&str]) -> Expr {
    match values {
        [one] => Expr::col(id(column)).eq(Expr::Constant((*one).into())),
        _ => Expr::col(id(column)).is_in(values.iter().map(|v| Expr::Constant((*v).into()))),
    }
}

/// The statuses of open jobs: at most one per key.
pub(super) fn open_statuses() -> Vec<JobStatus> {
    JobStatus::ALL.into_iter().filter(|s| s.is_open()).collect()
}

fn open_names() -> Vec<&'static str> {
    open_statuses().into_iter().map(JobStatus::as_str).collect()
}

/// Migration 3: integrations, jobs (with the index that keeps one open job per key and the
/// index claims walk), idempotency keys and recorded pauses.
pub(crate) fn migration_3(s: &str) -> (Vec<TableCreateStatement>, Vec<IndexCreateStatement>) {
    let all: Vec<&str> = JobStatus::ALL.into_iter().map(JobStatus::as_str).collect();
    // Byte order, as the reference queue lists integrations, whatever the database's collation.
    let name = |n: &str| text(n).extra("COLLATE \"C\"").to_owned();
    let tables = vec![
        Table::create()
            .table(table(s, INTEGRATIONS))
            .col(name("provider"))
            .col(name("tenant"))
            .col(column("enabled").boolean().not_null())
            .col(column("config").json_binary().not_null())
            .col(time("updated_at").not_null())
            .primary_key(Index::create().col(id("provider")).col(id("tenant")))
            .to_owned(),
        Table::create()
            .table(table(s, JOBS))
            .col(
                column("id")
                    .big_integer()
                    .not_null()
                    .primary_key()
                    .auto_increment(),
            )
            .col(text("provider"))
            .col(text("tenant"))
            .col(text("stream"))
            .col(column("action").json_binary().not_null())
            .col(text("status").check(in_literals("status", &all)))
            .col(integer("priority"))
            .col(integer("attempts"))
            .col(integer("max_attempts"))
            .col(time("next_run_at").not_null())
            .col(column("idempotency_key").text())
            .col(column("last_error").text())
            .col(column("lease_owner").text())
            .col(time("lease_until"))
            .col(column("fence").big_integer().not_null().default(0))
            .col(
                column("stop_requested")
                    .text()
                    .check(in_literals("stop_requested", &["cancel", "pause"])),
            )
            .col(column("summary").json_binary())
            .col(time("created_at").not_null())
            .col(time("updated_at").not_null())
            .col(time("started_at"))
            .col(time("finished_at"))
            .to_owned(),
        Table::create()
            .table(table(s, JOB_KEYS))
            .col(text("key").primary_key())
            .col(column("job_id").big_integer().not_null())
            .foreign_key(
                ForeignKey::create()
                    .from_col(id("job_id"))
                    .to_tbl(table(s, JOBS))
                    .to_col(id("id"))
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned(),
        // `scope` is the pause's parts as JSON (NULL: any), unique however many NULLs.
        Table::create()
            .table(table(s, JOB_PAUSES))
            .col(text("scope").primary_key())
            .col(column("provider").text())
            .col(column("tenant").text())
            .col(column("stream").text())
            .col(time("created_at").not_null())
            .to_owned(),
    ];
    let index = |name: &str| Index::create().name(name).table(table(s, JOBS)).to_owned();
    let indexes = vec![
        index("_sync_jobs_open")
            .unique()
            .col(id("provider"))
            .col(id("tenant"))
            .col(id("stream"))
            .and_where(in_literals("status", &open_names()))
            .to_owned(),
        index("_sync_jobs_due")
            .col((id("priority"), IndexOrder::Desc))
            .col(id("next_run_at"))
            .col(id("id"))
            .and_where(in_literals("status", &[JobStatus::Pending.as_str()]))
            .to_owned(),
        index("_sync_jobs_leases")
            .col(id("lease_until"))
            .and_where(in_literals("status", &[JobStatus::Processing.as_str()]))
            .to_owned(),
        index("_sync_jobs_key")
            .col(id("provider"))
            .col(id("tenant"))
            .col(id("stream"))
            .col(id("id"))
            .to_owned(),
        index("_sync_jobs_finished")
            .col(id("finished_at"))
            .and_where(in_literals("status", &["completed", "cancelled"]))
            .to_owned(),
        Index::create()
            .name("_sync_job_keys_job")
            .table(table(s, JOB_KEYS))
            .col(id("job_id"))
            .to_owned(),
    ];
    (tables, indexes)
}

/// A status as an inline literal: library constants, never input, and inline they let the
/// planner match the partial indexes.
pub(super) fn status(s: JobStatus) -> Expr {
    Expr::Constant(s.as_str().into())
}

/// An intent as stored in `stop_requested`.
pub(super) fn intent(i: StopIntent) -> Expr {
    Expr::Constant(intent_name(i).into())
}

fn intent_name(i: StopIntent) -> &'static str {
    match i {
        StopIntent::Cancel => "cancel",
        StopIntent::Pause => "pause",
    }
}

pub(super) fn col(name: &str) -> Expr {
    Expr::col(id(name))
}

/// `status IN (pending, processing, paused)`.
pub(super) fn is_open() -> Expr {
    in_literals("status", &open_names())
}

/// The server's clock: the transaction's start, the same for every statement in it.
pub(super) fn now() -> Expr {
    Expr::cust("now()")
}

fn span_ms(d: Duration) -> f64 {
    d.min(MAX_SPAN).as_secs_f64() * 1000.0
}

/// `now() + d`. sea-query has no interval value, so the interval is built from a bound number.
pub(super) fn now_plus(d: Duration) -> Expr {
    Expr::cust_with_values("now() + $1 * interval '1 millisecond'", [span_ms(d)])
}

/// `now() - d` (as [`now_plus`]).
pub(super) fn now_minus(d: Duration) -> Expr {
    Expr::cust_with_values("now() - $1 * interval '1 millisecond'", [span_ms(d)])
}

/// The jobs of `scope`, on the jobs table unqualified.
pub(super) fn in_scope(scope: &JobScope) -> Condition {
    let mut c = Condition::all();
    for (part, value) in [
        ("provider", &scope.provider),
        ("tenant", &scope.tenant),
        ("stream", &scope.stream),
    ] {
        if let Some(v) = value {
            c = c.add(col(part).eq(v.as_str()));
        }
    }
    if let Some(job) = scope.job {
        c = c.add(col("id").eq(job.0));
    }
    c
}

/// The jobs of `key`, on the jobs table unqualified.
pub(super) fn of_key(key: &JobKey) -> Condition {
    Condition::all()
        .add(col("provider").eq(key.provider.as_str()))
        .add(col("tenant").eq(key.tenant.as_str()))
        .add(col("stream").eq(key.stream.as_str()))
}

/// One part of a key by its column name.
pub(super) fn key_part<'k>(key: &'k JobKey, name: &str) -> &'k str {
    match name {
        "provider" => &key.provider,
        "tenant" => &key.tenant,
        _ => &key.stream,
    }
}

/// `EXISTS` a recorded pause (alias `p`) covering the key whose parts `part` gives: every
/// part of the pause is NULL (any) or equal.
pub(super) fn paused(s: &str, part: impl Fn(&str) -> Expr) -> Expr {
    let mut covers = Condition::all();
    for name in ["provider", "tenant", "stream"] {
        covers = covers.add(acol("p", name).is_null().or(acol("p", name).eq(part(name))));
    }
    Expr::exists(
        Query::select()
            .expr(Expr::Constant(1.into()))
            .from_as(table(s, JOB_PAUSES), Alias::new("p"))
            .cond_where(covers)
            .to_owned(),
    )
}

/// A column of the jobs row an `UPDATE` or outer query is on (for correlated subqueries).
pub(super) fn outer(s: &str) -> impl Fn(&str) -> Expr + '_ {
    move |name| qcol(s, JOBS, name)
}

/// `RETURNING` every job column.
pub(super) fn returning_job() -> ReturningClause {
    Query::returning().columns(JOB_COLUMNS.map(id))
}

/// `SELECT` every job column from the jobs table.
pub(super) fn select_jobs(s: &str) -> SelectStatement {
    Query::select()
        .columns(JOB_COLUMNS.map(id))
        .from(table(s, JOBS))
        .to_owned()
}

fn corrupt(what: &'static str) -> impl Fn(String) -> Error {
    move |detail| {
        Error::new(ErrorKind::CorruptState, "stored job is malformed")
            .with_context("field", what)
            .with_context("detail", detail)
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    name: &'static str,
) -> Result<T> {
    row.try_get(name).map_err(|e| corrupt(name)(e.to_string()))
}

fn unsigned(row: &tokio_postgres::Row, name: &'static str) -> Result<u32> {
    u32::try_from(get::<i32>(row, name)?).map_err(|e| corrupt(name)(e.to_string()))
}

/// A job row (as [`returning_job`] or [`select_jobs`] give it) as a [`Job`].
pub(super) fn read_job(row: &tokio_postgres::Row) -> Result<Job> {
    let action: serde_json::Value = get(row, "action")?;
    let status: String = get(row, "status")?;
    let stop: Option<String> = get(row, "stop_requested")?;
    Ok(Job {
        id: JobId(get(row, "id")?),
        key: JobKey {
            provider: get(row, "provider")?,
            tenant: get(row, "tenant")?,
            stream: get(row, "stream")?,
        },
        action: serde_json::from_value::<JobAction>(action)
            .map_err(|e| corrupt("action")(e.to_string()))?,
        status: status.parse().map_err(|_| corrupt("status")(status))?,
        priority: get(row, "priority")?,
        attempts: unsigned(row, "attempts")?,
        max_attempts: unsigned(row, "max_attempts")?,
        next_run_at: get(row, "next_run_at")?,
        idempotency_key: get(row, "idempotency_key")?,
        last_error: get(row, "last_error")?,
        lease_owner: get(row, "lease_owner")?,
        lease_until: get(row, "lease_until")?,
        fence: u64::try_from(get::<i64>(row, "fence")?)
            .map_err(|e| corrupt("fence")(e.to_string()))?,
        stop_requested: stop.map(|s| read_intent(&s)).transpose()?,
        summary: get(row, "summary")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
    })
}

pub(super) fn read_intent(s: &str) -> Result<StopIntent> {
    [StopIntent::Cancel, StopIntent::Pause]
        .into_iter()
        .find(|i| intent_name(*i) == s)
        .ok_or_else(|| corrupt("stop_requested")(s.to_string()))
}

/// The error of a heartbeat or finish whose fence is not the job's current one.
pub(super) fn fenced(id: JobId) -> Error {
    Error::new(
        ErrorKind::Fenced,
        "the job's lease is not held by this fence",
    )
    .with_context("job", id)
}
