//! A pipeline: many REST streams into one database, run concurrently with a bound.
//!
//! One file (TOML or JSON) names the database, the HTTP settings, the credentials and rate
//! limit shared by the streams (a stream may bring its own), and the streams. Streams that
//! share a credential share one [`HttpClient`], so its rate limit holds across them.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use sync_core::{
    Checkpoint, Error, Progress, Result, RetryPolicy, RunLimits, RunReport, Stager, Strategy,
    SyncContext,
};

use super::config::RestStreamConfig;
use super::source::RestSource;
use crate::http::{Auth, HttpClient, HttpConfig, RateLimit};

/// Everything a pipeline file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Prefix of the sync names: stream `items` of pipeline `shop` is the sync `shop/items`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Where the streams land (`sqlite://FILE`, `postgres://...`), read by whoever opens
    /// the store; a command line may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// HTTP settings shared by every stream.
    #[serde(default)]
    pub http: HttpConfig,
    /// Credentials of the streams that do not bring their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Rate limit of that credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Streams synced at the same time, at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Retry policy of every source call.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Per-run limits of every stream.
    #[serde(default)]
    pub limits: RunLimits,
    /// The streams.
    pub streams: Vec<RestStreamConfig>,
}

fn default_name() -> String {
    "rest".into()
}
fn default_concurrency() -> usize {
    4
}

impl PipelineConfig {
    /// Parses and validates a TOML pipeline file's text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: PipelineConfig = toml::from_str(text)
            .map_err(|e| Error::config(format!("invalid pipeline file: {}", e.message())))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a JSON pipeline file's text.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: PipelineConfig = serde_json::from_str(text)
            .map_err(|e| Error::config(format!("invalid pipeline file: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a pipeline file, TOML or JSON by its extension (`.json`; anything else is TOML).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read the pipeline file {}", path.display()))
                .with_source(e)
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::from_json(&text),
            _ => Self::from_toml(&text),
        }
    }

    /// Checks the pipeline without I/O: unique stream names, a positive concurrency, every
    /// stream's config.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.contains('/') || self.name.len() > 200 {
            return Err(Error::config(
                "the pipeline name must be 1 to 200 bytes without '/'",
            ));
        }
        if self.concurrency == 0 {
            return Err(Error::config("concurrency must be at least 1"));
        }
        if self.streams.is_empty() {
            return Err(Error::config("a pipeline needs at least one stream"));
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.streams {
            if !names.insert(s.name.as_str()) {
                return Err(
                    Error::config("two streams have the same name").with_context("stream", &s.name)
                );
            }
            s.validate()?;
        }
        Ok(())
    }
}

/// One stream ready to run.
#[derive(Debug)]
struct PipelineStream {
    source: Arc<RestSource>,
    strategy: Box<dyn Strategy>,
}

/// A validated pipeline with its HTTP clients built (no connection is opened yet).
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    streams: Vec<PipelineStream>,
}

/// What one stream's run did.
#[derive(Debug)]
pub struct StreamOutcome {
    /// The stream.
    pub stream: String,
    /// Its sync name (the checkpoint key).
    pub sync: String,
    /// The run's report, or why it failed.
    pub result: Result<RunReport>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// What a pipeline run did, stream by stream, in the pipeline's order.
#[derive(Debug, Default)]
pub struct PipelineReport {
    /// One outcome per stream run.
    pub streams: Vec<StreamOutcome>,
}

impl PipelineReport {
    /// Streams whose run failed.
    pub fn failed(&self) -> usize {
        self.streams.iter().filter(|s| s.result.is_err()).count()
    }
}

impl Pipeline {
    /// Builds the clients and sources. Streams without their own auth and rate limit share
    /// one client; a stream with its own gets its own.
    pub fn new(config: PipelineConfig) -> Result<Self> {
        config.validate()?;
        // One client (pool, token cache, rate limiter) per credential.
        let client = |auth: Option<&Auth>, limit: Option<&RateLimit>| -> Result<HttpClient> {
            let mut c = HttpClient::new(config.http.clone())?;
            if let Some(auth) = auth {
                c = c.with_auth(auth.clone());
            }
            match limit {
                Some(limit) => c.with_rate_limit(*limit),
                None => Ok(c),
            }
        };
        let shared = client(config.auth.as_ref(), config.rate_limit.as_ref())?;
        let mut streams = Vec::with_capacity(config.streams.len());
        for s in &config.streams {
            let auth = s.auth.as_ref().or(config.auth.as_ref());
            let client = if s.auth.is_none() && s.rate_limit.is_none() {
                shared.clone()
            } else {
                client(auth, s.rate_limit.as_ref().or(config.rate_limit.as_ref()))?
            };
            let mut source = RestSource::new(s.clone(), client)?;
            if let Some(Auth::ApiKey {
                name,
                location: crate::http::ApiKeyLocation::Query,
                ..
            }) = auth
            {
                source = source.with_secret_query_param(name.clone());
            }
            streams.push(PipelineStream {
                strategy: s.strategy.build(&s.name, s.page_size)?,
                source: Arc::new(source),
            });
        }
        Ok(Pipeline { config, streams })
    }

    /// The config.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The sync name (checkpoint key) of `stream`.
    pub fn sync_name(&self, stream: &str) -> String {
        format!("{}/{stream}", self.config.name)
    }

    /// Stream names in pipeline order.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.config.streams.iter().map(|s| s.name.as_str())
    }

    /// The source of `stream`.
    pub fn source(&self, stream: &str) -> Option<Arc<RestSource>> {
        self.streams
            .iter()
            .find(|s| s.source.config().name == stream)
            .map(|s| s.source.clone())
    }

    /// Runs every stream (`only`: those named), at most `concurrency` at once, into the one
    /// database behind `stager` and `checkpoints`; `progress` gives each stream its progress
    /// sender. A failed stream does not stop the others.
    pub async fn run(
        &self,
        stager: Arc<dyn Stager>,
        checkpoints: Arc<dyn Checkpoint>,
        only: Option<&[String]>,
        progress: impl Fn(&str) -> Progress,
    ) -> PipelineReport {
        let selected = self
            .streams
            .iter()
            .filter(|s| only.map_or(true, |o| o.iter().any(|n| n == &s.source.config().name)));
        let runs = selected.map(|s| {
            let name = s.source.config().name.clone();
            let ctx = SyncContext::new(
                self.sync_name(&name),
                s.source.clone(),
                stager.clone(),
                checkpoints.clone(),
            )
            .with_retry(self.config.retry.clone())
            .with_limits(self.config.limits.clone())
            .with_progress(progress(&name));
            async move {
                let started = Instant::now();
                let result = s.strategy.run(&ctx).await;
                StreamOutcome {
                    stream: name,
                    sync: ctx.sync.clone(),
                    result,
                    elapsed: started.elapsed(),
                }
            }
        });
        let mut streams: Vec<StreamOutcome> = stream::iter(runs)
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        let order = |n: &str| self.config.streams.iter().position(|s| s.name == n);
        streams.sort_by_key(|s| order(&s.stream));
        PipelineReport { streams }
    }
}
