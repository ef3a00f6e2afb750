//! The REST source's look-up by id (`lookup`), the `fetch_latest` of the sequence-window
//! strategy, against wiremock on 127.0.0.1: one GET per id (404 = gone) and one GET per
//! batch of ids (left out = gone), the checks that keep a wrong answer from deleting
//! anything, and a sequence-window sync over it.

mod support;

use std::sync::Arc;

use serde_json::json;
use support::*;
use sync_connectors::rest::{LookupConfig, RestStreamConfig};
use sync_core::memory::MemoryStore;
use sync_core::{
    ChangeQueue, Checkpoint, ErrorKind, Key, Position, RetryPolicy, SequenceNo,
    SequenceWindowConfig, SequenceWindowStrategy, Source, Strategy, StrategyKind, SyncContext,
};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// `GET /items/{id}`: the record, or 404 with an error body.
async fn per_id_server(items: &Items) -> MockServer {
    let server = MockServer::start().await;
    let items = items.clone();
    Mock::given(method("GET"))
        .and(path_regex("^/items/[^/]+$"))
        .respond_with(move |req: &Request| {
            let id = req.url.path().trim_start_matches("/items/").to_owned();
            match items.matching(None).into_iter().find(|i| i.id == id) {
                Some(item) => ResponseTemplate::new(200).set_body_json(item.json()),
                None => ResponseTemplate::new(404)
                    .set_body_json(json!({"error": "no such item", "id": id})),
            }
        })
        .mount(&server)
        .await;
    server
}

/// `GET /items?ids=a,b`: `{"items": [...]}` with the records that exist.
async fn batch_server(items: &Items) -> MockServer {
    let server = MockServer::start().await;
    let items = items.clone();
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(move |req: &Request| {
            let asked = param(req, "ids").unwrap_or_default();
            let asked: Vec<&str> = asked.split(',').collect();
            let found: Vec<serde_json::Value> = items
                .matching(None)
                .iter()
                .filter(|i| asked.contains(&i.id.as_str()))
                .map(Item::json)
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({ "items": found }))
        })
        .mount(&server)
        .await;
    server
}

fn keys(ids: &[&str]) -> Vec<Key> {
    ids.iter().map(|i| Key::text(*i)).collect()
}

fn per_id(server: &MockServer) -> RestStreamConfig {
    items_stream(&server.uri()).with_lookup(LookupConfig::per_id("/items/{id}"))
}

#[tokio::test]
async fn per_id_lookup_reads_each_distinct_id_once_and_a_404_is_an_absent_id() {
    let items = Items::new(10);
    let server = per_id_server(&items).await;
    let source = source(per_id(&server));
    let caps = source.capabilities();
    assert!(caps.fetch_latest);
    assert!(caps.strategies.contains(&StrategyKind::SequenceWindow));

    let asked = keys(&[
        "itm-00003",
        "itm-00007",
        "itm-00003",
        "itm-99999",
        "itm-00001",
    ]);
    let rows = source.fetch_latest("items", &asked).await.unwrap();
    let got: Vec<String> = rows.iter().map(id_of).collect();
    assert_eq!(got, ["itm-00003", "itm-00007", "itm-00001"]);
    let want = items.matching(None);
    for row in &rows {
        let item = want.iter().find(|i| i.id == id_of(row)).unwrap();
        assert_eq!(row.get(2).as_i64(), Some(item.version));
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4, "one GET per distinct id");
}

#[tokio::test]
async fn an_id_that_is_not_a_plain_path_segment_is_percent_encoded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items/a%2Fb%20c"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "a/b c", "updated_at": ts(1), "version": 3, "name": null, "price": null, "payload": null}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let rows = source(per_id(&server))
        .fetch_latest("items", &keys(&["a/b c"]))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(id_of(&rows[0]), "a/b c");
}

