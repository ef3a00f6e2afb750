//! The worker process of the scale-out test: the test binary run again, filtered to
//! `scale_out_worker`, with the schema and its name in the environment. It runs
//! `sync_core::jobs::Worker::run` on a `PostgresJobQueue` until its stdin closes (the parent
//! closes it to stop the worker gracefully, or dies) or it is killed.
//!
//! Everything the parent judges by is written to the same database, on its clock:
//! - `scale_executions`: one row per run of a job (job, fence, worker, claim time, start, end,
//!   outcome); the run's report names the row (`run_id` = `worker:id`), and so does the job's
//!   summary once the queue accepted the attempt's end;
//! - `scale_polls`: per worker, the claims that found nothing due;
//! - `scale_rescues`: every job a sweep of the worker rescued, with the time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sync_core::jobs::{
    Backoff, EnqueueRequest, Enqueued, Heartbeat, Integration, Job, JobCounts, JobFilter, JobId,
    JobOutcome, JobQueue, JobRunner, JobScope, StopIntent, Worker, WorkerConfig,
};
use sync_core::{Error, ErrorKind, Result, RunReport, StopSignal};
use sync_store_postgres::PostgresJobQueue;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::support;

/// The schema the workers share.
pub(crate) const SCHEMA_VAR: &str = "SCALE_OUT_SCHEMA";
/// The worker's name.
pub(crate) const WORKER_VAR: &str = "SCALE_OUT_WORKER";
/// Set for the worker to be killed: its runner stays inside its n-th job until then.
pub(crate) const HOLD_VAR: &str = "SCALE_OUT_HOLD_AT";

/// Short leases, so a dead worker's jobs come back within seconds.
pub(crate) const LEASE: Duration = Duration::from_secs(2);
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);
pub(crate) const SWEEP: Duration = Duration::from_millis(500);
pub(crate) const POLL: Duration = Duration::from_millis(50);
pub(crate) const CONCURRENCY: usize = 4;

/// The bookkeeping tables, created by the parent before the workers start.
pub(crate) fn tables_sql(schema: &str) -> String {
    format!(
        r#"CREATE TABLE "{schema}".scale_executions (
               id bigserial PRIMARY KEY, job_id bigint NOT NULL, fence bigint NOT NULL,
               worker text NOT NULL, claimed_at timestamptz NOT NULL,
               started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
               ended_at timestamptz, outcome text, held boolean NOT NULL);
           CREATE TABLE "{schema}".scale_polls (worker text PRIMARY KEY, idle bigint NOT NULL);
           CREATE TABLE "{schema}".scale_rescues (
               job_id bigint NOT NULL, worker text NOT NULL,
               at timestamptz NOT NULL DEFAULT clock_timestamp());"#
    )
}

/// The `application_name` of a worker's record session.
pub(crate) fn log_session(schema: &str, worker: &str) -> String {
    format!("{schema}/{worker}")
}

/// One connection of the worker's own for its records (asynchronous commit: they are the
/// test's notes, not data a crash must keep), its statements prepared once.
struct Log {
    client: tokio_postgres::Client,
    worker: String,
    started: Statement,
    ended: Statement,
    idle: Statement,
    rescued: Statement,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("worker", &self.worker).finish()
    }
}

fn noted(e: tokio_postgres::Error) -> Error {
    Error::new(ErrorKind::Storage, "the test's record failed")
        .with_source(e)
        .transient()
}

impl Log {
    async fn open(schema: &str, worker: String) -> Self {
        let client = support::connect_as(&log_session(schema, &worker)).await;
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .expect("session setting");
        let poll_row = format!(r#"INSERT INTO "{schema}".scale_polls VALUES ($1, 0)"#);
        client
            .execute(&poll_row, &[&worker])
            .await
            .expect("poll row");
        let statements = [
            format!(
                r#"INSERT INTO "{schema}".scale_executions (job_id, fence, worker, claimed_at, held)
                   VALUES ($1, $2, $3, $4, $5) RETURNING id"#
            ),
            format!(
                r#"UPDATE "{schema}".scale_executions SET ended_at = clock_timestamp(), outcome = $2
                   WHERE id = $1"#
            ),
            format!(r#"UPDATE "{schema}".scale_polls SET idle = idle + 1 WHERE worker = $1"#),
            format!(
                r#"INSERT INTO "{schema}".scale_rescues (job_id, worker)
                   SELECT unnest($1::bigint[]), $2"#
            ),
        ];
        let mut prepared = Vec::new();
        for sql in &statements {
            prepared.push(client.prepare(sql).await.expect("a statement prepares"));
        }
        let [started, ended, idle, rescued] = prepared.try_into().expect("four statements");
        Log {
            client,
            worker,
            started,
            ended,
            idle,
            rescued,
        }
    }

    async fn started(&self, job: &Job, held: bool) -> Result<i64> {
        let claimed_at = job.started_at.expect("a claimed job has a start");
        let fence = job.fence as i64;
        let params: [&(dyn ToSql + Sync); 5] =
            [&job.id.0, &fence, &self.worker, &claimed_at, &held];
        let row = self
            .client
            .query_one(&self.started, &params)
            .await
            .map_err(noted)?;
        Ok(row.get(0))
    }

    async fn ended(&self, execution: i64, outcome: &str) -> Result<()> {
        self.write(&self.ended, &[&execution, &outcome]).await
    }

    async fn idle_poll(&self) -> Result<()> {
        self.write(&self.idle, &[&self.worker]).await
    }

    async fn rescued(&self, ids: &[JobId]) -> Result<()> {
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        self.write(&self.rescued, &[&ids, &self.worker]).await
    }

    async fn write(&self, stmt: &Statement, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
        self.client
            .execute(stmt, params)
            .await
            .map(drop)
            .map_err(noted)
    }
}

/// Records each run; does a millisecond or two of work, or, for the one run the victim
/// holds, stays inside the job until the process is killed.
#[derive(Debug)]
struct RecordingRunner {
    log: Arc<Log>,
    hold_at: Option<usize>,
    runs: AtomicUsize,
}

#[async_trait]
impl JobRunner for RecordingRunner {
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let held = self.hold_at == Some(n);
        let execution = self.log.started(job, held).await?;
        if held {
            stop.stopped().await;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=2))).await;
        let stopped = stop.is_stopped();
        self.log
            .ended(execution, if stopped { "stopped" } else { "completed" })
            .await?;
        Ok(RunReport {
            run_id: format!("{}:{execution}", self.log.worker),
            complete: !stopped,
            stopped,
            ..RunReport::default()
        })
    }
}

