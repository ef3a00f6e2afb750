//! Every run releases its fence when it ends, completed, stopped at a limit or failed, so a
//! store with run leases frees the sync at once instead of at the lease's expiry.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{hwm, put};
use sync_core::checkpoint::{CheckpointCommit, LedgerEntry, StoredCheckpoint, SyncLogEntry};
use sync_core::memory::{MemorySource, MemoryStore};
use sync_core::testkit::items_schema;
use sync_core::{
    Checkpoint, ErrorKind, FaultAction, FaultPoint, Faults, FenceToken, FullConfig, FullStrategy,
    IncrementalConfig, IncrementalStrategy, Result, RetryPolicy, RunLimits, Strategy, SyncContext,
};

/// A memory store's checkpoints that records the fences issued and released.
#[derive(Debug)]
struct Recorder {
    inner: Arc<MemoryStore>,
    acquired: Mutex<Vec<FenceToken>>,
    released: Mutex<Vec<FenceToken>>,
    /// Refuse the `run_started` log entry (a failure between acquire and start).
    refuse_start: bool,
}

impl Recorder {
    fn acquired(&self) -> Vec<FenceToken> {
        self.acquired.lock().unwrap().clone()
    }
    fn released(&self) -> Vec<FenceToken> {
        self.released.lock().unwrap().clone()
    }
}

#[async_trait]
impl Checkpoint for Recorder {
    async fn load(&self, sync: &str) -> Result<Option<StoredCheckpoint>> {
        self.inner.load(sync).await
    }
    async fn acquire_fence(&self, sync: &str) -> Result<FenceToken> {
        let fence = self.inner.acquire_fence(sync).await?;
        self.acquired.lock().unwrap().push(fence);
        Ok(fence)
    }
    async fn commit(&self, commit: &CheckpointCommit) -> Result<u64> {
        self.inner.commit(commit).await
    }
    async fn ledger(&self, sync: &str) -> Result<Vec<LedgerEntry>> {
        self.inner.ledger(sync).await
    }
    async fn append_log(&self, entry: &SyncLogEntry) -> Result<()> {
        if self.refuse_start && entry.event == "run_started" {
            return Err(sync_core::Error::new(ErrorKind::Storage, "the log is full"));
        }
        self.inner.append_log(entry).await
    }
    async fn sync_log(&self, sync: &str, limit: usize) -> Result<Vec<SyncLogEntry>> {
        self.inner.sync_log(sync, limit).await
    }
    async fn reset(&self, sync: &str, fence: FenceToken) -> Result<()> {
        self.inner.reset(sync, fence).await
    }
    async fn release_fence(&self, sync: &str, fence: FenceToken) -> Result<()> {
        assert_eq!(sync, "test/sync");
        self.released.lock().unwrap().push(fence);
        self.inner.release_fence(sync, fence).await
    }
}

/// A source of `n` items, a memory store and its checkpoints behind the recorder.
fn setup(n: usize) -> (Arc<Recorder>, SyncContext, Faults) {
    setup_with(n, false)
}

fn setup_with(n: usize, refuse_start: bool) -> (Arc<Recorder>, SyncContext, Faults) {
    let schema = items_schema("t");
    let faults = Faults::new();
    let source = Arc::new(MemorySource::new((*schema).clone()).with_faults(faults.clone()));
    for i in 0..n {
        put(&source, &format!("k{i:02}"), 1, Some(i as i64));
    }
    hwm(&source, "t", n as i64);
    let stager = Arc::new(MemoryStore::with_faults(faults.clone()));
    let checkpoints = Arc::new(Recorder {
        inner: stager.clone(),
        acquired: Mutex::default(),
        released: Mutex::default(),
        refuse_start,
    });
    let ctx = SyncContext::new("test/sync", source, stager, checkpoints.clone())
        .with_retry(RetryPolicy::none());
    (checkpoints, ctx, faults)
}

fn full() -> FullStrategy {
    FullStrategy::new(FullConfig {
        page_size: 2,
        ..FullConfig::new("t")
    })
    .unwrap()
}

#[tokio::test]
async fn a_completed_run_releases_the_fence_it_acquired() {
    let (checkpoints, ctx, _) = setup(5);
    assert!(full().run(&ctx).await.unwrap().complete);
    assert_eq!(checkpoints.acquired().len(), 1);
    assert_eq!(checkpoints.released(), checkpoints.acquired());
}

#[tokio::test]
async fn a_run_stopped_at_a_limit_releases_its_fence_and_the_next_one_its_own() {
    let (checkpoints, ctx, _) = setup(6);
    let mut config = IncrementalConfig::new("t");
    config.page_size = 2;
    let incremental = IncrementalStrategy::new(config).unwrap();
    let limited = ctx.clone().with_limits(RunLimits {
        max_pages: Some(1),
        ..RunLimits::default()
    });
    assert!(!incremental.run(&limited).await.unwrap().complete);
    assert!(incremental.run(&ctx).await.unwrap().complete);
    let acquired = checkpoints.acquired();
    assert_eq!(acquired.len(), 2);
    assert!(acquired[1] > acquired[0]);
    assert_eq!(checkpoints.released(), acquired);
}

#[tokio::test]
async fn a_failed_run_releases_its_fence_and_passes_the_error_on() {
    let (checkpoints, ctx, faults) = setup(5);
    faults.arm(FaultPoint::DuringCommit, FaultAction::Error);
    let err = full().run(&ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InjectedFault);
    assert_eq!(checkpoints.acquired().len(), 1);
    assert_eq!(checkpoints.released(), checkpoints.acquired());
}

#[tokio::test]
async fn a_run_that_fails_to_start_after_its_fence_releases_it() {
    let (checkpoints, ctx, _) = setup_with(3, true);
    let err = full().run(&ctx).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Storage, "the log is full")
    );
    assert_eq!(checkpoints.acquired().len(), 1);
    assert_eq!(checkpoints.released(), checkpoints.acquired());
}
