//! Behaviour of the offset strategy.

mod common;

use common::{put, setup};
use sync_core::testkit::{ids, keyed_schema};
use sync_core::{Checkpoint, ErrorKind, OffsetConfig, OffsetStrategy, Position, Strategy};

#[tokio::test]
async fn offset_advances_by_records_received_when_the_server_clamps_silently() {
    let schema = keyed_schema("t");
    let (_, store, _, _) = setup(&schema);
    let source = std::sync::Arc::new(
        sync_core::memory::MemorySource::new((*schema).clone()).with_silent_page_limit(2),
    );
    for i in 0..7 {
        put(&source, &format!("k{i}"), 1, None);
    }
    let ctx =
        sync_core::SyncContext::new("test/sync", source.clone(), store.clone(), store.clone());
    let offset = OffsetStrategy::new(OffsetConfig {
        page_size: 5,
        ..OffsetConfig::new("t")
    })
    .unwrap();
    let report = offset.run(&ctx).await.unwrap();
    assert!(report.complete);
    assert_eq!(
        store.target_rows("t").len(),
        7,
        "no record skipped although 5 were asked and 2 served"
    );
    let status = offset.status(&ctx).await.unwrap();
    assert_eq!(
        (status.offset, status.complete, status.total),
        (7, true, Some(7))
    );
    assert_eq!(status.last_key, Some(sync_core::Key::text("k6")));
}

#[tokio::test]
async fn offset_resumes_from_the_persisted_offset() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for i in 0..6 {
        put(&source, &format!("k{i}"), 1, None);
    }
    let offset = OffsetStrategy::new(OffsetConfig {
        page_size: 2,
        ..OffsetConfig::new("t")
    })
    .unwrap();
    let limited = ctx.clone().with_limits(sync_core::RunLimits {
        max_pages: Some(2),
        max_errors: None,
    });
    let first = offset.run(&limited).await.unwrap();
    assert!(!first.complete);
    assert_eq!(
        store
            .load("test/sync")
            .await
            .unwrap()
            .unwrap()
            .state
            .position,
        Position::Offset(4)
    );
    let before = source.requests().len();
    offset.run(&ctx).await.unwrap();
    let resumed = &source.requests()[before];
    assert_eq!(
        resumed.selector,
        sync_core::PageSelector::Offset(3),
        "resumes at the offset, re-reading one record to check drift"
    );
    assert_eq!(store.target_rows("t").len(), 6);
}

#[tokio::test]
async fn drift_fails_the_run_without_committing_the_drifted_page() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for i in 1..=4 {
        put(&source, &format!("k{i}"), 1, None);
    }
    let offset = OffsetStrategy::new(OffsetConfig {
        page_size: 2,
        ..OffsetConfig::new("t")
    })
    .unwrap();
    let limited = ctx.clone().with_limits(sync_core::RunLimits {
        max_pages: Some(1),
        max_errors: None,
    });
    offset.run(&limited).await.unwrap();
    put(&source, "k0", 1, None);
    let err = offset.run(&ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Drift);
    assert_eq!(ids(&store.target_rows("t")), ["k1", "k2"]);
    assert_eq!(
        store
            .load("test/sync")
            .await
            .unwrap()
            .unwrap()
            .state
            .position,
        Position::Offset(2)
    );
    let log = store.sync_log("test/sync", 1).await.unwrap();
    assert_eq!(log[0].event, "run_failed");
}

#[tokio::test]
async fn drift_with_restart_rescans_and_loses_nothing() {
    let schema = keyed_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for i in 1..=4 {
        put(&source, &format!("k{i}"), 1, None);
    }
    let cfg = OffsetConfig {
        page_size: 2,
        drift: sync_core::strategy::DriftPolicy::Restart,
        ..OffsetConfig::new("t")
    };
    let offset = OffsetStrategy::new(cfg).unwrap();
    offset
        .run(&ctx.clone().with_limits(sync_core::RunLimits {
            max_pages: Some(1),
            max_errors: None,
        }))
        .await
        .unwrap();
    source.delete(&sync_core::Key::text("k1"));
    put(&source, "k0", 1, None);
    put(&source, "k00", 1, None);
    offset.run(&ctx).await.unwrap();
    assert_eq!(
        ids(&store.target_rows("t")),
        ["k0", "k00", "k1", "k2", "k3", "k4"]
    );
    assert!(store
        .sync_log("test/sync", 10)
        .await
        .unwrap()
        .iter()
        .any(|e| e.event == "drift"));
}

#[tokio::test]
async fn reset_starts_the_next_run_from_zero() {
    let schema = keyed_schema("t");
    let (source, _, ctx, _) = setup(&schema);
    put(&source, "a", 1, None);
    let offset = OffsetStrategy::new(OffsetConfig::new("t")).unwrap();
    offset.run(&ctx).await.unwrap();
    assert_eq!(offset.status(&ctx).await.unwrap().offset, 1);
    offset.reset(&ctx).await.unwrap();
    assert_eq!(offset.status(&ctx).await.unwrap().offset, 0);
    offset.run(&ctx).await.unwrap();
    assert_eq!(
        source.requests().last().unwrap().selector,
        sync_core::PageSelector::Offset(0)
    );
}
