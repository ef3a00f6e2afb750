//! [`SquareSource`]: every Square stream as one sync-core [`Source`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sync_core::{
    Error, Page, PageRequest, Result, Row, Source, SourceCapabilities, SourceOrdering,
    StrategyKind, StreamSchema, Value,
};

use super::client::{Answer, Call, SquareClient};
use super::config::SquareConfig;
use super::model::{
    InventoryCountsResponse, ListLocationsResponse, ListPaymentsResponse, SearchCatalogResponse,
    SearchOrdersResponse, SearchVendorsResponse,
};
use super::orders::{child_rows, fill_missing_ids};
use super::request::{
    bound, catalog_body, inventory_body, newest, orders_body, payments_query, Token,
};
use super::streams::{CatalogStream, OrderStream, Stream, Tables, STREAMS};
use super::table::{dedupe, within};
use crate::http::{Auth, HttpClient};

/// Location ids per SearchOrders request (the API's maximum).
const ORDER_LOCATIONS_PER_REQUEST: usize = 10;

/// Every Square stream (see the [module docs](super) for the list, keys and strategies) as
/// one [`Source`].
///
/// One value serves all fifteen streams: they share one capability set (full and
/// incremental strategies, unordered pages, opaque cursors), so a pipeline builds one
/// `SquareSource` and runs a strategy per stream over it. `locations` and `vendors` have no
/// cursor column: the incremental strategy refuses them with a `Config` error when it
/// starts, and the full strategy is the one to use.
///
/// The source does not retry: the strategies call it under their retry policy, and every
/// failure is classified (see the [module docs](super#errors)).
pub struct SquareSource {
    config: SquareConfig,
    client: SquareClient,
    tables: Tables,
}

impl std::fmt::Debug for SquareSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SquareSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The rows of a page and what comes after it.
type Fetched = (Vec<Row>, Option<Token>);

impl SquareSource {
    /// A source with its own HTTP client (bearer token, rate limit from the config).
    /// Validates the config; does no I/O.
    pub fn new(config: SquareConfig) -> Result<SquareSource> {
        config.validate()?;
        let http = HttpClient::new(config.http.clone())?.with_rate_limit(config.rate_limit)?;
        Self::with_http_client(config, http)
    }

    /// A source over `http` (to share its pool and rate limit); the config's token replaces
    /// the client's authentication and `config.http`/`config.rate_limit` are not used.
    pub fn with_http_client(config: SquareConfig, http: HttpClient) -> Result<SquareSource> {
        config.validate()?;
        let http = http.with_auth(Auth::Bearer {
            token: config.access_token.clone(),
        });
        Ok(SquareSource {
            client: SquareClient::new(&config, http),
            tables: Tables::new()?,
            config,
        })
    }

