//! [`CiscoSource`]: the devices of one Control Center account as a sync-core [`Source`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sync_core::record::decode::RowDecoder;
use sync_core::{
    Error, ErrorKind, Key, Page, PageRequest, PageSelector, Result, Row, Source,
    SourceCapabilities, SourceOrdering, StrategyKind, StreamSchema, Value,
};

use super::client::{account_client, send, Requests};
use super::config::{CiscoConfig, MODIFIED_UNTIL};
use super::model::SearchEnvelope;
use super::window::{Lengths, Passes, Window, MAX_PASSES};
use crate::http::HttpClient;

/// How far back `modifiedSince` may go: the API refuses more than a year, and a margin keeps
/// a clock difference or a slow first request from crossing that line.
fn oldest_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::days(365) + Duration::hours(1)
}

/// The devices of one Control Center account (`GET devices`, Search Devices) as a source for
/// the full and incremental strategies, and Get Device Details as `fetch_latest`.
///
/// Search Devices returns no modification time, so a read covers `[since, until]` in
/// `modifiedSince`/`modifiedTill` windows, each read in a single page (a window whose first
/// page is not its last is bisected before its devices are taken: nothing can shift within a
/// one-page read), and every device gets the end of its window as the [`MODIFIED_UNTIL`]
/// cursor. The source is therefore unordered: an incremental run is one window up to the
/// local clock minus the settle lag, promoted at its end; the checkpoint never comes from a
/// device.
///
/// `modifiedSince` must lie within the last year and not in the future. A request without a
/// lower bound, or with one older than a year (less an hour of margin), fails with
/// [`ErrorKind::Unsupported`] before any call, telling to run the full sync: changes between
/// such a checkpoint and a year ago can no longer be listed, and quietly starting a year ago
/// would hide that they are lost. A lower bound in the future reads nothing.
///
/// Every answer goes through [`classify`](super::classify): error code `40000029` in an HTTP
/// 400 is a transient rate limit the strategies' retry policy backs off from. The client keeps
/// to one call at a time and five per second. The limit belongs to the account, so keep one
/// source for the life of the process (a new client starts with a fresh limit and its first
/// call may follow the old client's last ones too closely), and share its client between
/// sources of one account with [`CiscoSource::with_client`].
pub struct CiscoSource {
    config: CiscoConfig,
    schema: Arc<StreamSchema>,
    decoder: RowDecoder,
    requests: Requests,
    client: HttpClient,
    cursor_col: usize,
    date_updated_col: usize,
    lengths: Lengths,
}

