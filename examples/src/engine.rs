//! A job runner for REST streams: the glue a service writes once to put its API streams
//! behind the job queue. A [`Catalog`] names the streams of each provider; the
//! [`RestJobRunner`] runs a job's stream with the strategy its integration (or the trigger)
//! asks for, into one store, stopping gracefully when the worker says so.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::{RestSource, RestStreamConfig, StrategySpec};
use sync_core::jobs::{Integration, Job, JobAction, JobQueue, JobRunner};
use sync_core::{
    Checkpoint, Error, ErrorKind, Result, RetryPolicy, RunLimits, RunReport, Source, Stager,
    StopSignal, StrategyKind, StreamSchema, SyncContext,
};

/// The REST streams of each provider, sharing one HTTP client.
#[derive(Debug)]
pub struct Catalog {
    client: HttpClient,
    providers: BTreeMap<String, BTreeMap<String, Arc<RestSource>>>,
}

impl Catalog {
    /// An empty catalog whose sources use one client built from `http`.
    pub fn new(http: HttpConfig) -> Result<Self> {
        Ok(Catalog {
            client: HttpClient::new(http)?,
            providers: BTreeMap::new(),
        })
    }

    /// Adds a provider's streams (validated as the REST source validates them).
    pub fn with_provider(
        mut self,
        provider: &str,
        streams: impl IntoIterator<Item = RestStreamConfig>,
    ) -> Result<Self> {
        sync_core::jobs::check_name("provider", provider)?;
        let entry = self.providers.entry(provider.to_string()).or_default();
        for config in streams {
            let name = config.name.clone();
            sync_core::jobs::check_name("stream", &name)?;
            entry.insert(
                name,
                Arc::new(RestSource::new(config, self.client.clone())?),
            );
        }
        Ok(self)
    }

    /// The providers, in name order.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// The source of one stream.
    pub fn source(&self, provider: &str, stream: &str) -> Result<Arc<RestSource>> {
        self.providers
            .get(provider)
            .and_then(|s| s.get(stream))
            .cloned()
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "the catalog has no such stream")
                    .with_context("provider", provider)
                    .with_context("stream", stream)
            })
    }

    /// The schema of one stream.
    pub fn schema(&self, provider: &str, stream: &str) -> Result<Arc<StreamSchema>> {
        self.source(provider, stream)?.schema(stream)
    }

    /// Creates the target table of every stream of `integrations` that lacks one, and adds
    /// the columns a stream gained (seed 001's table migration). Returns the streams ensured.
    pub async fn migrate_tables(
        &self,
        stager: &dyn Stager,
        integrations: &[Integration],
    ) -> Result<Vec<String>> {
        let mut ensured = vec![];
        for integration in integrations {
            for stream in &integration.streams {
                let schema = self.schema(&integration.provider, stream)?;
                stager.ensure_stream(&schema).await?;
                ensured.push(format!("{}/{stream}", integration.provider));
            }
        }
        ensured.sort();
        ensured.dedup();
        Ok(ensured)
    }
}

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
            (StrategyKind::Full, _) => StrategySpec::Full {
                window_days: None,
                delete_missing: true,
            },
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
        let source = self.catalog.source(&job.key.provider, &job.key.stream)?;
        let kind = match &job.action {
            JobAction::Sync {
                strategy: Some(kind),
            } => *kind,
            JobAction::Sync { strategy: None } => {
                self.queue
                    .integration(&job.key.provider, &job.key.tenant)
                    .await?
                    .ok_or_else(|| {
                        Error::new(ErrorKind::NotFound, "the job's integration is gone")
                            .with_context("job", job.id)
                    })?
                    .strategy
            }
            JobAction::Replay { .. } => {
                return Err(Error::unsupported(
                    "rest",
                    "replaying a window of a REST stream",
                ))
            }
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
