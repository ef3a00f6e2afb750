//! The [`JobQueue`] contract on PostgreSQL: each method runs the statements of
//! [`attempts`](super::attempts), [`control`](super::control), [`enqueue`](super::enqueue) and
//! [`integrations`](super::integrations).

use std::time::Duration;

use async_trait::async_trait;
use sea_query::{ExprTrait, UpdateStatement};
use sea_query_postgres::PostgresBinder;
use sync_core::jobs::{
    zero_counts, EnqueueRequest, Enqueued, Heartbeat, Integration, Job, JobCounts, JobFilter,
    JobId, JobOutcome, JobQueue, JobScope, JobStatus, StopIntent,
};
use sync_core::{ErrorKind, Result};

use super::enqueue::lock_pauses;
use super::tables::{col, fenced, read_intent, read_job, select_jobs};
use super::{attempts, control, enqueue, integrations, PostgresJobQueue};
use crate::error::classify;
use crate::sql::execute;

/// How many times `retry_failed` runs again after an enqueue created an open job of a key it
/// was requeueing (a unique violation of the one-open-job index).
const RETRY_ROUNDS: usize = 8;

impl PostgresJobQueue {
    /// Changes the recorded pauses with `pauses`, then the jobs with `jobs`, in one transaction
    /// under the exclusive pause lock; returns the jobs changed.
    async fn under_pause_lock<P>(&self, pauses: P, jobs: UpdateStatement) -> Result<u64>
    where
        P: PostgresBinder + Clone + Send + Sync + 'static,
    {
        let schema = self.schema().to_string();
        self.store
            .transact(move |tx| {
                let (schema, pauses, jobs) = (schema.clone(), pauses.clone(), jobs.clone());
                Box::pin(async move {
                    lock_pauses(tx, &schema, false).await?;
                    execute(tx, &pauses).await?;
                    execute(tx, &jobs).await
                })
            })
            .await
    }
}

#[async_trait]
impl JobQueue for PostgresJobQueue {
    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        let upsert = integrations::put(self.schema(), integration)?;
        self.execute(&upsert).await.map(drop)
    }

    async fn integration(&self, provider: &str, tenant: &str) -> Result<Option<Integration>> {
        let found = self.integrations_of(Some(provider), Some(tenant)).await?;
        Ok(found.into_iter().next())
    }

    async fn integrations(&self, provider: Option<&str>) -> Result<Vec<Integration>> {
        self.integrations_of(provider, None).await
    }

    async fn enqueue(&self, request: &EnqueueRequest) -> Result<Enqueued> {
        let schema = self.schema().to_string();
        self.store
            .transact(move |tx| {
                let (schema, request) = (schema.clone(), request.clone());
                Box::pin(async move { enqueue::enqueue(tx, &schema, &request).await })
            })
            .await
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        self.one_job(&attempts::claim(self.schema(), worker, lease))
            .await
    }

    async fn heartbeat(&self, id: JobId, fence: u64, lease: Duration) -> Result<Heartbeat> {
        let rows = self
            .query(&attempts::heartbeat(self.schema(), id, fence, lease))
            .await?;
        let row = rows.first().ok_or_else(|| fenced(id))?;
        let stop: Option<String> = row.try_get(0).map_err(classify)?;
        Ok(Heartbeat {
            stop_requested: stop.as_deref().map(read_intent).transpose()?,
        })
    }

    async fn finish(&self, id: JobId, fence: u64, outcome: &JobOutcome) -> Result<Job> {
        self.one_job(&attempts::finish(self.schema(), id, fence, outcome))
            .await?
            .ok_or_else(|| fenced(id))
    }

    async fn request_stop(&self, scope: &JobScope, intent: StopIntent) -> Result<u64> {
        let stop = control::request_stop(self.schema(), scope, intent);
        if intent != StopIntent::Pause || scope.job.is_some() {
            return self.execute(&stop).await;
        }
        // A pause of a scope is recorded too, under the exclusive pause lock.
        let record = control::record_pause(self.schema(), scope);
        self.under_pause_lock(record, stop).await
    }

    async fn resume(&self, scope: &JobScope) -> Result<u64> {
        let lift = control::lift_pauses(self.schema(), scope);
        let resume = control::resume(self.schema(), scope);
        self.under_pause_lock(lift, resume).await
    }

    async fn retry_failed(&self, scope: &JobScope) -> Result<u64> {
        let retry = control::retry_failed(self.schema(), scope);
        let mut round = 1;
        loop {
            match self.execute(&retry).await {
                // An enqueue committed an open job of a key being requeued: judge again.
                Err(e) if e.kind() == ErrorKind::Conflict && round < RETRY_ROUNDS => round += 1,
                other => return other,
            }
        }
    }

    async fn rescue_expired(&self) -> Result<Vec<JobId>> {
        let rows = self.query(&attempts::rescue_expired(self.schema())).await?;
        let mut ids = rows
            .iter()
            .map(|r| r.try_get(0).map(JobId).map_err(classify))
            .collect::<Result<Vec<_>>>()?;
        ids.sort();
        Ok(ids)
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>> {
        let q = select_jobs(self.schema())
            .and_where(col("id").eq(id.0))
            .to_owned();
        self.one_job(&q).await
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let rows = self.query(&control::jobs(self.schema(), filter)).await?;
        rows.iter().map(read_job).collect()
    }

    async fn counts(&self, scope: &JobScope) -> Result<JobCounts> {
        let rows = self.query(&control::counts(self.schema(), scope)).await?;
        let mut counts = zero_counts();
        for row in rows {
            let status: String = row.try_get(0).map_err(classify)?;
            let n: i64 = row.try_get(1).map_err(classify)?;
            *counts.entry(status.parse::<JobStatus>()?).or_default() += n as u64;
        }
        Ok(counts)
    }

    async fn prune(&self, older_than: Duration) -> Result<u64> {
        self.execute(&control::prune(self.schema(), older_than))
            .await
    }
}
