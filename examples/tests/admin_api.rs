//! The admin HTTP API over real HTTP on 127.0.0.1, with a real client: the job queue and the
//! targets in one temporary SQLite file, a worker running REST syncs of the in-process demo API, and every
//! route, including the bad requests that must change nothing.

use std::sync::Arc;

use serde_json::{json, Value};
use sync_connectors::http::HttpConfig;
use sync_core::jobs::{JobQueue, JobScope, JobStatus, SyncJobs, Worker, WorkerConfig};
use sync_core::{RetryPolicy, Stager};
use sync_examples::admin::{self, AdminState};
use sync_examples::demo_api::{items_stream, DemoApi};
use sync_examples::engine::{Catalog, RestJobRunner};
use sync_store_sqlite::{SqliteConfig, SqliteJobQueue, SqliteStore};

const TOKEN: &str = "test-token-0123456789";
const RECORDS: usize = 2_500;

struct Harness {
    base: String,
    http: reqwest::Client,
    queue: Arc<SqliteJobQueue>,
    store: Arc<SqliteStore>,
    worker: Worker,
    api: DemoApi,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let api = DemoApi::start(RECORDS).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(SqliteConfig::new(dir.path().join("admin.db")))
                .await
                .unwrap(),
        );
        let queue = Arc::new(store.job_queue());
        let mut broken = items_stream("http://127.0.0.1:9");
        broken.name = "broken".into();
        let catalog = Arc::new(
            Catalog::new(HttpConfig::default())
                .unwrap()
                .with_provider("demo", [items_stream(api.url()), broken])
                .unwrap(),
        );
        let runner =
            RestJobRunner::new(catalog.clone(), queue.clone(), store.clone(), store.clone())
                .with_retry(RetryPolicy::none());
        let worker = Worker::new(queue.clone(), Arc::new(runner), WorkerConfig::new("w1")).unwrap();
        let jobs = SyncJobs::new(queue.clone(), store.clone());
        let state = AdminState::new(jobs, catalog, store.clone(), TOKEN).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, admin::router(state)).await });
        Harness {
            base,
            http: reqwest::Client::new(),
            queue,
            store,
            worker,
            api,
            _dir: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn integrate(&self, tenant: &str, streams: Value) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/demo/integrations/{tenant}"),
                Some(json!({ "strategy": "incremental", "streams": streams, "max_attempts": 1 })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn total_jobs(&self) -> u64 {
        self.queue
            .counts(&JobScope::all())
            .await
            .unwrap()
            .values()
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_run_status_and_history_over_http() {
    let h = Harness::start().await;
    h.integrate("venue-1", json!(["items"])).await;
    let (status, body) = h
        .post(
            "/demo/sync",
            json!({ "tenant": "venue-1", "idempotency_key": "req-1" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job = &body["jobs"][0]["job"];
    assert_eq!(job["status"], "pending");
    assert_eq!(job["key"]["stream"], "items");
    // The same request again is answered with the same job.
    let (again, body2) = h
        .post(
            "/demo/sync",
            json!({ "tenant": "venue-1", "idempotency_key": "req-1" }),
        )
        .await;
    assert_eq!(again, 200);
    assert_eq!(body2["jobs"][0]["job"]["id"], job["id"]);
    assert_eq!(body2["jobs"][0]["created"], false);

    let done = h.worker.run_one().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let (status, body) = h.get("/demo/sync/status?tenant=venue-1").await;
    assert_eq!(status, 200);
    assert_eq!(body["counts"]["completed"], 1);
    assert_eq!(body["counts"]["pending"], 0);
    assert_eq!(body["integrations"][0]["tenant"], "venue-1");
    assert!(body["streams"][0]["position"].is_object(), "{body}");
    let (status, history) = h
        .get("/demo/sync/history?tenant=venue-1&stream=items&limit=50")
        .await;
    assert_eq!(status, 200);
    let written: u64 = history["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rows_written"].as_u64().unwrap())
        .sum();
    assert_eq!(written, RECORDS as u64);
    assert!(history["log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "run_finished"));
    let target = h.store.read_target("items__venue-1").await.unwrap();
    assert_eq!(target.len(), RECORDS);

    // After 1% changed, an incremental sync through the seed-001 endpoint moves only those.
    h.api.mutate(0.01);
    let (status, _) = h
        .post(
            "/admin/incremental-sync",
            json!({ "provider": "demo", "tenant": "venue-1" }),
        )
        .await;
    assert_eq!(status, 202);
    let inc = h.worker.run_one().await.unwrap().unwrap();
    let rows = inc.summary.unwrap()["rows_written"].as_u64().unwrap();
    assert_eq!(rows, (RECORDS / 100) as u64);
    let (status, all) = h.get("/admin/sync-status").await;
    assert_eq!(status, 200);
    assert_eq!(all["counts"]["completed"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_pause_resume_retry_and_reset_over_http() {
    let h = Harness::start().await;
    h.integrate("venue-1", json!(["items", "broken"])).await;
    let (status, body) = h.post("/demo/sync", json!({ "tenant": "venue-1" })).await;
    assert_eq!(status, 202);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 2);
    // Stop the pending items job; pause the rest of the provider.
    let (_, stopped) = h
        .post(
            "/demo/sync/stop",
            json!({ "tenant": "venue-1", "stream": "items" }),
        )
        .await;
    assert_eq!(stopped["stopped"], 1);
    let (_, paused) = h.post("/demo/sync/pause", json!({})).await;
    assert_eq!(paused["paused"], 1);
    assert!(
        h.worker.run_one().await.unwrap().is_none(),
        "a paused queue starts nothing"
    );
    let (_, counts) = h.get("/demo/sync/status").await;
    assert_eq!(counts["counts"]["cancelled"], 1);
    assert_eq!(counts["counts"]["paused"], 1);
    let (_, resumed) = h.post("/demo/sync/resume", json!({})).await;
    assert_eq!(resumed["resumed"], 1);
    // The broken stream's endpoint refuses connections: the job fails (max_attempts 1).
    let failed = h.worker.run_one().await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    let (_, retried) = h
        .post("/demo/sync/retry", json!({ "job_id": failed.id.0 }))
        .await;
    assert_eq!(retried["requeued"], 1);
    let (_, status) = h
        .get("/demo/sync/status?tenant=venue-1&stream=broken")
        .await;
    assert_eq!(status["open"][0]["status"], "pending");
    assert_eq!(status["open"][0]["attempts"], 0);

    // A reset needs the exact confirmation.
    let (code, err) = h
        .post(
            "/demo/sync/reset",
            json!({ "tenant": "venue-1", "stream": "items", "confirm": "yes" }),
        )
        .await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let (code, body) = h
        .post(
            "/demo/sync/reset",
            json!({ "tenant": "venue-1", "stream": "items", "confirm": "demo/venue-1/items" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["reset"], "demo/venue-1/items");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_with_a_stable_code_and_change_nothing() {
    let h = Harness::start().await;
    h.integrate("venue-1", json!(["items"])).await;
    // No token, a wrong token.
    let resp = h
        .http
        .post(format!("{}/demo/sync", h.base))
        .json(&json!({ "tenant": "venue-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let resp = h
        .http
        .post(format!("{}/demo/sync", h.base))
        .bearer_auth("test-token-0123456788")
        .json(&json!({ "tenant": "venue-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/demo/sync",
            json!({ "tenant": "venue-1", "bogus": 1 }),
            400,
            "invalid_body",
        ),
        (
            "/demo/sync",
            json!({ "streams": ["items"] }),
            400,
            "invalid_body",
        ),
        (
            "/demo/sync",
            json!({ "tenant": "nobody" }),
            404,
            "not_found",
        ),
        (
            "/demo/sync",
            json!({ "tenant": "venue-1", "streams": ["nope"] }),
            404,
            "not_found",
        ),
        (
            "/demo/sync",
            json!({ "tenant": "venue-1", "streams": [] }),
            400,
            "invalid_input",
        ),
        (
            "/demo/sync",
            json!({ "tenant": "x'; DROP TABLE jobs;--" }),
            400,
            "invalid_input",
        ),
        (
            "/demo/sync",
            json!({ "tenant": "venue-1", "sync_type": "magic" }),
            400,
            "invalid_body",
        ),
        (
            "/demo/sync/stop",
            json!({ "tenant": "a/b" }),
            400,
            "invalid_input",
        ),
        (
            "/demo/sync/replay",
            json!({ "tenant": "venue-1", "stream": "items", "low": 9, "high": 4 }),
            400,
            "invalid_input",
        ),
        (
            "/demo/sync/replay",
            json!({ "tenant": "venue-1", "stream": "items", "low": 0, "high": 4 }),
            404,
            "not_found",
        ),
        (
            "/admin/foundation-sync",
            json!({ "tenant": "venue-1" }),
            400,
            "invalid_body",
        ),
        (
            "/admin/table-migration",
            json!({ "provider": "../etc" }),
            400,
            "invalid_input",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, reply) = h.post(path, body.clone()).await;
        assert_eq!(
            (got, reply["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {reply}"
        );
    }
    // Malformed JSON and an oversized body.
    let resp = h
        .http
        .post(format!("{}/demo/sync", h.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"tenant\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let huge = json!({ "tenant": "venue-1", "idempotency_key": "k".repeat(admin::MAX_BODY_BYTES) });
    let (got, reply) = h.post("/demo/sync", huge).await;
    assert_eq!(
        (got, reply["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    // An integration naming a stream the provider does not have is refused.
    let (got, reply) = h
        .call(
            reqwest::Method::PUT,
            "/demo/integrations/venue-2",
            Some(json!({ "strategy": "full", "streams": ["ghost"] })),
        )
        .await;
    assert_eq!(
        (got, reply["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (got, _) = h
        .get("/demo/sync/history?tenant=venue-1&stream=items&limit=0")
        .await;
    assert_eq!(got, 400);
    assert_eq!(h.total_jobs().await, 0, "no bad request enqueued anything");
    assert_eq!(h.queue.integrations(None).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foundation_sync_and_table_migration() {
    let h = Harness::start().await;
    h.integrate("venue-1", json!(["items"])).await;
    let (status, tables) = h.post("/admin/table-migration", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(tables["tables"], json!(["demo/items__venue-1"]));
    assert!(h
        .store
        .read_target("items__venue-1")
        .await
        .unwrap()
        .is_empty());
    let (status, body) = h
        .post(
            "/admin/foundation-sync",
            json!({ "provider": "demo", "tenant": "venue-1" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["jobs"][0]["job"]["action"]["strategy"], "full");
    let done = h.worker.run_one().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.last_error);
    assert_eq!(
        h.store.read_target("items__venue-1").await.unwrap().len(),
        RECORDS
    );
}
