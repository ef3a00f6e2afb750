//! Behaviour of the incremental strategy.

mod common;

use common::{hwm, put, setup};
use sync_core::testkit::{ids, items_schema};
use sync_core::{
    Checkpoint, CursorKey, ErrorKind, IncrementalConfig, IncrementalStrategy, Key, Position,
    Stager, Strategy, Value,
};

fn strategy(page_size: u32) -> IncrementalStrategy {
    IncrementalStrategy::new(IncrementalConfig {
        page_size,
        ..IncrementalConfig::new("t")
    })
    .unwrap()
}

/// A source with the capabilities `change` leaves, an in-memory store and a context that
/// stops every run after `max_pages` pages.
fn page_limited(
    change: impl FnOnce(&mut sync_core::SourceCapabilities),
    max_pages: u64,
) -> (
    std::sync::Arc<sync_core::memory::MemorySource>,
    std::sync::Arc<sync_core::memory::MemoryStore>,
    sync_core::SyncContext,
) {
    let schema = items_schema("t");
    let base = sync_core::memory::MemorySource::new((*schema).clone());
    let mut caps = sync_core::Source::capabilities(&base);
    change(&mut caps);
    let source = std::sync::Arc::new(base.with_capabilities(caps));
    let store = std::sync::Arc::new(sync_core::memory::MemoryStore::new());
    let ctx =
        sync_core::SyncContext::new("test/sync", source.clone(), store.clone(), store.clone())
            .with_limits(sync_core::RunLimits {
                max_pages: Some(max_pages),
                max_errors: None,
            });
    (source, store, ctx)
}

#[tokio::test]
async fn ties_at_the_cursor_across_page_boundaries_are_neither_lost_nor_duplicated() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for id in ["a", "b", "c", "d", "e"] {
        put(&source, id, 1, Some(10));
    }
    hwm(&source, "t", 10);
    let report = strategy(2).run(&ctx).await.unwrap();
    assert_eq!(report.rows_written, 5);
    let cp = store
        .load("test/sync")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    assert_eq!(
        cp,
        Position::CursorKey(CursorKey {
            cursor: vec![Value::from(10)],
            key: Some(Key::text("e"))
        })
    );
    put(&source, "f", 1, Some(10));
    let again = strategy(2).run(&ctx).await.unwrap();
    assert_eq!(
        (again.rows_written, again.rows_read),
        (1, 6),
        "ties at the boundary are re-read and skipped, the new one kept"
    );
    assert_eq!(ids(&store.target_rows("t")), ["a", "b", "c", "d", "e", "f"]);
}

#[tokio::test]
async fn checkpoint_state_stays_constant_in_size() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, Some(1));
    hwm(&source, "t", 1);
    strategy(100).run(&ctx).await.unwrap();
    let small = store.checkpoint_text("test/sync").unwrap().len();
    for i in 0..500 {
        put(&source, &format!("k{i:04}"), 1, Some(2));
    }
    hwm(&source, "t", 2);
    strategy(100).run(&ctx).await.unwrap();
    let big = store.checkpoint_text("test/sync").unwrap().len();
    assert!(
        big <= small + 8,
        "checkpoint grew from {small} to {big} bytes"
    );
}

#[tokio::test]
async fn settle_lag_pins_the_upper_bound_and_late_records_are_read_next_run() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, Some(5));
    put(&source, "late", 1, Some(9));
    hwm(&source, "t", 10);
    let lagged = IncrementalStrategy::new(IncrementalConfig {
        settle_lag: 2,
        ..IncrementalConfig::new("t")
    })
    .unwrap();
    lagged.run(&ctx).await.unwrap();
    assert_eq!(
        ids(&store.target_rows("t")),
        ["a"],
        "a record newer than now - lag waits"
    );
    assert_eq!(source.requests()[0].until, Some(vec![Value::from(8)]));
    hwm(&source, "t", 12);
    lagged.run(&ctx).await.unwrap();
    assert_eq!(ids(&store.target_rows("t")), ["a", "late"]);
}

