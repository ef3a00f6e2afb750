//! The walkthrough: the engine started over a store, driven over HTTP step by step.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sync_connectors::http::HttpConfig;
use sync_core::jobs::{Backoff, Job, JobId, JobStatus, WorkerConfig, WorkerMetrics};
use sync_core::{Error, ErrorKind, Result, RetryPolicy};

use super::report::{QueueSnapshot, VenueOutcome, WalkthroughOptions, WalkthroughReport};
use super::venues::{Venue, VenueSet};
use super::{PROVIDER, STREAM};
use crate::admin::AdminClient;
use crate::demo_api::items_stream;
use crate::engine::Catalog;
use crate::service::{EngineService, ServiceOptions};
use crate::store::EngineStore;

/// Runs the walkthrough over `store`, telling what happens through `say`.
pub async fn run(
    store: &EngineStore,
    options: &WalkthroughOptions,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<WalkthroughReport> {
    let mut venues = VenueSet::start(options.scale).map_err(|e| {
        Error::config("the venues' point-of-sale APIs did not start").with_source(e)
    })?;
    // The declared stream points nowhere: each venue's integration names its endpoint.
    let catalog = Arc::new(
        Catalog::new(HttpConfig::default())?
            .with_provider(PROVIDER, [items_stream("http://127.0.0.1:9")])?,
    );
    let token = random_token();
    let mut service_options =
        ServiceOptions::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), token.clone());
    service_options.workers = options.workers;
    service_options.worker = demo_worker();
    service_options.retry = RetryPolicy::none();
    let service = EngineService::start(store, catalog.clone(), service_options).await?;
    let client = AdminClient::new(service.url(), token)?;
    say(format!(
        "engine: admin API on {} with {} workers",
        service.url(),
        options.workers
    ));
    let walk = Walk {
        client,
        timeout: options.step_timeout,
    };
    let outcome = walk.steps(&mut venues, store, &catalog, say).await;
    // Read once the workers have stopped: every attempt has ended by then.
    let workers = service.workers();
    let stopped = service.shutdown().await;
    let mut report = outcome?;
    stopped?;
    report.workers = workers.iter().map(|w| w.metrics()).sum();
    Ok(report)
}

/// Short leases and heartbeats so the walkthrough's stop is seen within a tenth of a
/// second, and a short backoff so the offline venue fails in well under a second.
fn demo_worker() -> WorkerConfig {
    let mut worker = WorkerConfig::new(format!("venue-engine-{}", std::process::id()));
    worker.lease = Duration::from_secs(3);
    worker.heartbeat = Duration::from_millis(100);
    worker.poll = Duration::from_millis(50);
    worker.sweep = Duration::from_millis(500);
    worker.backoff = Backoff {
        base: Duration::from_millis(200),
        max: Duration::from_secs(1),
    };
    worker
}

fn random_token() -> String {
    let state = RandomState::new();
    format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
}

struct Walk {
    client: AdminClient,
    timeout: Duration,
}

