//! The demo API over real HTTP on 127.0.0.1: the fake API contract of the shared bench
//! (stable paging, inclusive `updated_since`, the limit clamp, 400 on bad parameters,
//! mutation generations), and the quickstart's flow in small through the REST source into a
//! temporary SQLite file.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value as Json;
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::RestSource;
use sync_core::{
    Checkpoint, FaultAction, FaultPoint, Faults, FullConfig, FullStrategy, IncrementalConfig,
    IncrementalStrategy, Stager, Strategy, SyncContext,
};
use sync_examples::demo_api::{items_stream, DemoApi, MAX_LIMIT};
use sync_store_sqlite::{SqliteConfig, SqliteStore};

/// `GET url`: the status and the JSON body.
async fn get(url: &str) -> (u16, Json) {
    send(reqwest::Client::new().get(url)).await
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Json) {
    let response = request.send().await.expect("the demo api answers");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("a body");
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (status, json)
}

fn ids(page: &Json) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("an items array")
        .iter()
        .map(|i| i["id"].as_str().expect("a text id").to_owned())
        .collect()
}

fn id(i: usize) -> String {
    format!("itm-{i:010}")
}

/// Follows `next_offset` from 0 with `query`; every page's fields are checked on the way.
async fn read_all(api: &DemoApi, limit: usize, query: &str) -> Vec<Json> {
    let (mut items, mut offset) = (Vec::new(), 0);
    loop {
        let url = format!("{}/items?limit={limit}&offset={offset}{query}", api.url());
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        let count = page["count"].as_u64().unwrap() as usize;
        let total = page["total"].as_u64().unwrap() as usize;
        assert_eq!(page["items"].as_array().unwrap().len(), count);
        assert_eq!(
            (page["offset"].as_u64(), page["limit"].as_u64()),
            (Some(offset as u64), Some(limit as u64))
        );
        let more = offset + count < total;
        assert_eq!(page["has_more"], more, "{url}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        if !more {
            assert!(page["next_offset"].is_null());
            return items;
        }
        assert_eq!(page["next_offset"].as_u64(), Some((offset + count) as u64));
        offset += count;
        assert!(items.len() <= api.records(), "a read that never ends");
    }
}

#[tokio::test]
async fn paging_is_stable_ordered_by_updated_at_then_id_and_covers_every_record_once() {
    let api = DemoApi::start(2_345).unwrap();
    let items = read_all(&api, 700, "").await;
    let got: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, (0..2_345).map(id).collect::<Vec<_>>());
    assert_eq!(items[3]["updated_at"], "2024-01-01T00:00:00.003Z");
    assert!(items.iter().all(|i| i["version"] == 1));
    // The same request twice gives the same bytes' worth of records.
    let url = format!("{}/items?limit=100&offset=1200", api.url());
    assert_eq!(get(&url).await, get(&url).await);
    // Defaults: limit 100 from offset 0.
    let (_, page) = get(&format!("{}/items", api.url())).await;
    assert_eq!(
        (
            page["limit"].as_u64(),
            page["count"].as_u64(),
            page["total"].as_u64()
        ),
        (Some(100), Some(100), Some(2_345))
    );
}

#[tokio::test]
async fn updated_since_is_inclusive_as_rfc_3339_or_epoch_milliseconds() {
    let api = DemoApi::start(1_000).unwrap();
    let forms = [
        "2024-01-01T00:00:00.010Z",
        "2024-01-01T01:00:00.010%2B01:00",
        "2024-01-01%2000:00:00.010",
        "1704067200010",
    ];
    for since in forms {
        let (status, page) = get(&format!(
            "{}/items?limit=5&updated_since={since}",
            api.url()
        ))
        .await;
        assert_eq!(status, 200, "{since}: {page}");
        assert_eq!(ids(&page), (10..15).map(id).collect::<Vec<_>>(), "{since}");
        assert_eq!(page["total"], 990, "{since}");
    }
    let (_, page) = get(&format!(
        "{}/items?updated_since=2030-01-01T00:00:00Z",
        api.url()
    ))
    .await;
    assert_eq!(
        (page["count"].as_u64(), page["has_more"].as_bool()),
        (Some(0), Some(false))
    );
}

#[tokio::test]
async fn a_limit_above_the_maximum_is_clamped_silently() {
    let api = DemoApi::start(MAX_LIMIT as usize + 500).unwrap();
    let (status, page) = get(&format!("{}/items?limit=50000", api.url())).await;
    assert_eq!(status, 200);
    assert_eq!(page["limit"], MAX_LIMIT);
    assert_eq!(page["count"], MAX_LIMIT);
    assert_eq!(
        (page["has_more"].as_bool(), page["next_offset"].as_u64()),
        (Some(true), Some(u64::from(MAX_LIMIT)))
    );
}

