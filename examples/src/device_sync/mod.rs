//! Seed 002, the Cisco device sync: a full sync of the last month plus one day through
//! staging, then incremental syncs by `modifiedSince`, against the loopback fake of Cisco IoT
//! Control Center ([`sync_connectors::fakes::cisco`]).
//!
//! [`DeviceSync::start`] starts the fake with a deterministic seeded fleet (thousands of
//! devices changed over 45 days, a few ICCIDs listed twice, a few devices without a rate or
//! communication plan) and the Cisco source over it. Each step is one method returning a
//! typed report:
//!
//! 1. [`DeviceSync::without_checkpoint`]: the incremental sync refuses to start without a
//!    checkpoint and asks for the full sync (the seed's `HasSynced = false`);
//! 2. [`DeviceSync::full_sync`]: the last 30 days plus one, staged page by page in runs of at
//!    most `max_pages` pages (the seed's `MaxPagesToProcess`), validated in the store
//!    (duplicate ICCIDs keep the newest listing, devices missing a required field go to the
//!    quarantine with a reason) and promoted with the checkpoint once, after the last page:
//!    readers see the old table until then;
//! 3. [`DeviceSync::backlog`]: devices changed and added since the checkpoint, read by
//!    incremental syncs in runs of at most `max_pages` pages, each resuming where the last
//!    stopped;
//! 4. [`DeviceSync::transient_faults`]: rate-limit answers (`40000029` over HTTP 400), a 503
//!    with `Retry-After` and a 500, retried by the policy until the run completes;
//! 5. [`DeviceSync::permanent_failure`]: a 401 fails the run with a typed permanent error and
//!    changes neither the target nor the checkpoint; the next run completes;
//! 6. [`DeviceSync::verify`] and [`DeviceSync::ledger`]: the target against the fake, and
//!    the windows committed.
//!
//! The seed truncates its staging tables when a full sync starts. Here a staging run belongs
//! to one strategy: a full sync that finds an incremental fill staged discards it, while a
//! full fill stopped by the page limit (or a crash) is resumed from its recorded position
//! rather than read again. Search Devices returns no change times, so the Cisco source reads
//! `modifiedSince`..`modifiedTill` windows of one page each and an incremental run is one
//! window promoted at its end: under a page limit, the runs of a backlog resume the staged
//! window and the checkpoint moves when it is promoted.

mod report;
mod steps;
mod verify;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sync_connectors::cisco::{CiscoConfig, CiscoSource};
use sync_connectors::fakes::cisco::{CiscoFake, Fleet, API_KEY, USER};
use sync_connectors::http::{RateLimit, Secret};
use sync_core::{Checkpoint, Error, Result, RetryPolicy, Stager};

pub use steps::EachRun;

pub use report::{
    checkpoint_time, AttemptSeen, BacklogReport, DuplicateSeen, FaultsReport, FleetSummary,
    FullSyncReport, LedgerSummary, PermanentReport, QuarantineLine, Refusal, RunLine, Verification,
};

/// The sync's name: the checkpoint and ledger key.
pub const SYNC: &str = "jasper/devices";
/// The stream (target table).
pub const STREAM: &str = "devices";
/// Columns a device must have besides its ICCID.
pub const REQUIRED: [&str; 3] = ["status", "rate_plan", "communication_plan"];

/// What the example does; [`Default`] is what the binary runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSyncOptions {
    /// Distinct devices in the fleet.
    pub devices: usize,
    /// Days their changes are spread over (the full sync reads the last 31).
    pub days: u32,
    /// The fleet's seed.
    pub seed: u64,
    /// ICCIDs listed twice.
    pub duplicates: usize,
    /// Devices answered without a rate or communication plan.
    pub incomplete: usize,
    /// Pages per run (the seed's `MaxPagesToProcess`).
    pub max_pages: u64,
    /// Devices changed in the backlog.
    pub backlog_modified: usize,
    /// Devices added in the backlog.
    pub backlog_added: usize,
    /// Calls per second Control Center allows (5); the fake enforces it, the client keeps it.
    pub calls_per_second: u32,
}

impl Default for DeviceSyncOptions {
    fn default() -> Self {
        DeviceSyncOptions {
            devices: 3000,
            days: 45,
            seed: 2,
            duplicates: 3,
            incomplete: 4,
            max_pages: 10,
            backlog_modified: 400,
            backlog_added: 100,
            calls_per_second: 5,
        }
    }
}

