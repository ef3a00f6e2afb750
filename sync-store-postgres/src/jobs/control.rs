//! The operations on many jobs: stop and pause, resume, retry of failed jobs, pruning, and the
//! queries (jobs of a filter, counts by status).

use std::time::Duration;

use sea_query::{
    Alias, Condition, DeleteStatement, Expr, ExprTrait, OnConflict, Order, Query, SelectStatement,
    UpdateStatement,
};
use sync_core::jobs::{JobFilter, JobScope, JobStatus, StopIntent};

use super::tables::{
    col, in_scope, intent, now, now_minus, open_statuses, outer, paused, select_jobs, status,
};
use crate::sql::{acol, id, table, JOBS, JOB_PAUSES};

fn is_processing() -> Expr {
    col("status").eq(status(JobStatus::Processing))
}

/// `CASE WHEN status = 'processing' THEN processing ELSE other END`.
fn if_processing(processing: Expr, other: Expr) -> Expr {
    Expr::case(is_processing(), processing)
        .finally(other)
        .into()
}

/// Cancels (pending, paused → cancelled) or pauses (pending → paused) the open jobs of
/// `scope`, and asks processing ones to stop with `intent`. One statement, so a job that
/// changes status meanwhile is judged by its newest version.
pub(super) fn request_stop(schema: &str, scope: &JobScope, wanted: StopIntent) -> UpdateStatement {
    let (waiting, becomes) = match wanted {
        StopIntent::Cancel => (
            col("status").is_in([status(JobStatus::Pending), status(JobStatus::Paused)]),
            JobStatus::Cancelled,
        ),
        StopIntent::Pause => (
            col("status").eq(status(JobStatus::Pending)),
            JobStatus::Paused,
        ),
    };
    let not_asked_yet = col("stop_requested")
        .is_null()
        .or(col("stop_requested").ne(intent(wanted)));
    let mut stmt = Query::update()
        .table(table(schema, JOBS))
        .value(id("status"), if_processing(col("status"), status(becomes)))
        .value(
            id("stop_requested"),
            if_processing(intent(wanted), col("stop_requested")),
        )
        .value(id("updated_at"), now())
        .cond_where(in_scope(scope))
        .and_where(waiting.or(is_processing().and(not_asked_yet)))
        .to_owned();
    if becomes == JobStatus::Cancelled {
        stmt.value(id("finished_at"), if_processing(col("finished_at"), now()));
    }
    stmt
}

/// Records a pause of `scope` (its parts as JSON are the key, so each scope is kept once).
pub(super) fn record_pause(schema: &str, scope: &JobScope) -> sea_query::InsertStatement {
    let parts = [&scope.provider, &scope.tenant, &scope.stream];
    let key = serde_json::to_string(&parts).expect("strings serialize");
    Query::insert()
        .into_table(table(schema, JOB_PAUSES))
        .columns(["scope", "provider", "tenant", "stream", "created_at"].map(id))
        .values_panic([
            key.into(),
            scope.provider.clone().into(),
            scope.tenant.clone().into(),
            scope.stream.clone().into(),
            now(),
        ])
        .on_conflict(OnConflict::column(id("scope")).do_nothing().to_owned())
        .to_owned()
}

/// Deletes the recorded pauses `scope` contains: every part `scope` sets matches (job ids
/// play no part, as in [`JobScope::contains`]).
pub(super) fn lift_pauses(schema: &str, scope: &JobScope) -> DeleteStatement {
    let mut stmt = Query::delete()
        .from_table(table(schema, JOB_PAUSES))
        .to_owned();
    for (part, value) in [
        ("provider", &scope.provider),
        ("tenant", &scope.tenant),
        ("stream", &scope.stream),
    ] {
        if let Some(v) = value {
            stmt.and_where(col(part).eq(v.as_str()));
        }
    }
    if scope.job.is_some() {
        // Resuming one job lifts no pause.
        stmt.and_where(Expr::Constant(1.into()).eq(Expr::Constant(0.into())));
    }
    stmt
}

