//! What the scale-out test reads back and judges: the workers' records (see `worker.rs`) and
//! the jobs as the queue reports them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sync_core::jobs::{Job, JobFilter, JobId, JobQueue, JobScope, JobStatus};
use sync_store_postgres::PostgresJobQueue;

use super::{since, support, worker};

/// The test's connection to the workers' records.
pub(crate) struct Db {
    client: tokio_postgres::Client,
    schema: String,
}

/// One run of a job, as its worker recorded it.
#[derive(Debug, Clone)]
struct Run {
    id: i64,
    job: JobId,
    fence: u64,
    worker: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
}

/// How long after the kill the killed worker's jobs were rescued and run again (the latest).
pub(crate) struct RescueTimes {
    pub(crate) rescued: Duration,
    pub(crate) rerun: Duration,
}

impl Db {
    pub(crate) async fn new(schema: &str) -> Self {
        Db {
            client: support::connect().await,
            schema: schema.to_string(),
        }
    }

    pub(crate) async fn create_tables(&self) {
        self.client
            .batch_execute(&worker::tables_sql(&self.schema))
            .await
            .unwrap();
    }

    fn table(&self, name: &str) -> String {
        format!("\"{}\".{name}", self.schema)
    }

    pub(crate) async fn now(&self) -> DateTime<Utc> {
        self.client
            .query_one("SELECT clock_timestamp()", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// True once `worker`'s runner is inside the job it holds.
    pub(crate) async fn holding(&self, worker: &str) -> bool {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE worker = $1 AND held",
            self.table("scale_executions")
        );
        let n: i64 = self
            .client
            .query_one(&sql, &[&worker])
            .await
            .unwrap()
            .get(0);
        n > 0
    }

    /// True once the server has ended the record session of `worker` (a statement the killed
    /// process sent is finished by then, so its runs are all recorded).
    pub(crate) async fn session_gone(&self, worker: &str) -> bool {
        let name = worker::log_session(&self.schema, worker);
        let n: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        n == 0
    }

    /// The jobs of the runs `worker` never ended.
    pub(crate) async fn open_runs_of(&self, worker: &str) -> Vec<JobId> {
        let sql = format!(
            "SELECT job_id FROM {} WHERE worker = $1 AND ended_at IS NULL ORDER BY job_id",
            self.table("scale_executions")
        );
        let rows = self.client.query(&sql, &[&worker]).await.unwrap();
        rows.iter().map(|r| JobId(r.get(0))).collect()
    }

    /// True when a sweep rescued each of `jobs` after `at`.
    pub(crate) async fn all_rescued_since(&self, jobs: &[JobId], at: DateTime<Utc>) -> bool {
        let ids: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        let sql = format!(
            "SELECT count(DISTINCT job_id) FROM {} WHERE job_id = ANY($1) AND at >= $2",
            self.table("scale_rescues")
        );
        let n: i64 = self
            .client
            .query_one(&sql, &[&ids, &at])
            .await
            .unwrap()
            .get(0);
        n == jobs.len() as i64
    }

    /// The latest, over `jobs`, of the first rescue and of the first run after `killed_at`.
    pub(crate) async fn rescue_delays(
        &self,
        jobs: &[JobId],
        killed_at: DateTime<Utc>,
    ) -> RescueTimes {
        let ids: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        let first_after = |table: &str, column: &str| {
            format!(
                "SELECT job_id, min({column}) FROM {} WHERE job_id = ANY($1) AND {column} >= $2 \
                 GROUP BY job_id",
                self.table(table)
            )
        };
        let mut latest = [Duration::ZERO; 2];
        for (slot, (table, column)) in [("scale_rescues", "at"), ("scale_executions", "started_at")]
            .into_iter()
            .enumerate()
        {
            let rows = self
                .client
                .query(&first_after(table, column), &[&ids, &killed_at])
                .await
                .unwrap();
            assert_eq!(
                rows.len(),
                jobs.len(),
                "every job of the killed worker in {table}"
            );
            for row in rows {
                latest[slot] = latest[slot].max(since(killed_at, row.get(1)));
            }
        }
        RescueTimes {
            rescued: latest[0],
            rerun: latest[1],
        }
    }

    /// Each worker's claims that found nothing due.
    pub(crate) async fn idle_polls(&self) -> BTreeMap<String, i64> {
        let sql = format!("SELECT worker, idle FROM {}", self.table("scale_polls"));
        let rows = self.client.query(&sql, &[]).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// Runs claimed after `claimed` or started after `started`.
    pub(crate) async fn runs_claimed_or_started_after(
        &self,
        claimed: DateTime<Utc>,
        started: DateTime<Utc>,
    ) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE claimed_at > $1 OR started_at > $2",
            self.table("scale_executions")
        );
        self.client
            .query_one(&sql, &[&claimed, &started])
            .await
            .unwrap()
            .get(0)
    }

