//! Paginators: how a request names its page, and each one's stop rule and loop guard.
//!
//! | paginator | selector | next page | last page |
//! |---|---|---|---|
//! | `offset` | `Offset(n)` | offset + records received (servers clamp limits silently) | `has_more` false, offset + count reaching `total`, `count` 0, `next_offset` null, or an empty page |
//! | `page_number` | `Page(n)` | n + 1 | a last-page flag, the page count reached, or an empty page |
//! | `cursor_token` | `Token(t)` | the token in a body field or a header | no token (an empty page with a token is not the end) |
//! | `next_link` | `Token(url)` | the link in a body field or an RFC 8288 `Link` header | no link |
//! | `keyset` | `After(cursor, key)` | after the last record | an empty page |
//! | `time_window` | `Token(window)` | the inner paginator, then the next slice | the last slice done |
//!
//! A page that would send the reader back where it was (the same token or link from another
//! page, an offset or key that does not move forward, "more" with no records) is an error,
//! never an endless loop.

use serde::{Deserialize, Serialize};
use sync_core::{ColumnType, CursorKey, Error, ErrorKind, PageSelector, Result, StreamSchema};

use super::config::CursorConfig;
use super::window::TimeWindowConfig;

/// How an API pages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginatorConfig {
    /// One request returns everything.
    #[default]
    Single,
    /// `offset` and `limit` parameters.
    Offset {
        /// Offset parameter name.
        #[serde(default = "offset_param")]
        offset_param: String,
        /// Page size parameter name.
        #[serde(default = "limit_param")]
        limit_param: String,
        /// When the last page is reached.
        #[serde(default)]
        stop: OffsetStop,
    },
    /// Page numbers.
    PageNumber {
        /// Page number parameter name.
        #[serde(default = "page_param")]
        page_param: String,
        /// Page size parameter name, if the API takes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        /// Number of the first page (1 unless the API counts from 0).
        #[serde(default = "one")]
        first_page: u64,
        /// When the last page is reached.
        #[serde(default)]
        stop: PageStop,
    },
    /// An opaque continuation token sent back as a parameter.
    CursorToken {
        /// The parameter (or body placeholder `{{cursor}}`) the token is sent in.
        #[serde(default = "cursor_param")]
        param: String,
        /// Where the next token is found.
        from: TokenSource,
        /// Page size parameter name, if the API takes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit_param: Option<String>,
    },
    /// A link to the next page.
    NextLink {
        /// Where the link is found.
        from: LinkSource,
        /// Page size parameter name of the first request, if the API takes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit_param: Option<String>,
    },
    /// Records after the last key seen.
    Keyset {
        /// Parameter that receives the last key.
        key_param: String,
        /// Parameter that receives the last cursor value, when the API orders and filters by
        /// (cursor, key): then incremental syncs page by keyset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor_param: Option<String>,
        /// Page size parameter name.
        #[serde(default = "limit_param")]
        limit_param: String,
    },
    /// Time slices of the cursor, each paged by an inner paginator; a slice holding more
    /// records than the API pages through consistently is bisected.
    TimeWindow(TimeWindowConfig),
}

fn offset_param() -> String {
    "offset".into()
}
fn limit_param() -> String {
    "limit".into()
}
fn page_param() -> String {
    "page".into()
}
fn cursor_param() -> String {
    "cursor".into()
}
fn one() -> u64 {
    1
}

/// Last-page rule of offset paging.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OffsetStop {
    /// A boolean field, true while more pages follow.
    HasMore(String),
    /// A field with the number of matching records.
    Total(String),
    /// A field with the number of records in this page (must match the records received).
    Count(String),
    /// A field with the next offset, null on the last page.
    NextOffset(String),
    /// The first empty page.
    #[default]
    EmptyPage,
}

/// Last-page rule of page-number paging.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PageStop {
    /// A boolean field, true on the last page.
    LastPageFlag(String),
    /// A field with the number of pages.
    PageCount(String),
    /// The first empty page.
    #[default]
    EmptyPage,
}

