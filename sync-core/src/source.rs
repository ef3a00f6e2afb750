//! The `Source` trait: pages of records from an external system, and the latest state of
//! given ids.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::position::{CursorKey, Position};
use crate::record::{Key, Row};
use crate::schema::StreamSchema;
use crate::strategy::StrategyKind;
use crate::value::Value;

/// How a source orders the records of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOrdering {
    /// No order is promised.
    Unordered,
    /// Ascending by primary key (stable for offset paging).
    ByKey,
    /// Ascending by (cursor, primary key): incremental runs may checkpoint after every page.
    ByCursorThenKey,
}

/// What a source can do, declared once and checked when a strategy starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCapabilities {
    /// Strategies the source supports.
    pub strategies: Vec<StrategyKind>,
    /// Order of records within a request.
    pub ordering: SourceOrdering,
    /// Largest page the source serves (`None`: no limit declared).
    pub max_page_size: Option<u32>,
    /// Whether `fetch_latest` is implemented.
    pub fetch_latest: bool,
    /// Whether `PageSelector::After` (keyset paging on (cursor, key)) is served.
    pub keyset: bool,
}

impl SourceCapabilities {
    /// Fails with [`crate::ErrorKind::Unsupported`] unless `strategy` is supported.
    pub fn require(&self, source: &str, strategy: StrategyKind) -> Result<()> {
        if self.strategies.contains(&strategy) {
            Ok(())
        } else {
            Err(Error::unsupported(
                source,
                format_args!("the {strategy} strategy"),
            ))
        }
    }

    /// Clamps a requested page size to `max_page_size`.
    pub fn clamp_page_size(&self, requested: u32) -> u32 {
        self.max_page_size
            .map_or(requested, |m| requested.min(m))
            .max(1)
    }
}

/// Which page to fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSelector {
    /// The first page.
    First,
    /// Records from this offset.
    Offset(u64),
    /// This page number (1-based).
    Page(u64),
    /// Continue with this opaque token.
    Token(String),
    /// Records strictly after this (cursor, key) (keyset paging).
    After(CursorKey),
}

impl PageSelector {
    /// The position a strategy records after reading the page fetched with this selector.
    pub fn to_position(&self) -> Position {
        match self {
            PageSelector::First => Position::Start,
            PageSelector::Offset(o) => Position::Offset(*o),
            PageSelector::Page(p) => Position::Page(*p),
            PageSelector::Token(t) => Position::Token(t.clone()),
            PageSelector::After(ck) => Position::CursorKey(ck.clone()),
        }
    }
}

/// One page request.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    /// Stream name.
    pub stream: String,
    /// Which page.
    pub selector: PageSelector,
    /// Inclusive lower bound on the cursor columns (`None`: from the beginning).
    pub since: Option<Vec<Value>>,
    /// Inclusive upper bound on the cursor columns, pinned at run start (`None`: unbounded).
    pub until: Option<Vec<Value>>,
    /// Maximum records wanted; a source MAY return fewer.
    pub limit: u32,
}

/// One page of records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Records in the source's declared order.
    pub rows: Vec<Row>,
    /// The next page, or `None` when this is the last one. An empty page with a `next` is not
    /// the end.
    pub next: Option<PageSelector>,
    /// Total records matching the request, when the source reports it.
    pub total: Option<u64>,
}

/// A system records come from.
///
/// # Contract
/// - `capabilities` MUST be constant for the life of the value.
/// - `schema` MUST return the same schema for a stream on every call, or
///   [`crate::ErrorKind::NotFound`] for an unknown stream.
/// - `fetch_page` MUST return records with `since <= cursor <= until` (when bounds are set)
///   in the declared ordering, at most `limit` of them, and `next: None` only on the last page.
///   A failure MUST be a typed error with the right retry class; it MUST NOT return a partial
///   page as if it were complete.
/// - `fetch_latest` MUST return the current state of each id that exists, once, and omit ids
///   that no longer exist (the caller treats them as deleted). Sources that cannot MUST return
///   [`crate::ErrorKind::Unsupported`] and declare `fetch_latest: false`.
/// - `high_watermark` SHOULD return the source's own notion of "now" for the cursor (for
///   example Square's `latest_time`), never the local clock.
#[async_trait]
pub trait Source: Debug + Send + Sync + 'static {
    /// Backend name for errors and logs (`square`, `memory`).
    fn name(&self) -> &str;
    /// Declared capabilities.
    fn capabilities(&self) -> SourceCapabilities;
    /// Schema of a stream.
    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>>;
    /// Fetches one page.
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page>;
    /// Fetches the latest state of `ids`.
    async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>> {
        let _ = (stream, ids);
        Err(Error::unsupported(self.name(), "fetch_latest"))
    }
    /// The highest cursor value the source can vouch for now.
    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        let _ = stream;
        Ok(None)
    }
}

#[async_trait]
impl<T: Source + ?Sized> Source for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> SourceCapabilities {
        (**self).capabilities()
    }
    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        (**self).schema(stream)
    }
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page> {
        (**self).fetch_page(request).await
    }
    async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>> {
        (**self).fetch_latest(stream, ids).await
    }
    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        (**self).high_watermark(stream).await
    }
}

#[async_trait]
impl<T: Source + ?Sized> Source for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> SourceCapabilities {
        (**self).capabilities()
    }
    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        (**self).schema(stream)
    }
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page> {
        (**self).fetch_page(request).await
    }
    async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>> {
        (**self).fetch_latest(stream, ids).await
    }
    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        (**self).high_watermark(stream).await
    }
}
