//! Behaviour of the full strategy.

mod common;

use common::{put, setup};
use sync_core::testkit::{ids, keyed_schema};
use sync_core::{
    Checkpoint, ColumnType, FaultAction, FaultPoint, FullConfig, FullStrategy, LedgerStatus,
    PageSelector, Strategy, StreamSchema, Value,
};

#[tokio::test]
async fn full_replaces_the_table_and_deletes_missing_rows() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for id in ["a", "b", "c"] {
        put(&source, id, 1, None);
    }
    let full = FullStrategy::new(FullConfig {
        page_size: 2,
        ..FullConfig::new("t")
    })
    .unwrap();
    let report = full.run(&ctx).await.unwrap();
    assert_eq!(
        (
            report.pages,
            report.rows_read,
            report.rows_written,
            report.windows
        ),
        (2, 3, 3, 1)
    );
    source.delete(&sync_core::Key::text("b"));
    put(&source, "d", 1, None);
    full.run(&ctx).await.unwrap();
    assert_eq!(ids(&store.target_rows("t")), ["a", "c", "d"]);
    let ledger = store.ledger("test/sync").await.unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[1].status, LedgerStatus::Committed);
    assert_eq!(ledger[1].low, ledger[0].high, "ledger windows chain");
}

#[tokio::test]
async fn full_resumes_the_fill_after_a_crash_without_refetching_staged_pages() {
    let schema = keyed_schema("t");
    let (source, store, ctx, faults) = setup(&schema);
    for i in 0..6 {
        put(&source, &format!("k{i}"), 1, None);
    }
    // A batch per page: each page's progress is staged with it.
    let full = FullStrategy::new(FullConfig {
        page_size: 2,
        batch_rows: 2,
        ..FullConfig::new("t")
    })
    .unwrap();
    faults.arm_after(FaultPoint::MidPage, FaultAction::Error, 2);
    let err = full.run(&ctx).await.unwrap_err();
    assert_eq!(err.kind(), sync_core::ErrorKind::InjectedFault);
    assert!(
        store.target_rows("t").is_empty(),
        "nothing is promoted before the fill completes"
    );
    assert!(
        store.load("test/sync").await.unwrap().is_none(),
        "no checkpoint before promotion"
    );
    let report = full.run(&ctx).await.unwrap();
    assert_eq!(
        report.pages, 1,
        "only the page after the two staged ones is fetched"
    );
    let resumed = source.requests().last().unwrap().clone();
    assert_eq!(
        (resumed.selector, resumed.limit),
        (PageSelector::Offset(3), 3),
        "the resumed page re-reads the last staged record to check the source did not shift"
    );
    assert_eq!(store.target_rows("t").len(), 6);
}

#[tokio::test]
async fn full_window_of_last_days_deletes_only_inside_the_window() {
    let schema = StreamSchema::builder("w")
        .with_column(sync_core::Column::required("id", ColumnType::Text))
        .with_column(sync_core::Column::required(
            "modified",
            ColumnType::Timestamp,
        ))
        .with_primary_key(["id"])
        .with_cursor(["modified"])
        .build()
        .unwrap();
    let (source, store, ctx, _) = setup(&schema);
    let now = chrono::Utc::now();
    let old = Value::Timestamp(now - chrono::Duration::days(90));
    let recent = Value::Timestamp(now - chrono::Duration::days(3));
    source.upsert(vec![Value::from("old"), old]);
    source.upsert(vec![Value::from("recent"), recent.clone()]);
    source.upsert(vec![Value::from("gone"), recent]);
    FullStrategy::new(FullConfig::new("w"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap();
    assert_eq!(ids(&store.target_rows("w")), ["gone", "old", "recent"]);
    source.delete(&sync_core::Key::text("gone"));
    source.delete(&sync_core::Key::text("old"));
    let windowed = FullStrategy::new(FullConfig {
        window_days: Some(30),
        ..FullConfig::new("w")
    })
    .unwrap();
    windowed.run(&ctx).await.unwrap();
    assert_eq!(
        ids(&store.target_rows("w")),
        ["old", "recent"],
        "rows older than the window are out of scope"
    );
    let req = source.requests().last().unwrap().clone();
    let since = req.since.expect("the window is sent as a lower bound");
    assert!(
        matches!(since[0], Value::Timestamp(t) if ((t - now).num_minutes() + 31 * 24 * 60).abs() <= 1),
        "the window starts 30 days plus one day ago"
    );
}

#[tokio::test]
async fn full_window_needs_a_timestamp_cursor() {
    let schema = keyed_schema("t");
    let (_, store, ctx, _) = setup(&schema);
    let err = FullStrategy::new(FullConfig {
        window_days: Some(30),
        ..FullConfig::new("t")
    })
    .unwrap()
    .run(&ctx)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), sync_core::ErrorKind::Config);
    assert!(store.load("test/sync").await.unwrap().is_none());
}

