//! The seed's flow, step by step: the snapshot, two windows of queue entries, a sink
//! failure and its redelivery, a replay, the late-commit race, and the integrity check.

use std::sync::Arc;
use std::time::Duration;

use sync_connectors::dataverse::{DataverseSink, EntityMapping};
use sync_connectors::fakes::dataverse::{self, FakeDataverse, MockServer};
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::RestSource;
use sync_core::{
    Error, FullConfig, FullStrategy, LedgerStatus, Result, RetryPolicy, SequenceNo,
    SequenceWindowConfig, SequenceWindowStrategy, Source, Strategy, SyncContext, Window,
};

use super::core_api::CoreApi;
use super::high_water::{self, Backend};
use super::producers::Producers;
use super::race;
use super::report::{
    seq, Change, Enqueued, HistoryRow, Integrity, Producer, Report, RunStep, Step,
};
use super::{ENTITY_SET, QUEUE, SNAPSHOT_SYNC, STREAM, SYNC};
use crate::store::EngineStore;

/// Attempts the Dataverse sink makes per `$batch` before it reports a failure.
const SINK_ATTEMPTS: u32 = 3;

/// The Dataverse mapping of the `restaurants` stream: `id` is the alternate key
/// `tr_restaurantid`.
pub fn restaurant_mapping() -> EntityMapping {
    EntityMapping::new(STREAM, ENTITY_SET)
        .with_key("id", "tr_restaurantid")
        .with_attribute("name", "tr_name")
        .with_attribute("city", "tr_city")
        .with_attribute("seats", "tr_seats")
        .with_attribute("version", "tr_version")
}

/// The example, its loopback services and its database.
#[derive(Debug)]
pub struct RestaurantDelta {
    store: EngineStore,
    backend: Backend,
    core: CoreApi,
    dataverse_server: MockServer,
    dataverse: FakeDataverse,
    producers: Producers,
    source: Arc<RestSource>,
    ctx: SyncContext,
    strategy: SequenceWindowStrategy,
    queued: Vec<String>,
}

impl RestaurantDelta {
    /// Starts the core API, the Dataverse and SQS fakes on 127.0.0.1 and wires the
    /// sequence-window sync over `store` (which must hold no earlier run of this example).
    pub async fn start(store: EngineStore, backend: Backend) -> Result<RestaurantDelta> {
        if store.changes.safe_high_water_mark(QUEUE).await? > SequenceNo(0) {
            return Err(Error::config(
                "the database already holds a run of this example: use a fresh one",
            )
            .with_context("queue", QUEUE));
        }
        let core = CoreApi::start().await?;
        let (dataverse_server, dataverse) =
            dataverse::start(&[(ENTITY_SET, &["tr_restaurantid"])]).await;
        let producers = Producers::start(store.changes.clone(), store.checkpoints.clone()).await?;
        let sink = DataverseSink::new(
            dataverse::builder(&dataverse_server)
                .with_entity(restaurant_mapping())
                .with_retry(fast_retry().with_max_attempts(SINK_ATTEMPTS))
                .build()?,
        )?;
        let source = Arc::new(RestSource::new(
            core.stream(),
            HttpClient::new(HttpConfig::default())?,
        )?);
        let ctx = SyncContext::new(
            SYNC,
            source.clone(),
            store.stager.clone(),
            store.checkpoints.clone(),
        )
        .with_queue(store.changes.clone())
        .with_sink(Arc::new(sink))
        .with_retry(fast_retry());
        let strategy = SequenceWindowStrategy::new(SequenceWindowConfig {
            fetch_batch: 25,
            ..SequenceWindowConfig::new(STREAM, QUEUE)
        })?;
        Ok(RestaurantDelta {
            store,
            backend,
            core,
            dataverse_server,
            dataverse,
            producers,
            source,
            ctx,
            strategy,
            queued: Vec::new(),
        })
    }

