//! `MemoryJobQueue`: the reference implementation of [`JobQueue`], one mutex over plain maps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, ErrorKind, Result};
use crate::jobs::{
    zero_counts, EnqueueRequest, Enqueued, Heartbeat, Integration, Job, JobCounts, JobFilter,
    JobId, JobOutcome, JobQueue, JobScope, JobStatus, StopIntent,
};

/// An in-memory job queue; what every database queue must behave like.
#[derive(Debug, Default)]
pub struct MemoryJobQueue {
    state: Mutex<State>,
    /// Added to the wall clock: tests move time forward without waiting.
    offset: Mutex<chrono::Duration>,
}

#[derive(Debug, Default)]
struct State {
    next_id: i64,
    jobs: BTreeMap<JobId, Job>,
    idempotency: HashMap<String, JobId>,
    integrations: BTreeMap<(String, String), Integration>,
    pauses: Vec<JobScope>,
}

impl MemoryJobQueue {
    /// An empty queue.
    pub fn new() -> Self {
        MemoryJobQueue::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("job queue lock")
    }

    /// Moves this queue's clock forward by `by` (leases expire, backoffs pass), for tests.
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().expect("clock lock") +=
            chrono::Duration::from_std(by).expect("duration in range");
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().expect("clock lock")
    }
}

fn fenced(id: JobId) -> Error {
    Error::new(
        ErrorKind::Fenced,
        "the job's lease is not held by this fence",
    )
    .with_context("job", id)
}

impl State {
    fn paused(&self, scope_key: &crate::jobs::JobKey) -> bool {
        self.pauses.iter().any(|p| p.covers(scope_key))
    }