#[tokio::test]
async fn a_source_that_shifts_under_a_resumed_fill_never_loses_a_live_record() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for id in ["a", "b", "c", "d"] {
        put(&source, id, 1, None);
    }
    let full = FullStrategy::new(FullConfig {
        page_size: 2,
        ..FullConfig::new("t")
    })
    .unwrap();
    full.run(&ctx).await.unwrap();
    let limited = ctx.clone().with_limits(sync_core::RunLimits {
        max_pages: Some(1),
        max_errors: None,
    });
    assert!(
        !full.run(&limited).await.unwrap().complete,
        "a, b staged; the fill continues at offset 2"
    );
    source.delete(&sync_core::Key::text("a"));
    assert!(full.run(&ctx).await.unwrap().complete);
    let target = ids(&store.target_rows("t"));
    assert!(
        target.contains(&"c".to_string()),
        "live record c was deleted: {target:?}"
    );
    let log = store.sync_log("test/sync", 5).await.unwrap();
    assert!(
        log.iter().any(|e| e.event == "drift"),
        "the drift is logged"
    );
    full.run(&ctx).await.unwrap();
    assert_eq!(
        ids(&store.target_rows("t")),
        ["b", "c", "d"],
        "the next snapshot deletes what is really gone"
    );
}

#[tokio::test]
async fn dropping_the_window_while_a_windowed_fill_is_open_deletes_nothing_outside_it() {
    let schema = StreamSchema::builder("ev")
        .with_column(sync_core::Column::required("id", ColumnType::Text))
        .with_column(sync_core::Column::required("version", ColumnType::Integer))
        .with_column(sync_core::Column::new("at", ColumnType::Timestamp))
        .with_primary_key(["id"])
        .with_cursor(["at"])
        .with_version("version")
        .build()
        .unwrap();
    let (source, store, ctx, _) = setup(&schema);
    let now = chrono::Utc::now();
    for (id, days) in [("old", 100), ("r1", 3), ("r2", 2), ("r3", 1)] {
        source.upsert(vec![
            Value::from(id),
            Value::from(1),
            Value::Timestamp(now - chrono::Duration::days(days)),
        ]);
    }
    let all = FullStrategy::new(FullConfig {
        page_size: 1,
        ..FullConfig::new("ev")
    })
    .unwrap();
    all.run(&ctx).await.unwrap();
    let windowed = FullStrategy::new(FullConfig {
        page_size: 1,
        window_days: Some(30),
        ..FullConfig::new("ev")
    })
    .unwrap();
    let limited = ctx.clone().with_limits(sync_core::RunLimits {
        max_pages: Some(1),
        max_errors: None,
    });
    assert!(
        !windowed.run(&limited).await.unwrap().complete,
        "a windowed fill is left open"
    );
    assert!(
        all.run(&ctx).await.unwrap().complete,
        "then the config drops the window"
    );
    assert_eq!(
        ids(&store.target_rows("ev")),
        ["old", "r1", "r2", "r3"],
        "the live record outside the window stays"
    );
}

