//! The declarative stream config: where a JSON API's records are, how it pages, which field is
//! the cursor and how the cursor is sent, the columns and the strategy. Serde data (TOML or
//! JSON); [`RestStreamConfig::validate`] checks it without I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sync_core::{
    Column, Error, FullConfig, IncrementalConfig, OffsetConfig, Result, SourceOrdering,
    StreamSchema,
};

use super::lookup::LookupConfig;
use super::paginate::PaginatorConfig;
use crate::http::{Auth, Method, RateLimit};

/// One stream of a JSON API, synced into one target table.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestStreamConfig {
    /// Stream name: the target table and the last part of the sync name.
    pub name: String,
    /// Scheme, host and optional base path (`https://api.example.com/v2`).
    pub base_url: String,
    /// Path of the collection, appended to `base_url` (`/items`).
    #[serde(default)]
    pub path: String,
    /// `GET`, or `POST` with [`RestStreamConfig::body`] for search-style APIs.
    #[serde(default)]
    pub method: Method,
    /// JSON body template (POST). A string that is exactly a placeholder (`"{{cursor}}"`) is
    /// replaced by its typed value, and its key removed when the value is absent (the cursor of
    /// the first page); placeholders inside longer strings are replaced as text. With a body
    /// template, paging and cursor values reach the request only through placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Fixed query parameters; values may hold placeholders, and a parameter whose
    /// placeholder has no value is left out.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra request headers (not for credentials: use `auth`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Dotted path of the records array in the response (`data.items`); empty when the body
    /// is the array itself.
    #[serde(default)]
    pub records_path: String,
    /// Accept a response without the records field as an empty page (some APIs leave it out
    /// when nothing matched); otherwise its absence is an error, since it usually means a
    /// wrong `records_path`.
    #[serde(default)]
    pub records_may_be_absent: bool,
    /// Dotted path of the number of records matching the request, when the API reports it
    /// (used to notice the source changing under a read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_field: Option<String>,
    /// Primary-key column names.
    pub primary_key: Vec<String>,
    /// The cursor for incremental syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<CursorConfig>,
    /// Column whose larger value means a newer record (defaults to the cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Columns in table order: name, type, nullability and the JSON field read
    /// (`source_field`, when it differs from the name).
    pub columns: Vec<Column>,
    /// How the API pages.
    #[serde(default)]
    pub paginator: PaginatorConfig,
    /// Records asked for per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The largest page the API serves (requests are clamped to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<u32>,
    /// The order the API returns records in; `by_cursor_then_key` lets incremental syncs
    /// commit after every page.
    #[serde(default = "default_ordering")]
    pub ordering: SourceOrdering,
    /// The strategy and its options.
    #[serde(default)]
    pub strategy: StrategySpec,
    /// Credentials for this stream, when they differ from the pipeline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Rate limit for this stream's credential, when it differs from the pipeline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// How the latest state of given ids is read (look-up by id), for the sequence-window
    /// strategy; `None`: the stream has no look-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupConfig>,
}

impl std::fmt::Debug for RestStreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may hold tokens someone put there anyway: names only.
        let headers: Vec<&String> = self.headers.keys().collect();
        f.debug_struct("RestStreamConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("path", &self.path)
            .field("method", &self.method)
            .field("query", &self.query.keys().collect::<Vec<_>>())
            .field("headers", &headers)
            .field("records_path", &self.records_path)
            .field("primary_key", &self.primary_key)
            .field("cursor", &self.cursor)
            .field("paginator", &self.paginator)
            .field("strategy", &self.strategy)
            .field("auth", &self.auth)
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

fn default_page_size() -> u32 {
    1000
}
fn default_ordering() -> SourceOrdering {
    SourceOrdering::Unordered
}
fn default_true() -> bool {
    true
}

/// The cursor column and how its bounds are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorConfig {
    /// The cursor column (a column name; timestamp or integer).
    pub field: String,
    /// Query parameter of the lower bound (`updated_since`, `modifiedSince`); `None` when the
    /// API has no filter (bounds are then applied to the records received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Query parameter of the upper bound, when the API has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_param: Option<String>,
    /// How bound values are written.
    #[serde(default)]
    pub format: CursorFormat,
    /// Whether the API's lower bound is inclusive (`>=`). For an exclusive API (`>`) the
    /// bound is sent one unit earlier, so the record at the checkpoint is read again and no
    /// record sharing its value is lost.
    #[serde(default = "default_true")]
    pub inclusive: bool,
    /// Whether the API's upper bound is inclusive (`<=`); for an exclusive one the bound is
    /// sent one unit later.
    #[serde(default = "default_true")]
    pub until_inclusive: bool,
}