/// Where a continuation token is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSource {
    /// A dotted field path in the body.
    Body(String),
    /// A response header.
    Header(String),
}

/// Where a next link is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkSource {
    /// A dotted field path in the body (`links.next`, `@odata.nextLink`).
    Body(String),
    /// The `rel="next"` target of the RFC 8288 `Link` header.
    LinkHeader,
}

/// What a request carries for its page.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PageVars {
    pub(crate) offset: Option<u64>,
    pub(crate) page: Option<u64>,
    pub(crate) token: Option<String>,
    /// A full URL to fetch instead of the configured one.
    pub(crate) link: Option<String>,
    pub(crate) after: Option<CursorKey>,
}

/// What the paginator needs to know of a response.
#[derive(Debug)]
pub(crate) struct Received<'a> {
    pub(crate) fields: &'a serde_json::Map<String, serde_json::Value>,
    pub(crate) headers: &'a reqwest::header::HeaderMap,
    /// Records in the page before any filtering.
    pub(crate) count: u64,
    /// (cursor, key) of the page's last record.
    pub(crate) last: Option<CursorKey>,
    pub(crate) records_path: &'a [String],
    /// The URL the page was fetched from (relative links resolve against it).
    pub(crate) url: &'a str,
}

impl Received<'_> {
    /// The body field at a dotted `path`. Fields of the objects along the records path are
    /// found by their own name too (`data.next` when the records are at `data.items`).
    pub(crate) fn field(&self, path: &str) -> Option<&serde_json::Value> {
        lookup(self.fields, path, self.records_path)
    }
}

/// Looks a dotted path up in a decoded page's fields.
pub(crate) fn lookup<'a>(
    fields: &'a serde_json::Map<String, serde_json::Value>,
    path: &str,
    records_path: &[String],
) -> Option<&'a serde_json::Value> {
    if let Some(v) = fields.get(path).filter(|v| !v.is_null()) {
        // A name holding dots (`@odata.nextLink`) is a name first.
        return Some(v);
    }
    let parts: Vec<&str> = path.split('.').collect();
    let walk = |parts: &[&str]| {
        let (first, rest) = parts.split_first()?;
        rest.iter()
            .try_fold(fields.get(*first)?, |v, p| v.get(*p))
            .filter(|v| !v.is_null())
    };
    if let Some(v) = walk(&parts) {
        return Some(v);
    }
    // `data.next` for records at `data.items`: the decoder lifted `next` to the top.
    let shared = parts
        .iter()
        .zip(records_path)
        .take_while(|(a, b)| **a == b.as_str())
        .count();
    (shared > 0 && shared < parts.len())
        .then(|| walk(&parts[shared..]))
        .flatten()
}

fn missing(field: &str) -> Error {
    Error::invalid_input("the page lacks the field the paginator reads")
        .with_context("field", field)
}

fn stuck(why: &str) -> Error {
    Error::new(
        ErrorKind::Remote,
        format!("pagination does not advance: {why}"),
    )
}

fn as_u64(v: &serde_json::Value, field: &str) -> Result<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| {
            Error::invalid_input("the paginator field is not a non-negative integer")
                .with_context("field", field)
        })
}

fn as_bool(v: &serde_json::Value, field: &str) -> Result<bool> {
    v.as_bool()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| {
            Error::invalid_input("the paginator field is not a boolean")
                .with_context("field", field)
        })
}

