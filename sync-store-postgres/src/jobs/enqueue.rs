//! Enqueue, inside any transaction: deduplicated by idempotency key and by the key's open job,
//! which the partial unique index `_sync_jobs_open` keeps to one however many transactions
//! race; a race lost is seen as `ON CONFLICT DO NOTHING` inserting nothing, and the next
//! round reads what the winner committed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

use sea_query::{
    Expr, ExprTrait, Func, InsertStatement, OnConflict, PostgresQueryBuilder, Query,
    SelectStatement,
};
use sea_query_postgres::PostgresBinder;
use sync_core::jobs::{EnqueueRequest, Enqueued, Job, JobScope, JobStatus};
use sync_core::{Error, ErrorKind, Result};
use tokio_postgres::{GenericClient, Row, Statement};

use super::tables::{
    col, is_open, key_part, now, of_key, paused, read_job, returning_job, select_jobs, status,
    INSERTED, JOB_COLUMNS,
};
use crate::error::classify;
use crate::sql::{self, id, table, JOBS, JOB_KEYS, JOB_PAUSES};

/// How many times one enqueue reads again after losing a race before it gives up (each lost
/// race means another transaction committed the row this one reads next, so one is usual).
const ROUNDS: usize = 8;

/// The most rows one insert of a batch carries (13 parameters each, under PostgreSQL's 65,535).
const MAX_ROWS: usize = 1000;

/// The first key of the advisory lock that orders enqueues against pause and resume (`SYNJ`);
/// two-key locks never collide with the migration's one-key lock or the run leases' class.
const PAUSE_LOCK_CLASS: i32 = 0x5359_4e4a;

/// Takes this schema's pause lock until the end of the transaction: shared by enqueues,
/// exclusive for pause and resume. So an enqueue either sees a pause recorded by a transaction
/// that committed first, or commits its job before the pause's `UPDATE` looks for jobs.
pub(super) async fn lock_pauses<C: GenericClient>(
    client: &C,
    schema: &str,
    shared: bool,
) -> Result<()> {
    sql::query_typed(client, &lock_statement(schema, shared))
        .await
        .map(drop)
}

/// `SELECT pg_advisory_xact_lock[_shared](class, hash of the schema name)`.
pub(super) fn lock_statement(schema: &str, shared: bool) -> SelectStatement {
    let key = schema
        .bytes()
        .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)));
    let function = if shared {
        "pg_advisory_xact_lock_shared"
    } else {
        "pg_advisory_xact_lock"
    };
    Query::select()
        .expr(Func::cust(id(function)).arg(PAUSE_LOCK_CLASS).arg(key))
        .to_owned()
}

/// Where enqueues run: the caller's transaction, and for a batch the statements prepared on
/// it (each distinct statement parsed and planned once for the whole batch). A lone enqueue
/// sends each statement unnamed with its parameter types, in one round trip.
struct Session<'a, C> {
    client: &'a C,
    schema: &'a str,
    prepared: Option<Mutex<HashMap<String, Statement>>>,
}

impl<C: GenericClient> Session<'_, C> {
    async fn statement(
        &self,
        sql: &str,
        types: &[tokio_postgres::types::Type],
    ) -> Result<Statement> {
        let cache = self.prepared.as_ref().expect("a batch session");
        if let Some(s) = cache.lock().expect("statement cache").get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare_typed(sql, types)
            .await
            .map_err(classify)?;
        cache
            .lock()
            .expect("statement cache")
            .insert(sql.to_string(), s.clone());
        Ok(s)
    }

    async fn query<S: PostgresBinder>(&self, stmt: &S) -> Result<Vec<Row>> {
        if self.prepared.is_none() {
            return sql::query_typed(self.client, stmt).await;
        }
        let (sql, values) = stmt.build_postgres(PostgresQueryBuilder);
        let prepared = self.statement(&sql, &values.as_types()).await?;
        self.client
            .query(&prepared, &values.as_params())
            .await
            .map_err(classify)
    }

    async fn one_job<S: PostgresBinder>(&self, stmt: &S) -> Result<Option<Job>> {
        self.query(stmt).await?.first().map(read_job).transpose()
    }
}