    /// The core API.
    pub fn core(&self) -> &CoreApi {
        &self.core
    }

    /// The Dataverse fake.
    pub fn dataverse(&self) -> &FakeDataverse {
        &self.dataverse
    }

    /// The database.
    pub fn store(&self) -> &EngineStore {
        &self.store
    }

    /// Runs the whole flow, calling `on_step` after each step.
    pub async fn run(&mut self, on_step: &mut (dyn FnMut(&Step) + Send)) -> Result<Report> {
        let mut steps = Vec::new();
        let mut emit = |step: Step, steps: &mut Vec<Step>| {
            on_step(&step);
            steps.push(step);
        };
        emit(
            Step::Started {
                core: self.core.url().to_owned(),
                dataverse: self.dataverse_server.uri(),
                sqs: self.producers.sqs_url(),
            },
            &mut steps,
        );
        emit(self.snapshot().await?, &mut steps);

        let first = [
            ("828", Change::Opened, Producer::Sns),
            ("834", Change::Opened, Producer::Direct),
            ("383", Change::Opened, Producer::Sns),
            ("674", Change::Seats(64), Producer::Direct),
        ];
        emit(Step::Enqueued(self.enqueue(&first).await?), &mut steps);
        emit(Step::Run(self.run_once("run 1").await?), &mut steps);

        let second = [
            ("896", Change::Opened, Producer::Sns),
            ("235", Change::Opened, Producer::Direct),
            ("856", Change::Opened, Producer::SnsRedelivered),
            ("591", Change::Opened, Producer::Sns),
            ("859", Change::Opened, Producer::Direct),
        ];
        emit(Step::Enqueued(self.enqueue(&second).await?), &mut steps);
        // Dataverse throttles every attempt at the window's `$batch`: promotion commits,
        // delivery does not, and `delivered` stays behind.
        for _ in 0..SINK_ATTEMPTS {
            self.dataverse.state().throttle_batches.push_back(0);
        }
        emit(
            Step::SinkFault {
                throttled: SINK_ATTEMPTS,
            },
            &mut steps,
        );
        emit(Step::Run(self.run_once("run 2").await?), &mut steps);
        emit(Step::Run(self.run_once("run 3").await?), &mut steps);

        // 828 changes at the core, but its notification never arrives: a replay of window 1
        // fetches it again and pushes it again.
        self.core.update("828", 96)?;
        emit(
            Step::SilentChange {
                id: "828".into(),
                seats: 96,
            },
            &mut steps,
        );
        emit(
            Step::Replay(
                self.replay(Window::new(SequenceNo(0), SequenceNo(4))?)
                    .await?,
            ),
            &mut steps,
        );
        emit(
            Step::HighWaterMark(
                high_water::show(
                    self.source.clone() as Arc<dyn Source>,
                    "125",
                    "945",
                    self.backend,
                )
                .await?,
            ),
            &mut steps,
        );
        let ids: Vec<String> = self.core.restaurants().into_iter().map(|r| r.id).collect();
        emit(
            Step::Race(race::race(&self.store, self.source.clone(), &ids).await?),
            &mut steps,
        );
        let integrity = self.verify().await?;
        Ok(Report { steps, integrity })
    }

    /// The initial state: a full sync of the restaurant list, every row at sequence 0.
    async fn snapshot(&self) -> Result<Step> {
        let ctx = SyncContext::new(
            SNAPSHOT_SYNC,
            self.source.clone(),
            self.store.stager.clone(),
            self.store.checkpoints.clone(),
        )
        .with_retry(fast_retry());
        let report = FullStrategy::new(FullConfig {
            page_size: 50,
            ..FullConfig::new(STREAM)
        })?
        .run(&ctx)
        .await?;
        Ok(Step::Snapshot {
            restaurants: self.store.stager.read_target(STREAM).await?.len(),
            pages: report.pages,
        })
    }