    async fn runs(&self) -> Vec<Run> {
        let sql = format!(
            "SELECT id, job_id, fence, worker, started_at, ended_at, outcome FROM {} ORDER BY id",
            self.table("scale_executions")
        );
        let rows = self.client.query(&sql, &[]).await.unwrap();
        rows.iter()
            .map(|r| Run {
                id: r.get(0),
                job: JobId(r.get(1)),
                fence: r.get::<_, i64>(2) as u64,
                worker: r.get(3),
                started_at: r.get(4),
                ended_at: r.get(5),
                outcome: r.get(6),
            })
            .collect()
    }

    /// Per job, the times a sweep rescued it.
    async fn rescues(&self) -> HashMap<JobId, Vec<DateTime<Utc>>> {
        let sql = format!("SELECT job_id, at FROM {}", self.table("scale_rescues"));
        let mut out: HashMap<JobId, Vec<DateTime<Utc>>> = HashMap::new();
        for row in self.client.query(&sql, &[]).await.unwrap() {
            out.entry(JobId(row.get(0))).or_default().push(row.get(1));
        }
        out
    }
}

/// What the runs of the test were.
#[derive(Debug, Default)]
pub(crate) struct Report {
    runs: usize,
    killed: usize,
    stopped: usize,
    unaccepted: usize,
    overlaps: usize,
    rescued_jobs: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} runs: one completing run per job, {} killed, {} stopped by the pause, {} ended but \
             never accepted (the worker died or lost its lease before finishing), {} overlapping a later run; {} jobs rescued",
            self.runs, self.killed, self.stopped, self.unaccepted, self.overlaps, self.rescued_jobs
        )
    }
}

/// Judges every job and every run; panics on a violation.
pub(crate) async fn verify(
    queue: &PostgresJobQueue,
    db: &Db,
    killed: &str,
    orphans: &[JobId],
) -> Report {
    let jobs = queue
        .jobs(&JobFilter::new(JobScope::all(), usize::MAX))
        .await
        .unwrap();
    let runs = db.runs().await;
    let rescues = db.rescues().await;
    let mut by_job: HashMap<JobId, Vec<&Run>> = HashMap::new();
    let mut claims = BTreeSet::new();
    for run in &runs {
        assert!(
            claims.insert((run.job, run.fence)),
            "one claim ran twice: {run:?}"
        );
        by_job.entry(run.job).or_default().push(run);
    }
    let mut report = Report {
        runs: runs.len(),
        rescued_jobs: rescues.len(),
        ..Report::default()
    };
    assert_eq!(jobs.len(), super::JOBS);
    for job in &jobs {
        let mut runs = by_job.remove(&job.id).unwrap_or_default();
        runs.sort_by_key(|r| r.fence);
        judge_job(job, &runs, &rescues, killed, orphans, &mut report);
    }
    assert!(by_job.is_empty(), "runs of unknown jobs: {by_job:?}");
    assert_eq!(report.killed, orphans.len());
    report
}

fn judge_job(
    job: &Job,
    runs: &[&Run],
    rescues: &HashMap<JobId, Vec<DateTime<Utc>>>,
    killed: &str,
    orphans: &[JobId],
    report: &mut Report,
) {
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let last = runs
        .last()
        .unwrap_or_else(|| panic!("job {} never ran", job.id));
    // The run the queue accepted holds the final fence and is the one the summary names.
    assert_eq!(last.fence, job.fence, "{job:?} {runs:?}");
    assert!(last.ended_at.is_some() && last.outcome.as_deref() == Some("completed"));
    let run_id = job.summary.as_ref().and_then(|s| s["run_id"].as_str());
    assert_eq!(
        run_id,
        Some(format!("{}:{}", last.worker, last.id).as_str())
    );
    if orphans.contains(&job.id) {
        assert_ne!(
            last.worker, killed,
            "the killed worker completed {}",
            job.id
        );
    }
    let rescued_after = |run: &Run| {
        rescues
            .get(&job.id)
            .is_some_and(|times| times.iter().any(|t| *t > run.started_at))
    };
    for (i, run) in runs[..runs.len() - 1].iter().enumerate() {
        match (run.ended_at, run.outcome.as_deref()) {
            (None, _) => {
                assert_eq!(run.worker, killed, "a run that never ended: {run:?}");
                assert!(orphans.contains(&job.id));
                report.killed += 1;
            }
            (Some(_), Some("stopped")) => report.stopped += 1,
            (Some(_), _) => {
                // Its worker died between the run's end and the finish, or stalled past its
                // lease: another run is allowed only after a rescue.
                assert!(
                    rescued_after(run),
                    "a second run without a rescue: {runs:?}"
                );
                report.unaccepted += 1;
            }
        }
        for later in &runs[i + 1..] {
            if run.ended_at.map_or(true, |end| later.started_at < end) {
                assert!(
                    rescued_after(run),
                    "two runs of {} at once: {runs:?}",
                    job.id
                );
                report.overlaps += 1;
            }
        }
    }
}
