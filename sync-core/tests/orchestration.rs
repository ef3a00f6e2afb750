//! Orchestration logic with a mocked source (mockall): what the strategies ask of a source,
//! in which order, and what they refuse before asking anything.

use std::sync::Arc;

use async_trait::async_trait;
use sync_core::memory::MemoryStore;
use sync_core::testkit::{item, keyed_schema};
use sync_core::{
    Checkpoint, ErrorKind, FullConfig, FullStrategy, Key, Page, PageRequest, PageSelector, Result,
    Row, Source, SourceCapabilities, SourceOrdering, Strategy, StrategyKind, StreamSchema,
    SyncContext, Value,
};

mockall::mock! {
    pub Api {}
    impl std::fmt::Debug for Api {
        fn fmt<'a>(&self, f: &mut std::fmt::Formatter<'a>) -> std::fmt::Result;
    }
    #[async_trait]
    impl Source for Api {
        fn name(&self) -> &str;
        fn capabilities(&self) -> SourceCapabilities;
        fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>>;
        async fn fetch_page(&self, request: &PageRequest) -> Result<Page>;
        async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>>;
        async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>>;
    }
}

fn caps(strategies: Vec<StrategyKind>) -> SourceCapabilities {
    SourceCapabilities {
        strategies,
        ordering: SourceOrdering::ByKey,
        max_page_size: Some(2),
        fetch_latest: false,
        keyset: false,
    }
}

#[tokio::test]
async fn an_unsupported_strategy_is_refused_before_any_source_call() {
    let mut api = MockApi::new();
    api.expect_name().return_const("mock-api".to_string());
    api.expect_capabilities()
        .returning(|| caps(vec![StrategyKind::Offset]));
    api.expect_fetch_page().never();
    api.expect_schema().never();
    let store = Arc::new(MemoryStore::new());
    let ctx = SyncContext::new("s", Arc::new(api), store.clone(), store.clone());
    let err = FullStrategy::new(FullConfig::new("t"))
        .unwrap()
        .run(&ctx)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.context_value("backend")),
        (ErrorKind::Unsupported, Some("mock-api"))
    );
    assert!(store.load("s").await.unwrap().is_none());
}

#[tokio::test]
async fn full_follows_next_selectors_with_the_clamped_page_size_and_stops_on_none() {
    let mut api = MockApi::new();
    let schema = keyed_schema("t");
    api.expect_name().return_const("mock-api".to_string());
    api.expect_capabilities()
        .returning(|| caps(vec![StrategyKind::Full]));
    api.expect_schema().returning(move |_| Ok(schema.clone()));
    api.expect_high_watermark().times(1).returning(|_| Ok(None));
    let mut seq = mockall::Sequence::new();
    api.expect_fetch_page()
        .withf(|r| r.selector == PageSelector::First && r.limit == 2 && r.since.is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Ok(Page {
                rows: vec![item("a", 1, None), item("b", 1, None)],
                next: Some(PageSelector::Token("t1".into())),
                total: None,
            })
        });
    api.expect_fetch_page()
        .withf(|r| r.selector == PageSelector::Token("t1".into()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Ok(Page {
                rows: vec![],
                next: Some(PageSelector::Token("t2".into())),
                total: None,
            })
        });
    api.expect_fetch_page()
        .withf(|r| r.selector == PageSelector::Token("t2".into()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Ok(Page {
                rows: vec![item("c", 1, None)],
                next: None,
                total: None,
            })
        });
    let store = Arc::new(MemoryStore::new());
    let ctx = SyncContext::new("s", Arc::new(api), store.clone(), store.clone());
    let report = FullStrategy::new(FullConfig {
        page_size: 100,
        ..FullConfig::new("t")
    })
    .unwrap()
    .run(&ctx)
    .await
    .unwrap();
    assert_eq!(
        (report.pages, report.rows_written),
        (3, 3),
        "an empty page with a next token is not the end"
    );
}
