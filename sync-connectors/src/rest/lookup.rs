//! Look-up by id: the latest state of given records, for the sequence-window strategy's
//! [`Source::fetch_latest`](sync_core::Source::fetch_latest).
//!
//! The checks and the two request shapes are documented on [`LookupConfig`].

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sync_core::record::decode::RowDecoder;
use sync_core::{Error, Key, Result, Row, StreamSchema};

use super::config::RestStreamConfig;
use crate::http::{HttpClient, HttpRequest};

/// The most requests one per-id look-up keeps in flight.
pub const MAX_LOOKUP_CONCURRENCY: usize = 64;

/// How a REST stream reads the latest state of given ids.
///
/// A change queue names the records that changed; the strategy then asks the API for the
/// current state of each of them. JSON APIs offer this in one of two shapes, and a
/// lookup describes either:
///
/// - **one GET per id** (`/restaurants/{id}`), sent with bounded concurrency; a `404` means
///   the record no longer exists;
/// - **one GET per batch** of ids in a query parameter (`/restaurants?ids=1,2,3`), at most
///   `max_ids` per request; an id the answer does not hold no longer exists.
///
/// Either way the ids that no longer exist are left out of the answer, which is what the
/// [`Source`](sync_core::Source) contract asks: the strategy deletes them from the target
/// and the sink. Because a missing record deletes, every answer is checked before it is
/// believed: a record must carry the id it was asked for (a per-id answer) or one of the ids
/// asked for, once (a batch answer); anything else (an API that ignores the `ids` parameter
/// and returns its first page, a key of another type than the change queue's) is a typed
/// `InvalidInput` error, never a silent delete. What no check can tell apart is a per-id
/// path that is wrong for every id (each answered 404): try the path with a known id
/// before pointing a sync at it.
///
/// ```
/// use sync_connectors::rest::{LookupConfig, RestStreamConfig};
///
/// let stream: RestStreamConfig = toml::from_str(r#"
///     name = "restaurants"
///     base_url = "https://core.example.com"
///     path = "/restaurants"
///     records_path = "restaurants"
///     primary_key = ["id"]
///     strategy = { kind = "full" }
///     columns = [{ name = "id", type = "text", nullable = false }]
///
///     [lookup]
///     type = "per_id"
///     path = "/restaurants/{id}"   # under base_url; the id percent-encoded as one segment
///     concurrency = 4
/// "#)?;
/// stream.validate()?;
/// assert_eq!(stream.lookup, Some(LookupConfig::per_id("/restaurants/{id}")));
///
/// // Or one request per 50 ids: GET /restaurants?ids=1,2,3
/// let batch: LookupConfig = toml::from_str(r#"
///     type = "batch"
///     param = "ids"
///     max_ids = 50
/// "#)?;
/// assert_eq!(batch, LookupConfig::batch("ids"));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
///
/// The stream's `headers`, auth and rate limit apply to look-ups; its `query` parameters do
/// not (they page the list): a look-up has its own fixed `query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LookupConfig {
    /// One GET per id. A `404` means the id no longer exists.
    PerId {
        /// Path under the stream's `base_url`, with `{id}` where the id goes (as one
        /// percent-encoded path segment): `/restaurants/{id}`.
        path: String,
        /// Dotted path of the record in the response (`data`); empty when the body is the
        /// record itself.
        #[serde(default)]
        record_path: String,
        /// Requests in flight at once (1 to [`MAX_LOOKUP_CONCURRENCY`]); the stream's rate
        /// limit applies on top.
        #[serde(default = "default_concurrency")]
        concurrency: usize,
        /// Fixed query parameters (no placeholders).
        #[serde(default)]
        query: BTreeMap<String, String>,
    },
    /// One GET per batch of ids in one query parameter. Ids the answer leaves out no longer
    /// exist, so the API must answer every id it was asked for in one response (no paging):
    /// keep `max_ids` within its page size.
    Batch {
        /// Path under the stream's `base_url` (default: the stream's `path`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The query parameter of the ids (`ids`).
        param: String,
        /// What joins the ids (`,`).
        #[serde(default = "default_separator")]
        separator: String,
        /// Most ids per request.
        #[serde(default = "default_max_ids")]
        max_ids: usize,
        /// Dotted path of the records array (default: the stream's `records_path`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        records_path: Option<String>,
        /// Fixed query parameters (no placeholders).
        #[serde(default)]
        query: BTreeMap<String, String>,
    },
}

