//! [`RestSource`]: one stream of a JSON API as a sync-core [`Source`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use sync_core::record::decode::RowDecoder;
use sync_core::{
    Error, ErrorKind, Key, Page, PageRequest, PageSelector, Result, Row, Source,
    SourceCapabilities, SourceOrdering, StrategyKind, StreamSchema, Value,
};

use super::config::RestStreamConfig;
use super::lookup::Lookup;
use super::paginate::{lookup, PaginatorConfig, Received};
use super::request::{build, Bindings};
use super::window::{Slice, TimeWindowConfig};
use crate::http::HttpClient;

/// Distinct continuation tokens remembered per read to catch a cycle; past this the memory
/// starts over (a cycle longer than this many pages goes unnoticed).
const LOOP_GUARD_TOKENS: usize = 1 << 20;

/// One stream of a JSON API: requests built from a [`RestStreamConfig`], pages decoded
/// straight into rows by the stream's schema, the paginator's stop rule and loop guard
/// applied, and the records kept within the bounds the strategy asked for.
///
/// It does not retry: the strategies call it under their retry policy, and the HTTP layer
/// classifies every failure (transient or permanent, `Retry-After`).
pub struct RestSource {
    config: RestStreamConfig,
    schema: Arc<StreamSchema>,
    decoder: RowDecoder,
    records_path: Vec<String>,
    url: String,
    client: HttpClient,
    cursor_col: Option<usize>,
    /// A query parameter carrying a credential, dropped from next links so it is never kept
    /// in staging progress.
    secret_param: Option<String>,
    /// Hashes of tokens seen in the current read: next token -> the token it came from.
    seen: Mutex<HashMap<u64, u64>>,
}

