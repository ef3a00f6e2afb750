//! Migration 7: the job queue's tables and indexes.
//!
//! - `_sync_integrations`: one row per `(provider, tenant)`; schedule, streams and settings as
//!   JSON text.
//! - `_sync_jobs`: one row per job; times are integer microseconds since the Unix epoch (UTC),
//!   so integer order is time order. A partial unique index allows one open job (pending,
//!   processing, paused) per `(provider, tenant, stream)`.
//! - `_sync_job_keys`: idempotency keys and the job each one created or met.
//! - `_sync_job_pauses`: recorded pauses; a NULL part matches every value (a wildcard).

use rusqlite::Transaction;
use sea_query::{
    ColumnDef, ConditionalStatement, Expr, ExprTrait, Index, IndexOrder, SqliteQueryBuilder, Table,
};
use sync_core::jobs::JobStatus;
use sync_core::Result;

use super::row::{INTEGRATIONS, JOBS, KEYS, OPEN, PAUSES};
use crate::error::SqliteResultExt;
use crate::schema::{integer, serial, text};
use crate::sql::id;

fn nullable_text(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.text().null();
    c
}

fn nullable_integer(name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(id(name));
    c.integer().null();
    c
}

/// `name IN (values)` on an unqualified column (SQLite wants plain columns in CHECK and in a
/// partial index's WHERE).
fn one_of(name: &str, values: impl IntoIterator<Item = &'static str>) -> Expr {
    Expr::col(id(name)).is_in(values)
}

/// Creates the job queue's tables and indexes. Like the other migrations the DDL is rendered
/// to text: SQLite binds no parameters in `CREATE` statements, and the only values in it are
/// the status and intent names (the CHECK constraints, the partial index's WHERE).
pub(crate) fn migration_7(tx: &Transaction<'_>) -> Result<()> {
    let integrations = Table::create()
        .table(id(INTEGRATIONS))
        .col(text("provider"))
        .col(text("tenant"))
        .col(integer("enabled"))
        .col(nullable_text("schedule"))
        .col(nullable_text("credentials_ref"))
        .col(text("strategy"))
        .col(text("streams"))
        .col(integer("max_attempts"))
        .col(integer("priority"))
        .col(nullable_text("settings"))
        .col(integer("updated_at"))
        .primary_key(Index::create().col(id("provider")).col(id("tenant")))
        .to_owned();
    let statuses = JobStatus::ALL.map(JobStatus::as_str);
    let jobs = Table::create()
        .table(id(JOBS))
        .col(serial("id"))
        .col(text("provider"))
        .col(text("tenant"))
        .col(text("stream"))
        .col(text("action"))
        .col(text("status").check(one_of("status", statuses)))
        .col(integer("priority"))
        .col(integer("attempts"))
        .col(integer("max_attempts"))
        .col(integer("next_run_at"))
        .col(nullable_text("idempotency_key"))
        .col(nullable_text("last_error"))
        .col(nullable_text("lease_owner"))
        .col(nullable_integer("lease_until"))
        .col(integer("fence"))
        .col(nullable_text("stop_requested").check(one_of("stop_requested", ["cancel", "pause"])))
        .col(nullable_text("summary"))
        .col(integer("created_at"))
        .col(integer("updated_at"))
        .col(nullable_integer("started_at"))
        .col(nullable_integer("finished_at"))
        .to_owned();
    let keys = Table::create()
        .table(id(KEYS))
        .col(text("key").primary_key())
        .col(integer("job"))
        .col(integer("created_at"))
        .to_owned();
    let pauses = Table::create()
        .table(id(PAUSES))
        .col(serial("id"))
        .col(nullable_text("provider"))
        .col(nullable_text("tenant"))
        .col(nullable_text("stream"))
        .col(integer("created_at"))
        .to_owned();
    for table in [integrations, jobs, keys, pauses] {
        tx.execute(&table.to_string(SqliteQueryBuilder), []).db()?;
    }
    let open = OPEN.map(JobStatus::as_str);
    let indexes = [
        // At most one open job per key: the database enforces what `enqueue` checks.
        Index::create()
            .name("_sync_jobs_one_open")
            .table(id(JOBS))
            .unique()
            .col(id("provider"))
            .col(id("tenant"))
            .col(id("stream"))
            .and_where(one_of("status", open))
            .to_owned(),
        // Claims read pending jobs in claim order.
        Index::create()
            .name("_sync_jobs_claim_order")
            .table(id(JOBS))
            .col(id("status"))
            .col((id("priority"), IndexOrder::Desc))
            .col(id("next_run_at"))
            .col(id("id"))
            .to_owned(),
        // Scoped operations and history.
        Index::create()
            .name("_sync_jobs_key")
            .table(id(JOBS))
            .col(id("provider"))
            .col(id("tenant"))
            .col(id("stream"))
            .col(id("id"))
            .to_owned(),
        // Rescues read processing jobs by lease expiry.
        Index::create()
            .name("_sync_jobs_lease")
            .table(id(JOBS))
            .col(id("status"))
            .col(id("lease_until"))
            .to_owned(),
        // Prune deletes the keys of the jobs it deletes.
        Index::create()
            .name("_sync_job_keys_job")
            .table(id(KEYS))
            .col(id("job"))
            .to_owned(),
    ];
    for index in indexes {
        tx.execute(&index.to_string(SqliteQueryBuilder), []).db()?;
    }
    Ok(())
}