#[tokio::test]
async fn a_bad_parameter_is_a_400_with_an_error_message() {
    let api = DemoApi::start(10).unwrap();
    for query in [
        "limit=abc",
        "limit=0",
        "limit=-5",
        "offset=-1",
        "offset=x",
        "updated_since=yesterday",
    ] {
        let (status, body) = get(&format!("{}/items?{query}", api.url())).await;
        assert_eq!(status, 400, "{query}");
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{query}: {body}"));
        assert!(
            message.contains(query.split('=').next().unwrap()),
            "{query}: {message}"
        );
    }
    let (status, body) =
        send(reqwest::Client::new().post(format!("{}/admin/mutate?fraction=2", api.url()))).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn mutate_moves_exactly_n_over_k_records_to_the_end_at_version_2() {
    let api = DemoApi::start(3_000).unwrap();
    assert_eq!(api.expected_version_sum(), 3_000);
    // Generation 1, stride 100: the records with i % 100 == 7919 % 100 == 19.
    assert_eq!(api.mutate(0.01), 30);
    let all = read_all(&api, 1_000, "").await;
    let (old, moved) = all.split_at(3_000 - 30);
    let want: Vec<String> = (19..3_000).step_by(100).map(id).collect();
    let got: Vec<String> = moved
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, want);
    assert!(moved.iter().all(|i| i["version"] == 2));
    assert_eq!(moved[0]["updated_at"], "2024-01-02T00:00:00.000Z");
    assert_eq!(moved[29]["updated_at"], "2024-01-02T00:00:00.029Z");
    assert!(old.iter().all(|i| i["version"] == 1));
    let unique: HashSet<&str> = all.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), 3_000);
    let (_, page) = get(&format!(
        "{}/items?limit=100&updated_since=2024-01-02T00:00:00Z",
        api.url()
    ))
    .await;
    assert_eq!(ids(&page), want);

    // Generation 2 over HTTP: residue 15838 % 100 == 38; the state adds up.
    let (status, state) =
        send(reqwest::Client::new().post(format!("{}/admin/mutate?fraction=0.01", api.url())))
            .await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        (
            state["generation"].as_u64(),
            state["mutated_total"].as_u64()
        ),
        (Some(2), Some(60))
    );
    assert_eq!(state["expected_version_sum"], 3_060);
    assert_eq!(api.expected_version_sum(), 3_060);
    let (_, state) = get(&format!("{}/admin/state", api.url())).await;
    assert_eq!(
        (state["records"].as_u64(), state["max_updated_at"].as_str()),
        (Some(3_000), Some("2024-01-03T00:00:00.029Z"))
    );
    let (_, page) = get(&format!(
        "{}/items?limit=1&updated_since=2024-01-03T00:00:00Z",
        api.url()
    ))
    .await;
    assert_eq!(ids(&page), vec![id(38)]);
}

/// The target's row count and `sum(version)`, read through the store.
async fn count_and_version_sum(store: &SqliteStore) -> (usize, i64) {
    let target = store.read_target("items").await.unwrap();
    (
        target.len(),
        target.iter().map(|r| r.get(2).as_i64().unwrap()).sum(),
    )
}

#[tokio::test]
async fn the_quickstart_flow_in_small_keeps_the_target_equal_to_the_source() {
    let api = DemoApi::start(3_000).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let config = SqliteConfig::new(dir.path().join("quickstart.db"));
    let store = Arc::new(
        SqliteStore::open_with_faults(config, faults.clone())
            .await
            .unwrap(),
    );
    let client = HttpClient::new(HttpConfig::default()).unwrap();
    let source = Arc::new(RestSource::new(items_stream(api.url()), client).unwrap());
    let ctx = SyncContext::new("quickstart/items", source, store.clone(), store.clone());

    let full = FullStrategy::new(FullConfig {
        page_size: 1000,
        ..FullConfig::new("items")
    })
    .unwrap();
    let report = full.run(&ctx).await.unwrap();
    assert_eq!((report.rows_written, report.pages), (3_000, 3));
    assert_eq!(count_and_version_sum(&store).await, (3_000, 3_000));
    assert!(
        store.read_target("items").await.unwrap() == api.rows(),
        "the target equals the api, row for row"
    );

    assert_eq!(api.mutate(0.01), 30);
    let incremental = IncrementalStrategy::new(IncrementalConfig {
        page_size: 10,
        ..IncrementalConfig::new("items")
    })
    .unwrap();
    faults.arm_after(FaultPoint::DuringCommit, FaultAction::Error, 2);
    let before = incremental
        .run(&ctx)
        .await
        .expect_err("the armed fault fires");
    let position = ctx
        .checkpoints
        .load("quickstart/items")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    let (count, sum) = count_and_version_sum(&store).await;
    assert_eq!(count, 3_000, "{before}");
    assert!(
        sum > 3_000 && sum < 3_030,
        "two commits landed, the third did not: {sum}"
    );
    let resumed = incremental.run(&ctx).await.unwrap();
    assert!(resumed.complete);
    assert_eq!(
        count_and_version_sum(&store).await,
        (3_000, api.expected_version_sum())
    );
    assert!(
        store.read_target("items").await.unwrap() == api.rows(),
        "the target equals the api, row for row"
    );
    let after = ctx
        .checkpoints
        .load("quickstart/items")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    assert_ne!(after, position);
    assert_eq!(
        after.to_string(),
        format!("(2024-01-02T00:00:00.029Z, {})", id(2_919))
    );
}