#[tokio::test]
async fn page_numbers_over_a_source_whose_records_move_never_delete_a_live_record() {
    let schema = sync_core::testkit::items_schema("items");
    let (_, store, _, _) = setup(&schema);
    let source = std::sync::Arc::new(
        sync_core::memory::MemorySource::new((*schema).clone())
            .with_paging(sync_core::memory::MemoryPaging::Page),
    );
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        put(&source, id, 1, Some(i as i64 + 1));
    }
    let ctx =
        sync_core::SyncContext::new("test/sync", source.clone(), store.clone(), store.clone());
    let full = FullStrategy::new(FullConfig {
        page_size: 2,
        ..FullConfig::new("items")
    })
    .unwrap();
    full.run(&ctx).await.unwrap();
    // "a" moves to the end of the cursor order after the first page: c shifts onto page 1.
    let served = source.pages_served();
    source.mutate_after_page(
        served + 1,
        Box::new(|d| {
            d.upsert(
                "items",
                sync_core::testkit::item("a", 2, Some(10)).values().to_vec(),
            )
        }),
    );
    full.run(&ctx).await.unwrap();
    assert_eq!(
        ids(&store.target_rows("items")),
        ["a", "b", "c", "d"],
        "a live record was deleted"
    );
    let log = store.sync_log("test/sync", 5).await.unwrap();
    assert!(
        log.iter().any(|e| e.message.contains("deletes nothing")),
        "the skipped deletes are logged"
    );
}

#[tokio::test]
async fn a_full_sync_then_incremental_keeps_updates_made_during_the_fill() {
    let schema = sync_core::testkit::items_schema("items");
    let (_, store, _, _) = setup(&schema);
    let base = sync_core::memory::MemorySource::new((*schema).clone())
        .with_paging(sync_core::memory::MemoryPaging::Token);
    let caps = sync_core::SourceCapabilities {
        ordering: sync_core::SourceOrdering::Unordered,
        ..sync_core::Source::capabilities(&base)
    };
    let source = std::sync::Arc::new(base.with_capabilities(caps));
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        put(&source, id, 1, Some(i as i64 + 1));
    }
    source.set_high_watermark("items", Some(vec![Value::from(4)]));
    let ctx =
        sync_core::SyncContext::new("test/sync", source.clone(), store.clone(), store.clone());
    // During the fill, "a" (already read) and "d" change: both get cursors past the fill's start.
    source.mutate_after_page(
        1,
        Box::new(|d| {
            d.upsert(
                "items",
                sync_core::testkit::item("a", 2, Some(5)).values().to_vec(),
            );
            d.upsert(
                "items",
                sync_core::testkit::item("d", 2, Some(6)).values().to_vec(),
            );
        }),
    );
    FullStrategy::new(FullConfig {
        page_size: 2,
        ..FullConfig::new("items")
    })
    .unwrap()
    .run(&ctx)
    .await
    .unwrap();
    let cp = store
        .load("test/sync")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    assert_eq!(
        cp,
        sync_core::Position::CursorKey(sync_core::CursorKey {
            cursor: vec![Value::from(4)],
            key: None
        })
    );
    source.set_high_watermark("items", Some(vec![Value::from(10)]));
    sync_core::IncrementalStrategy::new(sync_core::IncrementalConfig::new("items"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap();
    assert_eq!(
        store.target_rows("items"),
        source.rows("items"),
        "an update made during the fill was lost"
    );
}

#[tokio::test]
async fn a_full_sync_of_an_empty_source_checkpoints_the_fill_start_for_the_incrementals() {
    let schema = sync_core::testkit::items_schema("items");
    let (source, store, ctx, _) = setup(&schema);
    source.set_high_watermark("items", Some(vec![Value::from(10)]));
    FullStrategy::new(FullConfig::new("items"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap();
    let cp = store.load("test/sync").await.unwrap().unwrap();
    assert_eq!(
        cp.state.position,
        sync_core::Position::CursorKey(sync_core::CursorKey {
            cursor: vec![Value::from(10)],
            key: None,
        }),
        "not Start: the next incremental must not begin from nothing again"
    );
    // A record that appears afterwards is read by the incremental that follows.
    put(&source, "late", 1, Some(11));
    source.set_high_watermark("items", Some(vec![Value::from(11)]));
    let inc =
        sync_core::IncrementalStrategy::new(sync_core::IncrementalConfig::new("items")).unwrap();
    assert_eq!(inc.run(&ctx).await.unwrap().rows_written, 1);
    assert_eq!(ids(&store.target_rows("items")), ["late"]);
}
