//! [`OracleSource`]: one Oracle Fusion collection resource as a sync-core [`Source`].

use std::cmp::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use sync_core::record::decode::RowDecoder;
use sync_core::{
    CursorKey, Error, ErrorKind, Page, PageRequest, PageSelector, Result, Row, Source,
    SourceCapabilities, SourceOrdering, StrategyKind, StreamSchema, Value,
};

use super::client::{send, Requests};
use super::config::{OracleConfig, OracleMode};
use super::model::Envelope;
use crate::http::HttpClient;

/// One Oracle Fusion Cloud REST collection (`accounts`, `opportunities`, ...) as a source.
///
/// Every request is ordered by `orderBy=<LastUpdateDate>:asc,<key>:asc` (without it "the
/// order can't be determined"), asks for `onlyData=true` and the configured `fields`, and
/// filters with `q` built from the page request: the configured filter, the cursor bounds
/// (whole seconds, rounded outward; records outside the exact bounds are dropped here) and,
/// for [`PageSelector::After`], `(LastUpdateDate > T or (LastUpdateDate = T and Id > K))` with
/// `offset=0`. A page's `next` advances by the `count` the server returned (it clamps `limit`
/// silently) or, in [`OracleMode::Keyset`], after its last record; the read ends at
/// `hasMore=false` or an empty page.
///
/// A page out of `orderBy` order, a `count` that disagrees with `items`, an offset other than
/// the one asked, a missing `hasMore` or `items`, or a body that is not the collection JSON
/// is a typed error; an error response keeps its HTTP classification and carries Oracle's
/// `detail` and `error_code`, from either body format.
///
/// It does not retry: strategies call it under their retry policy.
pub struct OracleSource {
    config: OracleConfig,
    schema: Arc<StreamSchema>,
    decoder: RowDecoder,
    requests: Requests,
    client: HttpClient,
    cursor_col: usize,
}

