//! The job queue on a real SQLite file: the sync-core conformance suite, and claims from two
//! stores and from several processes sharing one file (the migration of a database from
//! before the job tables is in `files.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sync_core::jobs::{EnqueueRequest, JobId, JobKey, JobQueue, JobStatus};
use sync_core::ErrorKind;
use sync_store_sqlite::{SqliteConfig, SqliteStore};

const LEASE: Duration = Duration::from_secs(60);

fn db_path() -> PathBuf {
    tempfile::tempdir()
        .expect("temp dir")
        .keep()
        .join("jobs.db")
}

/// A fresh queue in its own file (kept until the process exits).
async fn make_queue() -> Arc<dyn JobQueue> {
    let store = SqliteStore::open(SqliteConfig::new(db_path()))
        .await
        .expect("store opens");
    Arc::new(store.job_queue())
}

sync_core::job_queue_suite!(make_queue);

fn key(i: usize) -> JobKey {
    JobKey::new("acme", "t1", format!("s{i}")).unwrap()
}

async fn enqueue_many(queue: &dyn JobQueue, n: usize) {
    for i in 0..n {
        queue.enqueue(&EnqueueRequest::sync(key(i))).await.unwrap();
    }
}

/// Two stores on one file are two writers, as two processes would be: SQLite's single
/// writer serializes their enqueues and claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_never_claim_the_same_job() {
    const JOBS: usize = 120;
    let path = db_path();
    let a = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let b = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let queues = [a.job_queue(), b.job_queue()];
    // Both stores enqueue every key at once: one open job per key.
    let enqueues: Vec<_> = (0..4)
        .map(|t| {
            let q = queues[t % 2].clone();
            tokio::spawn(async move {
                let mut created = 0;
                for i in 0..JOBS {
                    created += usize::from(
                        q.enqueue(&EnqueueRequest::sync(key(i)))
                            .await
                            .unwrap()
                            .created,
                    );
                }
                created
            })
        })
        .collect();
    let mut created = 0;
    for t in enqueues {
        created += t.await.unwrap();
    }
    assert_eq!(created, JOBS, "each key got one job");
    let claimers: Vec<_> = (0..6)
        .map(|w| {
            let q = queues[w % 2].clone();
            tokio::spawn(async move {
                let worker = format!("w{w}");
                let mut got = vec![];
                while let Some(job) = q.claim(&worker, LEASE).await.unwrap() {
                    assert_eq!(job.lease_owner.as_deref(), Some(worker.as_str()));
                    got.push(job.id);
                }
                (worker, got)
            })
        })
        .collect();
    let mut owner = BTreeMap::new();
    for t in claimers {
        let (worker, got) = t.await.unwrap();
        for id in got {
            assert!(
                owner.insert(id, worker.clone()).is_none(),
                "job {id} claimed twice"
            );
        }
    }
    assert_eq!(owner.len(), JOBS);
    for (id, worker) in &owner {
        let job = queues[1].job(*id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Processing);
        assert_eq!((job.attempts, job.fence), (1, 1));
        assert_eq!(job.lease_owner.as_ref(), Some(worker));
    }
    // A lease taken through one store is held, and fenced, through the other.
    let (&id, _) = owner.iter().next().unwrap();
    queues[1].heartbeat(id, 1, LEASE).await.unwrap();
    let stale = queues[1].heartbeat(id, 0, LEASE).await.unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Fenced);
}

/// The child of the process test: opens the file `JOB_CLAIM_DB`, says it is ready, waits for
/// the go file, then claims in step with the others and writes the ids it got to a file.
#[test]
fn claim_child() {
    let (Ok(db), Ok(worker)) = (
        std::env::var("JOB_CLAIM_DB"),
        std::env::var("JOB_CLAIM_WORKER"),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(&db)).await.unwrap();
        let queue = store.job_queue();
        std::fs::write(format!("{db}.ready.{worker}"), b"").unwrap();
        wait_for(Path::new(&format!("{db}.go"))).await;
        let got: String = claim_in_step(&queue, &db, &worker)
            .await
            .iter()
            .map(|id| format!("{id}\n"))
            .collect();
        std::fs::write(format!("{db}.claims.{worker}"), got).unwrap();
    });
}

/// The workers of the process test, this process first.
const WORKERS: [&str; 4] = ["p0", "p1", "p2", "p3"];

/// Claims one job, waits until every worker holds one (so all of them are claiming at
/// once, whatever the scheduling), then claims until nothing is due; returns the ids got.
async fn claim_in_step(queue: &dyn JobQueue, db: &str, worker: &str) -> Vec<JobId> {
    let first = queue
        .claim(worker, LEASE)
        .await
        .unwrap()
        .expect("a job is due");
    std::fs::write(format!("{db}.first.{worker}"), b"").unwrap();
    for other in WORKERS {
        wait_for(Path::new(&format!("{db}.first.{other}"))).await;
    }
    let mut got = vec![first.id];
    while let Some(job) = queue.claim(worker, LEASE).await.unwrap() {
        got.push(job.id);
    }
    got
}

async fn wait_for(path: &Path) {
    for _ in 0..6000 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{} never appeared", path.display());
}

/// Three worker processes and this one claim from one file at once (each holds a job before
/// any claims a second): every job is claimed exactly once, by the worker its row names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_on_one_file_never_claim_the_same_job() {
    if std::env::var("JOB_CLAIM_DB").is_ok() {
        return;
    }
    const JOBS: usize = 200;
    let path = db_path();
    let db = path.display().to_string();
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let queue = store.job_queue();
    enqueue_many(&queue, JOBS).await;
    let children: Vec<_> = WORKERS[1..]
        .iter()
        .map(|worker| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "claim_child", "--nocapture", "--test-threads=1"])
                .env("JOB_CLAIM_DB", &db)
                .env("JOB_CLAIM_WORKER", worker)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in &WORKERS[1..] {
        wait_for(Path::new(&format!("{db}.ready.{worker}"))).await;
    }
    std::fs::write(format!("{db}.go"), b"").unwrap();
    let mut claimed: BTreeMap<String, Vec<JobId>> = BTreeMap::new();
    claimed.insert(
        WORKERS[0].into(),
        claim_in_step(&queue, &db, WORKERS[0]).await,
    );
    for (worker, mut child) in WORKERS[1..].iter().zip(children) {
        let worker = worker.to_string();
        assert!(child.wait().unwrap().success(), "child {worker} failed");
        let got = std::fs::read_to_string(format!("{db}.claims.{worker}")).unwrap();
        let ids = got.lines().map(|id| JobId(id.parse().unwrap()));
        claimed.entry(worker).or_default().extend(ids);
    }
    let all: Vec<JobId> = claimed.values().flatten().copied().collect();
    let unique: BTreeSet<JobId> = all.iter().copied().collect();
    assert_eq!((all.len(), unique.len()), (JOBS, JOBS), "{claimed:?}");
    for (worker, ids) in &claimed {
        for id in ids {
            let job = queue.job(*id).await.unwrap().unwrap();
            assert_eq!(job.lease_owner.as_ref(), Some(worker));
            assert_eq!(job.fence, 1);
        }
    }
}