/// Runs `statement`, behind the shared pause lock when `lock`. The two are sent at once
/// (tokio-postgres pipelines the queries of a connection in the order they are first polled);
/// the server runs them in that order, so the statement's snapshot is taken once the lock is
/// granted. A failed lock aborts the transaction, and with it the statement.
async fn locked_if<C: GenericClient, T>(
    lock: bool,
    client: &C,
    schema: &str,
    statement: impl Future<Output = Result<T>>,
) -> Result<T> {
    if !lock {
        return statement.await;
    }
    let (locked, out) = futures::join!(lock_pauses(client, schema, true), statement);
    locked.and(out)
}

/// Enqueues `request` inside the caller's transaction (see [`super::PostgresJobQueue::enqueue_in`]).
pub(super) async fn enqueue<C: GenericClient>(
    client: &C,
    schema: &str,
    request: &EnqueueRequest,
) -> Result<Enqueued> {
    request.validate()?;
    let session = Session {
        client,
        schema,
        prepared: None,
    };
    enqueue_one(&session, request, true).await
}

/// Enqueues `requests` in order inside the caller's transaction, as [`enqueue`] each would,
/// with many inserted by one statement: each run of requests without an idempotency key and
/// with distinct keys is one multi-row insert (rows in request order, so ids are too); a
/// request whose row conflicted with an open job, or that carries an idempotency key, then
/// takes the one-by-one path. Nothing is written unless every request is valid.
pub(super) async fn enqueue_all<C: GenericClient>(
    client: &C,
    schema: &str,
    requests: &[EnqueueRequest],
) -> Result<Vec<Enqueued>> {
    for request in requests {
        request.validate()?;
    }
    let session = Session {
        client,
        schema,
        prepared: Some(Mutex::new(HashMap::new())),
    };
    lock_pauses(client, schema, true).await?;
    // No pause comes or goes while this transaction holds the shared lock.
    let pauses = recorded_pauses(&session).await?;
    let mut out = Vec::with_capacity(requests.len());
    let mut run: Vec<&EnqueueRequest> = Vec::new();
    let mut keys = HashSet::new();
    for request in requests {
        let alone = request.idempotency_key.is_some();
        if alone || keys.contains(&request.key) || run.len() == MAX_ROWS {
            insert_run(&session, &pauses, &mut run, &mut out).await?;
            keys.clear();
        }
        if alone {
            out.push(enqueue_one(&session, request, false).await?);
        } else {
            keys.insert(&request.key);
            run.push(request);
        }
    }
    insert_run(&session, &pauses, &mut run, &mut out).await?;
    Ok(out)
}

/// The recorded pauses.
async fn recorded_pauses<C: GenericClient>(s: &Session<'_, C>) -> Result<Vec<JobScope>> {
    let q = Query::select()
        .columns(["provider", "tenant", "stream"].map(id))
        .from(table(s.schema, JOB_PAUSES))
        .to_owned();
    let rows = s.query(&q).await?;
    rows.iter()
        .map(|r| {
            Ok(JobScope {
                provider: r.try_get(0).map_err(classify)?,
                tenant: r.try_get(1).map_err(classify)?,
                stream: r.try_get(2).map_err(classify)?,
                job: None,
            })
        })
        .collect()
}

/// Inserts a run of requests with distinct keys and no idempotency key in one statement.
async fn insert_run<C: GenericClient>(
    s: &Session<'_, C>,
    pauses: &[JobScope],
    run: &mut Vec<&EnqueueRequest>,
    out: &mut Vec<Enqueued>,
) -> Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    // Sent once, so not prepared.
    let insert = insert_jobs(s.schema, run, Some(pauses))?;
    let rows = sql::query_typed(s.client, &insert).await?;
    let mut inserted = HashMap::with_capacity(rows.len());
    for row in &rows {
        let job = read_job(row)?;
        inserted.insert(job.key.clone(), job);
    }
    for request in run.drain(..) {
        out.push(match inserted.remove(&request.key) {
            Some(job) => Enqueued { job, created: true },
            // The key had an open job already.
            None => enqueue_one(s, request, false).await?,
        });
    }
    Ok(())
}