impl std::fmt::Debug for OracleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OracleSource")
            .field("config", &self.config)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl OracleSource {
    /// A source with its own [`HttpClient`] built from the config's HTTP settings, auth and
    /// rate limit. Validates; does no I/O.
    pub fn new(config: OracleConfig) -> Result<Self> {
        config.validate()?;
        let mut client = HttpClient::new(config.http.clone())?.with_auth(config.auth.clone());
        if let Some(limit) = config.rate_limit {
            client = client.with_rate_limit(limit)?;
        }
        Self::with_client(config, client)
    }

    /// A source over `client` as it is (its auth and rate limit; the config's are not
    /// applied), so resources of one credential can share a client and its limit.
    pub fn with_client(config: OracleConfig, client: HttpClient) -> Result<Self> {
        config.validate()?;
        let schema = Arc::new(config.schema()?);
        Ok(OracleSource {
            requests: Requests::new(&config, &schema),
            decoder: RowDecoder::new(schema.clone()),
            cursor_col: schema.cursor()[0],
            schema,
            client,
            config,
        })
    }

    /// The config.
    pub fn config(&self) -> &OracleConfig {
        &self.config
    }

    /// The client requests go through.
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// The health check: one request for one record, so credentials, URL, resource, finder
    /// and filter are tried; the error says what Oracle objected to.
    pub async fn check(&self) -> Result<()> {
        let req = PageRequest {
            stream: self.config.stream_name().to_owned(),
            selector: PageSelector::First,
            since: None,
            until: None,
            limit: 1,
        };
        self.fetch_page(&req).await.map(|_| ())
    }

    fn unknown(&self, stream: &str) -> Error {
        Error::new(ErrorKind::NotFound, "unknown stream")
            .with_context("stream", stream)
            .with_context("connector", "oracle")
    }

    /// Checks the page is in (cursor, key) order, every record has a cursor value, and a
    /// keyset page starts after the key it was asked for.
    fn check_order(&self, rows: &[Row], after: Option<&CursorKey>) -> Result<()> {
        let s = &self.schema;
        for (i, row) in rows.iter().enumerate() {
            if row.get(self.cursor_col).is_null() {
                return Err(Error::invalid_input("an oracle record has no cursor value")
                    .with_context("column", &s.columns()[self.cursor_col].name)
                    .with_context("key", row.key(s)));
            }
            let in_order = match i {
                0 => true,
                _ => row.compare_cursor_key_row(&rows[i - 1], s) == Some(Ordering::Greater),
            };
            if !in_order {
                return Err(Error::new(
                    ErrorKind::Remote,
                    "the oracle page is not in orderBy order",
                )
                .with_context("key", row.key(s)));
            }
        }
        if let (Some(last), Some(after)) = (rows.last(), after) {
            if last.compare_cursor_key(s, after) != Some(Ordering::Greater) {
                return Err(Error::new(
                    ErrorKind::Remote,
                    "pagination does not advance: the page ends at or before the key asked after",
                ));
            }
        }
        Ok(())
    }

    /// Keeps the records within `[since, until]` and after `after`.
    fn within(
        &self,
        rows: Vec<Row>,
        since: Option<&Value>,
        until: Option<&Value>,
        after: Option<&CursorKey>,
    ) -> Vec<Row> {
        if since.is_none() && until.is_none() && after.is_none() {
            return rows;
        }
        let c = self.cursor_col;
        rows.into_iter()
            .filter(|r| {
                let v = r.get(c);
                since.map_or(true, |s| v.compare(s).is_some_and(Ordering::is_ge))
                    && until.map_or(true, |u| v.compare(u).is_some_and(Ordering::is_le))
                    && after.map_or(true, |a| {
                        r.compare_cursor_key(&self.schema, a) == Some(Ordering::Greater)
                    })
            })
            .collect()
    }

    async fn fetch(&self, req: &PageRequest) -> Result<Page> {
        let (offset, after) = match &req.selector {
            PageSelector::First => (0, None),
            PageSelector::Offset(n) => (*n, None),
            PageSelector::After(ck) => (0, Some(ck)),
            other => {
                return Err(
                    Error::invalid_input("oracle pages by offset or after a (cursor, key)")
                        .with_context("selector", format_args!("{other:?}")),
                )
            }
        };
        let since = req.since.as_ref().and_then(|s| s.first());
        let until = req.until.as_ref().and_then(|u| u.first());
        let q = self.requests.q(since, until, after)?;
        let limit = req.limit.clamp(1, self.config.max_page_size);
        let request = self.requests.request(offset, limit, q.as_deref());
        let response = send(&self.client, &request).await?;
        let decoded = self
            .decoder
            .decode_page(&response.body, &["items"])
            .map_err(|e| e.with_context("url", &response.url))?;
        if !decoded.records_found {
            return Err(Error::invalid_input("the oracle response has no items")
                .with_context("url", &response.url));
        }
        let count = decoded.rows.len() as u64;
        let envelope = Envelope::read(&decoded.fields, decoded.rows.len(), offset)?;
        if envelope.limit.is_some_and(|l| l < u64::from(limit)) {
            tracing::debug!(resource = %self.config.resource, asked = limit, limit = envelope.limit, "oracle clamped the page size");
        }
        self.check_order(&decoded.rows, after)?;
        let next = match (decoded.rows.last(), envelope.has_more) {
            (Some(last), true) => Some(match (&req.selector, self.config.mode) {
                (PageSelector::Offset(_), _) | (_, OracleMode::Offset) => {
                    PageSelector::Offset(offset + count)
                }
                (_, OracleMode::Keyset) => PageSelector::After(last.cursor_key(&self.schema)),
            }),
            // `hasMore=false`, or nothing more although it said so: the read is over.
            _ => None,
        };
        Ok(Page {
            rows: self.within(decoded.rows, since, until, after),
            next,
            total: envelope.total,
        })
    }
}

#[async_trait]
impl Source for OracleSource {
    fn name(&self) -> &str {
        "oracle"
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            strategies: vec![
                StrategyKind::Full,
                StrategyKind::Incremental,
                StrategyKind::Offset,
            ],
            ordering: SourceOrdering::ByCursorThenKey,
            max_page_size: Some(self.config.max_page_size),
            fetch_latest: false,
            keyset: self.config.mode == OracleMode::Keyset,
        }
    }

    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        if stream == self.config.stream_name() {
            Ok(self.schema.clone())
        } else {
            Err(self.unknown(stream))
        }
    }

    async fn fetch_page(&self, req: &PageRequest) -> Result<Page> {
        if req.stream != self.config.stream_name() {
            return Err(self.unknown(&req.stream));
        }
        self.fetch(req).await.map_err(|e| {
            e.with_context("connector", "oracle")
                .with_context("resource", &self.config.resource)
                .with_context("page", req.selector.to_position())
        })
    }
}