#[tokio::test]
async fn records_past_the_pinned_upper_bound_during_a_run_wait_for_the_next_run() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, Some(1));
    put(&source, "b", 1, Some(2));
    hwm(&source, "t", 5);
    source.mutate_after_page(
        1,
        Box::new(|d| {
            d.upsert(
                "t",
                sync_core::testkit::item("new", 1, Some(7))
                    .values()
                    .to_vec(),
            )
        }),
    );
    strategy(1).run(&ctx).await.unwrap();
    assert_eq!(ids(&store.target_rows("t")), ["a", "b"]);
    hwm(&source, "t", 7);
    strategy(1).run(&ctx).await.unwrap();
    assert_eq!(ids(&store.target_rows("t")), ["a", "b", "new"]);
}

#[tokio::test]
async fn lookback_rereads_without_moving_the_checkpoint_back() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, Some(10));
    hwm(&source, "t", 10);
    let lb = IncrementalStrategy::new(IncrementalConfig {
        lookback: 5,
        ..IncrementalConfig::new("t")
    })
    .unwrap();
    lb.run(&ctx).await.unwrap();
    let before = store
        .load("test/sync")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    put(&source, "old", 1, Some(7));
    lb.run(&ctx).await.unwrap();
    assert_eq!(
        source.requests().last().unwrap().since,
        Some(vec![Value::from(5)])
    );
    assert_eq!(
        ids(&store.target_rows("t")),
        ["a", "old"],
        "a late record inside the lookback is caught"
    );
    assert_eq!(
        store
            .load("test/sync")
            .await
            .unwrap()
            .unwrap()
            .state
            .position,
        before
    );
}

#[tokio::test]
async fn missing_cursor_values_are_quarantined_or_fail_before_commit() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    put(&source, "a", 1, Some(1));
    put(&source, "nocursor", 1, None);
    hwm(&source, "t", 1);
    let report = strategy(10).run(&ctx).await.unwrap();
    assert_eq!(report.rows_rejected, 1);
    let q = store.quarantined("test/sync").await.unwrap();
    assert_eq!(
        (ids(&[q[0].row.clone()]), q[0].reason.as_str()),
        (vec!["nocursor".to_string()], "missing cursor value")
    );
    assert_eq!(store.ledger("test/sync").await.unwrap()[0].rows_rejected, 1);

    let (source, store, ctx, _) = setup(&schema);
    put(&source, "nocursor", 1, None);
    let strict = IncrementalStrategy::new(IncrementalConfig {
        missing_cursor: sync_core::strategy::MissingCursorPolicy::Fail,
        ..IncrementalConfig::new("t")
    })
    .unwrap();
    let err = strict.run(&ctx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(store.target_rows("t").is_empty() && store.load("test/sync").await.unwrap().is_none());
}

#[tokio::test]
async fn an_unordered_source_commits_the_whole_window_once() {
    let schema = items_schema("t");
    let (source, store, _, _) = setup(&schema);
    let caps = sync_core::SourceCapabilities {
        ordering: sync_core::SourceOrdering::Unordered,
        ..sync_core::Source::capabilities(source.as_ref())
    };
    let unordered = std::sync::Arc::new(
        sync_core::memory::MemorySource::new((*schema).clone()).with_capabilities(caps),
    );
    for (id, c) in [("a", 3), ("b", 1), ("c", 2)] {
        put(&unordered, id, 1, Some(c));
    }
    hwm(&unordered, "t", 3);
    let ctx = sync_core::SyncContext::new("test/sync", unordered, store.clone(), store.clone());
    let report = strategy(1).run(&ctx).await.unwrap();
    assert_eq!((report.windows, report.rows_written), (1, 3));
    let cp = store
        .load("test/sync")
        .await
        .unwrap()
        .unwrap()
        .state
        .position;
    assert_eq!(
        cp,
        Position::CursorKey(CursorKey {
            cursor: vec![Value::from(3)],
            key: None
        })
    );
}