fn default_concurrency() -> usize {
    4
}
fn default_separator() -> String {
    ",".into()
}
fn default_max_ids() -> usize {
    50
}

impl LookupConfig {
    /// One GET per id at `path` (with `{id}`), four at a time, the body being the record.
    pub fn per_id(path: impl Into<String>) -> Self {
        LookupConfig::PerId {
            path: path.into(),
            record_path: String::new(),
            concurrency: default_concurrency(),
            query: BTreeMap::new(),
        }
    }

    /// One GET per batch of at most 50 ids, joined by `,` in the query parameter `param`,
    /// at the stream's path.
    pub fn batch(param: impl Into<String>) -> Self {
        LookupConfig::Batch {
            path: None,
            param: param.into(),
            separator: default_separator(),
            max_ids: default_max_ids(),
            records_path: None,
            query: BTreeMap::new(),
        }
    }

    /// Checks the look-up against its stream without I/O: a one-column primary key, `{id}`
    /// in a per-id path, sizes within bounds, a URL that parses.
    pub fn validate(&self, stream: &RestStreamConfig, schema: &StreamSchema) -> Result<()> {
        let bad = |msg: &str| Err(Error::config(msg).with_context("stream", &stream.name));
        if schema.primary_key().len() != 1 {
            return bad("a lookup needs a primary key of one column");
        }
        let path = match self {
            LookupConfig::PerId {
                path, concurrency, ..
            } => {
                if !path.contains("{id}") {
                    return bad("a per_id lookup path needs the placeholder {id}");
                }
                if !(1..=MAX_LOOKUP_CONCURRENCY).contains(concurrency) {
                    return bad("lookup concurrency must be 1 to 64");
                }
                path.replace("{id}", "x")
            }
            LookupConfig::Batch {
                path,
                param,
                separator,
                max_ids,
                ..
            } => {
                if param.is_empty() || separator.is_empty() {
                    return bad("a batch lookup needs a param and a separator");
                }
                if *max_ids == 0 {
                    return bad("lookup max_ids must be at least 1");
                }
                path.clone().unwrap_or_else(|| stream.path.clone())
            }
        };
        match url::Url::parse(&format!("{}{path}", stream.base_url)) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
            _ => bad("base_url and the lookup path do not form an http url"),
        }
    }
}

/// A look-up of one stream, ready to run (built by `RestSource`).
pub(crate) struct Lookup<'a> {
    pub(crate) config: &'a LookupConfig,
    pub(crate) stream: &'a RestStreamConfig,
    pub(crate) schema: &'a StreamSchema,
    pub(crate) decoder: &'a RowDecoder,
    pub(crate) client: &'a HttpClient,
}

