//! The connection dies during COMMIT. A loopback proxy between the store and PostgreSQL
//! watches for the promotion's transaction (it writes the ledger row) and then either passes
//! its COMMIT on and cuts the client off once the server has answered (committed, but the
//! client never hears it) or swallows the COMMIT and cuts both sides (rolled back). Either
//! way the store reports an outcome-unknown error; the strategy re-reads the checkpoint before
//! applying anything again, and the target ends equal to the source.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use sync_core::memory::MemorySource;
use sync_core::testkit::{item, keyed_schema};
use sync_core::{
    Checkpoint, FullConfig, FullStrategy, RetryPolicy, Stager, Strategy, SyncContext, Value,
};
use sync_store_postgres::{PostgresConfig, PostgresStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASS: u8 = 1;
const SWALLOW: u8 = 2;

/// What the proxy does to the COMMIT after the next ledger insert (0: nothing).
static MODE: AtomicU8 = AtomicU8::new(0);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn pipe(mut client: TcpStream, upstream: String) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cbuf, mut sbuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut promoting, mut hide_replies) = (false, false);
    loop {
        tokio::select! {
            read = client.read(&mut cbuf) => {
                let Ok(n @ 1..) = read else { return };
                let bytes = &cbuf[..n];
                promoting |= MODE.load(Ordering::SeqCst) != 0 && contains(bytes, b"\"_sync_ledger\"");
                if promoting && contains(bytes, b"COMMIT") {
                    promoting = false;
                    match MODE.swap(0, Ordering::SeqCst) {
                        SWALLOW => return,
                        PASS => hide_replies = true,
                        _ => {}
                    }
                }
                if server.write_all(bytes).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut sbuf) => {
                let Ok(n @ 1..) = read else { return };
                if hide_replies {
                    // The server has committed once it says it is ready again: now cut the
                    // client off without letting the answer through.
                    if contains(&sbuf[..n], &[b'Z', 0, 0, 0, 5]) {
                        return;
                    }
                } else if client.write_all(&sbuf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_commit_is_resolved_by_rereading_the_checkpoint() {
    let Some(url) = std::env::var("SYNC_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: SYNC_TEST_POSTGRES_URL is not set");
        return;
    };
    let pg: tokio_postgres::Config = url.parse().unwrap();
    let Some(tokio_postgres::config::Host::Tcp(host)) = pg.get_hosts().first().cloned() else {
        return eprintln!("skipped: the test server is not reached over TCP");
    };
    let upstream = format!("{host}:{}", pg.get_ports().first().copied().unwrap_or(5432));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(pipe(client, upstream.clone()));
        }
    });
    let (user, dbname) = (
        pg.get_user().unwrap_or("postgres"),
        pg.get_dbname().unwrap_or("postgres"),
    );
    let proxied = format!("postgres://{user}@127.0.0.1:{port}/{dbname}?sslmode=disable");
    let schema_name = format!("sync_test_{}_commit_lost", std::process::id());
    let store = Arc::new(
        PostgresStore::open(
            PostgresConfig::new(proxied)
                .with_schema(schema_name)
                .with_pool_size(2),
        )
        .await
        .unwrap(),
    );
    let schema = keyed_schema("items");
    let source = Arc::new(MemorySource::new((*schema).clone()));
    for i in 0..50 {
        source.upsert(item(&format!("k{i:02}"), 1, None).values().to_vec());
    }
    let ctx = SyncContext::new("commit", source.clone(), store.clone(), store.clone())
        .with_retry(RetryPolicy::none());
    let full = FullStrategy::new(FullConfig::new("items")).unwrap();

    // Committed, answer lost: the strategy finds its checkpoint and carries on.
    MODE.store(PASS, Ordering::SeqCst);
    let report = full
        .run(&ctx)
        .await
        .expect("an outcome-unknown commit that landed is not a failure");
    assert!(report.complete);
    assert_eq!(
        MODE.load(Ordering::SeqCst),
        0,
        "the proxy cut the promotion's COMMIT"
    );
    assert_eq!(store.load("commit").await.unwrap().unwrap().version, 1);
    assert_eq!(
        store.read_target("items").await.unwrap(),
        source.rows("items")
    );

    // COMMIT swallowed: rolled back; the run fails without applying anything twice and the
    // next one completes.
    source.upsert(item("k99", 1, None).values().to_vec());
    MODE.store(SWALLOW, Ordering::SeqCst);
    let err = full
        .run(&ctx)
        .await
        .expect_err("the promotion never committed");
    assert!(err.is_outcome_unknown(), "{err}");
    let target = store.read_target("items").await.unwrap();
    assert!(
        !target.iter().any(|r| r.get(0) == &Value::from("k99")),
        "nothing of the lost commit is applied"
    );
    assert_eq!(
        store.load("commit").await.unwrap().unwrap().version,
        1,
        "the checkpoint did not move"
    );
    full.run(&ctx).await.unwrap();
    assert_eq!(
        store.read_target("items").await.unwrap(),
        source.rows("items")
    );
    assert_eq!(store.load("commit").await.unwrap().unwrap().version, 2);
    drop(ctx);
    (*store).clone().drop_schema().await.unwrap();
}
