//! Golden SQL of the statements whose shape the queue's guarantees rest on (no database).

use std::time::Duration;

use sea_query::PostgresQueryBuilder;
use sync_core::jobs::{EnqueueRequest, JobId, JobKey, JobOutcome};

use super::{attempts, enqueue, tables};

const RETURNING: &str = r#"RETURNING "id", "provider", "tenant", "stream", "action", "status", "priority", "attempts", "max_attempts", "next_run_at", "idempotency_key", "fence", "created_at", "updated_at", "last_error", "lease_owner", "lease_until", "stop_requested", "summary", "started_at", "finished_at""#;

#[test]
fn claim_updates_the_next_due_job_picked_with_skip_locked() {
    let sql = attempts::claim("s", "w1", Duration::from_secs(2)).to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        format!(
            r#"UPDATE "s"."_sync_jobs" SET "status" = 'processing', "lease_owner" = 'w1', "lease_until" = now() + 2000 * interval '1 millisecond', "attempts" = "attempts" + 1, "fence" = "fence" + 1, "started_at" = now(), "updated_at" = now() WHERE "id" = (SELECT "id" FROM "s"."_sync_jobs" WHERE "status" = 'pending' AND "next_run_at" <= (now()) ORDER BY "priority" DESC, "next_run_at" ASC, "id" ASC LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED) {RETURNING}"#
        )
    );
}

#[test]
fn heartbeat_and_finish_are_fenced_and_bind_their_values() {
    let (sql, values) = attempts::heartbeat("s", JobId(7), 3, Duration::from_millis(500))
        .build(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"UPDATE "s"."_sync_jobs" SET "lease_until" = now() + $1 * interval '1 millisecond', "updated_at" = now() WHERE "id" = $2 AND "fence" = $3 AND "status" = 'processing' RETURNING "stop_requested""#
    );
    assert_eq!(values.0.len(), 3);
    let failed = JobOutcome::Failed {
        error: "Authorization: Bearer tok123".into(),
        retry_in: None,
    };
    let (sql, values) = attempts::finish("s", JobId(7), 3, &failed).build(PostgresQueryBuilder);
    assert!(
        sql.contains(r#"WHERE "id" = $2 AND "fence" = $3 AND "status" = 'processing'"#),
        "{sql}"
    );
    // The error is bound, and scrubbed.
    assert!(!sql.contains("tok123"));
    assert!(!format!("{values:?}").contains("tok123"), "{values:?}");
}

#[test]
fn enqueue_inserts_with_do_nothing_on_the_open_job_index() {
    let request = EnqueueRequest::sync(JobKey::new("p", "t", "s").unwrap());
    let (sql, _) = enqueue::insert_jobs("q", &[&request], None)
        .unwrap()
        .build(PostgresQueryBuilder);
    assert!(
        sql.contains(r#"ON CONFLICT ("provider", "tenant", "stream") WHERE "status" IN ('pending', 'processing', 'paused') DO NOTHING"#),
        "{sql}"
    );
    let (_, indexes) = tables::migration_3("q");
    assert_eq!(
        indexes[0].to_string(PostgresQueryBuilder),
        r#"CREATE UNIQUE INDEX "_sync_jobs_open" ON "q"."_sync_jobs" ("provider", "tenant", "stream") WHERE "status" IN ('pending', 'processing', 'paused')"#
    );
    assert_eq!(
        indexes[1].to_string(PostgresQueryBuilder),
        r#"CREATE INDEX "_sync_jobs_due" ON "q"."_sync_jobs" ("priority" DESC, "next_run_at", "id") WHERE "status" = 'pending'"#
    );
}

#[test]
fn the_pause_lock_is_a_two_key_transaction_lock() {
    let (sql, values) = enqueue::lock_statement("q", true).build(PostgresQueryBuilder);
    assert_eq!(sql, "SELECT pg_advisory_xact_lock_shared($1, $2)");
    assert_eq!(values.0.len(), 2);
    let (sql, _) = enqueue::lock_statement("q", false).build(PostgresQueryBuilder);
    assert_eq!(sql, "SELECT pg_advisory_xact_lock($1, $2)");
}