impl Lookup<'_> {
    /// The latest state of each of `ids` that exists, once each.
    pub(crate) async fn fetch(&self, ids: &[Key]) -> Result<Vec<Row>> {
        let mut distinct = BTreeSet::new();
        let ids: Vec<&Key> = ids.iter().filter(|k| distinct.insert(*k)).collect();
        match self.config {
            LookupConfig::PerId {
                path,
                record_path,
                concurrency,
                query,
            } => {
                // Futures made up front: a closure inside the stream would not be general
                // enough over the lifetime of `id` for the `Send` bound of async_trait.
                let calls: Vec<_> = ids
                    .into_iter()
                    .map(|id| self.fetch_one(path, record_path, query, id))
                    .collect();
                let found: Vec<Option<Row>> = futures::stream::iter(calls)
                    .buffered(*concurrency)
                    .try_collect()
                    .await?;
                Ok(found.into_iter().flatten().collect())
            }
            LookupConfig::Batch {
                path,
                param,
                separator,
                max_ids,
                records_path,
                query,
            } => {
                let path = path.as_deref().unwrap_or(&self.stream.path);
                let records_path = records_path.as_deref().unwrap_or(&self.stream.records_path);
                let mut rows = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(*max_ids) {
                    let req = BatchRequest {
                        path,
                        param,
                        separator,
                        records_path,
                        query,
                    };
                    rows.extend(self.fetch_batch(&req, chunk).await?);
                }
                Ok(rows)
            }
        }
    }

    fn request(&self, path: &str, query: &BTreeMap<String, String>) -> HttpRequest {
        let mut req = HttpRequest::get(format!("{}{path}", self.stream.base_url));
        for (k, v) in &self.stream.headers {
            req = req.with_header(k.clone(), v.clone());
        }
        for (k, v) in query {
            req = req.with_query(k.clone(), v.clone());
        }
        req
    }

    /// One id: `None` on a 404.
    async fn fetch_one(
        &self,
        path: &str,
        record_path: &str,
        query: &BTreeMap<String, String>,
        id: &Key,
    ) -> Result<Option<Row>> {
        let text = id_text(id, None)?;
        let req = self.request(&path.replace("{id}", &encode_segment(&text)), query);
        let response = match self.client.execute(&req).await {
            Ok(r) => r,
            Err(e) if e.context_value("status") == Some("404") => return Ok(None),
            Err(e) => return Err(e.with_context("id", &text)),
        };
        let row = if record_path.is_empty() {
            self.decoder.decode_row(&response.body)
        } else {
            let json: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| {
                Error::invalid_input("the lookup answer is not json").with_source(e)
            })?;
            let record = record_path
                .split('.')
                .filter(|p| !p.is_empty())
                .try_fold(&json, |v, p| v.get(p))
                .filter(|v| v.is_object())
                .ok_or_else(|| {
                    Error::invalid_input("the lookup answer has no record at the record path")
                        .with_context("record_path", record_path)
                })?;
            self.decoder.decode_row(&serde_json::to_vec(record)?)
        }
        .map_err(|e| {
            e.with_context("id", &text)
                .with_context("url", &response.url)
        })?;
        let got = row.key(self.schema);
        if &got != id {
            return Err(Error::invalid_input(
                "the lookup answered with a record of another id (or of another key type)",
            )
            .with_context("asked", &text)
            .with_context("answered", got)
            .with_context("url", &response.url));
        }
        Ok(Some(row))
    }

    /// One batch: the records the answer holds, each one of `ids`, once.
    async fn fetch_batch(&self, req: &BatchRequest<'_>, ids: &[&Key]) -> Result<Vec<Row>> {
        let texts: Vec<String> = ids
            .iter()
            .map(|id| id_text(id, Some(req.separator)))
            .collect::<Result<_>>()?;
        let request = self
            .request(req.path, req.query)
            .with_query(req.param.to_owned(), texts.join(req.separator));
        let response = self.client.execute(&request).await?;
        let path: Vec<&str> = req
            .records_path
            .split('.')
            .filter(|p| !p.is_empty())
            .collect();
        let decoded = self
            .decoder
            .decode_page(&response.body, &path)
            .map_err(|e| e.with_context("url", &response.url))?;
        if !decoded.records_found {
            return Err(Error::invalid_input(
                "the lookup answer has no records at the records path",
            )
            .with_context("records_path", req.records_path)
            .with_context("url", &response.url));
        }
        let mut asked: BTreeSet<&Key> = ids.iter().copied().collect();
        for row in &decoded.rows {
            let key = row.key(self.schema);
            if !asked.remove(&key) {
                return Err(Error::invalid_input(
                    "the lookup answered an id it was not asked for, or one id twice (does the api ignore the ids parameter?)",
                )
                .with_context("id", key)
                .with_context("url", &response.url));
            }
        }
        Ok(decoded.rows)
    }
}

/// The parameters of a batch request.
struct BatchRequest<'a> {
    path: &'a str,
    param: &'a str,
    separator: &'a str,
    records_path: &'a str,
    query: &'a BTreeMap<String, String>,
}

/// The text of a one-column key; it must not hold the batch separator.
fn id_text(id: &Key, separator: Option<&str>) -> Result<String> {
    let [value] = id.0.as_slice() else {
        return Err(Error::invalid_input("a lookup id must have one value").with_context("id", id));
    };
    if value.is_null() {
        return Err(Error::invalid_input("a lookup id is null"));
    }
    let text = value.to_string();
    if separator.is_some_and(|s| text.contains(s)) {
        return Err(
            Error::invalid_input("a lookup id contains the batch separator")
                .with_context("id", &text),
        );
    }
    Ok(text)
}

/// `s` as one path segment: everything but RFC 3986's unreserved characters percent-encoded.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_one_encoded_path_segment() {
        assert_eq!(encode_segment("828"), "828");
        assert_eq!(encode_segment("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn an_id_holding_the_separator_is_refused() {
        let e = id_text(&Key::text("1,2"), Some(",")).unwrap_err();
        assert_eq!(e.kind(), sync_core::ErrorKind::InvalidInput);
        assert_eq!(id_text(&Key::text("12"), Some(",")).unwrap(), "12");
    }
}
