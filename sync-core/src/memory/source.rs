//! `MemorySource`: an in-memory source with scripted errors, mutations between pages,
//! silent page-size clamping and fault points, for tests, examples and the model tests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::fault::{FaultPoint, Faults};
use crate::position::CursorKey;
use crate::record::{Key, Row};
use crate::schema::StreamSchema;
use crate::source::{Page, PageRequest, PageSelector, Source, SourceCapabilities, SourceOrdering};
use crate::strategy::StrategyKind;
use crate::value::Value;

/// How a `MemorySource` hands out `next` selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryPaging {
    /// `Offset(n)`.
    #[default]
    Offset,
    /// `Page(n)`, 1-based.
    Page,
    /// `Token(last record's position as JSON)`: keyset paging in serving order, immune to
    /// drift.
    Token,
}

/// A change applied to the source's data between two pages.
pub type Mutation = Box<dyn FnOnce(&mut MemoryData) + Send>;

/// The records of a `MemorySource`, per stream, keyed by primary key.
#[derive(Debug, Default)]
pub struct MemoryData {
    streams: BTreeMap<String, (Arc<StreamSchema>, BTreeMap<Key, Row>)>,
    /// Bumped by every change, so a sorted snapshot can be reused until the data changes.
    generation: u64,
}

impl MemoryData {
    /// Inserts or replaces a row of `stream`.
    pub fn upsert(&mut self, stream: &str, values: Vec<Value>) {
        let (schema, rows) = self.streams.get_mut(stream).expect("unknown memory stream");
        let row = Row::new(values);
        rows.insert(row.key(schema), row);
        self.generation += 1;
    }

    /// Deletes a row of `stream`; returns whether it existed.
    pub fn delete(&mut self, stream: &str, key: &Key) -> bool {
        self.generation += 1;
        self.streams
            .get_mut(stream)
            .expect("unknown memory stream")
            .1
            .remove(key)
            .is_some()
    }