    /// The names of the streams this source serves.
    pub fn streams() -> &'static [&'static str] {
        &STREAMS
    }

    /// The config.
    pub fn config(&self) -> &SquareConfig {
        &self.config
    }

    /// Health check: lists the locations (one request), which needs a valid token.
    pub async fn check(&self) -> Result<()> {
        self.locations_page("locations").await.map(|_| ())
    }

    /// The configured locations, or every location ListLocations returns, with the
    /// server's clock when it answered (`None` when configured).
    async fn locations(&self, stream: &str) -> Result<(Vec<String>, Option<DateTime<Utc>>)> {
        if let Some(ids) = &self.config.location_ids {
            return Ok((ids.clone(), None));
        }
        let call = Call {
            stream,
            endpoint: Stream::Locations.endpoint(),
            page: "locations",
        };
        let answer: Answer<ListLocationsResponse> =
            self.client.get(call, "/v2/locations", Vec::new()).await?;
        let ids = answer.body.locations.into_iter().map(|l| l.id).collect();
        Ok((ids, answer.date))
    }

    fn call<'a>(&self, stream: &'a str, kind: Stream, token: &Token) -> Call<'a> {
        Call {
            stream,
            endpoint: kind.endpoint(),
            page: if token.cursor.is_some() || token.group > 0 {
                "next"
            } else {
                "first"
            },
        }
    }

    /// Fails when Square hands back the cursor it was given: the read would never end.
    fn advancing(call: Call<'_>, sent: &Option<String>, got: &Option<String>) -> Result<()> {
        if got.is_some() && got == sent {
            return Err(Error::new(
                sync_core::ErrorKind::Remote,
                "square returned the cursor it was sent: the read would not end",
            )
            .with_context("connector", "square")
            .with_context("stream", call.stream)
            .with_context("endpoint", call.endpoint));
        }
        Ok(())
    }

    async fn locations_page(&self, name: &str) -> Result<Fetched> {
        let call = Call {
            stream: name,
            endpoint: Stream::Locations.endpoint(),
            page: "first",
        };
        let answer: Answer<ListLocationsResponse> =
            self.client.get(call, "/v2/locations", Vec::new()).await?;
        let table = &self.tables.locations;
        Ok((
            answer
                .body
                .locations
                .iter()
                .map(|l| table.row(l, &()))
                .collect(),
            None,
        ))
    }

    async fn catalog_page(
        &self,
        name: &str,
        kind: CatalogStream,
        token: Token,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Fetched> {
        let call = self.call(name, Stream::Catalog(kind), &token);
        let mut body = catalog_body(kind, since, limit);
        if let Some(cursor) = &token.cursor {
            body["cursor"] = json!(cursor);
        }
        let answer: Answer<SearchCatalogResponse> =
            self.client.post(call, "/v2/catalog/search", &body).await?;
        Self::advancing(call, &token.cursor, &answer.body.cursor)?;
        let t = &self.tables.catalog;
        let mut rows = Vec::with_capacity(answer.body.objects.len());
        let wanted = kind.object_type();
        for object in answer.body.objects.iter().filter(|o| o.kind == wanted) {
            match kind {
                CatalogStream::Categories => rows.push(t.categories.row(object, &())),
                CatalogStream::Items => rows.push(t.items.row(object, &())),
                CatalogStream::Variations => rows.push(t.variations.row(object, &())),
                CatalogStream::LocationAvailability => rows.extend(t.availability_rows(object)),
                CatalogStream::VendorInfo => rows.push(t.vendor_info.row(object, &())),
            }
        }
        let next = answer.body.cursor.map(|cursor| Token {
            cursor: Some(cursor),
            ..Token::default()
        });
        Ok((rows, next))
    }

    async fn inventory_page(
        &self,
        name: &str,
        token: Token,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Fetched> {
        let call = self.call(name, Stream::InventoryCounts, &token);
        let mut body = inventory_body(self.config.location_ids.as_deref(), since, limit);
        if let Some(cursor) = &token.cursor {
            body["cursor"] = json!(cursor);
        }
        let answer: Answer<InventoryCountsResponse> = self
            .client
            .post(call, "/v2/inventory/counts/batch-retrieve", &body)
            .await?;
        Self::advancing(call, &token.cursor, &answer.body.cursor)?;
        let table = &self.tables.inventory_counts;
        let rows = answer
            .body
            .counts
            .iter()
            .map(|c| table.row(c, &()))
            .collect();
        let next = answer.body.cursor.map(|cursor| Token {
            cursor: Some(cursor),
            ..Token::default()
        });
        Ok((rows, next))
    }

    #[allow(clippy::too_many_arguments)]
    async fn orders_page(
        &self,
        name: &str,
        kind: OrderStream,
        mut token: Token,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Fetched> {
        let locations = match token.locations.take() {
            Some(l) => l,
            None => self.locations(name).await?.0,
        };
        let groups: Vec<&[String]> = locations.chunks(ORDER_LOCATIONS_PER_REQUEST).collect();
        if groups.is_empty() {
            return Ok((Vec::new(), None));
        }
        let call = self.call(name, Stream::Orders(kind), &token);
        let group = *groups.get(token.group).ok_or_else(|| {
            Error::invalid_input("a square page token names a location group that does not exist")
                .with_context("stream", name)
        })?;
        let mut body = orders_body(group, since, until, true, limit);
        if let Some(cursor) = &token.cursor {
            body["cursor"] = json!(cursor);
        }
        let answer: Answer<SearchOrdersResponse> =
            self.client.post(call, "/v2/orders/search", &body).await?;
        Self::advancing(call, &token.cursor, &answer.body.cursor)?;
        let t = &self.tables.orders;
        let mut rows = Vec::new();
        for mut order in answer.body.orders {
            fill_missing_ids(&mut order);
            match kind {
                OrderStream::Orders => rows.push(t.orders.row(&order, &())),
                OrderStream::LineItems => {
                    rows.extend(child_rows(&t.line_items, &order, &order.line_items))
                }
                OrderStream::Fulfillments => {
                    rows.extend(child_rows(&t.fulfillments, &order, &order.fulfillments))
                }
                OrderStream::Refunds => rows.extend(child_rows(&t.refunds, &order, &order.refunds)),
                OrderStream::Returns => rows.extend(child_rows(&t.returns, &order, &order.returns)),
                OrderStream::Tenders => rows.extend(child_rows(&t.tenders, &order, &order.tenders)),
            }
        }
        let next = match answer.body.cursor {
            Some(cursor) => Some((token.group, Some(cursor))),
            None if token.group + 1 < groups.len() => Some((token.group + 1, None)),
            None => None,
        };
        let next = next.map(|(group, cursor)| Token {
            locations: Some(locations.clone()),
            group,
            cursor,
        });
        Ok((rows, next))
    }

    async fn payments_page(
        &self,
        name: &str,
        mut token: Token,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Fetched> {
        let locations = match token.locations.take() {
            Some(l) => l,
            None => self.locations(name).await?.0,
        };
        if locations.is_empty() {
            return Ok((Vec::new(), None));
        }
        let call = self.call(name, Stream::Payments, &token);
        let location = locations.get(token.group).ok_or_else(|| {
            Error::invalid_input("a square page token names a location that does not exist")
                .with_context("stream", name)
        })?;
        let mut query = payments_query(
            self.config.payments_created_since,
            location,
            since,
            until,
            true,
            limit,
        );
        if let Some(cursor) = &token.cursor {
            query.push(("cursor".to_owned(), cursor.clone()));
        }
        let answer: Answer<ListPaymentsResponse> =
            self.client.get(call, "/v2/payments", query).await?;
        // An empty cursor also ends the list.
        let got = answer.body.cursor.filter(|c| !c.is_empty());
        Self::advancing(call, &token.cursor, &got)?;
        let table = &self.tables.payments;
        let rows = answer
            .body
            .payments
            .iter()
            .map(|p| table.row(p, &()))
            .collect();
        let next = match got {
            Some(cursor) => Some((token.group, Some(cursor))),
            None if token.group + 1 < locations.len() => Some((token.group + 1, None)),
            None => None,
        };
        let next = next.map(|(group, cursor)| Token {
            locations: Some(locations.clone()),
            group,
            cursor,
        });
        Ok((rows, next))
    }

    async fn vendors_page(&self, name: &str, token: Token) -> Result<Fetched> {
        let call = self.call(name, Stream::Vendors, &token);
        let mut body = json!({"sort": {"field": "CREATED_AT", "order": "ASC"}});
        if let Some(cursor) = &token.cursor {
            body["cursor"] = json!(cursor);
        }
        let answer: Answer<SearchVendorsResponse> =
            self.client.post(call, "/v2/vendors/search", &body).await?;
        Self::advancing(call, &token.cursor, &answer.body.cursor)?;
        let table = &self.tables.vendors;
        let rows = answer
            .body
            .vendors
            .iter()
            .map(|v| table.row(v, &()))
            .collect();
        let next = answer.body.cursor.map(|cursor| Token {
            cursor: Some(cursor),
            ..Token::default()
        });
        Ok((rows, next))
    }

    /// The server's notion of "now" for a stream's cursor, under the config's retry policy
    /// (the strategies call `high_watermark` once, without retrying).
    async fn watermark(&self, name: &str, stream: Stream) -> Result<Option<DateTime<Utc>>> {
        self.config
            .retry
            .run(
                || self.watermark_once(name, stream),
                |attempt, delay, error| {
                    tracing::warn!(stream = name, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying the square watermark probe");
                },
            )
            .await
    }

    async fn watermark_once(&self, name: &str, stream: Stream) -> Result<Option<DateTime<Utc>>> {
        let call = Call {
            stream: name,
            endpoint: stream.endpoint(),
            page: "watermark",
        };
        match stream {
            Stream::Locations | Stream::Vendors => Ok(None),
            Stream::Catalog(kind) => {
                let body = catalog_body(kind, None, 1);
                let answer: Answer<SearchCatalogResponse> =
                    self.client.post(call, "/v2/catalog/search", &body).await?;
                Ok(answer.body.latest_time.or(answer.date))
            }
            Stream::InventoryCounts => {
                let body = inventory_body(self.config.location_ids.as_deref(), None, 1);
                let answer: Answer<InventoryCountsResponse> = self
                    .client
                    .post(call, "/v2/inventory/counts/batch-retrieve", &body)
                    .await?;
                // Newest first: the first count is the latest change.
                let record = answer.body.counts.first().and_then(|c| c.calculated_at);
                Ok(newest(answer.date, record))
            }
            Stream::Orders(_) => {
                let (locations, listed_at) = self.locations(name).await?;
                let Some(group) = locations.chunks(ORDER_LOCATIONS_PER_REQUEST).next() else {
                    return Ok(listed_at);
                };
                let body = orders_body(group, None, None, false, 1);
                let answer: Answer<SearchOrdersResponse> =
                    self.client.post(call, "/v2/orders/search", &body).await?;
                let record = answer.body.orders.first().and_then(|o| o.updated_at);
                Ok(newest(answer.date, record))
            }
            Stream::Payments => {
                let (locations, listed_at) = self.locations(name).await?;
                let Some(location) = locations.first() else {
                    return Ok(listed_at);
                };
                let query = payments_query(
                    self.config.payments_created_since,
                    location,
                    None,
                    None,
                    false,
                    1,
                );
                let answer: Answer<ListPaymentsResponse> =
                    self.client.get(call, "/v2/payments", query).await?;
                let record = answer.body.payments.first().and_then(|p| p.updated_at);
                Ok(newest(answer.date, record))
            }
        }
    }
}

#[async_trait]
impl Source for SquareSource {
    fn name(&self) -> &str {
        "square"
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            strategies: vec![StrategyKind::Full, StrategyKind::Incremental],
            // Square sorts orders and payments by `updated_at` only, ties in no promised
            // order, and the catalog and inventory not by key at all.
            ordering: SourceOrdering::Unordered,
            max_page_size: Some(1000),
            fetch_latest: false,
            keyset: false,
        }
    }

    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        Ok(self.tables.schema(Stream::named(stream)?).clone())
    }

    async fn fetch_page(&self, req: &PageRequest) -> Result<Page> {
        let name = req.stream.as_str();
        let stream = Stream::named(name)?;
        let context = |e: Error| e.with_context("stream", name);
        let token = Token::of(&req.selector).map_err(context)?;
        let since = bound(req.since.as_ref(), "since").map_err(context)?;
        let until = bound(req.until.as_ref(), "until").map_err(context)?;
        let limit = req.limit;
        let (rows, next) = match stream {
            Stream::Locations => self.locations_page(name).await?,
            Stream::Catalog(kind) => self.catalog_page(name, kind, token, since, limit).await?,
            Stream::InventoryCounts => self.inventory_page(name, token, since, limit).await?,
            Stream::Orders(kind) => {
                self.orders_page(name, kind, token, since, until, limit)
                    .await?
            }
            Stream::Payments => self.payments_page(name, token, since, until, limit).await?,
            Stream::Vendors => self.vendors_page(name, token).await?,
        };
        let schema = self.tables.schema(stream);
        let since = since.map(Value::Timestamp);
        let until = until.map(Value::Timestamp);
        let rows = within(schema, rows, since.as_ref(), until.as_ref());
        Ok(Page {
            rows: dedupe(schema, rows),
            next: next.map(|t| t.selector()).transpose()?,
            total: None,
        })
    }

    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        let kind = Stream::named(stream)?;
        let mark = self.watermark(stream, kind).await?;
        if mark.is_none() && !matches!(kind, Stream::Locations | Stream::Vendors) {
            tracing::warn!(
                stream,
                "square gave no server time; the strategy falls back to the local clock"
            );
        }
        Ok(mark.map(|t| vec![Value::Timestamp(t)]))
    }
}