/// The queue, noting idle polls and rescues.
#[derive(Debug)]
struct RecordingQueue {
    inner: PostgresJobQueue,
    log: Arc<Log>,
}

#[async_trait]
impl JobQueue for RecordingQueue {
    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        self.inner.put_integration(integration).await
    }
    async fn integration(&self, provider: &str, tenant: &str) -> Result<Option<Integration>> {
        self.inner.integration(provider, tenant).await
    }
    async fn integrations(&self, provider: Option<&str>) -> Result<Vec<Integration>> {
        self.inner.integrations(provider).await
    }
    async fn enqueue(&self, request: &EnqueueRequest) -> Result<Enqueued> {
        self.inner.enqueue(request).await
    }
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let job = self.inner.claim(worker, lease).await?;
        if job.is_none() {
            self.log.idle_poll().await?;
        }
        Ok(job)
    }
    async fn heartbeat(&self, id: JobId, fence: u64, lease: Duration) -> Result<Heartbeat> {
        self.inner.heartbeat(id, fence, lease).await
    }
    async fn finish(&self, id: JobId, fence: u64, outcome: &JobOutcome) -> Result<Job> {
        self.inner.finish(id, fence, outcome).await
    }
    async fn request_stop(&self, scope: &JobScope, intent: StopIntent) -> Result<u64> {
        self.inner.request_stop(scope, intent).await
    }
    async fn resume(&self, scope: &JobScope) -> Result<u64> {
        self.inner.resume(scope).await
    }
    async fn retry_failed(&self, scope: &JobScope) -> Result<u64> {
        self.inner.retry_failed(scope).await
    }
    async fn rescue_expired(&self) -> Result<Vec<JobId>> {
        let ids = self.inner.rescue_expired().await?;
        if !ids.is_empty() {
            self.log.rescued(&ids).await?;
        }
        Ok(ids)
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>> {
        self.inner.job(id).await
    }
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.inner.jobs(filter).await
    }
    async fn counts(&self, scope: &JobScope) -> Result<JobCounts> {
        self.inner.counts(scope).await
    }
    async fn prune(&self, older_than: Duration) -> Result<u64> {
        self.inner.prune(older_than).await
    }
}

fn config(worker: &str) -> WorkerConfig {
    let mut config = WorkerConfig::new(worker);
    config.lease = LEASE;
    config.heartbeat = HEARTBEAT;
    config.sweep = SWEEP;
    config.poll = POLL;
    config.concurrency = CONCURRENCY;
    config.backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    config.schedule = false;
    config
}

/// The worker process's body; returns at once in any other process.
pub(crate) fn run_if_child() {
    let (Ok(schema), Ok(worker)) = (std::env::var(SCHEMA_VAR), std::env::var(WORKER_VAR)) else {
        return;
    };
    let hold_at = std::env::var(HOLD_VAR)
        .ok()
        .map(|n| n.parse().expect("a count"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let store = support::open_store(&schema, 4).await;
        let log = Arc::new(Log::open(&schema, worker.clone()).await);
        let queue = RecordingQueue {
            inner: store.job_queue(),
            log: log.clone(),
        };
        let runner = RecordingRunner {
            log,
            hold_at,
            runs: AtomicUsize::new(0),
        };
        let worker = Worker::new(Arc::new(queue), Arc::new(runner), config(&worker))
            .expect("a valid worker config");
        let shutdown = StopSignal::new();
        let on_eof = shutdown.clone();
        std::thread::spawn(move || {
            // Reads until the parent closes the pipe (or exits): then stop gracefully.
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            on_eof.stop();
        });
        worker.run(shutdown).await.expect("the worker runs");
    });
}