impl std::fmt::Debug for CiscoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiscoSource")
            .field("config", &self.config)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl CiscoSource {
    /// A source with the account's own client (Basic auth, the configured rate limit).
    /// Validates; does no I/O.
    pub fn new(config: CiscoConfig) -> Result<Self> {
        config.validate()?;
        let client = account_client(&config)?;
        Self::with_client(config, client)
    }

    /// A source over `client` as it is (its auth and rate limit), so streams of one account
    /// share one limit.
    pub fn with_client(config: CiscoConfig, client: HttpClient) -> Result<Self> {
        config.validate()?;
        let schema = Arc::new(config.schema()?);
        let col = |name: &str| {
            schema
                .column_index(name)
                .ok_or_else(|| Error::internal("a cisco column is missing"))
        };
        Ok(CiscoSource {
            requests: Requests::new(&config),
            decoder: RowDecoder::new(schema.clone()),
            cursor_col: col(MODIFIED_UNTIL)?,
            date_updated_col: col("date_updated")?,
            lengths: Lengths {
                longest: config.slice_ms,
                shortest: config.min_slice_ms,
            },
            schema,
            client,
            config,
        })
    }

    /// The config.
    pub fn config(&self) -> &CiscoConfig {
        &self.config
    }

    /// The client requests go through.
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// The health check: one Search Devices call for the last hour, so credentials, URL,
    /// account and filters are tried (within the account's rate limit).
    pub async fn check(&self) -> Result<()> {
        let now = Utc::now();
        let window = Window::first(now - Duration::hours(1), now, self.lengths);
        let request = self.requests.search(&window)?;
        let response = send(&self.client, &request)
            .await
            .map_err(|e| at(e, &window))?;
        let decoded = self
            .decoder
            .decode_page(&response.body, &["devices"])
            .map_err(|e| at(e, &window))?;
        SearchEnvelope::read(&decoded.fields, 1)
            .map(|_| ())
            .map_err(|e| at(e, &window))
    }

    fn unknown(&self, stream: &str) -> Error {
        Error::new(ErrorKind::NotFound, "unknown stream")
            .with_context("stream", stream)
            .with_context("connector", "cisco")
    }

    /// The first window of a read, or `None` when `[since, until]` is empty.
    fn start(&self, req: &PageRequest, now: DateTime<Utc>) -> Result<Option<Window>> {
        let bound = |b: &Option<Vec<Value>>| match b.as_ref().and_then(|v| v.first()) {
            None => Ok(None),
            Some(Value::Timestamp(t)) => Ok(Some(*t)),
            Some(other) => Err(Error::invalid_input("a cisco bound must be a timestamp")
                .with_context("bound", other)),
        };
        let oldest = oldest_since(now);
        let since = bound(&req.since)?.ok_or_else(|| {
            Error::unsupported(
                "cisco",
                "a read without a lower bound (devices can be listed for the last year only; \
                 run the full sync, whose window sets one)",
            )
        })?;
        if since < oldest {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "the checkpoint is older than the year control center lists changes for: \
                 run the full sync to start again (changes before it cannot be listed)",
            )
            .with_context("connector", "cisco")
            .with_context("since", Value::Timestamp(since))
            .with_context("oldest", Value::Timestamp(oldest)));
        }
        let end = bound(&req.until)?.map_or(now, |u| u.min(now));
        Ok((since < end).then(|| Window::first(since, end, self.lengths)))
    }

    async fn search(&self, window: &mut Window) -> Result<Page> {
        loop {
            let request = self.requests.search(window)?;
            let response = send(&self.client, &request)
                .await
                .map_err(|e| at(e, window))?;
            let decoded = self
                .decoder
                .decode_page(&response.body, &["devices"])
                .map_err(|e| at(e, window))?;
            if !decoded.records_found {
                return Err(at(
                    Error::invalid_input("the cisco search answer has no devices"),
                    window,
                ));
            }
            let envelope =
                SearchEnvelope::read(&decoded.fields, window.page).map_err(|e| at(e, window))?;
            let last = envelope.last_page || decoded.rows.is_empty();
            if window.page == 1 && window.passes.is_none() && !last {
                if let Some(half) = window.bisect(self.lengths) {
                    tracing::debug!(lo = %window.lo, hi = %half.hi, "cisco window holds more than a page; bisecting");
                    *window = half;
                    continue;
                }
                tracing::warn!(lo = %window.lo, hi = %window.hi, "a cisco window of the shortest length holds more than a page; reading it in passes");
                window.passes = Some(Passes {
                    pass: 1,
                    ..Passes::default()
                });
            }
            let mut rows = decoded.rows;
            for row in &mut rows {
                row.values_mut()[self.cursor_col] = Value::Timestamp(window.hi);
            }
            let next = self.next(window, &rows, last)?;
            return Ok(Page {
                rows,
                next: next.map(|w| w.to_selector()),
                total: None,
            });
        }
    }

    /// The window (or page of it) after `window`, whose page held `rows`.
    fn next(&self, window: &Window, rows: &[Row], last: bool) -> Result<Option<Window>> {
        let Some(mut passes) = window.passes.clone() else {
            return Ok(window.after(self.lengths));
        };
        passes.add(rows.iter().filter_map(|r| r.get(0).as_str()));
        if !last {
            return Ok(Some(Window {
                page: window.page + 1,
                passes: Some(passes),
                ..window.clone()
            }));
        }
        if passes.finish() {
            return Ok(window.after(self.lengths));
        }
        if passes.pass > MAX_PASSES {
            return Err(at(
                Error::new(
                    ErrorKind::Drift,
                    "devices kept changing while a dense window was read: no two passes agreed",
                )
                .with_context("passes", MAX_PASSES),
                window,
            ));
        }
        Ok(Some(Window {
            page: 1,
            passes: Some(passes),
            ..window.clone()
        }))
    }

    /// The details of one device, or `None` when Control Center does not know it.
    async fn details(&self, iccid: &str) -> Result<Option<Row>> {
        let context = |e: Error| {
            e.with_context("connector", "cisco")
                .with_context("endpoint", "devices/{iccid}")
                .with_context("iccid", iccid)
        };
        let response = match send(&self.client, &self.requests.details(iccid)).await {
            Ok(r) => r,
            Err(e) if e.context_value("status") == Some("404") => return Ok(None),
            Err(e) => return Err(context(e)),
        };
        let mut row = self.decoder.decode_row(&response.body).map_err(context)?;
        match row.get(0) {
            Value::Text(got) if &**got == iccid => {}
            Value::Null => row.values_mut()[0] = Value::from(iccid),
            other => {
                return Err(context(
                    Error::invalid_input("the details are of another device")
                        .with_context("got", other),
                ))
            }
        }
        let observed = match row.get(self.date_updated_col) {
            Value::Timestamp(t) => *t,
            _ => Utc::now(),
        };
        row.values_mut()[self.cursor_col] = Value::Timestamp(observed);
        Ok(Some(row))
    }
}

