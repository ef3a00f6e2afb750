//! The job queue's statements: exact SQL of the claim and the fenced update, the plan SQLite
//! picks for a claim, and the database's own refusal of a second open job.

use std::time::Duration;

use chrono::Utc;
use rusqlite::Connection;
use sea_query::SqliteQueryBuilder;
use sea_query_rusqlite::RusqliteBinder;
use sync_core::jobs::{EnqueueRequest, Job, JobId, JobKey, JobStatus};

use super::row::{self, micros};

fn migrated() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::schema::migrate(&mut conn).unwrap();
    conn
}

#[test]
fn a_claim_reads_in_index_order_with_bound_values() {
    // `query_job` adds the limit.
    let (text, values) = super::ops::next_due(Utc::now())
        .limit(1)
        .build_rusqlite(SqliteQueryBuilder);
    assert!(
        text.ends_with(
            r#"FROM "_sync_jobs" WHERE "status" = ? AND "next_run_at" <= ? ORDER BY "priority" DESC, "next_run_at" ASC, "id" ASC LIMIT ?"#
        ),
        "{text}"
    );
    assert_eq!(values.0.len(), 3);
    let conn = migrated();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {text}"))
        .unwrap()
        .query_map(&*values.as_params(), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let plan = plan.join("; ");
    assert!(plan.contains("_sync_jobs_claim_order"), "{plan}");
    assert!(
        !plan.contains("TEMP B-TREE"),
        "a claim sorts nothing: {plan}"
    );
}

#[test]
fn a_save_is_guarded_by_the_fence_and_status_it_read() {
    let conn = migrated();
    let now = Utc::now();
    let request = EnqueueRequest::sync(JobKey::new("p", "t", "s").unwrap());
    let job = Job::enqueued(JobId(0), &request, JobStatus::Pending, now);
    let id = row::insert(&conn, &job).unwrap().unwrap();
    let read = row::load(&conn, id).unwrap().unwrap();
    assert_eq!(micros(read.created_at), micros(now));
    assert!(row::apply(&conn, &read, |j| j.claim("w", Duration::from_secs(5), now)).unwrap());
    // The row moved on: a second change from the same read finds nothing to update.
    assert!(!row::apply(&conn, &read, |j| j.claim("w2", Duration::from_secs(5), now)).unwrap());
    let claimed = row::load(&conn, id).unwrap().unwrap();
    assert_eq!(
        (claimed.fence, claimed.lease_owner.as_deref()),
        (1, Some("w"))
    );
    // A second open job of the key is refused by the index, not inserted.
    assert_eq!(row::insert(&conn, &job).unwrap(), None);
}