impl Walk {
    async fn steps(
        &self,
        venues: &mut VenueSet,
        store: &EngineStore,
        catalog: &Catalog,
        say: &mut (dyn FnMut(String) + Send),
    ) -> Result<WalkthroughReport> {
        let c = &self.client;
        let mut snapshots = vec![];

        say("1. integrations, one per venue, each with its own endpoint:".into());
        for venue in venues.all() {
            c.put_integration(PROVIDER, venue.name, &venue.integration(2))
                .await?;
            say(format!("   {:<15} {}", venue.name, venue.url()));
        }
        let mut bad = venues.harbor.integration(2);
        bad["settings"]["venue_code"] = "HC-1".into();
        let rejected_config = match c.put_integration(PROVIDER, "harbor-cafe", &bad).await {
            Err(e) => e.to_string(),
            Ok(_) => return Err(Error::internal("a bad integration config was accepted")),
        };
        say(format!(
            "   a config with an unknown setting is refused: {rejected_config}"
        ));

        let status = c.status(PROVIDER, None).await?;
        for stream in status["streams"].as_array().into_iter().flatten() {
            if stream["position"].is_null() {
                continue;
            }
            let tenant = stream["key"]["tenant"].as_str().unwrap_or_default();
            c.reset(PROVIDER, tenant, STREAM).await?;
            say(format!(
                "   {tenant}: a checkpoint from an earlier walkthrough, reset"
            ));
        }

        say("2. trigger every venue; the largest one's API will hold its 6th page".into());
        let market_api = online(&venues.market)?;
        market_api.hold_after(5);
        let mut first = BTreeMap::new();
        for venue in venues.all() {
            let job = one(c.trigger(PROVIDER, venue.name).await?)?;
            first.insert(venue.name, job.id);
        }
        snapshots.push(self.snapshot("triggered", say).await?);

        say("3. stop market-hall in the middle of its run".into());
        tokio::time::timeout(self.timeout, market_api.wait_held())
            .await
            .map_err(|_| timeout("market-hall's sync reaching its 6th page"))?;
        let market_job = first["market-hall"];
        c.stop(PROVIDER, "market-hall").await?;
        // The lease as it stood after the stop request was recorded: once it moves on, a
        // heartbeat that came later (and so saw the request) told the worker. Read before
        // the request, a heartbeat just ahead of it would pass for one that saw it.
        let before = self.job("market-hall", market_job).await?.lease_until;
        self.wait(
            "market-hall",
            market_job,
            "the worker hearing the stop",
            |j| j.lease_until > before,
        )
        .await?;
        market_api.release();
        let cancelled = self
            .wait("market-hall", market_job, "the cancel", |j| {
                j.status == JobStatus::Cancelled
            })
            .await?;
        let market_table = catalog.target_table("market-hall", STREAM);
        let rows_when_stopped = store.stager.read_target(&market_table).await?.len();
        say(format!(
            "   cancelled after {} pages: {rows_when_stopped} of {} rows promoted with their checkpoint",
            pages(&cancelled),
            venues.market.records
        ));

        say("4. the small venues complete; old-town-grill's point of sale is offline".into());
        for venue in ["harbor-cafe", "north-bistro"] {
            self.wait(venue, first[venue], "completion", done).await?;
        }
        let failed = self
            .wait("old-town-grill", first["old-town-grill"], "failure", |j| {
                j.status == JobStatus::Failed
            })
            .await?;
        let offline_error = failed.last_error.clone().unwrap_or_default();
        say(format!(
            "   old-town-grill failed after {} attempts: {}",
            failed.attempts,
            first_line(&offline_error)
        ));
        snapshots.push(self.snapshot("after the first runs", say).await?);

        say("5. old-town-grill comes back: new endpoint, retry the failed job".into());
        venues
            .grill
            .bring_online()
            .map_err(|e| Error::config("old-town-grill's API did not start").with_source(e))?;
        c.put_integration(PROVIDER, "old-town-grill", &venues.grill.integration(2))
            .await?;
        let requeued = c.retry_failed(PROVIDER, "old-town-grill").await?;
        say(format!("   requeued {requeued} failed job"));
        self.wait(
            "old-town-grill",
            first["old-town-grill"],
            "completion",
            done,
        )
        .await?;

        say("6. trigger market-hall again: it resumes from its checkpoint".into());
        let resumed = one(c.trigger(PROVIDER, "market-hall").await?)?;
        let resumed = self
            .wait("market-hall", resumed.id, "completion", done)
            .await?;
        let resumed_pages = pages(&resumed);
        say(format!(
            "   completed, fetching {resumed_pages} pages, not all of them"
        ));

        say("7. 1% of harbor-cafe's items change; an incremental sync picks them up".into());
        let mutated = online(&venues.harbor)?.mutate(0.01);
        let again = one(c.trigger(PROVIDER, "harbor-cafe").await?)?;
        let again = self
            .wait("harbor-cafe", again.id, "completion", done)
            .await?;
        let incremental_rows = summary_u64(&again, "rows_written");
        say(format!(
            "   {mutated} items changed, {incremental_rows} rows written"
        ));
        snapshots.push(self.snapshot("at the end", say).await?);

        let history = c.history(PROVIDER, "market-hall", STREAM).await?;
        let history_windows = history["ledger"].as_array().map_or(0, Vec::len);
        say(format!(
            "8. market-hall's history: {history_windows} windows in the ledger, jobs {}",
            statuses(&c.jobs(PROVIDER, "market-hall", STREAM).await?)
        ));

        say("9. every venue's table against its API:".into());
        let mut outcomes = vec![];
        for venue in venues.all() {
            let outcome = self.check(venue, store, catalog).await?;
            say(format!(
                "   {:<15} {:<28} {:>6} rows  {}",
                outcome.venue,
                outcome.table,
                outcome.rows,
                if outcome.matches {
                    "equal to the API"
                } else {
                    "DIFFERENT"
                }
            ));
            outcomes.push(outcome);
        }
        Ok(WalkthroughReport {
            rejected_config,
            snapshots,
            rows_when_stopped,
            resumed_pages,
            offline_error,
            mutated,
            incremental_rows,
            history_windows,
            venues: outcomes,
            workers: WorkerMetrics::default(),
        })
    }

