//! What the source sends: the page token it hands the strategies, and the request bodies
//! and queries of each endpoint (the same bounds always give the same query, which Square
//! requires when a cursor is sent).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_core::{Error, PageSelector, Result, Value};

use super::streams::CatalogStream;

/// The continuation of a read, kept by the strategies as an opaque token: the locations the
/// read fans out over (orders, payments), the current group of them, and Square's cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Token {
    #[serde(default, rename = "l", skip_serializing_if = "Option::is_none")]
    pub(crate) locations: Option<Vec<String>>,
    #[serde(default, rename = "g")]
    pub(crate) group: usize,
    #[serde(default, rename = "c", skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<String>,
}

impl Token {
    pub(crate) fn of(selector: &PageSelector) -> Result<Token> {
        match selector {
            PageSelector::First => Ok(Token::default()),
            PageSelector::Token(t) => serde_json::from_str(t).map_err(|e| {
                Error::invalid_input("a square page token is malformed").with_source(e)
            }),
            other => Err(Error::invalid_input("square pages only by cursor")
                .with_context("selector", format_args!("{other:?}"))),
        }
    }

    pub(crate) fn selector(&self) -> Result<PageSelector> {
        let text = serde_json::to_string(self).map_err(|e| {
            Error::internal("a square page token does not serialize").with_source(e)
        })?;
        Ok(PageSelector::Token(text))
    }
}

/// RFC 3339 with milliseconds and `Z`, as Square writes timestamps.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn bound(
    values: Option<&Vec<Value>>,
    which: &'static str,
) -> Result<Option<DateTime<Utc>>> {
    match values.and_then(|v| v.first()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Timestamp(t)) => Ok(Some(*t)),
        Some(other) => Err(
            Error::invalid_input("a square cursor bound must be a timestamp")
                .with_context("bound", which)
                .with_context("value", other),
        ),
    }
}

/// The later of the server's clock and the newest record it returned.
pub(crate) fn newest(
    date: Option<DateTime<Utc>>,
    record: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (date, record) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn catalog_body(
    kind: CatalogStream,
    since: Option<DateTime<Utc>>,
    limit: u32,
) -> serde_json::Value {
    let mut body = json!({
        "object_types": [kind.object_type()],
        "include_deleted_objects": true,
        "limit": limit.clamp(1, 1000),
    });
    if let Some(since) = since {
        // `begin_time` is exclusive: one millisecond earlier covers `since` itself.
        body["begin_time"] = json!(rfc3339(since - Duration::milliseconds(1)));
    }
    body
}

pub(crate) fn inventory_body(
    locations: Option<&[String]>,
    since: Option<DateTime<Utc>>,
    limit: u32,
) -> serde_json::Value {
    let mut body = json!({ "limit": limit.clamp(1, 1000) });
    if let Some(ids) = locations {
        body["location_ids"] = json!(ids);
    }
    if let Some(since) = since {
        // Whether "after" is strict is not documented: one millisecond earlier covers both.
        body["updated_after"] = json!(rfc3339(since - Duration::milliseconds(1)));
    }
    body
}

pub(crate) fn orders_body(
    locations: &[String],
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    ascending: bool,
    limit: u32,
) -> serde_json::Value {
    // Both ends are inclusive; the sort field must be the filtered field.
    let mut range = json!({
        "start_at": rfc3339(since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
    });
    if let Some(until) = until {
        range["end_at"] = json!(rfc3339(until));
    }
    json!({
        "location_ids": locations,
        "query": {
            "filter": {"date_time_filter": {"updated_at": range}},
            "sort": {"sort_field": "UPDATED_AT", "sort_order": if ascending { "ASC" } else { "DESC" }},
        },
        "limit": limit.clamp(1, 1000),
        "return_entries": false,
    })
}

pub(crate) fn payments_query(
    created_since: DateTime<Utc>,
    location: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    ascending: bool,
    limit: u32,
) -> Vec<(String, String)> {
    let mut q = vec![
        ("location_id".to_owned(), location.to_owned()),
        // Without it ListPayments reads only the last year (by `created_at`).
        ("begin_time".to_owned(), rfc3339(created_since)),
        ("sort_field".to_owned(), "UPDATED_AT".to_owned()),
        (
            "sort_order".to_owned(),
            if ascending { "ASC" } else { "DESC" }.to_owned(),
        ),
        ("limit".to_owned(), limit.clamp(1, 100).to_string()),
    ];
    // Whether the `updated_at` range is inclusive is not documented: one millisecond
    // wider at both ends covers both readings; the rows are trimmed to the bounds.
    if let Some(since) = since {
        q.push((
            "updated_at_begin_time".to_owned(),
            rfc3339(since - Duration::milliseconds(1)),
        ));
    }
    if let Some(until) = until {
        q.push((
            "updated_at_end_time".to_owned(),
            rfc3339(until + Duration::milliseconds(1)),
        ));
    }
    q
}
