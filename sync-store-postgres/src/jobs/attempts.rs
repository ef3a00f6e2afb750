//! The statements of an attempt: claim, heartbeat, finish and the rescue of expired leases.
//! Each is one statement; heartbeat and finish are fenced by
//! `WHERE id = $1 AND fence = $2 AND status = 'processing'`.

use std::time::Duration;

use sea_query::{
    CaseStatement, Expr, ExprTrait, Func, LockBehavior, LockType, Order, Query, UpdateStatement,
};
use sync_core::jobs::{scrub_secrets, JobId, JobOutcome, JobStatus, StopIntent};

use super::tables::{col, intent, now, now_plus, returning_job, status};
use crate::sql::{id, table, JOBS};

/// The statement that claims the next due job for `worker`:
///
/// ```sql
/// UPDATE jobs SET status = 'processing', lease_owner = $1, lease_until = now() + lease,
///        attempts = attempts + 1, fence = fence + 1, started_at = now(), updated_at = now()
///  WHERE id = (SELECT id FROM jobs WHERE status = 'pending' AND next_run_at <= now()
///              ORDER BY priority DESC, next_run_at, id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
/// RETURNING *
/// ```
///
/// `SKIP LOCKED` lets concurrent claimers pass a row another claimer locked instead of
/// waiting for it, so two claims never return one job and none queues behind another.
/// `NO KEY UPDATE` is the `FOR UPDATE` that the `UPDATE` itself takes: it does not wait for
/// the key-share lock an idempotency key's foreign key takes on its job.
pub(super) fn claim(schema: &str, worker: &str, lease: Duration) -> UpdateStatement {
    let next = Query::select()
        .column(id("id"))
        .from(table(schema, JOBS))
        .and_where(col("status").eq(status(JobStatus::Pending)))
        .and_where(col("next_run_at").lte(now()))
        .order_by(id("priority"), Order::Desc)
        .order_by(id("next_run_at"), Order::Asc)
        .order_by(id("id"), Order::Asc)
        .limit(1)
        .lock_with_behavior(LockType::NoKeyUpdate, LockBehavior::SkipLocked)
        .to_owned();
    Query::update()
        .table(table(schema, JOBS))
        .value(id("status"), status(JobStatus::Processing))
        .value(id("lease_owner"), worker)
        .value(id("lease_until"), now_plus(lease))
        .value(id("attempts"), col("attempts").add(1))
        .value(id("fence"), col("fence").add(1i64))
        .value(id("started_at"), now())
        .value(id("updated_at"), now())
        .and_where(col("id").eq(next))
        .returning(returning_job())
        .to_owned()
}

/// An `UPDATE` of the job `id` while `fence` holds its lease.
fn fenced_update(schema: &str, id_: JobId, fence: u64) -> UpdateStatement {
    Query::update()
        .table(table(schema, JOBS))
        .and_where(col("id").eq(id_.0))
        .and_where(col("fence").eq(i64::try_from(fence).unwrap_or(-1)))
        .and_where(col("status").eq(status(JobStatus::Processing)))
        .to_owned()
}

/// Extends the lease; returns `stop_requested`.
pub(super) fn heartbeat(schema: &str, id_: JobId, fence: u64, lease: Duration) -> UpdateStatement {
    fenced_update(schema, id_, fence)
        .value(id("lease_until"), now_plus(lease))
        .value(id("updated_at"), now())
        .returning(Query::returning().column(id("stop_requested")))
        .to_owned()
}

fn asked(i: StopIntent) -> Expr {
    col("stop_requested").eq(intent(i))
}

/// `CASE stop_requested WHEN 'pause' THEN paused WHEN 'cancel' THEN cancelled ELSE otherwise`:
/// the status a stop request turns into, `otherwise` without one.
fn stopped_or(otherwise: Expr) -> CaseStatement {
    Expr::case(asked(StopIntent::Pause), status(JobStatus::Paused))
        .case(asked(StopIntent::Cancel), status(JobStatus::Cancelled))
        .finally(otherwise)
}

/// `finished_at`, set to now when `ends`.
fn finished_when(ends: Expr) -> CaseStatement {
    Expr::case(ends, now()).finally(col("finished_at"))
}