impl std::fmt::Debug for RestSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestSource")
            .field("stream", &self.config.name)
            .field("url", &self.url)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn hash_of(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl RestSource {
    /// A source for `config` over `client` (which carries the auth and rate limit). Validates
    /// the config; does no I/O.
    pub fn new(config: RestStreamConfig, client: HttpClient) -> Result<Self> {
        config.validate()?;
        let schema = Arc::new(config.schema()?);
        let records_path = config
            .records_path
            .split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        let cursor_col = schema.cursor().first().copied();
        let secret_param = match &config.auth {
            Some(crate::http::Auth::ApiKey {
                name,
                location: crate::http::ApiKeyLocation::Query,
                ..
            }) => Some(name.clone()),
            _ => None,
        };
        Ok(RestSource {
            url: format!("{}{}", config.base_url, config.path),
            decoder: RowDecoder::new(schema.clone()),
            schema,
            records_path,
            client,
            cursor_col,
            secret_param,
            seen: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// The stream's config.
    pub fn config(&self) -> &RestStreamConfig {
        &self.config
    }

    /// Drops a query parameter that carries a credential from the query of a next link:
    /// the client adds it to every request anyway.
    pub fn with_secret_query_param(mut self, name: impl Into<String>) -> Self {
        self.secret_param = Some(name.into());
        self
    }

    fn unknown(&self, stream: &str) -> Error {
        Error::new(ErrorKind::NotFound, "unknown stream")
            .with_context("stream", stream)
            .with_context("source", &self.config.name)
    }

    /// A bound written for the API: an exclusive lower bound one unit earlier, an exclusive
    /// upper bound one unit later, so the API's answer covers the inclusive range asked for.
    fn written(&self, value: Option<&Value>, lower: bool) -> Result<Option<String>> {
        let (Some(c), Some(v)) = (&self.config.cursor, value) else {
            return Ok(None);
        };
        let inclusive = if lower {
            c.inclusive
        } else {
            c.until_inclusive
        };
        let step = match (inclusive, lower) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        c.format.write(v, step, lower).map(Some)
    }

    /// Fetches one page with `paginator` for `selector` within `[since, until]`.
    async fn fetch_one(
        &self,
        paginator: &PaginatorConfig,
        selector: &PageSelector,
        limit: u32,
        since: Option<&Value>,
        until: Option<&Value>,
    ) -> Result<Fetched> {
        let vars = paginator.vars(selector)?;
        let bindings = Bindings::of(
            &vars,
            limit,
            self.written(since, true)?,
            self.written(until, false)?,
            self.config.cursor.as_ref(),
        )?;
        let request = build(&self.config, paginator, &self.url, &vars, &bindings)?;
        let response = self.client.execute(&request).await?;
        let path: Vec<&str> = self.records_path.iter().map(String::as_str).collect();
        let decoded = self
            .decoder
            .decode_page(&response.body, &path)
            .map_err(|e| e.with_context("url", &response.url))?;
        if !decoded.records_found && !self.config.records_may_be_absent {
            return Err(
                Error::invalid_input("the response has no records at the records path")
                    .with_context("records_path", &self.config.records_path)
                    .with_context("url", &response.url),
            );
        }
        let received = Received {
            fields: &decoded.fields,
            headers: &response.headers,
            count: decoded.rows.len() as u64,
            last: decoded.rows.last().map(|r| r.cursor_key(&self.schema)),
            records_path: &self.records_path,
            url: &response.url,
        };
        let next = paginator.next(&vars, &received)?;
        let total = match &self.config.total_field {
            Some(f) => lookup(&decoded.fields, f, &self.records_path).and_then(|v| v.as_u64()),
            None => None,
        };
        Ok(Fetched {
            rows: decoded.rows,
            next,
            total,
        })
    }

    /// Remembers `next` as reached from `from`; the same token reached from another page is
    /// a cycle.
    fn guard(&self, from: &PageSelector, next: &Option<PageSelector>) -> Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let from = match from {
            PageSelector::First => {
                seen.clear();
                0
            }
            PageSelector::Token(t) => hash_of(t),
            _ => return Ok(()),
        };
        let Some(PageSelector::Token(next)) = next else {
            return Ok(());
        };
        let h = hash_of(next);
        if seen.len() >= LOOP_GUARD_TOKENS {
            seen.clear();
        }
        match seen.insert(h, from) {
            Some(earlier) if earlier != from => Err(Error::new(
                ErrorKind::Remote,
                "pagination loops: the api returned a continuation it returned before",
            )
            .with_context("stream", &self.config.name)),
            _ => Ok(()),
        }
    }

    /// Keeps the rows within `[since, until]` (and after an open lower bound). A record
    /// without a cursor value passes: the strategy decides what to do with it.
    fn within(
        &self,
        rows: Vec<Row>,
        since: Option<&Value>,
        open: bool,
        until: Option<&Value>,
    ) -> Vec<Row> {
        let Some(c) = self.cursor_col else {
            return rows;
        };
        if since.is_none() && until.is_none() {
            return rows;
        }
        rows.into_iter()
            .filter(|r| {
                let v = r.get(c);
                v.is_null()
                    || (since.map_or(true, |s| match v.compare(s) {
                        Some(std::cmp::Ordering::Greater) => true,
                        Some(std::cmp::Ordering::Equal) => !open,
                        _ => false,
                    }) && until.map_or(true, |u| v.compare(u).is_some_and(|o| o.is_le())))
            })
            .collect()
    }

    /// True when an ordered page already went past `until`: no later page can be in range.
    fn past(&self, rows: &[Row], until: Option<&Value>) -> bool {
        let (Some(c), Some(u)) = (self.cursor_col, until) else {
            return false;
        };
        self.config.ordering == SourceOrdering::ByCursorThenKey
            && rows
                .last()
                .is_some_and(|r| r.get(c).compare(u) == Some(std::cmp::Ordering::Greater))
    }

    async fn fetch_windowed(&self, req: &PageRequest, w: &TimeWindowConfig) -> Result<Page> {
        let ts = |v: Option<&Vec<Value>>| match v.and_then(|v| v.first()) {
            Some(Value::Timestamp(t)) => Ok(Some(*t)),
            None => Ok(None),
            Some(other) => Err(
                Error::invalid_input("a time window bound must be a timestamp")
                    .with_context("bound", other),
            ),
        };
        let mut slice = match &req.selector {
            PageSelector::First => w.first(
                ts(req.since.as_ref())?,
                ts(req.until.as_ref())?.unwrap_or_else(Utc::now),
            ),
            PageSelector::Token(t) => Slice::from_token(t)?,
            other => {
                return Err(
                    Error::invalid_input("the page selector does not fit a time window")
                        .with_context("selector", format_args!("{other:?}")),
                )
            }
        };
        loop {
            let (lo, hi) = (Value::Timestamp(slice.lo), Value::Timestamp(slice.hi));
            let got = self
                .fetch_one(
                    &w.inner,
                    &slice.inner_selector(),
                    req.limit,
                    Some(&lo),
                    Some(&hi),
                )
                .await?;
            if !slice.checked {
                if let Some(half) = w.bisect(&slice, got.total) {
                    tracing::debug!(stream = %self.config.name, lo = %slice.lo, hi = %half.hi, total = got.total, "bisecting a time window");
                    slice = half;
                    continue;
                }
                if got.total.zip(w.max_records).is_some_and(|(t, m)| t > m) {
                    tracing::warn!(stream = %self.config.name, lo = %slice.lo, hi = %slice.hi, "a minimal time window still holds more records than the api pages consistently");
                }
                slice.checked = true;
            }
            let next = match got.next {
                Some(inner) => Some(
                    Slice {
                        inner: Some(inner),
                        ..slice.clone()
                    }
                    .to_selector(),
                ),
                None => w.after(&slice).map(|s| s.to_selector()),
            };
            let rows = self.within(got.rows, Some(&lo), slice.open_lo, Some(&hi));
            let since = req.since.as_ref().and_then(|s| s.first());
            let until = req.until.as_ref().and_then(|u| u.first());
            let rows = self.within(rows, since, false, until);
            self.guard(&req.selector, &next)?;
            return Ok(Page {
                rows,
                next,
                total: None,
            });
        }
    }

    /// A next link without the credential parameter.
    fn scrub(&self, next: Option<PageSelector>) -> Option<PageSelector> {
        match (next, &self.secret_param, &self.config.paginator) {
            (Some(PageSelector::Token(link)), Some(param), PaginatorConfig::NextLink { .. }) => {
                Some(PageSelector::Token(strip_query_param(&link, param)))
            }
            (next, _, _) => next,
        }
    }
}

/// `url` without the query parameter `name`.
fn strip_query_param(link: &str, name: &str) -> String {
    let Ok(mut url) = url::Url::parse(link) else {
        return link.to_owned();
    };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url.into()
}

/// A fetched page before the bounds are applied.
struct Fetched {
    rows: Vec<Row>,
    next: Option<PageSelector>,
    total: Option<u64>,
}

#[async_trait]
impl Source for RestSource {
    fn name(&self) -> &str {
        "rest"
    }

    fn capabilities(&self) -> SourceCapabilities {
        let mut strategies = vec![StrategyKind::Full];
        if self.cursor_col.is_some() {
            strategies.push(StrategyKind::Incremental);
        }
        if self.config.paginator.offsets() {
            strategies.push(StrategyKind::Offset);
        }
        if self.config.lookup.is_some() {
            strategies.push(StrategyKind::SequenceWindow);
        }
        SourceCapabilities {
            strategies,
            ordering: self.config.ordering,
            max_page_size: self.config.max_page_size,
            fetch_latest: self.config.lookup.is_some(),
            keyset: self.config.paginator.keyset(),
        }
    }

    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        if stream == self.config.name {
            Ok(self.schema.clone())
        } else {
            Err(self.unknown(stream))
        }
    }

    /// The latest state of `ids` through the stream's `lookup` (see [`LookupConfig`](super::LookupConfig)):
    /// each existing id once, ids the API no longer has left out; `Unsupported` without a
    /// lookup.
    async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>> {
        if stream != self.config.name {
            return Err(self.unknown(stream));
        }
        let Some(config) = &self.config.lookup else {
            return Err(Error::unsupported(
                self.name(),
                "fetch_latest without a lookup",
            ));
        };
        Lookup {
            config,
            stream: &self.config,
            schema: &self.schema,
            decoder: &self.decoder,
            client: &self.client,
        }
        .fetch(ids)
        .await
        .map_err(|e| e.with_context("stream", &self.config.name))
    }

    async fn fetch_page(&self, req: &PageRequest) -> Result<Page> {
        if req.stream != self.config.name {
            return Err(self.unknown(&req.stream));
        }
        let result = match &self.config.paginator {
            PaginatorConfig::TimeWindow(w) => self.fetch_windowed(req, w).await,
            p => {
                let since = req.since.as_ref().and_then(|s| s.first());
                let until = req.until.as_ref().and_then(|u| u.first());
                async {
                    let got = self
                        .fetch_one(p, &req.selector, req.limit, since, until)
                        .await?;
                    let next = if self.past(&got.rows, until) {
                        None
                    } else {
                        self.scrub(got.next)
                    };
                    self.guard(&req.selector, &next)?;
                    Ok(Page {
                        rows: self.within(got.rows, since, false, until),
                        next,
                        total: got.total,
                    })
                }
                .await
            }
        };
        result.map_err(|e| e.with_context("stream", &self.config.name))
    }
}