async fn enqueue_one<C: GenericClient>(
    s: &Session<'_, C>,
    request: &EnqueueRequest,
    take_lock: bool,
) -> Result<Enqueued> {
    for round in 0..ROUNDS {
        // The shared pause lock goes out with the first statement.
        let lock = take_lock && round == 0;
        if let Some(key) = &request.idempotency_key {
            let found = by_idempotency_key(s, key);
            if let Some(job) = locked_if(lock, s.client, s.schema, found).await? {
                return Ok(Enqueued {
                    job,
                    created: false,
                });
            }
        }
        // Insert first: when the key has an open job the insert does nothing (one statement
        // either way) and that job is read.
        let lock = lock && request.idempotency_key.is_none();
        let statement = insert_jobs(s.schema, &[request], None)?;
        let insert = s.one_job(&statement);
        let (job, created) = match locked_if(lock, s.client, s.schema, insert).await? {
            Some(job) => (job, true),
            None => match open_job(s, request).await? {
                Some(job) => (job, false),
                None => continue, // it was finished meanwhile: insert again
            },
        };
        if let Some(key) = &request.idempotency_key {
            if !remember_key(s, key, &job).await? {
                // Another transaction took the idempotency key first: its job is the answer.
                if created {
                    let undo = Query::delete()
                        .from_table(table(s.schema, JOBS))
                        .and_where(col("id").eq(job.id.0))
                        .to_owned();
                    s.query(&undo).await?;
                }
                continue;
            }
        }
        return Ok(Enqueued { job, created });
    }
    Err(Error::new(
        ErrorKind::Conflict,
        "enqueue kept losing races for the key; try again",
    )
    .with_context("key", request.key.to_string())
    .transient())
}

async fn by_idempotency_key<C: GenericClient>(
    s: &Session<'_, C>,
    key: &str,
) -> Result<Option<Job>> {
    let job_of_key = Query::select()
        .column(id("job_id"))
        .from(table(s.schema, JOB_KEYS))
        .and_where(col("key").eq(key))
        .to_owned();
    let q = select_jobs(s.schema)
        .and_where(col("id").in_subquery(job_of_key))
        .to_owned();
    s.one_job(&q).await
}

async fn open_job<C: GenericClient>(
    s: &Session<'_, C>,
    request: &EnqueueRequest,
) -> Result<Option<Job>> {
    let q = select_jobs(s.schema)
        .cond_where(of_key(&request.key))
        .and_where(is_open())
        .to_owned();
    s.one_job(&q).await
}

/// Points `key` at `job`; false when another transaction holds the key already.
async fn remember_key<C: GenericClient>(s: &Session<'_, C>, key: &str, job: &Job) -> Result<bool> {
    let insert = Query::insert()
        .into_table(table(s.schema, JOB_KEYS))
        .columns([id("key"), id("job_id")])
        .values_panic([key.into(), job.id.0.into()])
        .on_conflict(OnConflict::column(id("key")).do_nothing().to_owned())
        .returning_col(id("key"))
        .to_owned();
    Ok(s.query(&insert).await?.len() == 1)
}

/// `INSERT … ON CONFLICT (provider, tenant, stream) WHERE <open> DO NOTHING RETURNING …`:
/// the jobs, each paused when a recorded pause covers its key (one of `pauses` when they are
/// known, else as the statement finds them). A row whose key has an open job (committed, or
/// committed meanwhile by a transaction this one waited for) is not inserted.
pub(super) fn insert_jobs(
    schema: &str,
    requests: &[&EnqueueRequest],
    pauses: Option<&[JobScope]>,
) -> Result<InsertStatement> {
    let mut insert = Query::insert()
        .into_table(table(schema, JOBS))
        .columns(JOB_COLUMNS[INSERTED].iter().map(|c| id(c)))
        .on_conflict(
            OnConflict::columns([id("provider"), id("tenant"), id("stream")])
                .target_and_where(is_open())
                .do_nothing()
                .to_owned(),
        )
        .returning(returning_job())
        .to_owned();
    for request in requests {
        let key = &request.key;
        let initial: Expr = match pauses {
            Some(pauses) if pauses.iter().any(|p| p.covers(key)) => status(JobStatus::Paused),
            Some(_) => status(JobStatus::Pending),
            None => {
                let part = |name: &str| Expr::val(key_part(key, name));
                Expr::case(paused(schema, part), status(JobStatus::Paused))
                    .finally(status(JobStatus::Pending))
                    .into()
            }
        };
        let run_at = match request.run_at {
            Some(at) => Expr::val(at),
            None => now(),
        };
        insert.values_panic([
            key.provider.as_str().into(),
            key.tenant.as_str().into(),
            key.stream.as_str().into(),
            Expr::val(serde_json::to_value(&request.action)?),
            initial,
            request.priority.into(),
            0i32.into(),
            (request.max_attempts as i32).into(),
            run_at,
            request.idempotency_key.clone().into(),
            0i64.into(),
            now(),
            now(),
        ]);
    }
    Ok(insert)
}