/// How a cursor value is written into a request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CursorFormat {
    /// RFC 3339 in UTC with milliseconds: `2024-01-01T00:00:00.000Z`.
    #[default]
    Rfc3339Millis,
    /// RFC 3339 in UTC, whole seconds: `2024-01-01T00:00:00Z`.
    Rfc3339Seconds,
    /// Milliseconds since the Unix epoch.
    EpochMillis,
    /// Seconds since the Unix epoch.
    EpochSeconds,
    /// The value as is (integer cursors: versions, sequence numbers).
    Plain,
    /// A chrono `strftime` pattern in UTC, e.g. `%Y-%m-%d %H:%M:%S%.3f%z` for
    /// `2016-07-06 22:04:04.380+0000`. Its unit is a millisecond when the pattern shows
    /// fractions of a second (`%.3f`, `%.f`), else a second.
    Strftime(String),
}

/// The strategy of a stream and its options (the stream and page size come from the stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StrategySpec {
    /// A full snapshot promoted once.
    Full {
        /// Only the last `window_days` days plus one (needs a timestamp cursor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window_days: Option<u32>,
        /// Delete target rows the snapshot no longer contains.
        #[serde(default = "default_true")]
        delete_missing: bool,
        /// Rows staged per store call; see
        /// [`FullConfig::batch_rows`](sync_core::FullConfig::batch_rows).
        #[serde(default = "default_batch_rows")]
        batch_rows: u32,
    },
    /// Cursor-based incremental.
    Incremental {
        /// Re-read this far behind the checkpoint (milliseconds or versions).
        #[serde(default)]
        lookback: i64,
        /// Records become visible within this lag.
        #[serde(default)]
        settle_lag: i64,
        /// What to do with a record without a cursor value.
        #[serde(default)]
        missing_cursor: sync_core::strategy::MissingCursorPolicy,
        /// Pages staged per promotion (one durable commit each); see
        /// [`IncrementalConfig::pages_per_window`](sync_core::IncrementalConfig::pages_per_window).
        #[serde(default = "one")]
        pages_per_window: u32,
    },
    /// A persisted offset over a stable order.
    Offset {
        /// What to do when the source shifts under the offset.
        #[serde(default)]
        drift: sync_core::strategy::DriftPolicy,
    },
}

impl Default for StrategySpec {
    fn default() -> Self {
        StrategySpec::Incremental {
            lookback: 0,
            settle_lag: 0,
            missing_cursor: Default::default(),
            pages_per_window: 1,
        }
    }
}

fn one() -> u32 {
    1
}

fn default_batch_rows() -> u32 {
    FullConfig::DEFAULT_BATCH_ROWS
}

impl StrategySpec {
    /// A full snapshot of everything, deleting what it lacks, in batches of the default size.
    pub fn full() -> Self {
        StrategySpec::Full {
            window_days: None,
            delete_missing: true,
            batch_rows: default_batch_rows(),
        }
    }

    /// The sync-core strategy for `stream` with `page_size` records per page.
    pub fn build(&self, stream: &str, page_size: u32) -> Result<Box<dyn sync_core::Strategy>> {
        Ok(match self {
            StrategySpec::Full {
                window_days,
                delete_missing,
                batch_rows,
            } => Box::new(sync_core::FullStrategy::new(FullConfig {
                page_size,
                window_days: *window_days,
                delete_missing: *delete_missing,
                batch_rows: *batch_rows,
                ..FullConfig::new(stream)
            })?),
            StrategySpec::Incremental {
                lookback,
                settle_lag,
                missing_cursor,
                pages_per_window,
            } => Box::new(sync_core::IncrementalStrategy::new(IncrementalConfig {
                page_size,
                lookback: *lookback,
                settle_lag: *settle_lag,
                missing_cursor: *missing_cursor,
                pages_per_window: *pages_per_window,
                ..IncrementalConfig::new(stream)
            })?),
            StrategySpec::Offset { drift } => {
                Box::new(sync_core::OffsetStrategy::new(OffsetConfig {
                    page_size,
                    drift: *drift,
                    ..OffsetConfig::new(stream)
                })?)
            }
        })
    }
}

