//! Bad input, retries, limits and progress: typed errors before anything is committed.

mod common;

use std::time::Duration;

use common::{hwm, put, setup};
use sync_core::testkit::{item, items_schema, keyed_schema};
use sync_core::{
    Checkpoint, Error, ErrorKind, FullConfig, FullStrategy, IncrementalConfig, IncrementalStrategy,
    OffsetConfig, OffsetStrategy, Progress, ProgressEvent, RetryClass, RetryPolicy, RunLimits,
    Strategy, StrategyKind, Value,
};

async fn nothing_committed(store: &sync_core::memory::MemoryStore, stream: &str) {
    assert!(store.target_rows(stream).is_empty(), "target changed");
    assert!(
        store.ledger("test/sync").await.unwrap().is_empty(),
        "ledger changed"
    );
}

#[tokio::test]
async fn a_malformed_checkpoint_fails_before_anything_is_committed() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, Some(1));
    store.set_checkpoint_text("test/sync", "{\"format\":2,\"position\":");
    let err = IncrementalStrategy::new(IncrementalConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptState);
    nothing_committed(&store, "t").await;
}

#[tokio::test]
async fn a_checkpoint_of_another_strategy_is_rejected() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, Some(1));
    OffsetStrategy::new(OffsetConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap();
    let before = store.target_rows("t");
    hwm(&source, "t", 1);
    let err = IncrementalStrategy::new(IncrementalConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointDelta);
    assert_eq!(store.target_rows("t"), before);
}

#[tokio::test]
async fn a_strategy_the_source_cannot_support_is_unsupported_up_front() {
    let schema = keyed_schema("t");
    let (_, store, _, _) = setup(&schema);
    let base = sync_core::memory::MemorySource::new((*schema).clone());
    let caps = sync_core::SourceCapabilities {
        strategies: vec![StrategyKind::Full],
        ..sync_core::Source::capabilities(&base)
    };
    let source = std::sync::Arc::new(base.with_capabilities(caps));
    let ctx =
        sync_core::SyncContext::new("test/sync", source.clone(), store.clone(), store.clone());
    let err = OffsetStrategy::new(OffsetConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.context_value("backend")),
        (ErrorKind::Unsupported, Some("memory"))
    );
    assert!(source.requests().is_empty());
    assert!(
        store.sync_log("test/sync", 10).await.unwrap().is_empty(),
        "refused before the run started"
    );
}

#[tokio::test]
async fn records_without_key_with_duplicate_keys_or_wrong_types_fail_the_batch() {
    let schema = keyed_schema("t");
    // The memory source keys its rows itself, so bad pages come from a scripted mutation of
    // the fixture schema: a wrong type in a non-key column.
    let (source, store, ctx, _) = setup(&schema);
    let mut wrong = item("a", 1, None);
    wrong.values_mut()[1] = Value::from("one");
    source.upsert(wrong.values().to_vec());
    let err = FullStrategy::new(FullConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.context_value("column")),
        (ErrorKind::InvalidInput, Some("version"))
    );
    nothing_committed(&store, "t").await;

    let d = sync_core::CheckpointDelta::stay(sync_core::Position::Start);
    let no_key = sync_core::Row::new(vec![
        Value::Null,
        Value::from(1),
        Value::Null,
        Value::Bool(false),
        Value::Null,
    ]);
    let err = sync_core::RecordBatch::new(schema.clone(), vec![no_key], d.clone()).unwrap_err();
    assert_eq!(err.message(), "record has no primary key");
    let err = sync_core::RecordBatch::new(
        schema.clone(),
        vec![item("a", 1, None), item("a", 2, None)],
        d,
    )
    .unwrap_err();
    assert_eq!(err.message(), "duplicate key in batch");
}

#[tokio::test(start_paused = true)]
async fn rate_limits_are_retried_after_the_servers_delay() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, None);
    let limited =
        || Error::new(ErrorKind::RateLimited, "429").with_retry_after(Duration::from_secs(2));
    source.fail_next([limited(), limited()]);
    let (progress, mut events) = Progress::channel(64);
    let ctx = ctx
        .with_retry(RetryPolicy::default())
        .with_progress(progress);
    let started = tokio::time::Instant::now();
    FullStrategy::new(FullConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(4),
        "two waits of exactly Retry-After"
    );
    assert_eq!(store.target_rows("t").len(), 1);
    let mut retries = 0;
    while let Ok(e) = events.try_recv() {
        retries += u32::from(matches!(e, ProgressEvent::Retry { .. }));
    }
    assert_eq!(retries, 2);
}

#[tokio::test(start_paused = true)]
async fn transient_errors_past_the_policy_are_exhausted_and_past_max_errors_stop_the_run() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, None);
    let transient = || Error::new(ErrorKind::Remote, "503").transient();
    source.fail_next([transient(), transient(), transient()]);
    let ctx2 = ctx
        .clone()
        .with_retry(RetryPolicy::default().with_max_attempts(2));
    let err = FullStrategy::new(FullConfig::new("t"))
        .unwrap()
        .run(&ctx2)
        .await
        .unwrap_err();
    assert_eq!(err.retry_class(), RetryClass::Exhausted);
    nothing_committed(&store, "t").await;

    source.fail_next([transient(), transient(), transient()]);
    let ctx3 = ctx
        .with_retry(RetryPolicy::default().with_max_attempts(10))
        .with_limits(RunLimits {
            max_pages: None,
            max_errors: Some(2),
        });
    let err = FullStrategy::new(FullConfig::new("t"))
        .unwrap()
        .run(&ctx3)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached);
}

