//! Test-only helpers of the Square connector tests. The fake itself is
//! [`sync_connectors::fakes::square`] (re-exported here), so the examples serve the same
//! contract the tests check.
#![allow(dead_code, unreachable_pub, clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value as J;
use sync_connectors::square::SquareSource;
use sync_core::memory::MemoryStore;
use sync_core::{Checkpoint, RetryPolicy, Row, SyncContext, Value};

pub use sync_connectors::fakes::square::*;

pub fn fixture(name: &str) -> J {
    let path = format!(
        "{}/tests/fixtures/square/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_text(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/square/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

// ---- helpers for the tests -----------------------------------------------------------------

/// A context for `stream` of `source` into `store`, retrying quickly.
pub fn context(stream: &str, source: Arc<SquareSource>, store: &Arc<MemoryStore>) -> SyncContext {
    SyncContext::new(
        format!("square/{stream}"),
        source,
        store.clone(),
        store.clone(),
    )
    .with_retry(
        RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
    )
}

/// The target rows of `stream` as JSON objects keyed by column, sorted by key.
pub fn target(
    store: &MemoryStore,
    source: &SquareSource,
    stream: &str,
) -> Vec<serde_json::Map<String, J>> {
    let schema = sync_core::Source::schema(source, stream).unwrap();
    let mut rows: Vec<Row> = store.target_rows(stream);
    rows.sort_by_key(|a| a.key(&schema));
    rows.iter()
        .map(|r| sync_core::record::serialize::row_to_json(&schema, r))
        .collect()
}

/// The value of `column` in each target row of `stream`, sorted by key.
pub fn column(store: &MemoryStore, source: &SquareSource, stream: &str, column: &str) -> Vec<J> {
    target(store, source, stream)
        .into_iter()
        .map(|r| r[column].clone())
        .collect()
}

/// The stored checkpoint of `stream`, as text.
pub async fn checkpoint(store: &MemoryStore, stream: &str) -> Option<String> {
    store
        .load(&format!("square/{stream}"))
        .await
        .unwrap()
        .map(|c| c.state.position.to_string())
}

pub fn text(v: &str) -> Value {
    Value::from(v)
}