/// A loopback server of `GET /items/{id}` that measures how many requests are in flight at
/// once. A request waits until `gate` requests have started (or all `total`), so a correct
/// client is seen with exactly `gate` in flight; a request counts as done before its answer
/// is written, so the client's next request cannot overlap it.
async fn gated_server(gate: usize, total: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (started, inflight, max) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let opened = Arc::new(tokio::sync::Notify::new());
    let seen = max.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (started, inflight, max, opened) = (
                started.clone(),
                inflight.clone(),
                max.clone(),
                opened.clone(),
            );
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let id = line
                    .split(' ')
                    .nth(1)
                    .unwrap_or("")
                    .trim_start_matches("/items/")
                    .to_owned();
                let now = inflight.fetch_add(1, SeqCst) + 1;
                max.fetch_max(now, SeqCst);
                if started.fetch_add(1, SeqCst) + 1 >= gate.min(total) {
                    opened.notify_waiters();
                }
                loop {
                    let wait = opened.notified();
                    if started.load(SeqCst) >= gate.min(total) {
                        break;
                    }
                    wait.await;
                }
                inflight.fetch_sub(1, SeqCst);
                let body = Item {
                    id,
                    updated_ms: 0,
                    version: 1,
                }
                .json()
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_id_requests_run_concurrently_up_to_the_configured_bound() {
    let ids: Vec<String> = (0..10).map(|i| format!("itm-{i:05}")).collect();
    let asked: Vec<Key> = ids.iter().map(|s| Key::text(s.as_str())).collect();
    for bound in [1, 3] {
        let (url, max) = gated_server(bound, ids.len()).await;
        let lookup = LookupConfig::PerId {
            path: "/items/{id}".into(),
            record_path: String::new(),
            concurrency: bound,
            query: Default::default(),
        };
        let rows = source(items_stream(&url).with_lookup(lookup))
            .fetch_latest("items", &asked)
            .await
            .unwrap();
        assert_eq!(
            rows.iter().map(id_of).collect::<Vec<_>>(),
            ids,
            "in the order asked"
        );
        assert_eq!(max.load(std::sync::atomic::Ordering::SeqCst), bound);
    }
}

#[tokio::test]
async fn batch_lookup_sends_at_most_max_ids_per_request_and_left_out_ids_are_absent() {
    let items = Items::new(12);
    let server = batch_server(&items).await;
    let mut lookup = LookupConfig::batch("ids");
    if let LookupConfig::Batch { max_ids, .. } = &mut lookup {
        *max_ids = 3;
    }
    let source = source(items_stream(&server.uri()).with_lookup(lookup));
    let mut asked: Vec<String> = (0..8).map(|i| format!("itm-{i:05}")).collect();
    asked.push("itm-00404".into());
    let asked: Vec<Key> = asked.iter().map(|s| Key::text(s.as_str())).collect();
    let rows = source.fetch_latest("items", &asked).await.unwrap();
    let got: Vec<String> = rows.iter().map(id_of).collect();
    assert_eq!(got, expected_ids(0..8));
    let requests = server.received_requests().await.unwrap();
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| param(r, "ids").unwrap().split(',').count())
        .collect();
    assert_eq!(sizes, [3, 3, 3]);
}

