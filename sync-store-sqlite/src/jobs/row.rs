//! The stored form of jobs: table and column names, times as integer microseconds, statuses
//! and stop intents as text, and the statements that read, insert and change a job row.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sea_query::{Condition, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use serde::de::DeserializeOwned;
use sync_core::jobs::{Job, JobId, JobKey, JobScope, JobStatus, StopIntent};
use sync_core::{Error, ErrorKind, Result};

use crate::error::SqliteResultExt;
use crate::sql::{col, execute, id, query_map};

pub(crate) const INTEGRATIONS: &str = "_sync_integrations";
pub(crate) const JOBS: &str = "_sync_jobs";
pub(crate) const KEYS: &str = "_sync_job_keys";
pub(crate) const PAUSES: &str = "_sync_job_pauses";

/// The statuses of an open job: a key has at most one.
pub(crate) const OPEN: [JobStatus; 3] =
    [JobStatus::Pending, JobStatus::Processing, JobStatus::Paused];

/// A job's columns, in the order [`read_job`] reads them; `id` first.
const JOB_COLUMNS: [&str; 21] = [
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
    "last_error",
    "lease_owner",
    "lease_until",
    "fence",
    "stop_requested",
    "summary",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
];

/// A stored value that does not read back.
pub(super) fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorKind::CorruptState,
        format!("stored {what} is malformed"),
    )
}

/// A time as stored: microseconds since the Unix epoch, UTC.
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored time.
pub(super) fn time(us: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("job time"))
}

/// `t - d`, saturating at the earliest time chrono represents.
pub(super) fn before(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The stored name of a stop intent.
pub(super) fn intent_text(intent: StopIntent) -> &'static str {
    match intent {
        StopIntent::Cancel => "cancel",
        StopIntent::Pause => "pause",
    }
}

/// A stored stop intent.
fn intent(text: &str) -> Result<StopIntent> {
    match text {
        "cancel" => Ok(StopIntent::Cancel),
        "pause" => Ok(StopIntent::Pause),
        _ => Err(corrupt("stop request")),
    }
}

/// `status IN (statuses)`.
pub(super) fn status_in(statuses: impl IntoIterator<Item = JobStatus>) -> Expr {
    Expr::col(id("status")).is_in(statuses.into_iter().map(JobStatus::as_str))
}

/// `status = status`.
pub(super) fn status_is(status: JobStatus) -> Expr {
    Expr::col(id("status")).eq(status.as_str())
}

/// Stored JSON text read back as `T`.
pub(super) fn json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(what).with_source(e))
}

/// The jobs a scope names: every part that is set must match.
pub(super) fn scope(scope: &JobScope) -> Condition {
    let mut all = Condition::all();
    for (name, part) in KEY_PARTS.into_iter().zip(scope_parts(scope)) {
        if let Some(value) = part {
            all = all.add(Expr::col(id(name)).eq(value.as_str()));
        }
    }
    if let Some(job) = scope.job {
        all = all.add(Expr::col(id("id")).eq(job.0));
    }
    all
}

/// The key parts of a scope, in [`KEY_PARTS`] order.
pub(super) fn scope_parts(scope: &JobScope) -> [&Option<String>; 3] {
    [&scope.provider, &scope.tenant, &scope.stream]
}

/// The jobs of one key.
pub(super) fn key(key: &JobKey) -> Condition {
    scope(&JobScope::of_key(key))
}

/// `SELECT <job columns> FROM jobs`, for callers to add conditions and order.
pub(super) fn select_jobs() -> SelectStatement {
    Query::select()
        .columns(JOB_COLUMNS.map(id))
        .from(id(JOBS))
        .to_owned()
}

/// Runs a select built on [`select_jobs`].
pub(super) fn query_jobs(conn: &Connection, q: &SelectStatement) -> Result<Vec<Job>> {
    query_map(conn, q, read_job)
}

/// The first job a select built on [`select_jobs`] returns.
pub(super) fn query_job(conn: &Connection, mut q: SelectStatement) -> Result<Option<Job>> {
    Ok(query_jobs(conn, q.limit(1))?.pop())
}

/// One job.
pub(super) fn load(conn: &Connection, job: JobId) -> Result<Option<Job>> {
    query_job(
        conn,
        select_jobs()
            .and_where(Expr::col(id("id")).eq(job.0))
            .to_owned(),
    )
}

/// A job just written by this transaction.
pub(super) fn reload(conn: &Connection, job: JobId) -> Result<Job> {
    load(conn, job)?.ok_or_else(|| Error::internal("a job written in this transaction is gone"))
}

/// The open job of a key.
pub(super) fn open_job(conn: &Connection, job_key: &JobKey) -> Result<Option<Job>> {
    query_job(
        conn,
        select_jobs()
            .cond_where(key(job_key))
            .and_where(status_in(OPEN))
            .to_owned(),
    )
}

fn int<T: TryFrom<i64>>(r: &rusqlite::Row<'_>, i: usize) -> Result<T> {
    T::try_from(r.get::<_, i64>(i).db()?).map_err(|_| corrupt(JOB_COLUMNS[i]))
}

fn opt_time(r: &rusqlite::Row<'_>, i: usize) -> Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<i64>>(i).db()?.map(time).transpose()
}