    fn open_job(&self, key: &crate::jobs::JobKey) -> Option<&Job> {
        self.jobs
            .values()
            .find(|j| j.key == *key && j.status.is_open())
    }
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        integration.validate()?;
        if let Some(s) = &integration.schedule {
            s.validate()?;
        }
        self.state().integrations.insert(
            (integration.provider.clone(), integration.tenant.clone()),
            integration.clone(),
        );
        Ok(())
    }

    async fn integration(&self, provider: &str, tenant: &str) -> Result<Option<Integration>> {
        Ok(self
            .state()
            .integrations
            .get(&(provider.to_string(), tenant.to_string()))
            .cloned())
    }

    async fn integrations(&self, provider: Option<&str>) -> Result<Vec<Integration>> {
        Ok(self
            .state()
            .integrations
            .values()
            .filter(|i| provider.map_or(true, |p| i.provider == p))
            .cloned()
            .collect())
    }

    async fn enqueue(&self, request: &EnqueueRequest) -> Result<Enqueued> {
        request.validate()?;
        let now = self.now();
        let mut st = self.state();
        if let Some(id) = request
            .idempotency_key
            .as_ref()
            .and_then(|k| st.idempotency.get(k))
        {
            if let Some(job) = st.jobs.get(id) {
                return Ok(Enqueued {
                    job: job.clone(),
                    created: false,
                });
            }
        }
        if let Some(open) = st.open_job(&request.key).cloned() {
            if let Some(k) = &request.idempotency_key {
                st.idempotency.insert(k.clone(), open.id);
            }
            return Ok(Enqueued {
                job: open,
                created: false,
            });
        }
        st.next_id += 1;
        let id = JobId(st.next_id);
        let status = if st.paused(&request.key) {
            JobStatus::Paused
        } else {
            JobStatus::Pending
        };
        let job = Job::enqueued(id, request, status, now);
        if let Some(k) = &request.idempotency_key {
            st.idempotency.insert(k.clone(), id);
        }
        st.jobs.insert(id, job.clone());
        Ok(Enqueued { job, created: true })
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let now = self.now();
        let mut st = self.state();
        let next = st
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Pending && j.next_run_at <= now)
            .min_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then(a.next_run_at.cmp(&b.next_run_at))
                    .then(a.id.cmp(&b.id))
            })
            .map(|j| j.id);
        let Some(id) = next else { return Ok(None) };
        let job = st.jobs.get_mut(&id).expect("job exists");
        job.claim(worker, lease, now);
        Ok(Some(job.clone()))
    }

    async fn heartbeat(&self, id: JobId, fence: u64, lease: Duration) -> Result<Heartbeat> {
        let now = self.now();
        let mut st = self.state();
        match st.jobs.get_mut(&id) {
            Some(job) if job.status == JobStatus::Processing && job.fence == fence => {
                job.extend_lease(lease, now);
                Ok(Heartbeat {
                    stop_requested: job.stop_requested,
                })
            }
            _ => Err(fenced(id)),
        }
    }

    async fn finish(&self, id: JobId, fence: u64, outcome: &JobOutcome) -> Result<Job> {
        let now = self.now();
        let mut st = self.state();
        let job = match st.jobs.get_mut(&id) {
            Some(job) if job.status == JobStatus::Processing && job.fence == fence => job,
            _ => return Err(fenced(id)),
        };
        job.finish(outcome, now);
        Ok(job.clone())
    }

    async fn request_stop(&self, scope: &JobScope, intent: StopIntent) -> Result<u64> {
        let now = self.now();
        let mut st = self.state();
        if intent == StopIntent::Pause && scope.job.is_none() && !st.pauses.contains(scope) {
            st.pauses.push(scope.clone());
        }
        let mut changed = 0;
        for job in st.jobs.values_mut().filter(|j| scope.matches(j)) {
            match (job.status, intent) {
                (JobStatus::Pending | JobStatus::Paused, StopIntent::Cancel) => {
                    job.status = JobStatus::Cancelled;
                    job.finished_at = Some(now);
                }
                (JobStatus::Pending, StopIntent::Pause) => job.status = JobStatus::Paused,
                (JobStatus::Processing, _) if job.stop_requested != Some(intent) => {
                    job.stop_requested = Some(intent);
                }
                _ => continue,
            }
            job.updated_at = now;
            changed += 1;
        }
        Ok(changed)
    }

    async fn resume(&self, scope: &JobScope) -> Result<u64> {
        let now = self.now();
        let mut st = self.state();
        if scope.job.is_none() {
            st.pauses.retain(|p| !scope.contains(p));
        }
        let State { jobs, pauses, .. } = &mut *st;
        let mut changed = 0;
        for job in jobs.values_mut() {
            if job.status == JobStatus::Paused
                && scope.matches(job)
                && !pauses.iter().any(|p| p.covers(&job.key))
            {
                job.status = JobStatus::Pending;
                job.attempts = 0;
                job.next_run_at = now;
                job.updated_at = now;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn retry_failed(&self, scope: &JobScope) -> Result<u64> {
        let now = self.now();
        let mut st = self.state();
        let failed: Vec<JobId> = st
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Failed && scope.matches(j))
            .map(|j| j.id)
            .collect();
        let mut changed = 0;
        for id in failed {
            let key = st.jobs[&id].key.clone();
            if st.open_job(&key).is_some() {
                continue;
            }
            let paused = st.paused(&key);
            st.jobs.get_mut(&id).expect("job exists").retry(now, paused);
            changed += 1;
        }
        Ok(changed)
    }

    async fn rescue_expired(&self) -> Result<Vec<JobId>> {
        let now = self.now();
        let mut st = self.state();
        let mut rescued = vec![];
        for job in st.jobs.values_mut() {
            if job.status != JobStatus::Processing || job.lease_until.is_some_and(|t| t > now) {
                continue;
            }
            job.rescue(now);
            rescued.push(job.id);
        }
        Ok(rescued)
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self.state().jobs.get(&id).cloned())
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        Ok(self
            .state()
            .jobs
            .values()
            .rev()
            .filter(|j| filter.matches(j))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn counts(&self, scope: &JobScope) -> Result<JobCounts> {
        let mut counts = zero_counts();
        for job in self.state().jobs.values().filter(|j| scope.matches(j)) {
            *counts.entry(job.status).or_default() += 1;
        }
        Ok(counts)
    }

    async fn prune(&self, older_than: Duration) -> Result<u64> {
        let cutoff =
            self.now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let mut st = self.state();
        let old: Vec<JobId> = st
            .jobs
            .values()
            .filter(|j| {
                matches!(j.status, JobStatus::Completed | JobStatus::Cancelled)
                    && j.finished_at.is_some_and(|t| t <= cutoff)
            })
            .map(|j| j.id)
            .collect();
        for id in &old {
            st.jobs.remove(id);
        }
        st.idempotency.retain(|_, id| !old.contains(id));
        Ok(old.len() as u64)
    }
}
