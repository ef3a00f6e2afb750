//! Job runners the library provides: [`SequenceWindowRunner`] runs the sequence-window
//! strategy's jobs, replays included, and [`RunnerByProvider`] routes each job to the runner
//! of its provider, so one worker pool serves API streams and change-queue streams alike.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::jobs::model::{Job, JobAction, JobKey};
use crate::jobs::worker::JobRunner;
use crate::stop::StopSignal;
use crate::strategy::{RunReport, SequenceWindowStrategy, Strategy, StrategyKind, SyncContext};

/// Where a [`SequenceWindowRunner`] finds a job's stream: its context (source, stores,
/// change queue, sink) and its strategy. The embedding service maps the job's key (provider,
/// tenant, stream) to them, typically from the tenant's integration settings.
///
/// # Contract
/// - `stream` MUST return a context whose `sync` is `key.sync_name()` (the runner refuses
///   any other with [`ErrorKind::Config`], since a run under another name would neither
///   resume the job's checkpoint nor fence out a worker that lost the job).
/// - It MUST return [`ErrorKind::NotFound`] for a stream it does not know.
#[async_trait]
pub trait SequenceWindowStreams: Debug + Send + Sync + 'static {
    /// The context and strategy of the stream `key` names.
    async fn stream(&self, key: &JobKey) -> Result<(SyncContext, SequenceWindowStrategy)>;
}

/// Runs the jobs of sequence-window streams: a sync job runs the strategy's next windows (a
/// strategy override other than the sequence window is refused), a replay job applies its
/// window again ([`SequenceWindowStrategy::replay`]), both stopping when the worker says so.
#[derive(Debug, Clone)]
pub struct SequenceWindowRunner {
    streams: Arc<dyn SequenceWindowStreams>,
}

impl SequenceWindowRunner {
    /// A runner over the streams `streams` resolves.
    pub fn new(streams: Arc<dyn SequenceWindowStreams>) -> Self {
        SequenceWindowRunner { streams }
    }
}

#[async_trait]
impl JobRunner for SequenceWindowRunner {
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport> {
        if let JobAction::Sync {
            strategy: Some(kind),
        } = &job.action
        {
            if *kind != StrategyKind::SequenceWindow {
                return Err(Error::unsupported(
                    "sequence-window runner",
                    format_args!("a {kind} run of a change-queue stream"),
                )
                .with_context("job", job.id));
            }
        }
        let (ctx, strategy) = self.streams.stream(&job.key).await?;
        let expected = job.key.sync_name();
        if ctx.sync != expected {
            return Err(Error::config("the stream's context names another sync")
                .with_context("job", job.id)
                .with_context("expected", expected)
                .with_context("sync", &ctx.sync));
        }
        let ctx = ctx.with_stop(stop);
        match &job.action {
            JobAction::Sync { .. } => strategy.run(&ctx).await,
            JobAction::Replay { window } => strategy.replay(&ctx, *window).await,
        }
    }
}

/// Routes each job to the runner registered for its provider, else to the fallback
/// ([`RunnerByProvider::otherwise`]); with neither, the job fails at once with
/// [`ErrorKind::NotFound`] (permanent: no worker of this pool can run it).
#[derive(Debug, Clone, Default)]
pub struct RunnerByProvider {
    runners: BTreeMap<String, Arc<dyn JobRunner>>,
    fallback: Option<Arc<dyn JobRunner>>,
}

impl RunnerByProvider {
    /// A router with no providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the jobs of `provider` with `runner` (replacing an earlier registration).
    pub fn with(mut self, provider: impl Into<String>, runner: Arc<dyn JobRunner>) -> Self {
        self.runners.insert(provider.into(), runner);
        self
    }

    /// Runs the jobs of every provider not registered with `runner`.
    pub fn otherwise(mut self, runner: Arc<dyn JobRunner>) -> Self {
        self.fallback = Some(runner);
        self
    }

    /// The providers it routes by name, in order.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.runners.keys().map(String::as_str)
    }
}

#[async_trait]
impl JobRunner for RunnerByProvider {
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport> {
        match self
            .runners
            .get(&job.key.provider)
            .or(self.fallback.as_ref())
        {
            Some(runner) => runner.run(job, stop).await,
            None => Err(
                Error::new(ErrorKind::NotFound, "no runner for the job's provider")
                    .with_context("job", job.id)
                    .with_context("provider", &job.key.provider),
            ),
        }
    }
}