#[tokio::test]
async fn answers_that_cannot_be_trusted_are_typed_errors_not_deletes() {
    // A per-id endpoint that answers every id with the same record.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/items/"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                Item {
                    id: "itm-00000".into(),
                    updated_ms: 0,
                    version: 1,
                }
                .json(),
            ),
        )
        .mount(&server)
        .await;
    let err = source(per_id(&server))
        .fetch_latest("items", &keys(&["itm-00005"]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.context_value("asked"), Some("itm-00005"));

    // A list endpoint that ignores the ids parameter and serves its first page.
    let items = Items::new(5);
    let list = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(offset_responder(items.clone(), 100))
        .mount(&list)
        .await;
    let ignoring = source(items_stream(&list.uri()).with_lookup(LookupConfig::batch("ids")));
    let err = ignoring
        .fetch_latest("items", &keys(&["itm-00001"]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    // A 503 is transient (the strategy retries it), a 401 permanent; neither is "absent".
    let failing = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items/itm-00001"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&failing)
        .await;
    Mock::given(method("GET"))
        .and(path("/items/itm-00002"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&failing)
        .await;
    let s = source(per_id(&failing));
    let err = s
        .fetch_latest("items", &keys(&["itm-00001"]))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.context_value("id"), Some("itm-00001"));
    let err = s
        .fetch_latest("items", &keys(&["itm-00002"]))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
}

#[tokio::test]
async fn a_sequence_window_sync_over_the_lookup_equals_the_api_and_deletes_what_it_lost() {
    let items = Items::new(6);
    let server = per_id_server(&items).await;
    let source = Arc::new(source(per_id(&server)));
    let store = Arc::new(MemoryStore::new());
    let ctx = SyncContext::new("api/items", source, store.clone(), store.clone())
        .with_queue(store.clone())
        .with_retry(RetryPolicy::none());
    let strategy =
        SequenceWindowStrategy::new(SequenceWindowConfig::new("items", "changes")).unwrap();
    store
        .append(
            "changes",
            &keys(&["itm-00001", "itm-00004", "itm-00001", "itm-00009"]),
        )
        .await
        .unwrap();
    strategy.run(&ctx).await.unwrap();
    let target: Vec<String> = store.target_rows("items").iter().map(id_of).collect();
    assert_eq!(
        target,
        ["itm-00001", "itm-00004"],
        "itm-00009 never existed"
    );

    // itm-00004 is deleted at the API and changes again: the window deletes it.
    items.0.lock().unwrap().retain(|i| i.id != "itm-00004");
    items.mutate(2);
    store
        .append("changes", &keys(&["itm-00004", "itm-00002"]))
        .await
        .unwrap();
    strategy.run(&ctx).await.unwrap();
    let target = store.target_rows("items");
    let want: Vec<Item> = items
        .matching(None)
        .into_iter()
        .filter(|i| ["itm-00001", "itm-00002"].contains(&i.id.as_str()))
        .collect();
    assert_eq!(target.len(), want.len());
    for (row, item) in target.iter().zip(&want) {
        assert_eq!(id_of(row), item.id);
        assert_eq!(row.get(2).as_i64(), Some(item.version));
    }
    let state = store.load("api/items").await.unwrap().unwrap().state;
    assert_eq!(state.position, Position::Sequence(SequenceNo(6)));
}

#[tokio::test]
async fn bad_lookup_configs_are_config_errors_and_no_lookup_is_unsupported() {
    let base = || items_stream("http://127.0.0.1:9");
    let cases = [
        LookupConfig::per_id("/items"),
        LookupConfig::PerId {
            path: "/items/{id}".into(),
            record_path: String::new(),
            concurrency: 0,
            query: Default::default(),
        },
        LookupConfig::Batch {
            path: None,
            param: "ids".into(),
            separator: ",".into(),
            max_ids: 0,
            records_path: None,
            query: Default::default(),
        },
        LookupConfig::batch(""),
    ];
    for lookup in cases {
        let err = base().with_lookup(lookup.clone()).validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{lookup:?}: {err}");
    }
    let composite = base()
        .with_primary_key(["id", "version"])
        .with_lookup(LookupConfig::per_id("/items/{id}"));
    assert_eq!(composite.validate().unwrap_err().kind(), ErrorKind::Config);

    let toml = r#"
        name = "items"
        base_url = "http://127.0.0.1:9"
        path = "/items"
        primary_key = ["id"]
        strategy = { kind = "full" }
        columns = [{ name = "id", type = "text", nullable = false }]
        lookup = { type = "per_id", path = "/items/{id}", concurrency = 8, colour = "red" }
    "#;
    let err = toml::from_str::<RestStreamConfig>(toml).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
    let ok: RestStreamConfig = toml::from_str(&toml.replace(", colour = \"red\"", "")).unwrap();
    ok.validate().unwrap();

    let plain = source(base());
    assert!(!plain.capabilities().fetch_latest);
    let err = plain
        .fetch_latest("items", &keys(&["itm-00001"]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}