fn read_job(r: &rusqlite::Row<'_>) -> Result<Job> {
    let text = |i: usize| r.get::<_, String>(i).db();
    let opt_text = |i: usize| r.get::<_, Option<String>>(i).db();
    Ok(Job {
        id: JobId(int(r, 0)?),
        key: JobKey {
            provider: text(1)?,
            tenant: text(2)?,
            stream: text(3)?,
        },
        action: json("job action", &text(4)?)?,
        status: text(5)?.parse().map_err(|_| corrupt("job status"))?,
        priority: int(r, 6)?,
        attempts: int(r, 7)?,
        max_attempts: int(r, 8)?,
        next_run_at: time(int(r, 9)?)?,
        idempotency_key: opt_text(10)?,
        last_error: opt_text(11)?,
        lease_owner: opt_text(12)?,
        lease_until: opt_time(r, 13)?,
        fence: int(r, 14)?,
        stop_requested: opt_text(15)?.map(|s| intent(&s)).transpose()?,
        summary: opt_text(16)?.map(|s| json("job summary", &s)).transpose()?,
        created_at: time(int(r, 17)?)?,
        updated_at: time(int(r, 18)?)?,
        started_at: opt_time(r, 19)?,
        finished_at: opt_time(r, 20)?,
    })
}

/// Every column of `job` but its id, as stored.
fn values(job: &Job) -> Result<Vec<(&'static str, sea_query::Value)>> {
    let summary = job
        .summary
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    Ok(vec![
        ("provider", job.key.provider.clone().into()),
        ("tenant", job.key.tenant.clone().into()),
        ("stream", job.key.stream.clone().into()),
        ("action", serde_json::to_string(&job.action)?.into()),
        ("status", job.status.as_str().into()),
        ("priority", i64::from(job.priority).into()),
        ("attempts", i64::from(job.attempts).into()),
        ("max_attempts", i64::from(job.max_attempts).into()),
        ("next_run_at", micros(job.next_run_at).into()),
        ("idempotency_key", job.idempotency_key.clone().into()),
        ("last_error", job.last_error.clone().into()),
        ("lease_owner", job.lease_owner.clone().into()),
        ("lease_until", job.lease_until.map(micros).into()),
        ("fence", fence(job.fence)?.into()),
        (
            "stop_requested",
            job.stop_requested
                .map(|i| intent_text(i).to_string())
                .into(),
        ),
        ("summary", summary.into()),
        ("created_at", micros(job.created_at).into()),
        ("updated_at", micros(job.updated_at).into()),
        ("started_at", job.started_at.map(micros).into()),
        ("finished_at", job.finished_at.map(micros).into()),
    ])
}

/// A fencing token as a SQLite integer.
pub(super) fn fence(token: u64) -> Result<i64> {
    i64::try_from(token).map_err(|_| Error::new(ErrorKind::Fenced, "fencing token out of range"))
}

/// Inserts a new job (its id is ignored). `None` when the one-open-job index refused it.
pub(super) fn insert(conn: &Connection, job: &Job) -> Result<Option<JobId>> {
    let (names, vals): (Vec<_>, Vec<_>) = values(job)?.into_iter().unzip();
    let stmt = Query::insert()
        .into_table(id(JOBS))
        .columns(names.into_iter().map(id))
        .values_panic(vals.into_iter().map(Expr::val))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned();
    Ok((execute(conn, &stmt)? == 1).then(|| JobId(conn.last_insert_rowid())))
}

/// Applies `change` to `job` as read and writes the result over its row, only while the row
/// still has the fence and status it was read with. Returns whether it did.
pub(super) fn apply(conn: &Connection, job: &Job, change: impl FnOnce(&mut Job)) -> Result<bool> {
    let mut changed = job.clone();
    change(&mut changed);
    let stmt = Query::update()
        .table(id(JOBS))
        .values(
            values(&changed)?
                .into_iter()
                .map(|(n, v)| (id(n), Expr::val(v))),
        )
        .and_where(Expr::col(id("id")).eq(job.id.0))
        .and_where(Expr::col(id("fence")).eq(fence(job.fence)?))
        .and_where(status_is(job.status))
        .to_owned();
    Ok(execute(conn, &stmt)? == 1)
}

/// The columns of a job's key, and of a pause's scope.
pub(super) const KEY_PARTS: [&str; 3] = ["provider", "tenant", "stream"];

/// `SELECT 1 FROM pauses WHERE` each part of the pause is NULL or equals the key's part:
/// the pauses covering the key whose parts (values, or columns of an outer statement) are
/// `parts`, in [`KEY_PARTS`] order.
pub(super) fn covering_pauses(parts: [Expr; 3]) -> SelectStatement {
    let mut q = Query::select();
    q.expr(Expr::val(1)).from(id(PAUSES));
    for (name, part) in KEY_PARTS.into_iter().zip(parts) {
        q.and_where(col(PAUSES, name).is_null().or(col(PAUSES, name).eq(part)));
    }
    q
}

/// True when a recorded pause covers `key`.
pub(super) fn paused(conn: &Connection, job_key: &JobKey) -> Result<bool> {
    let parts =
        [&job_key.provider, &job_key.tenant, &job_key.stream].map(|p| Expr::val(p.as_str()));
    let q = Query::select()
        .expr(Expr::exists(covering_pauses(parts)))
        .to_owned();
    Ok(crate::sql::query_i64(conn, &q)? == Some(1))
}