/// Makes the paused jobs of `scope` pending (attempts 0, due now) unless a remaining pause
/// covers them.
pub(super) fn resume(schema: &str, scope: &JobScope) -> UpdateStatement {
    Query::update()
        .table(table(schema, JOBS))
        .value(id("status"), status(JobStatus::Pending))
        .value(id("attempts"), 0i32)
        .value(id("next_run_at"), now())
        .value(id("updated_at"), now())
        .and_where(col("status").eq(status(JobStatus::Paused)))
        .cond_where(in_scope(scope))
        .and_where(paused(schema, outer(schema)).not())
        .to_owned()
}

/// Another job (alias `o`) of the same key as the job being updated.
fn same_key(schema: &str) -> SelectStatement {
    let this = outer(schema);
    let mut same = Condition::all();
    for part in ["provider", "tenant", "stream"] {
        same = same.add(acol("o", part).eq(this(part)));
    }
    Query::select()
        .expr(Expr::Constant(1.into()))
        .from_as(table(schema, JOBS), Alias::new("o"))
        .cond_where(same)
        .to_owned()
}

/// Makes the failed jobs of `scope` pending (paused when a recorded pause covers their key;
/// attempts 0, due now, error kept) unless their key has an open job; of several failed jobs of one key, the oldest, as the reference queue
/// takes them in id order.
pub(super) fn retry_failed(schema: &str, scope: &JobScope) -> UpdateStatement {
    let open_sibling = same_key(schema)
        .and_where(acol("o", "status").is_in(open_statuses().into_iter().map(status)))
        .to_owned();
    let mut stmt = Query::update()
        .table(table(schema, JOBS))
        .value(
            id("status"),
            Expr::case(paused(schema, outer(schema)), status(JobStatus::Paused))
                .finally(status(JobStatus::Pending)),
        )
        .value(id("attempts"), 0i32)
        .value(id("next_run_at"), now())
        .value(id("finished_at"), Expr::null())
        .value(id("updated_at"), now())
        .and_where(col("status").eq(status(JobStatus::Failed)))
        .cond_where(in_scope(scope))
        .and_where(Expr::exists(open_sibling).not())
        .to_owned();
    if scope.job.is_none() {
        let older_failed = same_key(schema)
            .and_where(acol("o", "status").eq(status(JobStatus::Failed)))
            .and_where(acol("o", "id").lt(outer(schema)("id")))
            .to_owned();
        stmt.and_where(Expr::exists(older_failed).not());
    }
    stmt
}

/// Deletes completed and cancelled jobs finished at or before `now - older_than` (their
/// idempotency keys go with them: the foreign key cascades).
pub(super) fn prune(schema: &str, older_than: Duration) -> DeleteStatement {
    Query::delete()
        .from_table(table(schema, JOBS))
        .and_where(
            col("status").is_in([status(JobStatus::Completed), status(JobStatus::Cancelled)]),
        )
        .and_where(col("finished_at").lte(now_minus(older_than)))
        .to_owned()
}

/// The jobs `filter` matches, newest first.
pub(super) fn jobs(schema: &str, filter: &JobFilter) -> SelectStatement {
    let mut q = select_jobs(schema)
        .cond_where(in_scope(&filter.scope))
        .order_by(id("id"), Order::Desc)
        .limit(filter.limit.min(i64::MAX as usize) as u64)
        .to_owned();
    if !filter.statuses.is_empty() {
        q.and_where(col("status").is_in(filter.statuses.iter().map(|s| status(*s))));
    }
    q
}

/// `status, count(*)` of the jobs of `scope`.
pub(super) fn counts(schema: &str, scope: &JobScope) -> SelectStatement {
    Query::select()
        .column(id("status"))
        .expr(col("id").count())
        .from(table(schema, JOBS))
        .cond_where(in_scope(scope))
        .group_by_col(id("status"))
        .to_owned()
}