fn token_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if s.is_empty() => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl PaginatorConfig {
    /// Checks the paginator against the stream's schema and cursor.
    pub(crate) fn validate(
        &self,
        schema: &StreamSchema,
        cursor: Option<&CursorConfig>,
        total_field: Option<&str>,
    ) -> Result<()> {
        let empty = |what: &str, s: &str| {
            if s.is_empty() {
                Err(Error::config(format!("the paginator's {what} is empty")))
            } else {
                Ok(())
            }
        };
        match self {
            PaginatorConfig::Single => Ok(()),
            PaginatorConfig::Offset {
                offset_param,
                limit_param,
                ..
            } => {
                empty("offset_param", offset_param)?;
                empty("limit_param", limit_param)
            }
            PaginatorConfig::PageNumber { page_param, .. } => empty("page_param", page_param),
            PaginatorConfig::CursorToken { param, from, .. } => {
                empty("param", param)?;
                match from {
                    TokenSource::Body(f) | TokenSource::Header(f) => empty("token source", f),
                }
            }
            PaginatorConfig::NextLink { from, .. } => match from {
                LinkSource::Body(f) => empty("link field", f),
                LinkSource::LinkHeader => Ok(()),
            },
            PaginatorConfig::Keyset {
                key_param,
                cursor_param,
                ..
            } => {
                empty("key_param", key_param)?;
                if schema.primary_key().len() != 1 {
                    return Err(Error::config(
                        "keyset paging needs a one-column primary key",
                    ));
                }
                if cursor_param.is_some() && cursor.is_none() {
                    return Err(Error::config("keyset cursor_param needs a cursor"));
                }
                Ok(())
            }
            PaginatorConfig::TimeWindow(w) => {
                let timestamp = schema
                    .cursor()
                    .first()
                    .is_some_and(|&c| schema.columns()[c].ty == ColumnType::Timestamp);
                if !timestamp {
                    return Err(Error::config("time windows need a timestamp cursor"));
                }
                let sent = cursor.is_some_and(|c| c.param.is_some() && c.until_param.is_some());
                if !sent {
                    return Err(Error::config(
                        "time windows need the cursor's param and until_param",
                    ));
                }
                if w.max_records.is_some() && total_field.is_none() {
                    return Err(Error::config(
                        "bisecting windows by max_records needs the stream's total_field",
                    ));
                }
                if matches!(
                    *w.inner,
                    PaginatorConfig::TimeWindow(_) | PaginatorConfig::Keyset { .. }
                ) {
                    return Err(Error::config(
                        "a time window pages with offset, page_number, cursor_token or next_link",
                    ));
                }
                w.validate()?;
                w.inner.validate(schema, cursor, total_field)
            }
        }
    }

    /// Whether the API serves keyset paging on (cursor, key).
    pub(crate) fn keyset(&self) -> bool {
        matches!(
            self,
            PaginatorConfig::Keyset {
                cursor_param: Some(_),
                ..
            }
        )
    }

    /// Whether offsets are record positions (the offset strategy needs them).
    pub(crate) fn offsets(&self) -> bool {
        matches!(self, PaginatorConfig::Offset { .. })
    }

    /// The values a request for `selector` carries.
    pub(crate) fn vars(&self, selector: &PageSelector) -> Result<PageVars> {
        let mut vars = PageVars::default();
        match (self, selector) {
            (_, PageSelector::First) => {}
            (PaginatorConfig::Offset { .. }, PageSelector::Offset(o)) => vars.offset = Some(*o),
            (PaginatorConfig::PageNumber { .. }, PageSelector::Page(p)) => vars.page = Some(*p),
            (PaginatorConfig::CursorToken { .. }, PageSelector::Token(t)) => {
                vars.token = Some(t.clone())
            }
            (PaginatorConfig::NextLink { .. }, PageSelector::Token(t)) => {
                vars.link = Some(t.clone())
            }
            (PaginatorConfig::Keyset { .. }, PageSelector::After(ck)) => {
                vars.after = Some(ck.clone())
            }
            (_, other) => {
                return Err(Error::invalid_input(
                    "the page selector does not fit this stream's paginator",
                )
                .with_context("selector", format_args!("{other:?}")))
            }
        }
        if let (PaginatorConfig::Offset { .. }, None) = (self, vars.offset) {
            vars.offset = Some(0);
        }
        if let (PaginatorConfig::PageNumber { first_page, .. }, None) = (self, vars.page) {
            vars.page = Some(*first_page);
        }
        Ok(vars)
    }

    /// The page after the one fetched with `vars`, or `None` after the last.
    pub(crate) fn next(&self, vars: &PageVars, got: &Received<'_>) -> Result<Option<PageSelector>> {
        let n = got.count;
        Ok(match self {
            PaginatorConfig::Single => None,
            PaginatorConfig::Offset { stop, .. } => {
                let offset = vars.offset.unwrap_or(0);
                let more = match stop {
                    OffsetStop::HasMore(f) => as_bool(got.field(f).ok_or_else(|| missing(f))?, f)?,
                    OffsetStop::Total(f) => {
                        offset + n < as_u64(got.field(f).ok_or_else(|| missing(f))?, f)?
                    }
                    OffsetStop::Count(f) => {
                        let count = as_u64(got.field(f).ok_or_else(|| missing(f))?, f)?;
                        if count != n {
                            return Err(Error::invalid_input(
                                "the page's count differs from the records it holds",
                            )
                            .with_context("count", count)
                            .with_context("records", n));
                        }
                        count > 0
                    }
                    OffsetStop::NextOffset(f) => match got.field(f) {
                        None => false,
                        Some(v) => {
                            let next = as_u64(v, f)?;
                            if next <= offset {
                                return Err(stuck("next_offset is not past the offset"));
                            }
                            true
                        }
                    },
                    OffsetStop::EmptyPage => n > 0,
                };
                match (more, n) {
                    (false, _) => None,
                    (true, 0) => return Err(stuck("the api reports more records but sent none")),
                    (true, n) => Some(PageSelector::Offset(offset + n)),
                }
            }
            PaginatorConfig::PageNumber {
                stop, first_page, ..
            } => {
                let page = vars.page.unwrap_or(*first_page);
                let last = n == 0
                    || match stop {
                        PageStop::LastPageFlag(f) => {
                            as_bool(got.field(f).ok_or_else(|| missing(f))?, f)?
                        }
                        PageStop::PageCount(f) => {
                            let pages = as_u64(got.field(f).ok_or_else(|| missing(f))?, f)?;
                            page + 1 - first_page >= pages
                        }
                        PageStop::EmptyPage => false,
                    };
                (!last).then_some(PageSelector::Page(page + 1))
            }
            PaginatorConfig::CursorToken { from, .. } => {
                let token = match from {
                    TokenSource::Body(f) => got.field(f).and_then(token_text),
                    TokenSource::Header(h) => got
                        .headers
                        .get(h.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                };
                if token.is_some() && token == vars.token {
                    return Err(stuck("the api returned the cursor it was sent"));
                }
                token.map(PageSelector::Token)
            }
            PaginatorConfig::NextLink { from, .. } => {
                let link = match from {
                    LinkSource::Body(f) => got.field(f).and_then(token_text),
                    LinkSource::LinkHeader => crate::http::next_link(got.headers),
                };
                let link = link.map(|l| resolve(got.url, &l)).transpose()?;
                if link.is_some() && link == vars.link {
                    return Err(stuck("the api linked to the page it was on"));
                }
                link.map(PageSelector::Token)
            }
            PaginatorConfig::Keyset { .. } => match (&got.last, &vars.after) {
                (None, _) => None,
                (Some(last), Some(after))
                    if last.compare(after) != Some(std::cmp::Ordering::Greater) =>
                {
                    return Err(stuck("the last key did not move past the key sent"))
                }
                (Some(last), _) => Some(PageSelector::After(last.clone())),
            },
            PaginatorConfig::TimeWindow(_) => {
                return Err(Error::internal(
                    "time windows page through their own driver",
                ))
            }
        })
    }
}

/// `link` made absolute against the URL of the page that held it.
fn resolve(base: &str, link: &str) -> Result<String> {
    let base = url::Url::parse(base)
        .map_err(|e| Error::internal("the page url does not parse").with_source(e))?;
    base.join(link).map(String::from).map_err(|e| {
        Error::invalid_input("the next link is not a url")
            .with_context("link", link.chars().take(200).collect::<String>())
            .with_source(e)
    })
}
