//! Concurrent producers on the PostgreSQL change queue while a reader follows the safe
//! high-water mark: every entry is read exactly once, none appears below a mark already read.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sync_core::testkit::key;
use sync_core::{ChangeQueue, SequenceNo, Window};
use sync_store_postgres::{PostgresConfig, PostgresStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_never_skipped_by_a_reader_of_the_high_water_mark() {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("sync_test_{}_queue", std::process::id());
    let store = Arc::new(
        PostgresStore::open(
            PostgresConfig::new(url)
                .with_schema(schema)
                .with_pool_size(6),
        )
        .await
        .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let ids = [key(&format!("w{w}-{i}-a")), key(&format!("w{w}-{i}-b"))];
                    store.append("q", &ids).await.unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let (mut low, mut seen) = (SequenceNo(0), Vec::new());
            loop {
                let finished = done.load(Ordering::SeqCst);
                let high = store.safe_high_water_mark("q").await.unwrap();
                assert!(
                    high >= low,
                    "the high-water mark went back from {low} to {high}"
                );
                for e in store
                    .read_window("q", Window::new(low, high).unwrap())
                    .await
                    .unwrap()
                {
                    seen.push(e.seq);
                }
                low = high;
                if finished {
                    return (low, seen);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (high, seen) = reader.await.unwrap();
    let all = store
        .read_window("q", Window::new(SequenceNo(0), high).unwrap())
        .await
        .unwrap();
    assert_eq!(all.len(), 400, "every append is in the queue");
    let distinct: BTreeSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "an entry was read twice");
    assert_eq!(
        seen,
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        "the reader skipped an entry"
    );
    (*store).clone().drop_schema().await.unwrap();
}
