//! Shared helpers of the strategy tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use sync_core::memory::{MemorySource, MemoryStore};
use sync_core::testkit::item;
use sync_core::{Faults, RetryPolicy, SyncContext, Value};

/// A source over `schema`, a memory store, and a context wiring them (no retries).
pub fn setup(
    schema: &sync_core::StreamSchema,
) -> (Arc<MemorySource>, Arc<MemoryStore>, SyncContext, Faults) {
    let faults = Faults::new();
    let source = Arc::new(MemorySource::new(schema.clone()).with_faults(faults.clone()));
    let store = Arc::new(MemoryStore::with_faults(faults.clone()));
    let ctx = SyncContext::new("test/sync", source.clone(), store.clone(), store.clone())
        .with_queue(store.clone())
        .with_retry(RetryPolicy::none());
    (source, store, ctx, faults)
}

/// Upserts fixture item `id` at `version` with cursor `updated`.
pub fn put(source: &MemorySource, id: &str, version: i64, updated: Option<i64>) {
    source.upsert(item(id, version, updated).values().to_vec());
}

/// Sets the source's high watermark to `v`.
pub fn hwm(source: &MemorySource, stream: &str, v: i64) {
    source.set_high_watermark(stream, Some(vec![Value::from(v)]));
}
