//! A job's own life: enqueue, claim, heartbeat and finish, each inside the caller's
//! `BEGIN IMMEDIATE` transaction, and the reads of jobs and counts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sync_core::jobs::{
    zero_counts, EnqueueRequest, Enqueued, Heartbeat, Job, JobCounts, JobFilter, JobId, JobOutcome,
    JobScope, JobStatus,
};
use sync_core::{Error, ErrorKind, Result};

use super::row::{
    self, apply, fence, micros, open_job, query_job, query_jobs, reload, select_jobs, status_in,
    status_is, JOBS, KEYS,
};
use crate::error::SqliteResultExt;
use crate::sql::{execute, id, query_map};

fn fenced(job: JobId) -> Error {
    Error::new(
        ErrorKind::Fenced,
        "the job's lease is not held by this fence",
    )
    .with_context("job", job)
}

/// The job an idempotency key points to, if it still exists.
fn keyed_job(conn: &Connection, key: &str) -> Result<Option<Job>> {
    let q = Query::select()
        .column(id("job"))
        .from(id(KEYS))
        .and_where(Expr::col(id("key")).eq(key))
        .to_owned();
    match crate::sql::query_i64(conn, &q)? {
        Some(job) => row::load(conn, JobId(job)),
        None => Ok(None),
    }
}

/// Points an idempotency key at `job`.
fn remember(conn: &Connection, key: &str, job: JobId, now: DateTime<Utc>) -> Result<()> {
    let stmt = Query::insert()
        .into_table(id(KEYS))
        .columns([id("key"), id("job"), id("created_at")])
        .values_panic([key.into(), job.0.into(), micros(now).into()])
        .on_conflict(
            OnConflict::column(id("key"))
                .update_column(id("job"))
                .to_owned(),
        )
        .to_owned();
    execute(conn, &stmt).map(drop)
}

fn new_job(conn: &Connection, request: &EnqueueRequest, now: DateTime<Utc>) -> Result<Job> {
    let status = if row::paused(conn, &request.key)? {
        JobStatus::Paused
    } else {
        JobStatus::Pending
    };
    Ok(Job::enqueued(JobId(0), request, status, now))
}

/// Enqueues a validated request: the job its idempotency key created, else the key's open
/// job, else a new job (paused when a pause covers its key).
pub(super) fn enqueue(
    conn: &Connection,
    request: &EnqueueRequest,
    now: DateTime<Utc>,
) -> Result<Enqueued> {
    if let Some(k) = &request.idempotency_key {
        if let Some(job) = keyed_job(conn, k)? {
            return Ok(Enqueued {
                job,
                created: false,
            });
        }
    }
    let (job, created) = match open_job(conn, &request.key)? {
        Some(open) => (open, false),
        None => match row::insert(conn, &new_job(conn, request, now)?)? {
            Some(created) => (reload(conn, created)?, true),
            // The one-open-job index refused the insert: read the job it met.
            None => (
                open_job(conn, &request.key)?
                    .ok_or_else(|| Error::internal("a job was refused but no open job exists"))?,
                false,
            ),
        },
    };
    if let Some(k) = &request.idempotency_key {
        remember(conn, k, job.id, now)?;
    }
    Ok(Enqueued { job, created })
}

/// The pending jobs due at `now` in claim order: highest priority, earliest due time, lowest
/// id (the order of the `_sync_jobs_claim_order` index).
pub(super) fn next_due(now: DateTime<Utc>) -> SelectStatement {
    select_jobs()
        .and_where(status_is(JobStatus::Pending))
        .and_where(Expr::col(id("next_run_at")).lte(micros(now)))
        .order_by(id("priority"), Order::Desc)
        .order_by(id("next_run_at"), Order::Asc)
        .order_by(id("id"), Order::Asc)
        .to_owned()
}

/// Claims the due pending job with the highest priority, then the earliest due time, then
/// the lowest id. The read and the update are one write transaction, so SQLite's single
/// writer makes the claim atomic across connections and processes.
pub(super) fn claim(
    conn: &Connection,
    worker: &str,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Option<Job>> {
    let Some(job) = query_job(conn, next_due(now))? else {
        return Ok(None);
    };
    if !apply(conn, &job, |j| j.claim(worker, lease, now))? {
        return Err(Error::internal(
            "a job read for a claim changed within its transaction",
        ));
    }
    reload(conn, job.id).map(Some)
}

/// The processing job `id` while `fence` is its current fencing token.
fn fenced_job(conn: &Connection, job: JobId, token: u64) -> Result<Job> {
    let q = select_jobs()
        .and_where(Expr::col(id("id")).eq(job.0))
        .and_where(Expr::col(id("fence")).eq(fence(token)?))
        .and_where(status_is(JobStatus::Processing))
        .to_owned();
    query_job(conn, q)?.ok_or_else(|| fenced(job))
}

/// Extends the lease of a processing job whose fence matches; reports a requested stop.
pub(super) fn heartbeat(
    conn: &Connection,
    job: JobId,
    token: u64,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Heartbeat> {
    let held = fenced_job(conn, job, token)?;
    if !apply(conn, &held, |j| j.extend_lease(lease, now))? {
        return Err(fenced(job));
    }
    Ok(Heartbeat {
        stop_requested: held.stop_requested,
    })
}

/// Ends the attempt of a processing job whose fence matches.
pub(super) fn finish(
    conn: &Connection,
    job: JobId,
    token: u64,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> Result<Job> {
    let held = fenced_job(conn, job, token)?;
    if !apply(conn, &held, |j| j.finish(outcome, now))? {
        return Err(fenced(job));
    }
    reload(conn, job)
}

/// The jobs a filter matches, newest first.
pub(super) fn jobs(conn: &Connection, filter: &JobFilter) -> Result<Vec<Job>> {
    let mut q = select_jobs();
    q.cond_where(row::scope(&filter.scope));
    if !filter.statuses.is_empty() {
        q.and_where(status_in(filter.statuses.iter().copied()));
    }
    q.order_by(id("id"), Order::Desc)
        .limit(Ord::min(filter.limit as u64, i64::MAX as u64));
    query_jobs(conn, &q)
}

/// Job counts by status, every status present.
pub(super) fn counts(conn: &Connection, scope: &JobScope) -> Result<JobCounts> {
    let q = Query::select()
        .column(id("status"))
        .expr(Expr::col(id("id")).count())
        .from(id(JOBS))
        .cond_where(row::scope(scope))
        .group_by_col(id("status"))
        .to_owned();
    let rows = query_map(conn, &q, |r| {
        let status: String = r.get(0).db()?;
        let n: i64 = r.get(1).db()?;
        Ok((status, n))
    })?;
    let mut counts = zero_counts();
    for (status, n) in rows {
        let status: JobStatus = status.parse().map_err(|_| row::corrupt("job status"))?;
        counts.insert(status, u64::try_from(n).unwrap_or_default());
    }
    Ok(counts)
}
