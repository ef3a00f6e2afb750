//! Operations on many jobs at once: stop and pause, resume, retry of failed jobs, rescue of
//! expired leases and pruning, each inside the caller's `BEGIN IMMEDIATE` transaction.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sea_query::{Condition, Expr, ExprTrait, Order, Query};
use sync_core::jobs::{JobId, JobScope, JobStatus, StopIntent};
use sync_core::Result;

use super::row::{
    self, apply, covering_pauses, intent_text, micros, open_job, query_jobs, scope_parts,
    select_jobs, status_in, status_is, JOBS, KEYS, KEY_PARTS, PAUSES,
};
use crate::sql::{col, execute, id};

/// Pauses whose every part equals the scope's (NULL where the scope has none): a pause of
/// exactly this scope.
fn same_pause(scope: &JobScope) -> Condition {
    let mut all = Condition::all();
    for (name, part) in KEY_PARTS.into_iter().zip(scope_parts(scope)) {
        all = all.add(match part {
            Some(value) => Expr::col(id(name)).eq(value.as_str()),
            None => Expr::col(id(name)).is_null(),
        });
    }
    all
}

/// Records a pause of `scope` (job ids aside) unless the same one is recorded.
fn record_pause(conn: &Connection, scope: &JobScope, now: DateTime<Utc>) -> Result<()> {
    let exists = Query::select()
        .expr(Expr::val(1))
        .from(id(PAUSES))
        .cond_where(same_pause(scope))
        .to_owned();
    if crate::sql::query_i64(conn, &exists)?.is_some() {
        return Ok(());
    }
    let [provider, tenant, stream] = scope_parts(scope).map(Clone::clone);
    let stmt = Query::insert()
        .into_table(id(PAUSES))
        .columns(KEY_PARTS.into_iter().chain(["created_at"]).map(id))
        .values_panic([
            provider.into(),
            tenant.into(),
            stream.into(),
            micros(now).into(),
        ])
        .to_owned();
    execute(conn, &stmt).map(drop)
}

/// Cancels or pauses the open jobs of a scope; flags its processing jobs. With a pause of a
/// scope without a job id, also records the pause, which holds jobs enqueued later.
pub(super) fn request_stop(
    conn: &Connection,
    scope: &JobScope,
    intent: StopIntent,
    now: DateTime<Utc>,
) -> Result<u64> {
    if intent == StopIntent::Pause && scope.job.is_none() {
        record_pause(conn, scope, now)?;
    }
    let waiting = match intent {
        StopIntent::Cancel => Query::update()
            .table(id(JOBS))
            .value(id("status"), JobStatus::Cancelled.as_str())
            .value(id("finished_at"), micros(now))
            .and_where(status_in([JobStatus::Pending, JobStatus::Paused]))
            .to_owned(),
        StopIntent::Pause => Query::update()
            .table(id(JOBS))
            .value(id("status"), JobStatus::Paused.as_str())
            .and_where(status_is(JobStatus::Pending))
            .to_owned(),
    };
    let flag = Query::update()
        .table(id(JOBS))
        .value(id("stop_requested"), intent_text(intent))
        .and_where(status_is(JobStatus::Processing))
        .and_where(
            Expr::col(id("stop_requested"))
                .is_null()
                .or(Expr::col(id("stop_requested")).ne(intent_text(intent))),
        )
        .to_owned();
    let mut changed = 0;
    for mut stmt in [waiting, flag] {
        stmt.value(id("updated_at"), micros(now))
            .cond_where(row::scope(scope));
        changed += execute(conn, &stmt)? as u64;
    }
    Ok(changed)
}

/// Deletes the pauses the scope contains and makes its paused jobs pending (attempts 0, due
/// now) unless a remaining pause covers them.
pub(super) fn resume(conn: &Connection, scope: &JobScope, now: DateTime<Utc>) -> Result<u64> {
    // A pause is contained when each part the scope sets is the pause's too; resuming one job
    // lifts no pause.
    if scope.job.is_none() {
        execute(
            conn,
            &Query::delete()
                .from_table(id(PAUSES))
                .cond_where(row::scope(scope))
                .to_owned(),
        )?;
    }
    let still_paused = covering_pauses(KEY_PARTS.map(|name| col(JOBS, name)));
    let stmt = Query::update()
        .table(id(JOBS))
        .value(id("status"), JobStatus::Pending.as_str())
        .value(id("attempts"), 0)
        .value(id("next_run_at"), micros(now))
        .value(id("updated_at"), micros(now))
        .and_where(status_is(JobStatus::Paused))
        .cond_where(row::scope(scope))
        .and_where(Expr::exists(still_paused).not())
        .to_owned();
    Ok(execute(conn, &stmt)? as u64)
}

/// Makes the failed jobs of a scope pending (attempts 0, due now, error kept), oldest first,
/// skipping those whose key has an open job (one requeued here included).
pub(super) fn retry_failed(conn: &Connection, scope: &JobScope, now: DateTime<Utc>) -> Result<u64> {
    let failed = select_jobs()
        .and_where(status_is(JobStatus::Failed))
        .cond_where(row::scope(scope))
        .order_by(id("id"), Order::Asc)
        .to_owned();
    let mut changed = 0;
    for job in query_jobs(conn, &failed)? {
        if open_job(conn, &job.key)?.is_some() {
            continue;
        }
        let paused = row::paused(conn, &job.key)?;
        changed += u64::from(apply(conn, &job, |j| j.retry(now, paused))?);
    }
    Ok(changed)
}

/// Requeues or fails every processing job whose lease expired; returns their ids.
pub(super) fn rescue_expired(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<JobId>> {
    let expired = select_jobs()
        .and_where(status_is(JobStatus::Processing))
        .and_where(
            Expr::col(id("lease_until"))
                .is_null()
                .or(Expr::col(id("lease_until")).lte(micros(now))),
        )
        .order_by(id("id"), Order::Asc)
        .to_owned();
    let mut rescued = vec![];
    for job in query_jobs(conn, &expired)? {
        if apply(conn, &job, |j| j.rescue(now))? {
            rescued.push(job.id);
        }
    }
    Ok(rescued)
}

/// Deletes completed and cancelled jobs finished at or before `cutoff`, with the idempotency
/// keys that point to them.
pub(super) fn prune(conn: &Connection, cutoff: DateTime<Utc>) -> Result<u64> {
    let old = Condition::all()
        .add(status_in([JobStatus::Completed, JobStatus::Cancelled]))
        .add(Expr::col(id("finished_at")).lte(micros(cutoff)));
    let old_ids = Query::select()
        .column(id("id"))
        .from(id(JOBS))
        .cond_where(old.clone())
        .to_owned();
    execute(
        conn,
        &Query::delete()
            .from_table(id(KEYS))
            .and_where(Expr::col(id("job")).in_subquery(old_ids))
            .to_owned(),
    )?;
    let deleted = execute(
        conn,
        &Query::delete()
            .from_table(id(JOBS))
            .cond_where(old)
            .to_owned(),
    )?;
    Ok(deleted as u64)
}