/// `e` with the connector, endpoint, window and page.
fn at(e: Error, w: &Window) -> Error {
    e.with_context("connector", "cisco")
        .with_context("endpoint", "devices")
        .with_context(
            "window",
            format_args!("{}..{}", w.lo.to_rfc3339(), w.hi.to_rfc3339()),
        )
        .with_context("page", w.page)
}

#[async_trait]
impl Source for CiscoSource {
    fn name(&self) -> &str {
        "cisco"
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            strategies: vec![StrategyKind::Full, StrategyKind::Incremental],
            ordering: SourceOrdering::Unordered,
            max_page_size: Some(self.config.page_size),
            fetch_latest: true,
            keyset: false,
        }
    }

    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        if stream == self.config.stream {
            Ok(self.schema.clone())
        } else {
            Err(self.unknown(stream))
        }
    }

    async fn fetch_page(&self, req: &PageRequest) -> Result<Page> {
        if req.stream != self.config.stream {
            return Err(self.unknown(&req.stream));
        }
        let mut window = match &req.selector {
            PageSelector::First => match self.start(req, Utc::now())? {
                Some(w) => w,
                None => return Ok(Page::default()),
            },
            PageSelector::Token(t) => Window::from_token(t)?,
            other => {
                return Err(Error::invalid_input("cisco pages by window tokens")
                    .with_context("selector", format_args!("{other:?}")))
            }
        };
        self.search(&mut window).await
    }

    /// Get Device Details for each ICCID (one call each, within the account's rate limit);
    /// an unknown ICCID (404) is left out. `date_updated` comes from `dateUpdated`
    /// (`2016-07-06 22:04:04.380+0000`), and so does the cursor.
    async fn fetch_latest(&self, stream: &str, ids: &[Key]) -> Result<Vec<Row>> {
        if stream != self.config.stream {
            return Err(self.unknown(stream));
        }
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(Value::Text(iccid)) = id.0.first().filter(|_| id.0.len() == 1) else {
                return Err(Error::invalid_input("a cisco id is one iccid").with_context("id", id));
            };
            rows.extend(self.details(iccid).await?);
        }
        Ok(rows)
    }
}
