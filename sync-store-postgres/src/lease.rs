//! Run leases: at most one run of a sync at a time, across processes.
//!
//! The fence row of a sync carries the lease: `lease_until` (NULL when free), `holder` and the
//! `run_id` bound to it. `acquire_fence` takes the lease when it is free, expired, or its
//! holder is gone, and issues the next fencing token with it; otherwise it refuses with an
//! [`ErrorKind::Busy`] error ([`is_lease_held`]). Every fenced call of the holder
//! (begin, stage, validate, promote, commit, abort) extends the lease, and stage, promote and
//! commit verify the token first. The run's `run_started` log entry binds its run id to the
//! lease; its `run_finished` or `run_failed` entry releases it, as do `release_fence` (which
//! the strategies call when a run ends) and `reset` of a lease no run is bound to (an offset
//! reset outside a run). All times are the server's clock.
//!
//! A holder is a store instance. It keeps one session, taken out of the pool, holding the
//! session-level advisory lock `(HOLDER_CLASS, key)` for as long as the store lives. When that
//! session ends (the process died, the connection broke) PostgreSQL releases the lock and the
//! next `acquire_fence` takes over at once instead of waiting for the expiry; a holder that
//! hangs with its session open is overtaken at the expiry. Either way the new run's token is
//! newer, so the old holder's later writes are `Fenced`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{ClientWrapper, Pool};
use sea_query::{Expr, ExprTrait, LockType, OnConflict, Query};
use sync_core::checkpoint::SyncLogEntry;
use sync_core::{Error, ErrorKind, FenceToken, Result};
use tokio_postgres::GenericClient;

use crate::error::classify;
use crate::sql::{self, execute, id, table, FENCES};

/// The first key of the advisory locks holders take (`SYNL`), the second being the holder's
/// key. Two-key advisory locks never collide with the one-key lock migrations take.
const HOLDER_CLASS: i32 = 0x5359_4e4c;

/// The context pair that marks a refused acquisition.
const HELD: (&str, &str) = ("lease", "held");

/// True for the error `acquire_fence` returns while another run holds the sync's lease: an
/// [`ErrorKind::Busy`] error (transient) whose `retry_after` is when the lease expires at the
/// latest (the holder usually releases it sooner, when its run ends). Other `Busy` errors
/// are database locks that outlasted the store's retries.
pub fn is_lease_held(error: &Error) -> bool {
    error.kind() == ErrorKind::Busy && error.context_value(HELD.0) == Some(HELD.1)
}

/// The lease settings and the holder session of one store instance (shared by its clones).
pub(crate) struct Lease {
    /// How long a lease lasts after the holder's last call.
    pub(crate) length: Duration,
    pool: Pool,
    session: tokio::sync::Mutex<Option<(i32, ClientWrapper)>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl Lease {
    pub(crate) fn new(length: Duration, pool: Pool) -> Self {
        Lease {
            length,
            pool,
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// This instance's holder key, opening the holder session when there is none (first use)
    /// or it was lost (its leases may have been taken over since; their tokens say so).
    pub(crate) async fn holder(&self) -> Result<i32> {
        let mut session = self.session.lock().await;
        if let Some((key, client)) = &*session {
            if !client.is_closed() {
                return Ok(*key);
            }
            tracing::warn!(
                holder = key,
                "the lease holder session was lost; opening another"
            );
        }
        let previous = session.as_ref().map(|(key, _)| *key);
        let object = self.pool.get().await.map_err(crate::store::pool_error)?;
        // Out of the pool for good: the session lock lives exactly as long as this client.
        let client = deadpool_postgres::Object::take(object);
        let keys = previous
            .into_iter()
            .chain(std::iter::repeat_with(|| fastrand::i32(1..)));
        for key in keys.take(8) {
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&HOLDER_CLASS, &key],
                )
                .await
                .map_err(classify)?;
            if row.try_get::<_, bool>(0).map_err(classify)? {
                *session = Some((key, client));
                return Ok(key);
            }
        }
        Err(Error::internal("no free lease holder key"))
    }

    /// The holder key in use, if a holder session was opened.
    pub(crate) async fn current_holder(&self) -> Option<i32> {
        self.session.lock().await.as_ref().map(|(key, _)| *key)
    }
}

/// `now() + length` on the server's clock.
fn expiry(length: Duration) -> Expr {
    Expr::cust_with_values(
        "now() + $1 * interval '1 millisecond'",
        [length.as_millis() as f64],
    )
}

fn of_sync(sync: &str) -> Expr {
    Expr::col(id("sync")).eq(sync)
}

pub(crate) fn fenced(sync: &str, fence: FenceToken) -> Error {
    Error::new(ErrorKind::Fenced, "fencing token is stale")
        .with_context("sync", sync)
        .with_context("fence", fence.0)
}

fn held(sync: &str, remaining: chrono::Duration, run: Option<String>) -> Error {
    let remaining = remaining.to_std().unwrap_or_default();
    let mut e = Error::new(ErrorKind::Busy, "another run holds the sync")
        .with_context(HELD.0, HELD.1)
        .with_context("sync", sync)
        .with_context("lease_remaining_ms", remaining.as_millis());
    if let Some(run) = run {
        e = e.with_context("holder_run", run);
    }
    e.with_retry_after(remaining).transient()
}

/// True when no session holds `holder`'s advisory lock any more: its store is gone. The
/// transaction-level probe lock is released at commit.
async fn holder_gone<C: GenericClient>(client: &C, holder: i64) -> Result<bool> {
    let Ok(key) = i32::try_from(holder) else {
        return Ok(false);
    };
    let row = client
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1, $2)",
            &[&HOLDER_CLASS, &key],
        )
        .await
        .map_err(classify)?;
    row.try_get::<_, bool>(0).map_err(classify)
}