    async fn check(
        &self,
        venue: &Venue,
        store: &EngineStore,
        catalog: &Catalog,
    ) -> Result<VenueOutcome> {
        let table = catalog.target_table(venue.name, STREAM);
        let rows = store.stager.read_target(&table).await?;
        let mut jobs = self.client.jobs(PROVIDER, venue.name, STREAM).await?;
        jobs.sort_by_key(|j| j.id);
        let expected = online(venue)?.rows();
        let matches =
            rows.len() == expected.len() && rows.iter().zip(&expected).all(|(a, b)| a.same_data(b));
        Ok(VenueOutcome {
            venue: venue.name.to_string(),
            table,
            records: venue.records,
            rows: rows.len(),
            matches,
            jobs: jobs.iter().map(|j| j.status).collect(),
        })
    }

    async fn snapshot(
        &self,
        step: &'static str,
        say: &mut (dyn FnMut(String) + Send),
    ) -> Result<QueueSnapshot> {
        let status = self.client.status(PROVIDER, None).await?;
        let counts: BTreeMap<String, u64> = status["counts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect();
        let line = JobStatus::ALL
            .iter()
            .map(|s| format!("{} {}", s.as_str(), counts.get(s.as_str()).unwrap_or(&0)))
            .collect::<Vec<_>>()
            .join(" · ");
        say(format!("   queue {step}: {line}"));
        Ok(QueueSnapshot { step, counts })
    }

    /// The tenant's job `id` as the history shows it now.
    async fn job(&self, tenant: &str, id: JobId) -> Result<Job> {
        self.client
            .jobs(PROVIDER, tenant, STREAM)
            .await?
            .into_iter()
            .find(|j| j.id == id)
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "no such job in the history")
                    .with_context("tenant", tenant)
                    .with_context("job", id)
            })
    }

    /// Polls the tenant's job `id` until `ready` holds for it, or the step times out.
    async fn wait(
        &self,
        tenant: &str,
        id: JobId,
        what: &str,
        ready: impl Fn(&Job) -> bool,
    ) -> Result<Job> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let job = self.job(tenant, id).await?;
            if ready(&job) {
                return Ok(job);
            }
            if Instant::now() >= deadline {
                return Err(timeout(what)
                    .with_context("tenant", tenant)
                    .with_context("job", id)
                    .with_context("status", job.status));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn done(job: &Job) -> bool {
    job.status == JobStatus::Completed
}

fn one(jobs: Vec<Job>) -> Result<Job> {
    jobs.into_iter()
        .next()
        .ok_or_else(|| Error::internal("the trigger enqueued no job"))
}

fn online(venue: &Venue) -> Result<&crate::demo_api::DemoApi> {
    venue
        .api
        .as_ref()
        .ok_or_else(|| Error::internal(format!("{} is offline", venue.name)))
}

fn summary_u64(job: &Job, field: &str) -> u64 {
    job.summary
        .as_ref()
        .and_then(|s| s[field].as_u64())
        .unwrap_or(0)
}

fn pages(job: &Job) -> u64 {
    summary_u64(job, "pages")
}

fn statuses(jobs: &[Job]) -> String {
    let mut jobs: Vec<&Job> = jobs.iter().collect();
    jobs.sort_by_key(|j| j.id);
    jobs.iter()
        .map(|j| format!("#{} {}", j.id, j.status))
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn timeout(what: &str) -> Error {
    Error::new(ErrorKind::Timeout, format!("timed out waiting for {what}"))
}