    async fn enqueue(&mut self, changes: &[(&str, Change, Producer)]) -> Result<Vec<Enqueued>> {
        let mut out = Vec::new();
        for (id, change, via) in changes {
            out.push(
                self.producers
                    .record(&self.core, id, change.clone(), *via)
                    .await?,
            );
            self.queued.push((*id).to_owned());
        }
        Ok(out)
    }

    /// The promoted and delivered positions now.
    async fn positions(&self) -> Result<(u128, u128)> {
        let state = self.store.checkpoints.load(SYNC).await?.map(|c| c.state);
        Ok(state.map_or((0, 0), |s| {
            (seq(&s.position), s.delivered.as_ref().map_or(0, seq))
        }))
    }

    /// One run of the strategy; a failed run is reported, not returned as an error (the
    /// next run recovers it).
    async fn run_once(&self, label: &str) -> Result<RunStep> {
        self.measure(label, async {
            self.strategy.run(&self.ctx).await.map(|r| r.rows_written)
        })
        .await
    }

    async fn replay(&self, window: Window) -> Result<RunStep> {
        let label = format!("replay of ({}, {}]", window.low, window.high);
        self.measure(&label, async {
            self.strategy
                .replay(&self.ctx, window)
                .await
                .map(|r| r.rows_written)
        })
        .await
    }

    async fn measure(
        &self,
        label: &str,
        run: impl std::future::Future<Output = Result<u64>>,
    ) -> Result<RunStep> {
        let before = self.positions().await?;
        let lookups = self.core.lookup_requests();
        let batches = self.dataverse.batches().len();
        let throttled = self.dataverse.state().throttle_batches.len();
        let outcome = run.await;
        let after = self.positions().await?;
        let ledger = self.store.checkpoints.ledger(SYNC).await?;
        let rows_written = match &outcome {
            Ok(n) => *n,
            Err(_) => ledger
                .iter()
                .rev()
                .find(|e| e.status == LedgerStatus::Committed)
                .filter(|_| after.0 > before.0)
                .map_or(0, |e| e.rows_written),
        };
        let throttled = throttled - self.dataverse.state().throttle_batches.len();
        Ok(RunStep {
            label: label.to_owned(),
            promoted: (before.0, after.0),
            delivered: (before.1, after.1),
            lookups: self.core.lookup_requests() - lookups,
            rows_written,
            error: outcome.err().map(|e| summary(&e)),
            dataverse_batches: self.dataverse.batches().len() - batches + throttled,
            dataverse_records: self.dataverse.keys(ENTITY_SET).len(),
            history: HistoryRow::of(&ledger),
        })
    }

    /// The end-to-end check.
    pub async fn verify(&self) -> Result<Integrity> {
        let target = self.store.stager.read_target(STREAM).await?;
        let ledger = self.store.checkpoints.ledger(SYNC).await?;
        let mut integrity = Integrity::check(
            &self.core,
            &target,
            &self.dataverse,
            &self.queued,
            &ledger,
            self.positions().await?,
        )?;
        for v in self.producers.sqs().violations() {
            integrity.problems.push(format!("sqs contract broken: {v}"));
        }
        if self.producers.sqs().in_queue() > 0 {
            integrity
                .problems
                .push("messages left in the sqs queue".to_owned());
        }
        Ok(integrity)
    }
}

/// An error in one line: kind, message and the attempts it took, without the context
/// pairs (URLs, body excerpts) that `Display` adds.
fn summary(e: &Error) -> String {
    match e.context_value("attempts") {
        Some(n) => format!("{}: {} after {n} attempts", e.kind(), e.message()),
        None => format!("{}: {}", e.kind(), e.message()),
    }
}

/// Retries fast: the loopback services answer at once.
pub(super) fn fast_retry() -> RetryPolicy {
    RetryPolicy::default().with_backoff(Duration::from_millis(1), Duration::from_millis(20))
}
