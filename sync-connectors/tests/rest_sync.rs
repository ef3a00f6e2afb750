//! The REST source under the sync-core strategies, end to end against a real HTTP server on
//! 127.0.0.1: full and incremental syncs equal the source, retries, and every failure leaves
//! the checkpoint and the target as they were, with a typed error.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::*;
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::{RestSource, RestStreamConfig, StrategySpec};
use sync_core::memory::MemoryStore;
use sync_core::{Checkpoint, ErrorKind, RetryClass, RetryPolicy, SyncContext, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// What the fake API does with the next requests.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Normal,
    /// This status and body, `times` times, then normal.
    Fail {
        status: u16,
        body: String,
        times: u32,
    },
    /// A body that is not JSON.
    Malformed,
    /// A page without the records field.
    NoRecords,
    /// A record without its primary key.
    MissingKey,
    /// A page nested far deeper than any parser should follow.
    Deep,
    /// A page larger than the client's cap.
    Huge,
}

struct Api {
    server: MockServer,
    items: Items,
    mode: Arc<Mutex<Mode>>,
}

impl Api {
    async fn start(n: usize) -> Api {
        let items = Items::new(n);
        let mode = Arc::new(Mutex::new(Mode::Normal));
        let normal = offset_responder(items.clone(), 1000);
        let m = mode.clone();
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/items"))
            .respond_with(move |req: &Request| {
                let mut mode = m.lock().unwrap();
                match &mut *mode {
                    Mode::Normal => normal(req),
                    Mode::Fail {
                        status,
                        body,
                        times,
                    } => {
                        let r = ResponseTemplate::new(*status).set_body_string(body.clone());
                        *times -= 1;
                        if *times == 0 {
                            *mode = Mode::Normal;
                        }
                        r
                    }
                    Mode::Malformed => {
                        ResponseTemplate::new(200).set_body_string(r#"{"items":[{"id":"a""#)
                    }
                    Mode::NoRecords => ResponseTemplate::new(200)
                        .set_body_json(json!({"results": [], "has_more": false})),
                    Mode::MissingKey => ResponseTemplate::new(200).set_body_json(json!({
                        "items": [{"updated_at": ts(99_999), "version": 1}],
                        "has_more": false,
                    })),
                    Mode::Deep => {
                        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
                        ResponseTemplate::new(200)
                            .set_body_string(format!(r#"{{"meta":{deep},"items":[]}}"#))
                    }
                    Mode::Huge => ResponseTemplate::new(200).set_body_string(format!(
                        r#"{{"items":[],"pad":"{}"}}"#,
                        "x".repeat(1 << 20)
                    )),
                }
            })
            .mount(&server)
            .await;
        Api {
            server,
            items,
            mode,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn stream(&self, strategy: StrategySpec, page_size: u32) -> RestStreamConfig {
        items_stream(&self.server.uri())
            .with_strategy(strategy)
            .with_page_size(page_size)
    }

    async fn requests(&self) -> usize {
        self.server.received_requests().await.unwrap().len()
    }
}

fn incremental() -> StrategySpec {
    StrategySpec::Incremental {
        lookback: 0,
        settle_lag: 0,
        missing_cursor: Default::default(),
        pages_per_window: 2,
    }
}

fn full() -> StrategySpec {
    StrategySpec::full()
}

/// A context for `config` into `store`, retrying quickly.
fn context(config: RestStreamConfig, store: &Arc<MemoryStore>, client: HttpClient) -> SyncContext {
    let source = Arc::new(RestSource::new(config, client).unwrap());
    SyncContext::new("api/items", source, store.clone(), store.clone()).with_retry(
        RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
    )
}

/// The target as (id, version) pairs, sorted.
fn target(store: &MemoryStore) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = store
        .target_rows("items")
        .iter()
        .map(|r| (id_of(r), r.get(2).as_i64().unwrap()))
        .collect();
    v.sort();
    v
}

fn source_state(items: &Items) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = items
        .matching(None)
        .into_iter()
        .map(|i| (i.id, i.version))
        .collect();
    v.sort();
    v
}

async fn run(
    config: &RestStreamConfig,
    ctx: &SyncContext,
) -> sync_core::Result<sync_core::RunReport> {
    config
        .strategy
        .build(&config.name, config.page_size)?
        .run(ctx)
        .await
}

#[tokio::test]
async fn full_then_incremental_syncs_equal_the_source() {
    let api = Api::start(2_500).await;
    let store = Arc::new(MemoryStore::new());
    let full_cfg = api.stream(full(), 300);
    let report = run(&full_cfg, &context(full_cfg.clone(), &store, client()))
        .await
        .unwrap();
    assert_eq!((report.rows_written, report.pages), (2_500, 9));
    assert_eq!(target(&store), source_state(&api.items));

    // 1% changes; the incremental sync reads only them (and the record at its checkpoint).
    let changed = api.items.mutate(100) as u64;
    let inc_cfg = api.stream(incremental(), 300);
    let before = api.requests().await;
    let report = run(&inc_cfg, &context(inc_cfg.clone(), &store, client()))
        .await
        .unwrap();
    assert_eq!(report.rows_written, changed);
    assert_eq!(
        api.requests().await - before,
        1,
        "one page holds the 25 changes"
    );
    assert_eq!(target(&store), source_state(&api.items));
    let position = store
        .load("api/items")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    // The last change: record 2400, moved to 2,499 + 1,000 + 2,400 ms.
    assert_eq!(
        position.to_string(),
        "(2024-01-01T00:00:05.899Z, itm-02400)"
    );
}

#[tokio::test]
async fn incremental_from_scratch_commits_every_page_and_resumes_after_a_permanent_error() {
    let api = Api::start(1_000).await;
    let store = Arc::new(MemoryStore::new());
    let cfg = api.stream(incremental(), 100);
    let ctx = context(cfg.clone(), &store, client());
    // Three pages land, then the API answers 400. Each page after the first is anchored on
    // the last record promoted, which it reads again and skips: 100 + 99 + 99 new records.
    let first = run(
        &cfg,
        &ctx.clone().with_limits(sync_core::RunLimits {
            max_pages: Some(3),
            max_errors: None,
        }),
    )
    .await
    .unwrap();
    assert_eq!((first.rows_written, first.complete), (298, false));
    api.set(Mode::Fail {
        status: 400,
        body: r#"{"error":"offset must be a number"}"#.into(),
        times: 1,
    });
    let err = run(&cfg, &ctx).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.retry_class()),
        (ErrorKind::Remote, RetryClass::Permanent)
    );
    assert_eq!(store.target_rows("items").len(), 298);
    let done = run(&cfg, &ctx).await.unwrap();
    assert_eq!(done.rows_written, 702);
    assert_eq!(target(&store), source_state(&api.items));
}

#[tokio::test]
async fn a_500_then_200_succeeds_after_one_retry() {
    let api = Api::start(50).await;
    let store = Arc::new(MemoryStore::new());
    let cfg = api.stream(incremental(), 100);
    api.set(Mode::Fail {
        status: 500,
        body: "upstream exploded".into(),
        times: 1,
    });
    let report = run(&cfg, &context(cfg.clone(), &store, client()))
        .await
        .unwrap();
    assert_eq!(report.rows_written, 50);
    assert_eq!(
        api.requests().await,
        2,
        "the failed request and its one retry"
    );
}

/// Each bad answer fails the run with a typed error, leaves the checkpoint and the target as
/// the last good run left them, and the next good run goes on from there.
#[tokio::test]
async fn every_bad_answer_is_a_typed_error_and_changes_nothing() {
    let cases = [
        (
            Mode::Fail {
                status: 400,
                body: r#"{"error":"bad updated_since"}"#.into(),
                times: 1,
            },
            ErrorKind::Remote,
            Some("bad updated_since"),
        ),
        (Mode::Malformed, ErrorKind::InvalidInput, None),
        (Mode::NoRecords, ErrorKind::InvalidInput, Some("no records")),
        (Mode::MissingKey, ErrorKind::InvalidInput, None),
        (Mode::Deep, ErrorKind::InvalidInput, None),
        (Mode::Huge, ErrorKind::InvalidInput, None),
    ];
    for (mode, kind, text) in cases {
        let api = Api::start(20).await;
        let store = Arc::new(MemoryStore::new());
        let cfg = api.stream(incremental(), 100);
        let small = HttpClient::new(HttpConfig {
            max_response_bytes: 512 * 1024,
            ..HttpConfig::default()
        })
        .unwrap();
        let ctx = context(cfg.clone(), &store, small);
        run(&cfg, &ctx).await.unwrap();
        let before = (store.load("api/items").await.unwrap(), target(&store));
        api.items.mutate(2);
        api.set(mode.clone());
        let err = run(&cfg, &ctx).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{mode:?}: {err}");
        assert_eq!(err.retry_class(), RetryClass::Permanent, "{mode:?}: {err}");
        if let Some(text) = text {
            assert!(
                format!("{err:#}").contains(text) || err.to_string().contains(text),
                "{mode:?}: {err}"
            );
        }
        let after = (store.load("api/items").await.unwrap(), target(&store));
        assert_eq!(
            after, before,
            "{mode:?} changed the checkpoint or the target"
        );
        api.set(Mode::Normal);
        run(&cfg, &ctx).await.unwrap();
        assert_eq!(target(&store), source_state(&api.items), "{mode:?}");
    }
}

#[tokio::test]
async fn rows_outside_the_requested_bounds_are_dropped() {
    // The API ignores `updated_since`: the source keeps the strategy's bounds itself.
    let api = Api::start(30).await;
    let mut cfg = api.stream(incremental(), 100);
    cfg.cursor.as_mut().unwrap().param = None;
    let source = RestSource::new(cfg, client()).unwrap();
    let since = Value::Timestamp(ts(10).parse().unwrap());
    let until = Value::Timestamp(ts(19).parse().unwrap());
    let page = sync_core::Source::fetch_page(
        &source,
        &sync_core::PageRequest {
            since: Some(vec![since]),
            until: Some(vec![until]),
            ..request(sync_core::PageSelector::First, 100)
        },
    )
    .await
    .unwrap();
    let got: Vec<String> = page.rows.iter().map(id_of).collect();
    assert_eq!(got, expected_ids(10..20));
    assert_eq!(
        page.next, None,
        "an ordered page past `until` is the last one needed"
    );
}