/// Ends an attempt with `outcome` (every `SET` reads the row as it was, so the cases see the
/// stop request the statement clears).
pub(super) fn finish(
    schema: &str,
    id_: JobId,
    fence: u64,
    outcome: &JobOutcome,
) -> UpdateStatement {
    let mut stmt = fenced_update(schema, id_, fence);
    match outcome {
        JobOutcome::Completed { summary } => {
            stmt.value(id("status"), status(JobStatus::Completed))
                .value(id("summary"), summary.clone())
                .value(id("finished_at"), now());
        }
        JobOutcome::Stopped { summary } => {
            let to = Expr::case(asked(StopIntent::Pause), status(JobStatus::Paused))
                .finally(status(JobStatus::Cancelled));
            stmt.value(id("status"), to)
                .value(id("summary"), summary.clone())
                .value(
                    id("finished_at"),
                    Expr::case(asked(StopIntent::Pause), col("finished_at")).finally(now()),
                );
        }
        JobOutcome::Released { summary } => {
            stmt.value(id("status"), stopped_or(status(JobStatus::Pending)))
                .value(id("summary"), summary.clone())
                .value(
                    id("attempts"),
                    Func::greatest([col("attempts").sub(1), Expr::val(0)]),
                )
                .value(id("next_run_at"), now())
                .value(id("finished_at"), finished_when(asked(StopIntent::Cancel)));
        }
        JobOutcome::Deferred { reason, retry_in } => {
            stmt.value(id("status"), stopped_or(status(JobStatus::Pending)))
                .value(id("last_error"), scrub_secrets(reason))
                .value(
                    id("attempts"),
                    Func::greatest([col("attempts").sub(1), Expr::val(0)]),
                )
                .value(id("next_run_at"), now_plus(*retry_in))
                .value(id("finished_at"), finished_when(asked(StopIntent::Cancel)));
        }
        JobOutcome::Failed { error, retry_in } => {
            stmt.value(id("last_error"), scrub_secrets(error));
            match retry_in {
                Some(delay) => {
                    let again = col("attempts").lt(col("max_attempts"));
                    stmt.value(
                        id("status"),
                        Expr::case(again.clone(), status(JobStatus::Pending))
                            .finally(status(JobStatus::Failed)),
                    )
                    .value(
                        id("next_run_at"),
                        Expr::case(again.clone(), now_plus(*delay)).finally(col("next_run_at")),
                    )
                    .value(id("finished_at"), finished_when(again.not()));
                }
                None => {
                    stmt.value(id("status"), status(JobStatus::Failed))
                        .value(id("finished_at"), now());
                }
            }
        }
    }
    release(&mut stmt).returning(returning_job()).to_owned()
}

/// Clears the lease and the stop request of a job leaving processing.
fn release(stmt: &mut UpdateStatement) -> &mut UpdateStatement {
    stmt.value(id("lease_owner"), Expr::null())
        .value(id("lease_until"), Expr::null())
        .value(id("stop_requested"), Expr::null())
        .value(id("updated_at"), now())
}

/// Takes every processing job whose lease expired: a stop request is honoured as if the worker
/// had stopped; otherwise pending again (due now) while attempts remain, failed after them.
/// Returns the ids.
pub(super) fn rescue_expired(schema: &str) -> UpdateStatement {
    let spent = col("attempts").gte(col("max_attempts"));
    let gives_up = col("stop_requested").is_null().and(spent.clone());
    let to = stopped_or(
        Expr::case(spent, status(JobStatus::Failed))
            .finally(status(JobStatus::Pending))
            .into(),
    );
    let message = Func::cust(id("format"))
        .arg("the worker stopped heartbeating on each of %s attempts")
        .arg(col("attempts"));
    let mut stmt = Query::update()
        .table(table(schema, JOBS))
        .value(id("status"), to)
        .value(
            id("last_error"),
            Expr::case(gives_up.clone(), message).finally(col("last_error")),
        )
        .value(
            id("finished_at"),
            finished_when(gives_up.or(asked(StopIntent::Cancel))),
        )
        .and_where(col("status").eq(status(JobStatus::Processing)))
        .and_where(
            col("lease_until")
                .is_null()
                .or(col("lease_until").lte(now())),
        )
        .to_owned();
    release(&mut stmt)
        .returning(Query::returning().column(id("id")))
        .to_owned()
}
