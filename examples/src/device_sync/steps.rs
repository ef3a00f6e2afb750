//! The steps of the device sync: runs of the Cisco connector's full and incremental
//! strategies under the page limit and the retry policy, with the fake changed and faulted
//! between them.

use sync_connectors::fakes::cisco::{Device, Fault, Fleet, COMMUNICATION_PLANS, RATE_PLANS};
use sync_core::{
    Error, ErrorKind, Progress, ProgressEvent, Result, RunLimits, RunReport, SyncContext,
};

use super::{
    checkpoint_time, AttemptSeen, BacklogReport, DeviceSync, FaultsReport, FullSyncReport,
    PermanentReport, Refusal, RunLine, STREAM, SYNC,
};

/// Runs of one step before the example gives up on it converging.
const MAX_RUNS: usize = 200;

/// A callback told about each run as it ends.
pub type EachRun<'a> = &'a mut (dyn FnMut(&RunLine) + Send);

impl DeviceSync {
    fn context(&self, progress: Progress) -> SyncContext {
        SyncContext::new(
            SYNC,
            self.source.clone(),
            self.stager.clone(),
            self.checkpoints.clone(),
        )
        .with_retry(self.retry.clone())
        .with_limits(RunLimits {
            max_pages: Some(self.options.max_pages),
            max_errors: None,
        })
        .with_progress(progress)
    }