#[tokio::test]
async fn a_record_moving_to_the_end_between_pages_is_not_skipped() {
    for keyset in [true, false] {
        let schema = items_schema("t");
        let base = sync_core::memory::MemorySource::new((*schema).clone());
        let caps = sync_core::SourceCapabilities {
            keyset,
            ..sync_core::Source::capabilities(&base)
        };
        let source = std::sync::Arc::new(base.with_capabilities(caps));
        let store = std::sync::Arc::new(sync_core::memory::MemoryStore::new());
        let ctx =
            sync_core::SyncContext::new("test/sync", source.clone(), store.clone(), store.clone());
        put(&source, "a", 1, Some(10));
        put(&source, "b", 1, Some(10));
        hwm(&source, "t", 10);
        strategy(2).run(&ctx).await.unwrap();
        put(&source, "c", 1, Some(11));
        put(&source, "d", 1, Some(12));
        hwm(&source, "t", 20);
        // The first page of the next run re-reads the ties a, b; then "a" moves to the end.
        let served = source.pages_served();
        source.mutate_after_page(
            served + 1,
            Box::new(|d| {
                d.upsert(
                    "t",
                    sync_core::testkit::item("a", 2, Some(15)).values().to_vec(),
                )
            }),
        );
        assert!(strategy(2).run(&ctx).await.unwrap().complete);
        assert_eq!(
            ids(&store.target_rows("t")),
            ["a", "b", "c", "d"],
            "keyset {keyset}: c was skipped"
        );
        assert_eq!(store.target_rows("t")[0].get(1), &Value::from(2));
    }
}

#[tokio::test]
async fn an_unordered_window_stopped_by_a_page_limit_resumes_its_fill() {
    let (source, store, ctx) =
        page_limited(|c| c.ordering = sync_core::SourceOrdering::Unordered, 2);
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        put(&source, id, 1, Some(i as i64 + 1));
    }
    hwm(&source, "t", 3);
    let first = strategy(1).run(&ctx).await.unwrap();
    assert!(!first.complete);
    // The source moves on; the resumed window keeps its pinned upper bound.
    put(&source, "e", 1, Some(4));
    hwm(&source, "t", 4);
    strategy(1).run(&ctx).await.unwrap();
    assert_eq!(
        ids(&store.target_rows("t")),
        ["a", "b", "c"],
        "the window finished with its pinned bound"
    );
    let window = store.ledger("test/sync").await.unwrap()[0].clone();
    assert_eq!(
        (window.rows_read, window.rows_written),
        (3, 3),
        "staged pages were not fetched again"
    );
    let cp = Position::CursorKey(CursorKey {
        cursor: vec![Value::from(3)],
        key: None,
    });
    assert_eq!(window.high, cp);
    let mut runs = 0;
    while !strategy(1).run(&ctx).await.unwrap().complete {
        runs += 1;
        assert!(runs < 10, "page-limited runs must finish");
    }
    assert_eq!(ids(&store.target_rows("t")), ["a", "b", "c", "e"]);
}

#[tokio::test]
async fn a_record_without_a_cursor_on_a_later_page_is_quarantined_not_dropped() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    let page = |rows: Vec<sync_core::Row>, next: Option<sync_core::PageSelector>| sync_core::Page {
        rows,
        next,
        total: None,
    };
    let first = vec![
        sync_core::testkit::item("a", 1, Some(1)),
        sync_core::testkit::item("b", 1, Some(2)),
    ];
    // Like a server that sorts NULLs last: the record without a cursor comes on page 2.
    let second = vec![
        sync_core::testkit::item("c", 1, Some(3)),
        sync_core::testkit::item("nocursor", 1, None),
    ];
    source.script_pages([
        Ok(page(first, Some(sync_core::PageSelector::Offset(2)))),
        Ok(page(second, None)),
    ]);
    hwm(&source, "t", 10);
    let report = strategy(2).run(&ctx).await.unwrap();
    assert_eq!(report.rows_rejected, 1);
    assert_eq!(ids(&store.target_rows("t")), ["a", "b", "c"]);
    let q = store.quarantined("test/sync").await.unwrap();
    assert_eq!((q.len(), q[0].reason.as_str()), (1, "missing cursor value"));
}