#[tokio::test]
async fn max_pages_stops_cleanly_and_the_next_run_resumes() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for i in 0..5 {
        put(&source, &format!("k{i}"), 1, None);
    }
    let limited = ctx.clone().with_limits(RunLimits {
        max_pages: Some(2),
        max_errors: None,
    });
    let full = FullStrategy::new(FullConfig {
        page_size: 1,
        ..FullConfig::new("t")
    })
    .unwrap();
    let first = full.run(&limited).await.unwrap();
    assert!(!first.complete);
    assert!(store.target_rows("t").is_empty());
    let log = store.sync_log("test/sync", 1).await.unwrap();
    assert!(log[0].message.contains("stopped at a limit"));
    let mut runs = 1;
    while !full.run(&limited).await.unwrap().complete {
        runs += 1;
        assert!(runs < 10, "a page-limited fill must finish");
    }
    assert_eq!(store.target_rows("t").len(), 5);
}

#[tokio::test]
async fn progress_events_follow_the_run() {
    let schema = keyed_schema("t");
    let (source, _, ctx, _) = setup(&schema);
    put(&source, "a", 1, None);
    put(&source, "b", 1, None);
    let (progress, mut events) = Progress::channel(64);
    let ctx = ctx.with_progress(progress);
    FullStrategy::new(FullConfig {
        page_size: 1,
        batch_rows: 1,
        ..FullConfig::new("t")
    })
    .unwrap()
    .run(&ctx)
    .await
    .unwrap();
    assert_eq!(
        event_names(&mut events),
        [
            "started",
            "page 1/1",
            "staged 1",
            "page 2/2",
            "staged 2",
            "window from start",
            "promoted 2",
            "finished true"
        ]
    );
}

/// A full fill gathers pages until a batch holds `batch_rows` rows and stages them in one
/// call; the last batch is what is left.
#[tokio::test]
async fn a_full_fill_stages_pages_in_batches() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for id in ["a", "b", "c", "d", "e"] {
        put(&source, id, 1, None);
    }
    let (progress, mut events) = Progress::channel(64);
    let ctx = ctx.with_progress(progress);
    let report = FullStrategy::new(FullConfig {
        page_size: 1,
        batch_rows: 2,
        ..FullConfig::new("t")
    })
    .unwrap()
    .run(&ctx)
    .await
    .unwrap();
    assert_eq!((report.pages, report.rows_written), (5, 5));
    assert_eq!(
        event_names(&mut events),
        [
            "started",
            "page 1/1",
            "page 2/2",
            "staged 2",
            "page 3/3",
            "page 4/4",
            "staged 4",
            "page 5/5",
            "staged 5",
            "window from start",
            "promoted 5",
            "finished true"
        ]
    );
    assert_eq!(store.target_rows("t").len(), 5);
}

/// What each progress event was, in order.
fn event_names(events: &mut tokio::sync::mpsc::Receiver<ProgressEvent>) -> Vec<String> {
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(match e {
            ProgressEvent::RunStarted { .. } => "started".to_string(),
            ProgressEvent::Page {
                pages,
                rows_fetched,
            } => format!("page {pages}/{rows_fetched}"),
            ProgressEvent::Staged { rows_staged } => format!("staged {rows_staged}"),
            ProgressEvent::Promoted { rows_promoted, .. } => format!("promoted {rows_promoted}"),
            ProgressEvent::RunFinished { complete } => format!("finished {complete}"),
            ProgressEvent::Window { low, .. } => format!("window from {low}"),
            other => format!("{other:?}"),
        });
    }
    kinds
}

#[test]
fn configs_reject_unknown_fields_and_bad_values() {
    let err = serde_json::from_str::<FullConfig>(r#"{"stream":"t","page_sise":5}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"));
    assert_eq!(
        FullStrategy::new(FullConfig {
            page_size: 0,
            ..FullConfig::new("t")
        })
        .unwrap_err()
        .kind(),
        ErrorKind::Config
    );
    let unbatched = FullStrategy::new(FullConfig {
        batch_rows: 0,
        ..FullConfig::new("t")
    });
    assert_eq!(unbatched.unwrap_err().kind(), ErrorKind::Config);
    let neg = IncrementalConfig {
        lookback: -1,
        ..IncrementalConfig::new("t")
    };
    assert_eq!(
        IncrementalStrategy::new(neg).unwrap_err().kind(),
        ErrorKind::Config
    );
}

#[tokio::test]
async fn a_sink_with_a_strategy_that_cannot_deliver_is_refused() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, None);
    let ctx = ctx.with_sink(store.clone());
    let err = FullStrategy::new(FullConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.message()
            .contains("sink delivery with the full strategy"),
        "{err}"
    );
    nothing_committed(&store, "t").await;
}