/// Takes the lease of `sync` for holder `me` and issues the next token, or refuses while a
/// live holder has it. Runs inside the caller's transaction.
pub(crate) async fn acquire<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
    length: Duration,
    me: i32,
) -> Result<FenceToken> {
    let ensure = Query::insert()
        .into_table(table(schema, FENCES))
        .columns([id("sync"), id("fence")])
        .values_panic([sync.into(), 0i64.into()])
        .on_conflict(OnConflict::column(id("sync")).do_nothing().to_owned())
        .to_owned();
    execute(client, &ensure).await?;
    let current = Query::select()
        .columns([id("holder"), id("run_id"), id("lease_until")])
        .expr(Expr::cust("now()"))
        .from(table(schema, FENCES))
        .and_where(of_sync(sync))
        .lock(LockType::Update)
        .to_owned();
    let rows = sql::query(client, &current).await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::internal("the fence row is missing"))?;
    let holder: Option<i64> = row.try_get(0).map_err(classify)?;
    let run: Option<String> = row.try_get(1).map_err(classify)?;
    let until: Option<DateTime<Utc>> = row.try_get(2).map_err(classify)?;
    let now: DateTime<Utc> = row.try_get(3).map_err(classify)?;
    if let Some(until) = until.filter(|u| *u > now) {
        let gone = match holder {
            Some(h) if h != i64::from(me) => holder_gone(client, h).await?,
            _ => false,
        };
        if !gone {
            return Err(held(sync, until - now, run));
        }
        tracing::warn!(
            sync,
            holder,
            "the lease holder's session is gone; taking the sync over"
        );
    }
    let take = Query::update()
        .table(table(schema, FENCES))
        .value(id("fence"), Expr::col(id("fence")).add(1i64))
        .value(id("lease_until"), expiry(length))
        .value(id("holder"), i64::from(me))
        .value(id("run_id"), Expr::cust("NULL"))
        .and_where(of_sync(sync))
        .returning_col(id("fence"))
        .to_owned();
    let fence = sql::query_i64(client, &take)
        .await?
        .ok_or_else(|| Error::internal("no fence returned"))?;
    Ok(FenceToken(fence as u64))
}

/// Issues the next token with no lease (leases off): a forced takeover, which also frees any
/// lease another store held.
pub(crate) async fn acquire_unleased<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
) -> Result<FenceToken> {
    let stmt = Query::insert()
        .into_table(table(schema, FENCES))
        .columns([id("sync"), id("fence")])
        .values_panic([sync.into(), 1i64.into()])
        .on_conflict(
            OnConflict::column(id("sync"))
                .value(id("fence"), sql::qcol(schema, FENCES, "fence").add(1i64))
                .value(id("lease_until"), Expr::cust("NULL"))
                .value(id("holder"), Expr::cust("NULL"))
                .value(id("run_id"), Expr::cust("NULL"))
                .to_owned(),
        )
        .returning_col(id("fence"))
        .to_owned();
    let fence = sql::query_i64(client, &stmt)
        .await?
        .ok_or_else(|| Error::internal("no fence returned"))?;
    Ok(FenceToken(fence as u64))
}

/// Verifies that `fence` is the latest token of `sync` (else [`ErrorKind::Fenced`]) and
/// extends its lease, if it has one. Locks the fence row: an acquisition waits for the
/// caller's transaction, so a writer that passed the check is never overtaken before it
/// commits.
pub(crate) async fn hold<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
    fence: FenceToken,
    length: Option<Duration>,
) -> Result<()> {
    let latest = match length {
        Some(length) => {
            let extend = Expr::case(Expr::col(id("lease_until")).is_null(), Expr::cust("NULL"))
                .finally(expiry(length));
            let stmt = Query::update()
                .table(table(schema, FENCES))
                .value(id("lease_until"), extend)
                .and_where(of_sync(sync))
                .and_where(Expr::col(id("fence")).eq(fence.0 as i64))
                .returning_col(id("fence"))
                .to_owned();
            sql::query_i64(client, &stmt).await?
        }
        None => {
            let q = Query::select()
                .column(id("fence"))
                .from(table(schema, FENCES))
                .and_where(of_sync(sync))
                .lock(LockType::Update)
                .to_owned();
            sql::query_i64(client, &q).await?
        }
    };
    if latest == Some(fence.0 as i64) {
        Ok(())
    } else {
        Err(fenced(sync, fence))
    }
}

