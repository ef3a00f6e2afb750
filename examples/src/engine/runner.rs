//! The job runner of REST streams.

use std::sync::Arc;

use async_trait::async_trait;
use sync_connectors::rest::{RestStreamConfig, StrategySpec};
use sync_core::jobs::{Job, JobAction, JobQueue, JobRunner};
use sync_core::{
    Checkpoint, Error, ErrorKind, Result, RetryPolicy, RunLimits, RunReport, Stager, StopSignal,
    StrategyKind, SyncContext,
};

use super::Catalog;

/// Runs jobs over a [`Catalog`] into one store.
#[derive(Debug)]
pub struct RestJobRunner {
    catalog: Arc<Catalog>,
    queue: Arc<dyn JobQueue>,
    stager: Arc<dyn Stager>,
    checkpoints: Arc<dyn Checkpoint>,
    retry: RetryPolicy,
    limits: RunLimits,
}

impl RestJobRunner {
    /// A runner reading integrations from `queue` and writing to the store behind `stager`
    /// and `checkpoints` (one database).
    pub fn new(
        catalog: Arc<Catalog>,
        queue: Arc<dyn JobQueue>,
        stager: Arc<dyn Stager>,
        checkpoints: Arc<dyn Checkpoint>,
    ) -> Self {
        RestJobRunner {
            catalog,
            queue,
            stager,
            checkpoints,
            retry: RetryPolicy::default(),
            limits: RunLimits::default(),
        }
    }

    /// Sets the retry policy of source calls.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the per-run limits (a max-pages limit makes each job a resumable slice).
    pub fn with_limits(mut self, limits: RunLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The strategy spec a kind stands for on `config`'s stream: the stream's own settings
    /// when it is configured with that kind, the defaults otherwise.
    fn spec(config: &RestStreamConfig, kind: StrategyKind) -> Result<StrategySpec> {
        let own = config.strategy.clone();
        Ok(match (kind, &own) {
            (StrategyKind::Full, StrategySpec::Full { .. })
            | (StrategyKind::Incremental, StrategySpec::Incremental { .. })
            | (StrategyKind::Offset, StrategySpec::Offset { .. }) => own,
            (StrategyKind::Full, _) => StrategySpec::full(),
            (StrategyKind::Incremental, _) => StrategySpec::default(),
            (StrategyKind::Offset, _) => StrategySpec::Offset {
                drift: Default::default(),
            },
            (StrategyKind::SequenceWindow, _) => {
                return Err(Error::unsupported(
                    "rest",
                    "the sequence-window strategy on a REST stream",
                ))
            }
        })
    }
}

#[async_trait]
impl JobRunner for RestJobRunner {
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport> {
        if let JobAction::Replay { .. } = &job.action {
            return Err(Error::unsupported(
                "rest",
                "replaying a window of a REST stream",
            ));
        }
        let integration = self
            .queue
            .integration(&job.key.provider, &job.key.tenant)
            .await?
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "the job's integration is gone")
                    .with_context("job", job.id)
            })?;
        let source = self.catalog.tenant_source(&integration, &job.key.stream)?;
        let kind = match &job.action {
            JobAction::Sync {
                strategy: Some(kind),
            } => *kind,
            _ => integration.strategy,
        };
        let config = source.config();
        let strategy = Self::spec(config, kind)?.build(&config.name, config.page_size)?;
        let ctx = SyncContext::new(
            job.key.sync_name(),
            source.clone(),
            self.stager.clone(),
            self.checkpoints.clone(),
        )
        .with_retry(self.retry.clone())
        .with_limits(self.limits.clone())
        .with_stop(stop);
        strategy.run(&ctx).await
    }
}
