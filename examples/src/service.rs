//! The sync engine as a service in one process: the admin HTTP API on a listener and a
//! number of workers running the queue's jobs, all over one [`EngineStore`], with a graceful
//! shutdown (workers commit their batch in flight and release their jobs, then the server
//! stops).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use sync_core::jobs::{JobRunner, RunnerByProvider, SyncJobs, Worker, WorkerConfig, WorkerMetrics};
use sync_core::{Error, Result, RetryPolicy, StopSignal};
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::engine::{Catalog, RestJobRunner};
use crate::store::EngineStore;

/// How an [`EngineService`] runs.
#[derive(Clone)]
pub struct ServiceOptions {
    /// Where the admin API listens (port 0: one the system picks).
    pub listen: SocketAddr,
    /// The bearer token clients must send (at least 16 bytes; never printed).
    pub token: String,
    /// Worker loops in this process (0: the API only, workers run elsewhere).
    pub workers: usize,
    /// The configuration of each worker; its id gets the worker's number appended.
    pub worker: WorkerConfig,
    /// The retry policy of source calls within a run.
    pub retry: RetryPolicy,
    /// The runners of providers that are not the catalog's REST streams (a sequence-window
    /// provider's [`SequenceWindowRunner`](sync_core::jobs::SequenceWindowRunner), say);
    /// every other job goes to the REST runner.
    pub runners: RunnerByProvider,
}

impl fmt::Debug for ServiceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceOptions")
            .field("listen", &self.listen)
            .field("token", &"***")
            .field("workers", &self.workers)
            .field("worker", &self.worker)
            .field("retry", &self.retry)
            .field("runners", &self.runners.providers().collect::<Vec<_>>())
            .finish()
    }
}

impl ServiceOptions {
    /// Listening on `listen` with `token`, two workers named `engine-<pid>-<n>` with the
    /// default worker configuration and retry policy.
    pub fn new(listen: SocketAddr, token: impl Into<String>) -> Self {
        ServiceOptions {
            listen,
            token: token.into(),
            workers: 2,
            worker: WorkerConfig::new(format!("engine-{}", std::process::id())),
            retry: RetryPolicy::default(),
            runners: RunnerByProvider::new(),
        }
    }

    /// Runs the jobs of `provider` with `runner` instead of the REST runner.
    pub fn with_runner(mut self, provider: impl Into<String>, runner: Arc<dyn JobRunner>) -> Self {
        self.runners = self.runners.with(provider, runner);
        self
    }
}

/// A running engine: the admin API and its workers. Stop it with
/// [`EngineService::shutdown`]; dropping it leaves its tasks running on the runtime.
#[derive(Debug)]
pub struct EngineService {
    addr: SocketAddr,
    shutdown: StopSignal,
    server: JoinHandle<std::io::Result<()>>,
    /// The workers' loops.
    tasks: Vec<JoinHandle<Result<()>>>,
    /// The workers (clones of those the loops run: they share their metrics).
    workers: Vec<Worker>,
}

impl EngineService {
    /// Starts the workers and the admin API over `store`, running the streams of `catalog`.
    pub async fn start(
        store: &EngineStore,
        catalog: Arc<Catalog>,
        options: ServiceOptions,
    ) -> Result<EngineService> {
        let rest = Arc::new(
            RestJobRunner::new(
                catalog.clone(),
                store.queue.clone(),
                store.stager.clone(),
                store.checkpoints.clone(),
            )
            .with_retry(options.retry.clone()),
        );
        let runner = Arc::new(options.runners.clone().otherwise(rest));
        let jobs = SyncJobs::new(store.queue.clone(), store.checkpoints.clone());
        let state = AdminState::new(jobs, catalog, store.stager.clone(), &options.token)?;
        let mut built = Vec::with_capacity(options.workers);
        for i in 0..options.workers {
            let mut config = options.worker.clone();
            config.id = format!("{}-{i}", config.id);
            built.push(Worker::new(store.queue.clone(), runner.clone(), config)?);
        }
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| {
                Error::config("cannot listen")
                    .with_context("addr", options.listen)
                    .with_source(e)
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("the listener has no address: {e}")))?;
        let shutdown = StopSignal::new();
        let workers = built.clone();
        let tasks = built
            .into_iter()
            .map(|worker| {
                let stop = shutdown.clone();
                tokio::spawn(async move { worker.run(stop).await })
            })
            .collect();
        let stopped = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, admin::router(state))
                .with_graceful_shutdown(async move { stopped.stopped().await })
                .await
        });
        Ok(EngineService {
            addr,
            shutdown,
            server,
            tasks,
            workers,
        })
    }

    /// The service's workers (clones share their metrics, which stay readable after
    /// [`EngineService::shutdown`]).
    pub fn workers(&self) -> Vec<Worker> {
        self.workers.clone()
    }

    /// Each worker's id and what it did so far (export them to the service's metrics).
    pub fn metrics(&self) -> Vec<(String, WorkerMetrics)> {
        self.workers
            .iter()
            .map(|w| (w.config().id.clone(), w.metrics()))
            .collect()
    }

    /// The address the admin API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin API's base URL, `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A signal that shuts the service down when stopped (e.g. from a Ctrl+C handler).
    pub fn shutdown_signal(&self) -> StopSignal {
        self.shutdown.clone()
    }

    /// Resolves once the service was asked to shut down.
    pub async fn stopped(&self) {
        self.shutdown.stopped().await;
    }

    /// Shuts down: workers finish their batch in flight, commit it with its checkpoint and
    /// release their jobs; then the server stops. Returns the first worker error.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown.stop();
        let mut first = None;
        for worker in self.tasks {
            let outcome = worker
                .await
                .map_err(|e| Error::internal(format!("a worker panicked: {e}")))
                .and_then(|r| r);
            if let Err(e) = outcome {
                first.get_or_insert(e);
            }
        }
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first.get_or_insert(Error::internal(format!("the server failed: {e}")));
            }
            Err(e) => {
                first.get_or_insert(Error::internal(format!("the server panicked: {e}")));
            }
        }
        first.map_or(Ok(()), Err)
    }
}
