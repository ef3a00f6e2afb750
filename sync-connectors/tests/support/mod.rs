//! A loopback fake of a paginated JSON API (the shape of `shared/bench`'s fake API) and
//! helpers for the REST source tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use serde_json::json;
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::{
    CursorConfig, CursorFormat, OffsetStop, PaginatorConfig, RestSource, RestStreamConfig,
};
use sync_core::{
    Column, ColumnType, Page, PageRequest, PageSelector, Row, Source, SourceOrdering, Value,
};
use wiremock::{Request, ResponseTemplate};

/// One record of the fake API.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub updated_ms: i64,
    pub version: i64,
}

impl Item {
    pub fn json(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "updated_at": ts(self.updated_ms),
            "version": self.version,
            "name": format!("item {} v{}", self.id, self.version),
            "price": format!("{}.{:02}", self.version * 3, self.updated_ms % 100).parse::<f64>().unwrap(),
            "payload": {"tags": ["a", "b"], "v": self.version},
        })
    }
}

/// `2024-01-01T00:00:00Z` plus `ms`, as the fake API writes it.
pub fn ts(ms: i64) -> String {
    let t0: chrono::DateTime<chrono::Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    (t0 + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The records of a fake API, shared with its responder so tests can change them.
#[derive(Debug, Clone, Default)]
pub struct Items(pub Arc<Mutex<Vec<Item>>>);

impl Items {
    pub fn new(n: usize) -> Items {
        Items(Arc::new(Mutex::new(
            (0..n)
                .map(|i| Item {
                    id: format!("itm-{i:05}"),
                    updated_ms: i as i64,
                    version: 1,
                })
                .collect(),
        )))
    }

    /// Every `stride`-th record changes: a new version, moved past every other record.
    pub fn mutate(&self, stride: usize) -> usize {
        let mut items = self.0.lock().unwrap();
        let top = items.iter().map(|i| i.updated_ms).max().unwrap_or(0);
        let mut changed = 0;
        for (n, item) in items
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| i % stride == 0)
        {
            item.version += 1;
            item.updated_ms = top + 1000 + n as i64;
            changed += 1;
        }
        changed
    }

    /// Records matching `updated_since` (inclusive), in (updated_at, id) order.
    pub fn matching(&self, since_ms: Option<i64>) -> Vec<Item> {
        let mut v: Vec<Item> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|i| since_ms.map_or(true, |s| i.updated_ms >= s))
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.updated_ms, &a.id).cmp(&(b.updated_ms, &b.id)));
        v
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A query parameter of a request.
pub fn param(req: &Request, name: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Milliseconds after the fake API's epoch of an RFC 3339 parameter.
pub fn since_ms(req: &Request) -> Option<i64> {
    let t0: chrono::DateTime<chrono::Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    param(req, "updated_since").map(|s| {
        let t: chrono::DateTime<chrono::Utc> = s.parse().expect("rfc 3339 updated_since");
        (t - t0).num_milliseconds()
    })
}

/// The bench fake API's `/items`: offset paging, `updated_since` inclusive, `has_more`,
/// `total`, `count`, `next_offset`; `clamp` caps the page size silently.
pub fn offset_responder(
    items: Items,
    clamp: usize,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |req: &Request| {
        let matching = items.matching(since_ms(req));
        let offset: usize = param(req, "offset").map_or(0, |o| o.parse().unwrap());
        let limit: usize = param(req, "limit").map_or(100, |l| l.parse().unwrap());
        let limit = limit.min(clamp);
        let page: Vec<serde_json::Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(Item::json)
            .collect();
        let end = offset + page.len();
        let more = end < matching.len();
        ResponseTemplate::new(200).set_body_json(json!({
            "items": page,
            "total": matching.len(),
            "offset": offset,
            "limit": limit,
            "count": page.len(),
            "has_more": more,
            "next_offset": if more { json!(end) } else { json!(null) },
        }))
    }
}

/// The bench record's columns.
pub fn columns() -> Vec<Column> {
    vec![
        Column::required("id", ColumnType::Text),
        Column::required("updated_at", ColumnType::Timestamp),
        Column::required("version", ColumnType::Integer),
        Column::new("name", ColumnType::Text),
        Column::new(
            "price",
            ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
        ),
        Column::new("payload", ColumnType::Json),
    ]
}

/// The stream config of the fake API's `/items` with offset paging stopped by `has_more`.
pub fn items_stream(base: &str) -> RestStreamConfig {
    let mut s = RestStreamConfig::new("items", base, "/items")
        .with_records_path("items")
        .with_primary_key(["id"])
        .with_version("version")
        .with_total_field("total")
        .with_ordering(SourceOrdering::ByCursorThenKey)
        .with_cursor(CursorConfig {
            field: "updated_at".into(),
            param: Some("updated_since".into()),
            until_param: None,
            format: CursorFormat::Rfc3339Millis,
            inclusive: true,
            until_inclusive: true,
        })
        .with_paginator(PaginatorConfig::Offset {
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            stop: OffsetStop::HasMore("has_more".into()),
        });
    for c in columns() {
        s = s.with_column(c);
    }
    s
}

/// A client with short timeouts for tests.
pub fn client() -> HttpClient {
    HttpClient::new(HttpConfig {
        total_timeout_ms: Some(10_000),
        ..HttpConfig::default()
    })
    .unwrap()
}

/// A source over `config`.
pub fn source(config: RestStreamConfig) -> RestSource {
    RestSource::new(config, client()).unwrap()
}

/// A request for a page of `stream`.
pub fn request(selector: PageSelector, limit: u32) -> PageRequest {
    PageRequest {
        stream: "items".into(),
        selector,
        since: None,
        until: None,
        limit,
    }
}

/// Follows `next` from the first page to the last (at most 1,000 pages); the pages read.
pub async fn read_all(source: &RestSource, limit: u32) -> sync_core::Result<Vec<Page>> {
    let mut pages = Vec::new();
    let mut selector = Some(PageSelector::First);
    while let Some(s) = selector.take() {
        assert!(pages.len() < 1000, "a read that never ends");
        let page = source.fetch_page(&request(s, limit)).await?;
        selector = page.next.clone();
        pages.push(page);
    }
    Ok(pages)
}

/// The ids of the rows of `pages`, in order.
pub fn ids(pages: &[Page]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.rows.iter())
        .map(id_of)
        .collect()
}

pub fn id_of(row: &Row) -> String {
    match row.get(0) {
        Value::Text(s) => s.to_string(),
        other => panic!("an id is text, not {other:?}"),
    }
}

/// `itm-00000` .. for `range`.
pub fn expected_ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("itm-{i:05}")).collect()
}
