//! The example's flow, step by step: a fake Square account, a database, the foundation
//! sync, changes, an incremental sync, the integrity check, the rollback and the sync that
//! converges again. [`SquareSyncDemo`] holds the parts; [`run_demo`] runs the whole flow and
//! hands each step's report to a callback (the binary prints them).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sync_connectors::fakes::square::{FakeSquare, SquareDataSet};
use sync_connectors::square::SquareSource;
use sync_core::Source;

use super::backup::SquareTargets;
use super::integrity::{check_integrity, IntegrityError, IntegrityReport};
use super::mutations::{apply_mutations, MutationReport};
use super::rollback::{rollback_last_sync, take_backup, RollbackReport};
use super::run::{sync_all, SyncReport};

/// What the example runs against.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// `sqlite://FILE` or `postgres://...`.
    pub database_url: String,
    /// The PostgreSQL schema (default `public`); ignored for SQLite.
    pub postgres_schema: Option<String>,
    /// The size of the fake account's data.
    pub data_set: SquareDataSet,
    /// The seed of its data.
    pub seed: u64,
}

impl DemoConfig {
    /// Seed 001's data set (seed 1) into `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        DemoConfig {
            database_url: database_url.into(),
            postgres_schema: None,
            data_set: SquareDataSet::seed_001(),
            seed: 1,
        }
    }
}

/// Any failure of the example: a sync error, or a target that does not equal the source.
#[derive(Debug)]
pub enum SquareSyncError {
    /// A source, store or strategy error.
    Sync(sync_core::Error),
    /// The integrity check failed.
    Integrity(Box<IntegrityError>),
}

impl fmt::Display for SquareSyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SquareSyncError::Sync(e) => write!(f, "{e}"),
            SquareSyncError::Integrity(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SquareSyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SquareSyncError::Sync(e) => Some(e),
            SquareSyncError::Integrity(e) => Some(e.as_ref()),
        }
    }
}

impl From<sync_core::Error> for SquareSyncError {
    fn from(e: sync_core::Error) -> Self {
        SquareSyncError::Sync(e)
    }
}

impl From<IntegrityError> for SquareSyncError {
    fn from(e: IntegrityError) -> Self {
        SquareSyncError::Integrity(Box::new(e))
    }
}

/// The fake account, the database and the source over the fake.
#[derive(Debug)]
pub struct SquareSyncDemo {
    /// The fake Square API on 127.0.0.1.
    pub fake: FakeSquare,
    /// The database.
    pub targets: SquareTargets,
    /// The Square source over the fake.
    pub source: Arc<SquareSource>,
    backup_taken_at: Option<DateTime<Utc>>,
    rounds: usize,
}

impl SquareSyncDemo {
    /// Starts the fake account with `config`'s data and opens the database.
    pub async fn start(config: &DemoConfig) -> sync_core::Result<Self> {
        let fake = FakeSquare::start_seeded(&config.data_set, config.seed).await;
        let targets =
            SquareTargets::open(&config.database_url, config.postgres_schema.as_deref()).await?;
        let source = fake.source();
        Ok(SquareSyncDemo {
            fake,
            targets,
            source,
            backup_taken_at: None,
            rounds: 0,
        })
    }

    /// Backs up the targets with their checkpoints, then syncs every table once.
    pub async fn sync(&mut self) -> sync_core::Result<SyncReport> {
        take_backup(&self.targets).await?;
        self.backup_taken_at = Some(Utc::now());
        let source: Arc<dyn Source> = self.source.clone();
        sync_all(&self.targets, source).await
    }

    /// Changes the fake account's data.
    pub fn mutate(&mut self) -> MutationReport {
        self.rounds += 1;
        apply_mutations(&self.fake, self.rounds)
    }

    /// Compares every table with what the fake serves now.
    pub async fn integrity(&self) -> sync_core::Result<IntegrityReport> {
        check_integrity(&self.targets, self.source.as_ref(), &self.fake.data()).await
    }

    /// Rolls the last sync back and logs `reason`.
    pub async fn rollback(&self, reason: &str) -> sync_core::Result<RollbackReport> {
        rollback_last_sync(&self.targets, reason, self.backup_taken_at).await
    }
}

/// One step of [`run_demo`], with its report.
#[derive(Debug, Clone)]
pub enum DemoStep {
    /// The fake account is up at `url`.
    Started {
        /// Its base URL.
        url: String,
        /// Where the backups go.
        backup: String,
    },
    /// The foundation sync: every table in full.
    Foundation(SyncReport),
    /// The changes made at the fake account.
    Mutated(MutationReport),
    /// An incremental sync (`1` the first, `2` after the rollback).
    Incremental(u8, SyncReport),
    /// An integrity check and what it followed.
    Integrity(&'static str, IntegrityReport),
    /// The rollback.
    RolledBack(RollbackReport),
}

/// Everything [`run_demo`] did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The steps in order.
    pub steps: Vec<DemoStep>,
}

/// Runs the flow: foundation sync, integrity, changes, incremental sync, integrity,
/// rollback, integrity (expected to differ: the target is back before the changes),
/// incremental sync, integrity. A failed check (other than the one after the rollback) is
/// [`SquareSyncError::Integrity`].
pub async fn run_demo(
    config: &DemoConfig,
    on_step: &mut dyn FnMut(&DemoStep),
) -> Result<DemoReport, SquareSyncError> {
    let mut demo = SquareSyncDemo::start(config).await?;
    let mut steps = Vec::new();
    let mut step = |s: DemoStep, steps: &mut Vec<DemoStep>| {
        on_step(&s);
        steps.push(s);
    };
    let started = DemoStep::Started {
        url: demo.fake.uri(),
        backup: demo.targets.backup.location(),
    };
    step(started, &mut steps);
    let foundation = demo.sync().await?;
    step(DemoStep::Foundation(foundation), &mut steps);
    let check = demo.integrity().await?.into_result()?;
    step(
        DemoStep::Integrity("after the foundation sync", check),
        &mut steps,
    );
    step(DemoStep::Mutated(demo.mutate()), &mut steps);
    let first = demo.sync().await?;
    step(DemoStep::Incremental(1, first), &mut steps);
    let check = demo.integrity().await?.into_result()?;
    step(
        DemoStep::Integrity("after the incremental sync", check),
        &mut steps,
    );
    let rollback = demo
        .rollback("demo: the incremental sync is rolled back to show the restore")
        .await?;
    step(DemoStep::RolledBack(rollback), &mut steps);
    let behind = demo.integrity().await?;
    step(
        DemoStep::Integrity("after the rollback (the changes are gone again)", behind),
        &mut steps,
    );
    let second = demo.sync().await?;
    step(DemoStep::Incremental(2, second), &mut steps);
    let check = demo.integrity().await?.into_result()?;
    step(
        DemoStep::Integrity("after the incremental sync", check),
        &mut steps,
    );
    Ok(DemoReport { steps })
}