    /// The rows of `stream` in key order.
    pub fn rows(&self, stream: &str) -> Vec<Row> {
        self.streams
            .get(stream)
            .map(|(_, r)| r.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    data: MemoryData,
    errors: VecDeque<Error>,
    scripted: VecDeque<Result<Page>>,
    after_page: BTreeMap<u64, Vec<Mutation>>,
    pages_served: u64,
    requests: Vec<PageRequest>,
    high_watermark: BTreeMap<String, Vec<Value>>,
    /// The rows of one stream in serving order, valid for one data generation.
    sorted: Option<(String, u64, Arc<Vec<Row>>)>,
}

/// Orders two rows by their cursor columns, then their key, without copying values.
fn serving_order(schema: &StreamSchema, a: &Row, b: &Row) -> std::cmp::Ordering {
    schema
        .cursor()
        .iter()
        .chain(schema.primary_key())
        .map(|&i| {
            a.get(i)
                .compare(b.get(i))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// Compares a row's cursor columns with a bound.
fn cursor_vs(schema: &StreamSchema, row: &Row, bound: &[Value]) -> Option<std::cmp::Ordering> {
    let mut out = std::cmp::Ordering::Equal;
    for (&i, b) in schema.cursor().iter().zip(bound) {
        match row.get(i).compare(b)? {
            std::cmp::Ordering::Equal => {}
            o => {
                out = o;
                break;
            }
        }
    }
    Some(out)
}

/// An in-memory [`Source`].
pub struct MemorySource {
    first_stream: String,
    state: Mutex<State>,
    capabilities: SourceCapabilities,
    paging: MemoryPaging,
    silent_limit: Option<u32>,
    faults: Faults,
}

impl std::fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySource")
            .field("first_stream", &self.first_stream)
            .field("paging", &self.paging)
            .finish()
    }
}

impl MemorySource {
    /// A source with one stream. Ordered by (cursor, key) when the schema has a cursor, else
    /// by key; supports every strategy.
    pub fn new(schema: StreamSchema) -> Self {
        let ordering = if schema.cursor().is_empty() {
            SourceOrdering::ByKey
        } else {
            SourceOrdering::ByCursorThenKey
        };
        let first_stream = schema.name().to_string();
        let mut state = State::default();
        state
            .data
            .streams
            .insert(first_stream.clone(), (Arc::new(schema), BTreeMap::new()));
        MemorySource {
            first_stream,
            state: Mutex::new(state),
            capabilities: SourceCapabilities {
                strategies: vec![
                    StrategyKind::Full,
                    StrategyKind::Incremental,
                    StrategyKind::Offset,
                    StrategyKind::SequenceWindow,
                ],
                ordering,
                max_page_size: None,
                fetch_latest: true,
                keyset: true,
            },
            paging: MemoryPaging::Offset,
            silent_limit: None,
            faults: Faults::new(),
        }
    }

    /// Adds another stream.
    pub fn with_stream(self, schema: StreamSchema) -> Self {
        self.lock().data.streams.insert(
            schema.name().to_string(),
            (Arc::new(schema), BTreeMap::new()),
        );
        self
    }

    /// Replaces the declared capabilities.
    pub fn with_capabilities(mut self, capabilities: SourceCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Chooses the `next` selectors handed out.
    pub fn with_paging(mut self, paging: MemoryPaging) -> Self {
        self.paging = paging;
        self
    }

    /// Serves at most `n` records per page whatever the request asks, without declaring it
    /// (as servers that clamp `limit` silently).
    pub fn with_silent_page_limit(mut self, n: u32) -> Self {
        self.silent_limit = Some(n.max(1));
        self
    }

    /// Shares a fault set (`MidPage` fires inside `fetch_page`).
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("memory source lock")
    }

    /// Inserts or replaces a row of the first stream.
    pub fn upsert(&self, values: Vec<Value>) {
        self.lock().data.upsert(&self.first_stream, values);
    }

    /// Deletes a row of the first stream.
    pub fn delete(&self, key: &Key) -> bool {
        self.lock().data.delete(&self.first_stream, key)
    }

    /// Runs `f` on the data (several streams, bulk changes).
    pub fn with_data<T>(&self, f: impl FnOnce(&mut MemoryData) -> T) -> T {
        f(&mut self.lock().data)
    }

    /// Rows of a stream in key order.
    pub fn rows(&self, stream: &str) -> Vec<Row> {
        self.lock().data.rows(stream)
    }

    /// The next calls to `fetch_page` or `fetch_latest` fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = Error>) {
        self.lock().errors.extend(errors);
    }

    /// The next calls to `fetch_page` return these canned pages (or errors) in order,
    /// whatever the request and the data say; the data is served again once they are used up.
    pub fn script_pages(&self, pages: impl IntoIterator<Item = Result<Page>>) {
        self.lock().scripted.extend(pages);
    }

    /// Applies `mutation` right after the `n`-th page (1-based, counted over the source's
    /// life) is served: a change that happens while a paginated read is in progress.
    pub fn mutate_after_page(&self, n: u64, mutation: Mutation) {
        self.lock().after_page.entry(n).or_default().push(mutation);
    }

    /// Applies every mutation still waiting for its page, now.
    pub fn flush_mutations(&self) {
        let mut state = self.lock();
        let pending = std::mem::take(&mut state.after_page);
        for m in pending.into_values().flatten() {
            m(&mut state.data);
        }
    }

    /// Sets the value `high_watermark` reports for a stream.
    pub fn set_high_watermark(&self, stream: &str, value: Option<Vec<Value>>) {
        let mut s = self.lock();
        match value {
            Some(v) => s.high_watermark.insert(stream.to_string(), v),
            None => s.high_watermark.remove(stream),
        };
    }

    /// Every page request served so far.
    pub fn requests(&self) -> Vec<PageRequest> {
        self.lock().requests.clone()
    }

    /// Pages served so far.
    pub fn pages_served(&self) -> u64 {
        self.lock().pages_served
    }

    fn take_error(&self) -> Result<()> {
        match self.lock().errors.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl MemorySource {
    /// Where `row` stands relative to a (cursor, key) position in serving order: by cursor
    /// then key for an ordered source, by key otherwise.
    fn serving_vs(&self, schema: &StreamSchema, row: &Row, at: &CursorKey) -> std::cmp::Ordering {
        use std::cmp::Ordering::Equal;
        if self.capabilities.ordering == SourceOrdering::ByCursorThenKey {
            match cursor_vs(schema, row, &at.cursor).unwrap_or(Equal) {
                Equal => {}
                o => return o,
            }
        }
        let Some(key) = &at.key else {
            return std::cmp::Ordering::Less;
        };
        schema
            .primary_key()
            .iter()
            .zip(&key.0)
            .map(|(&i, v)| row.get(i).compare(v).unwrap_or(Equal))
            .find(|o| o.is_ne())
            .unwrap_or(Equal)
    }
}

fn bad_selector(sel: &PageSelector) -> Error {
    Error::invalid_input("selector does not match this source's paging")
        .with_context("selector", format!("{sel:?}"))
}

#[async_trait]
impl Source for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.capabilities.clone()
    }

    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        self.lock()
            .data
            .streams
            .get(stream)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "unknown stream").with_context("stream", stream)
            })
    }

    async fn fetch_page(&self, req: &PageRequest) -> Result<Page> {
        self.take_error()?;
        self.faults.check(FaultPoint::MidPage)?;
        let mut state = self.lock();
        state.requests.push(req.clone());
        if let Some(page) = state.scripted.pop_front() {
            state.pages_served += 1;
            return page;
        }
        let generation = state.data.generation;
        let (schema, rows) = state.data.streams.get(&req.stream).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "unknown stream").with_context("stream", &req.stream)
        })?;
        let schema = schema.clone();
        let cached = match &state.sorted {
            Some((stream, g, rows)) if stream == &req.stream && *g == generation => rows.clone(),
            _ => {
                let mut sorted: Vec<Row> = rows.values().cloned().collect();
                if self.capabilities.ordering == SourceOrdering::ByCursorThenKey {
                    sorted.sort_by(|a, b| serving_order(&schema, a, b));
                }
                let sorted = Arc::new(sorted);
                state.sorted = Some((req.stream.clone(), generation, sorted.clone()));
                sorted
            }
        };
        let schema = &schema;
        let in_range = |r: &Row| {
            // A record without a cursor value is served regardless of bounds, as a sloppy API would.
            schema.cursor().iter().any(|&i| r.get(i).is_null())
                || (req
                    .since
                    .as_ref()
                    .map_or(true, |s| cursor_vs(schema, r, s).is_some_and(|o| o.is_ge()))
                    && req
                        .until
                        .as_ref()
                        .map_or(true, |u| cursor_vs(schema, r, u).is_some_and(|o| o.is_le())))
        };
        let matching: Vec<&Row> = cached.iter().filter(|r| in_range(r)).collect();
        let total = matching.len() as u64;
        let limit = self
            .silent_limit
            .map_or(req.limit, |l| l.min(req.limit))
            .max(1) as usize;
        let start = match &req.selector {
            PageSelector::First => 0,
            PageSelector::Offset(o) => *o as usize,
            PageSelector::Page(p) if *p >= 1 => (*p as usize - 1) * limit,
            PageSelector::Token(t) => {
                let last: CursorKey =
                    serde_json::from_str(t).map_err(|_| bad_selector(&req.selector))?;
                matching.partition_point(|r| self.serving_vs(schema, r, &last).is_le())
            }
            PageSelector::After(ck) if self.capabilities.keyset => {
                matching.partition_point(|r| self.serving_vs(schema, r, ck).is_le())
            }
            other => return Err(bad_selector(other)),
        };
        let page: Vec<Row> = matching
            .iter()
            .skip(start)
            .take(limit)
            .map(|r| (*r).clone())
            .collect();
        let end = start + page.len();
        let next = (end < matching.len()).then(|| match self.paging {
            MemoryPaging::Offset => PageSelector::Offset(end as u64),
            MemoryPaging::Page => PageSelector::Page((start / limit) as u64 + 2),
            MemoryPaging::Token => {
                let last = page.last().expect("a page before the end has rows");
                PageSelector::Token(
                    serde_json::to_string(&last.cursor_key(schema)).expect("positions serialize"),
                )
            }
        });
        state.pages_served += 1;
        let served = state.pages_served;
        if let Some(mutations) = state.after_page.remove(&served) {
            for m in mutations {
                m(&mut state.data);
            }
        }
        Ok(Page {
            rows: page,
            next,
            total: Some(total),
        })
    }

    async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>> {
        self.take_error()?;
        self.faults.check(FaultPoint::MidPage)?;
        let state = self.lock();
        let (_, rows) = state.data.streams.get(stream).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "unknown stream").with_context("stream", stream)
        })?;
        Ok(ids.iter().filter_map(|k| rows.get(k).cloned()).collect())
    }

    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        Ok(self.lock().high_watermark.get(stream).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{item, keyed_schema};

    fn request(selector: PageSelector) -> PageRequest {
        PageRequest {
            stream: "t".into(),
            selector,
            since: None,
            until: None,
            limit: 2,
        }
    }

    #[tokio::test]
    async fn scripted_pages_and_errors_come_first_then_the_data() {
        let source = MemorySource::new((*keyed_schema("t")).clone());
        source.upsert(item("a", 1, None).values().to_vec());
        let canned = Page {
            rows: vec![item("z", 9, None)],
            next: None,
            total: Some(1),
        };
        source.script_pages([
            Ok(canned.clone()),
            Err(Error::new(ErrorKind::RateLimited, "429")),
        ]);
        assert_eq!(
            source
                .fetch_page(&request(PageSelector::First))
                .await
                .unwrap(),
            canned
        );
        assert_eq!(
            source
                .fetch_page(&request(PageSelector::First))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::RateLimited
        );
        let data = source
            .fetch_page(&request(PageSelector::First))
            .await
            .unwrap();
        assert_eq!(data.rows, vec![item("a", 1, None)]);
        assert_eq!(source.pages_served(), 3);
    }

    #[tokio::test]
    async fn page_numbers_tokens_and_keyset_page_through_everything_once() {
        for paging in [
            MemoryPaging::Offset,
            MemoryPaging::Page,
            MemoryPaging::Token,
        ] {
            let source = MemorySource::new((*keyed_schema("t")).clone()).with_paging(paging);
            for id in ["a", "b", "c", "d", "e"] {
                source.upsert(item(id, 1, None).values().to_vec());
            }
            let (mut seen, mut selector) = (Vec::new(), Some(PageSelector::First));
            while let Some(sel) = selector {
                let page = source.fetch_page(&request(sel)).await.unwrap();
                seen.extend(page.rows.iter().map(|r| r.get(0).to_string()));
                selector = page.next;
            }
            assert_eq!(seen, ["a", "b", "c", "d", "e"], "{paging:?}");
        }
    }
}