impl RestStreamConfig {
    /// A GET stream of `base_url` + `path` with the records at `records_path`; add columns,
    /// cursor and paginator with the `with_*` setters.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        RestStreamConfig {
            name: name.into(),
            base_url: base_url.into(),
            path: path.into(),
            method: Method::Get,
            body: None,
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
            records_path: String::new(),
            records_may_be_absent: false,
            total_field: None,
            primary_key: Vec::new(),
            cursor: None,
            version: None,
            columns: Vec::new(),
            paginator: PaginatorConfig::default(),
            page_size: default_page_size(),
            max_page_size: None,
            ordering: default_ordering(),
            strategy: StrategySpec::default(),
            auth: None,
            rate_limit: None,
            lookup: None,
        }
    }

    /// Sets the look-up by id (what the sequence-window strategy needs).
    pub fn with_lookup(mut self, lookup: LookupConfig) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Sets the records path.
    pub fn with_records_path(mut self, path: impl Into<String>) -> Self {
        self.records_path = path.into();
        self
    }

    /// Adds a column.
    pub fn with_column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Sets the primary key.
    pub fn with_primary_key<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.primary_key = cols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the cursor.
    pub fn with_cursor(mut self, cursor: CursorConfig) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// Sets the version column.
    pub fn with_version(mut self, column: impl Into<String>) -> Self {
        self.version = Some(column.into());
        self
    }

    /// Sets the paginator.
    pub fn with_paginator(mut self, paginator: PaginatorConfig) -> Self {
        self.paginator = paginator;
        self
    }

    /// Sets the strategy.
    pub fn with_strategy(mut self, strategy: StrategySpec) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the records ordering.
    pub fn with_ordering(mut self, ordering: SourceOrdering) -> Self {
        self.ordering = ordering;
        self
    }

    /// Sets the page size.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Sets the total field.
    pub fn with_total_field(mut self, field: impl Into<String>) -> Self {
        self.total_field = Some(field.into());
        self
    }

    /// The stream schema this config describes (validated: identifiers, key, cursor).
    pub fn schema(&self) -> Result<StreamSchema> {
        let mut b = StreamSchema::builder(&self.name);
        for c in &self.columns {
            b = b.with_column(c.clone());
        }
        b = b.with_primary_key(self.primary_key.iter().cloned());
        if let Some(c) = &self.cursor {
            b = b.with_cursor([c.field.clone()]);
        }
        if let Some(v) = &self.version {
            b = b.with_version(v.clone());
        }
        b.build()
    }

    /// Checks the whole config without I/O: the schema, the URL, the paginator against the
    /// schema, the strategy options and the body template.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::config(msg).with_context("stream", &self.name));
        let schema = self.schema()?;
        let url = format!("{}{}", self.base_url, self.path);
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(_) => return bad("base_url must be an http or https url".into()),
            Err(e) => return bad(format!("base_url and path do not form a url: {e}")),
        }
        if self.page_size == 0 || self.max_page_size == Some(0) {
            return bad("page_size and max_page_size must be at least 1".into());
        }
        if self.body.is_some() && self.method == Method::Get {
            return bad("a body template needs method POST (or PUT/PATCH)".into());
        }
        if let Some(c) = &self.cursor {
            let i = schema
                .column_index(&c.field)
                .expect("the schema checked it");
            let ty = schema.columns()[i].ty;
            let time_format = !matches!(c.format, CursorFormat::Plain);
            match ty {
                sync_core::ColumnType::Timestamp => {}
                sync_core::ColumnType::Integer if !time_format => {}
                sync_core::ColumnType::Integer => {
                    return bad("an integer cursor is sent with format \"plain\"".into())
                }
                _ => return bad("the cursor column must be a timestamp or an integer".into()),
            }
            if let CursorFormat::Strftime(p) = &c.format {
                super::cursor::check_pattern(p)
                    .map_err(|e| e.with_context("stream", &self.name))?;
            }
        }
        if matches!(self.strategy, StrategySpec::Incremental { .. }) && self.cursor.is_none() {
            return bad("the incremental strategy needs a cursor".into());
        }
        self.paginator
            .validate(&schema, self.cursor.as_ref(), self.total_field.as_deref())
            .map_err(|e| e.with_context("stream", &self.name))?;
        super::request::check_placeholders(self)?;
        if let Some(lookup) = &self.lookup {
            lookup.validate(self, &schema)?;
        }
        self.strategy.build(&self.name, self.page_size)?;
        Ok(())
    }
}