/// The client's pace for an account allowing `limit` calls in any second: one call a second
/// less. Calls go one at a time, so a call arrives before the next one starts; at `limit - 1`
/// a second the `limit + 1` arrivals the account refuses then always span a second or more,
/// however late one of them arrives (at exactly `limit` a second, one delayed arrival would
/// put `limit + 1` calls within a second).
fn client_rate(limit: u32) -> f64 {
    if limit > 1 {
        f64::from(limit - 1)
    } else {
        0.5
    }
}

/// The device sync: the fake, the Cisco source over it, the store, and the steps.
#[derive(Debug)]
pub struct DeviceSync {
    fake: CiscoFake,
    config: CiscoConfig,
    source: Arc<CiscoSource>,
    stager: Arc<dyn Stager>,
    checkpoints: Arc<dyn Checkpoint>,
    options: DeviceSyncOptions,
    retry: RetryPolicy,
    /// The full sync's window start, once it ran.
    full_since: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl DeviceSync {
    /// Starts the fake with the seeded fleet and builds the source; `stager` and
    /// `checkpoints` are one database, which must not hold this sync yet (a [`Config`]
    /// error otherwise: the example starts from nothing).
    ///
    /// [`Config`]: sync_core::ErrorKind::Config
    pub async fn start(
        options: DeviceSyncOptions,
        stager: Arc<dyn Stager>,
        checkpoints: Arc<dyn Checkpoint>,
    ) -> Result<DeviceSync> {
        if options.max_pages == 0 || options.calls_per_second == 0 || options.devices == 0 {
            return Err(Error::config(
                "devices, max_pages and calls_per_second must be positive",
            ));
        }
        if checkpoints.load(SYNC).await?.is_some() {
            return Err(Error::config(
                "the database already holds the device sync: use a fresh database",
            )
            .with_context("sync", SYNC));
        }
        let fleet = Fleet::new(options.devices, options.days)
            .with_seed(options.seed)
            .with_duplicates(options.duplicates)
            .with_incomplete(options.incomplete);
        let fake = CiscoFake::start(fleet.build()).await;
        fake.set_calls_per_second(options.calls_per_second as usize);
        let config = CiscoConfig::builder(&fake.base_url, USER, Secret::new(API_KEY))
            .with_stream(STREAM)
            .with_required(REQUIRED)
            .with_rate_limit(
                RateLimit::per_second(client_rate(options.calls_per_second)).with_max_concurrent(1),
            )
            // Windows of at most 12 hours: at this fleet's density (about 70 changes a day) a
            // window then fits in one page and few need halving (the default is a day).
            .with_windows(12 * 3_600_000, 1000)
            // No settle lag and a lookback of two seconds: the fake stamps changes with this
            // process's clock and lists them at once, and `modifiedSince` is sent rounded
            // down to the second. Against Control Center keep the defaults (two minutes, one
            // minute). The lookback is re-read by every run, so it must hold fewer changes
            // than `max_pages` pages, or a page-limited backlog never catches up.
            .with_incremental(0, 2_000)
            .build()?;
        // One source for the life of the process: the rate limit belongs to the account.
        let source = Arc::new(CiscoSource::new(config.clone())?);
        let retry = RetryPolicy::default().with_max_attempts(6).with_backoff(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(4),
        );
        Ok(DeviceSync {
            fake,
            config,
            source,
            stager,
            checkpoints,
            options,
            retry,
            full_since: std::sync::Mutex::new(None),
        })
    }

    /// The fake, to inspect or change it.
    pub fn fake(&self) -> &CiscoFake {
        &self.fake
    }

    /// The options.
    pub fn options(&self) -> &DeviceSyncOptions {
        &self.options
    }

    /// The retry policy every run uses.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The full sync's window start, once it ran.
    pub fn full_since(&self) -> Option<DateTime<Utc>> {
        *self.full_since.lock().expect("the window start")
    }

    /// The fleet as started.
    pub fn fleet(&self) -> FleetSummary {
        let listings = self.fake.devices();
        let window = Utc::now() - chrono::Duration::days(31);
        FleetSummary {
            base_url: self.fake.base_url.clone(),
            devices: self.fake.device_count(),
            listings: listings.len(),
            days: self.options.days,
            in_window: self.fake.latest_since(window).len(),
            duplicated: listings.len() - self.fake.device_count(),
            incomplete: listings
                .iter()
                .filter(|d| !d.null_fields.is_empty())
                .count(),
            calls_per_second: self.options.calls_per_second,
        }
    }
}