#[tokio::test]
async fn pages_per_window_promotes_every_n_pages_and_on_a_stop() {
    let schema = items_schema("t");
    let (source, store, ctx, _) = setup(&schema);
    for i in 0..20 {
        put(&source, &format!("k{i:02}"), 1, Some(i));
    }
    hwm(&source, "t", 20);
    let windowed = |n| {
        IncrementalStrategy::new(IncrementalConfig {
            page_size: 2,
            pages_per_window: n,
            ..IncrementalConfig::new("t")
        })
        .unwrap()
    };
    // A stop raised before the run: nothing is read, the run says it stopped.
    let stop = sync_core::StopSignal::new();
    stop.stop();
    let stopped = windowed(4).run(&ctx.clone().with_stop(stop)).await.unwrap();
    assert_eq!((stopped.pages, stopped.windows), (0, 0));
    assert!(stopped.stopped && !stopped.complete);
    // A page limit (the stop's code path) promotes the pages staged so far at once.
    let limited = ctx.clone().with_limits(sync_core::RunLimits {
        max_pages: Some(2),
        ..Default::default()
    });
    let first = windowed(4).run(&limited).await.unwrap();
    assert_eq!((first.pages, first.windows, first.rows_written), (2, 1, 4));
    assert!(!first.complete && !first.stopped);
    let report = windowed(4).run(&ctx).await.unwrap();
    // The rest: the boundary record is read again (and skipped), so 17 records take 9 pages,
    // promoted in windows of 4, 4 and 1 pages.
    assert_eq!((report.rows_written, report.windows), (16, 3));
    let ledger = store.ledger("test/sync").await.unwrap();
    let reads: Vec<u64> = ledger.iter().map(|e| e.rows_read).collect();
    assert_eq!(reads, [4, 8, 8, 1]);
    assert_eq!(store.target_rows("t").len(), 20);
    let zero = IncrementalStrategy::new(IncrementalConfig {
        pages_per_window: 0,
        ..IncrementalConfig::new("t")
    });
    assert_eq!(zero.unwrap_err().kind(), ErrorKind::Config);
}

#[tokio::test]
async fn an_unordered_run_begun_again_keeps_the_bounds_its_fill_reads_with() {
    let (source, store, ctx) =
        page_limited(|c| c.ordering = sync_core::SourceOrdering::Unordered, 2);
    for id in ["p1", "p2", "p3", "p4"] {
        put(&source, id, 1, Some(1));
    }
    hwm(&source, "t", 1);
    assert!(
        !strategy(1).run(&ctx).await.unwrap().complete,
        "p1 and p2 staged"
    );
    // The second run finishes that window, then begins the next one, pinned at 5, and stops
    // at the page limit before staging anything.
    hwm(&source, "t", 5);
    assert!(!strategy(1).run(&ctx).await.unwrap().complete);
    // The third finds that run with nothing staged and begins it again: its fill reads up to
    // the source's new mark, 10, and stops after two pages.
    for (id, cursor) in [("0x", 8), ("0y", 8), ("m", 3), ("n", 3)] {
        put(&source, id, 1, Some(cursor));
    }
    hwm(&source, "t", 10);
    assert!(!strategy(1).run(&ctx).await.unwrap().complete);
    // Resumed with the bound it was read with, the fill's next page is where it left off.
    let mut runs = 0;
    while !strategy(1).run(&ctx).await.unwrap().complete {
        runs += 1;
        assert!(runs < 20, "page-limited runs must finish");
    }
    let mut expected = ids(&source.rows("t"));
    expected.sort();
    assert_eq!(ids(&store.target_rows("t")), expected, "no record lost");
}

#[tokio::test]
async fn a_run_of_ties_longer_than_the_page_limit_is_passed_without_keyset_paging() {
    let (source, store, ctx) = page_limited(|c| c.keyset = false, 10);
    // Twenty records at one cursor value, one per page: each anchored request starts the
    // value over, and the way back to the last record seen takes more pages every run.
    for i in 0..20 {
        put(&source, &format!("k{i:02}"), 1, Some(10));
    }
    hwm(&source, "t", 10);
    let mut runs = 1;
    while !strategy(1).run(&ctx).await.unwrap().complete {
        runs += 1;
        assert!(runs < 20, "every run gets further than the one before");
    }
    let mut expected = ids(&source.rows("t"));
    expected.sort();
    assert_eq!(ids(&store.target_rows("t")), expected);
}

#[tokio::test]
async fn a_source_serving_one_page_over_and_over_still_stops_at_the_page_limit() {
    let (source, store, ctx) = page_limited(|c| c.keyset = false, 5);
    let same = || {
        Ok(sync_core::Page {
            rows: vec![
                sync_core::testkit::item("a", 1, Some(10)),
                sync_core::testkit::item("b", 1, Some(10)),
            ],
            next: Some(sync_core::PageSelector::Offset(2)),
            total: None,
        })
    };
    source.script_pages((0..50).map(|_| same()));
    hwm(&source, "t", 10);
    let report = strategy(2).run(&ctx).await.unwrap();
    assert!(!report.complete);
    // Five counted pages and the anchored request's one re-read page.
    assert_eq!(report.pages, 6);
    assert_eq!(ids(&store.target_rows("t")), ["a", "b"]);
}