/// Extends the lease of `sync` if `fence` holds it (no check: the caller's own checks decide).
pub(crate) async fn touch<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
    fence: FenceToken,
    length: Option<Duration>,
) -> Result<()> {
    let Some(length) = length else {
        return Ok(());
    };
    let stmt = Query::update()
        .table(table(schema, FENCES))
        .value(id("lease_until"), expiry(length))
        .and_where(of_sync(sync))
        .and_where(Expr::col(id("fence")).eq(fence.0 as i64))
        .and_where(Expr::col(id("lease_until")).is_not_null())
        .to_owned();
    execute(client, &stmt).await.map(drop)
}

/// What a log entry means for the lease: `run_started` binds the run to the lease its store
/// (`me`) holds and no run claimed yet; `run_finished` and `run_failed` release the lease of
/// that run; any other entry of the run extends it.
pub(crate) async fn on_log<C: GenericClient>(
    client: &C,
    schema: &str,
    entry: &SyncLogEntry,
    me: Option<i32>,
    length: Duration,
) -> Result<()> {
    if entry.run_id == "-" {
        return Ok(());
    }
    let mut stmt = Query::update();
    stmt.table(table(schema, FENCES))
        .and_where(of_sync(&entry.sync))
        .and_where(Expr::col(id("lease_until")).is_not_null());
    match entry.event.as_str() {
        "run_started" => {
            let Some(me) = me else {
                return Ok(());
            };
            stmt.value(id("run_id"), entry.run_id.as_str())
                .value(id("lease_until"), expiry(length))
                .and_where(Expr::col(id("holder")).eq(i64::from(me)))
                .and_where(Expr::col(id("run_id")).is_null());
        }
        "run_finished" | "run_failed" => {
            stmt.value(id("lease_until"), Expr::cust("NULL"))
                .value(id("holder"), Expr::cust("NULL"))
                .value(id("run_id"), Expr::cust("NULL"))
                .and_where(Expr::col(id("run_id")).eq(entry.run_id.as_str()));
        }
        _ => {
            stmt.value(id("lease_until"), expiry(length))
                .and_where(Expr::col(id("run_id")).eq(entry.run_id.as_str()));
        }
    }
    execute(client, &stmt).await.map(drop)
}

/// Releases the lease `fence` holds, bound to a run or not; a newer token's lease is left
/// alone (its `fence` differs), so a stale release changes nothing.
pub(crate) async fn release<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
    fence: FenceToken,
) -> Result<()> {
    let mut stmt = release_of(schema, sync, fence);
    stmt.value(id("run_id"), Expr::cust("NULL"))
        .and_where(Expr::col(id("lease_until")).is_not_null());
    execute(client, &stmt).await.map(drop)
}

/// Releases the lease `fence` took if no run is bound to it: an acquisition for a one-off
/// call (an offset reset outside a run) ends with that call.
pub(crate) async fn release_unbound<C: GenericClient>(
    client: &C,
    schema: &str,
    sync: &str,
    fence: FenceToken,
) -> Result<()> {
    let mut stmt = release_of(schema, sync, fence);
    stmt.and_where(Expr::col(id("run_id")).is_null());
    execute(client, &stmt).await.map(drop)
}

/// `UPDATE` of the fence row of `sync` at token `fence` that clears its lease and holder.
fn release_of(schema: &str, sync: &str, fence: FenceToken) -> sea_query::UpdateStatement {
    Query::update()
        .table(table(schema, FENCES))
        .value(id("lease_until"), Expr::cust("NULL"))
        .value(id("holder"), Expr::cust("NULL"))
        .and_where(of_sync(sync))
        .and_where(Expr::col(id("fence")).eq(fence.0 as i64))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use sea_query::PostgresQueryBuilder;
    use sea_query_postgres::PostgresBinder;

    use super::*;

    #[test]
    fn the_expiry_parameter_is_numbered_among_the_others() {
        let (sql, values) = Query::update()
            .table(table("s", FENCES))
            .value(id("fence"), Expr::col(id("fence")).add(1i64))
            .value(id("lease_until"), expiry(Duration::from_millis(250)))
            .and_where(of_sync("x"))
            .to_owned()
            .build_postgres(PostgresQueryBuilder);
        assert_eq!(
            sql,
            "UPDATE \"s\".\"_sync_fences\" SET \"fence\" = \"fence\" + $1, \"lease_until\" = \
             now() + $2 * interval '1 millisecond' WHERE \"sync\" = $3"
        );
        assert_eq!(values.0.len(), 3);
    }
}