    /// One run of the full (`full`) or the incremental strategy, and the retries it reported.
    async fn run_once(&self, full: bool) -> Result<(Result<RunReport>, Vec<String>)> {
        let strategy = if full {
            self.config.full_strategy()?
        } else {
            self.config.incremental_strategy()?
        };
        let (progress, mut events) = Progress::channel(4096);
        let result = strategy.run(&self.context(progress)).await;
        let mut retries = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let ProgressEvent::Retry { attempt, error } = event {
                retries.push(format!("attempt {attempt} failed: {error}"));
            }
        }
        Ok((result, retries))
    }

    /// Target rows a reader sees now.
    async fn target_rows(&self) -> Result<usize> {
        Ok(self.stager.read_target(STREAM).await?.len())
    }

    /// Runs until a run completes, telling `each` about every run.
    async fn until_complete(&self, full: bool, each: EachRun<'_>) -> Result<Vec<RunLine>> {
        let mut runs = Vec::new();
        while runs.len() < MAX_RUNS {
            let (result, _) = self.run_once(full).await?;
            let report = result?;
            let line = RunLine::of(runs.len() + 1, &report, self.target_rows().await?);
            each(&line);
            runs.push(line);
            if report.complete {
                return Ok(runs);
            }
        }
        Err(
            Error::new(ErrorKind::LimitReached, "the sync did not complete")
                .with_context("runs", MAX_RUNS),
        )
    }

    /// The checkpoint's instant (the end of the last promoted window).
    async fn checkpoint(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        self.checkpoints
            .load(SYNC)
            .await?
            .and_then(|c| checkpoint_time(&c.state.position))
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "run the full sync first"))
    }

    /// `n` ICCIDs listed once and complete, spread over the fleet (`salt` shifts the pick).
    fn pick(&self, n: usize, salt: usize) -> Vec<String> {
        let devices = self.fake.devices();
        let mut listings: std::collections::HashMap<&str, usize> = Default::default();
        for d in &devices {
            *listings.entry(d.iccid.as_str()).or_default() += 1;
        }
        let mut eligible: Vec<&Device> = devices
            .iter()
            .filter(|d| d.null_fields.is_empty() && listings[d.iccid.as_str()] == 1)
            .collect();
        eligible.sort_by(|a, b| a.iccid.cmp(&b.iccid));
        if eligible.is_empty() || n == 0 {
            return Vec::new();
        }
        let step = (eligible.len() / n).max(1);
        let mut picked: Vec<String> = (0..n.min(eligible.len()))
            .map(|i| eligible[(salt + i * step) % eligible.len()].iccid.clone())
            .collect();
        picked.dedup();
        picked
    }

    /// Step 1: the incremental sync without a checkpoint asks for the full sync, before any
    /// call to Control Center.
    pub async fn without_checkpoint(&self) -> Result<Refusal> {
        let before = self.fake.request_count();
        match self.run_once(false).await?.0 {
            Err(e) if e.kind() == ErrorKind::Unsupported => Ok(Refusal {
                kind: e.kind(),
                message: e.to_string(),
                calls: self.fake.request_count() - before,
            }),
            Err(e) => Err(e),
            Ok(_) => Err(Error::internal(
                "the incremental sync ran without a checkpoint",
            )),
        }
    }

    /// Step 2: the full sync of the last 30 days plus one, in runs of at most `max_pages`
    /// pages, promoted once after the last page.
    pub async fn full_sync(&self, each: EachRun<'_>) -> Result<FullSyncReport> {
        let first = self.fake.request_count();
        let runs = self.until_complete(true, each).await?;
        let since = self
            .fake
            .requests()
            .get(first)
            .and_then(|r| r.query.get("modifiedSince").cloned())
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| Error::internal("the full sync made no search"))?;
        *self.full_since.lock().expect("the window start") = Some(since);
        Ok(FullSyncReport {
            since,
            runs,
            duplicates: self.duplicates(since).await?,
            quarantined: self.quarantine().await?,
        })
    }

    /// Step 3: devices changed and added since the checkpoint, read by incremental syncs in
    /// runs of at most `max_pages` pages.
    pub async fn backlog(&self, each: EachRun<'_>) -> Result<BacklogReport> {
        let after = self.checkpoint().await?;
        let iccids = self.pick(self.options.backlog_modified, 0);
        let modified = self.fake.modify_since(&iccids, after);
        let added: Vec<Device> = (0..self.options.backlog_added)
            .map(|j| Device {
                iccid: Fleet::iccid(self.options.devices + j),
                status: "ACTIVATION_READY".into(),
                rate_plan: RATE_PLANS[j % RATE_PLANS.len()].into(),
                communication_plan: COMMUNICATION_PLANS[j % COMMUNICATION_PLANS.len()].into(),
                modified: after,
                version: 1,
                null_fields: Vec::new(),
            })
            .collect();
        let added_count = added.len();
        self.fake.add_since(added, after);
        Ok(BacklogReport {
            modified,
            added: added_count,
            after,
            runs: self.until_complete(false, each).await?,
        })
    }

    /// Step 4: an incremental sync whose first calls are answered `40000029` twice, then a
    /// 503 with `Retry-After: 1`, then a 500; the policy retries them and the run completes.
    pub async fn transient_faults(&self) -> Result<FaultsReport> {
        let after = self.checkpoint().await?;
        let modified = self.fake.modify_since(&self.pick(25, 1), after);
        let first = self.fake.request_count();
        self.fake
            .fault_next(2, Fault::Status(400, "40000029", "Rate Limit Exceeded"));
        self.fake.fault(Fault::Unavailable {
            retry_after: Some(1),
        });
        self.fake
            .fault(Fault::Status(500, "50000002", "Internal Server Error"));
        let (result, retries) = self.run_once(false).await?;
        let mut run = RunLine::of(1, &result?, self.target_rows().await?);
        if !run.complete {
            let rest = self.until_complete(false, &mut |_| {}).await?;
            run = rest.last().cloned().unwrap_or(run);
        }
        let requests = self.fake.requests();
        let requests = &requests[first.min(requests.len())..];
        let mut attempts = Vec::new();
        let mut streak = 0u32;
        for (i, r) in requests.iter().enumerate() {
            if r.status == 200 {
                streak = 0;
                continue;
            }
            let next_after_ms = requests
                .get(i + 1)
                .map_or(0, |n| n.at.duration_since(r.at).as_millis() as u64);
            attempts.push(AttemptSeen {
                status: r.status,
                error_code: r.error_code.clone(),
                next_after_ms,
                backoff_cap_ms: self.retry.backoff_cap(streak).as_millis() as u64,
                retry_after_s: (r.status == 503).then_some(1),
            });
            streak += 1;
        }
        Ok(FaultsReport {
            modified,
            attempts,
            retries,
            run,
        })
    }

    /// Step 5: an incremental sync whose third call is answered 401 fails with a permanent
    /// error; the target and the checkpoint stay as they were (the pages it staged wait for
    /// the next run: [`DeviceSync::catch_up`]).
    pub async fn permanent_failure(&self) -> Result<PermanentReport> {
        let after = self.checkpoint().await?;
        // More than two pages of changes, so the failure comes after staged pages.
        let modified = self.fake.modify_since(&self.pick(150, 2), after);
        let target_before = self.stager.read_target(STREAM).await?;
        let checkpoint_before = self.checkpoints.load(SYNC).await?;
        let first = self.fake.request_count();
        self.fake.fault_at(
            first + 2,
            Fault::Status(401, "10000001", "Invalid credentials"),
        );
        let error = match self.run_once(false).await?.0 {
            Err(e) => e,
            Ok(_) => return Err(Error::internal("the 401 did not fail the run")),
        };
        let calls_before_failure = self.fake.requests()[first..]
            .iter()
            .take_while(|r| r.status != 401)
            .count();
        let target_unchanged = self.stager.read_target(STREAM).await? == target_before;
        let checkpoint_now = self.checkpoints.load(SYNC).await?;
        let same = |a: &Option<sync_core::StoredCheckpoint>,
                    b: &Option<sync_core::StoredCheckpoint>| {
            a.as_ref().map(|c| (&c.state, c.version)) == b.as_ref().map(|c| (&c.state, c.version))
        };
        let checkpoint_unchanged = same(&checkpoint_now, &checkpoint_before);
        Ok(PermanentReport {
            modified,
            kind: error.kind(),
            retry_class: error.retry_class(),
            message: error.to_string(),
            summary: error.message().to_string(),
            error_code: error.context_value("error_code").map(str::to_owned),
            detail: error.context_value("detail").map(str::to_owned),
            calls_before_failure,
            target_unchanged,
            checkpoint_unchanged,
        })
    }

    /// Incremental syncs until one completes (after a failure, the first resumes the staged
    /// fill).
    pub async fn catch_up(&self, each: EachRun<'_>) -> Result<Vec<RunLine>> {
        self.until_complete(false, each).await
    }
}
