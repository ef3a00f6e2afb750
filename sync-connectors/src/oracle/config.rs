//! [`OracleConfig`]: one Oracle Fusion Cloud REST resource as serde data, and its builder.
//!
//! `build()` (and [`OracleConfig::validate`]) check everything without I/O: the URL, the
//! resource name, the REST framework version, the columns (the key and `LastUpdateDate`
//! columns, attribute names safe to put in `q`, `fields` and `orderBy`), page sizes, auth,
//! rate limit, HTTP settings and the strategy.

use serde::{Deserialize, Serialize};
use sync_core::{Column, ColumnType, Error, Result, StreamSchema};

use crate::http::{Auth, HttpConfig, RateLimit};
use crate::rest::StrategySpec;

/// How a read continues after its first page.
///
/// Both modes send `orderBy=<LastUpdateDate>:asc,<key>:asc` and serve every selector
/// (`Offset(n)` always pages by offset, so the offset strategy works in both); the mode decides
/// the `next` selector of a page read from the start or after a key, and whether the source
/// declares keyset paging to the incremental strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OracleMode {
    /// `offset=0` and a `q` filter on (LastUpdateDate, key) after the last record of each
    /// page: a record updated while the read goes on moves to the end and is read there, and
    /// no other record shifts into the part already read.
    #[default]
    Keyset,
    /// `offset` advanced by the `count` each page returned (never by the requested `limit`,
    /// which the server clamps silently). A record updated during the read shifts the records
    /// after it: the offset strategy notices (and fails or rescans), a plain read skips one.
    Offset,
}

/// One Oracle Fusion Cloud REST collection resource (`accounts`, `opportunities`, ...) synced
/// into one stream.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    /// The resources URL up to the version segment:
    /// `https://<pod>.fa.<dc>.oraclecloud.com/crmRestApi/resources/11.13.18.05`.
    pub base_url: String,
    /// The collection resource, appended to `base_url` (`accounts`).
    pub resource: String,
    /// The stream (target table) name; the resource name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Credentials: basic, bearer (JWT or SAML) or OAuth2 client credentials.
    #[serde(default)]
    pub auth: Auth,
    /// The `REST-Framework-Version` header, pinned: `q` with `and`/`or` needs 2 or later;
    /// 4 and later answer errors with `o:errorDetails` JSON, earlier versions often with text.
    #[serde(default = "default_framework_version")]
    pub framework_version: u32,
    /// The primary-key column (one column, integer or text): `PartyId`.
    pub key: String,
    /// The cursor column (a timestamp read from `LastUpdateDate`).
    #[serde(default = "default_cursor")]
    pub cursor: String,
    /// Column whose larger value means a newer record (defaults to the cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Columns in table order; `source_field` names the Oracle attribute when it differs from
    /// the column name. Their attributes are requested with `fields`.
    pub columns: Vec<Column>,
    /// A predefined query, sent as `finder` as is: `MyOpportunitiesFinder;RecordSet='ALL'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finder: Option<String>,
    /// An extra `q` condition (framework v2 syntax), combined with `and` with the cursor
    /// bounds: `StatusCode = 'ACTIVE'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// How a read continues after its first page.
    #[serde(default)]
    pub mode: OracleMode,
    /// Records asked for per page (`limit`).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The largest `limit` sent (the resource's predefined limit, often 499 or 500). The
    /// server may return fewer records than asked in any case; reads advance by `count`.
    #[serde(default = "default_page_size")]
    pub max_page_size: u32,
    /// Ask for `totalResults` (costs the server a count; lets the offset strategy notice the
    /// collection changing under a read).
    #[serde(default)]
    pub total_results: bool,
    /// The strategy and its options.
    #[serde(default = "default_strategy")]
    pub strategy: StrategySpec,
    /// A proactive rate limit for the credential (Oracle publishes none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// HTTP settings; the default keeps 4 KiB of an error body, so `o:errorDetails` is read
    /// whole.
    #[serde(default = "default_http")]
    pub http: HttpConfig,
}

fn default_framework_version() -> u32 {
    4
}
fn default_cursor() -> String {
    "LastUpdateDate".into()
}
fn default_page_size() -> u32 {
    500
}
/// Incremental with a two-minute settle lag: `LastUpdateDate` has second precision and is
/// set by the server when a transaction commits, so the newest seconds are left for the
/// next run.
fn default_strategy() -> StrategySpec {
    StrategySpec::Incremental {
        lookback: 0,
        settle_lag: 120_000,
        missing_cursor: Default::default(),
        pages_per_window: 1,
    }
}
fn default_http() -> HttpConfig {
    HttpConfig {
        error_body_excerpt_bytes: 4096,
        ..HttpConfig::default()
    }
}

impl std::fmt::Debug for OracleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `auth` prints its secrets as `***`; nothing else here is a credential.
        f.debug_struct("OracleConfig")
            .field("base_url", &crate::http::redact_url(&self.base_url))
            .field("resource", &self.resource)
            .field("stream", &self.stream_name())
            .field("auth", &self.auth)
            .field("framework_version", &self.framework_version)
            .field("key", &self.key)
            .field("cursor", &self.cursor)
            .field("columns", &self.columns.len())
            .field("finder", &self.finder)
            .field("filter", &self.filter)
            .field("mode", &self.mode)
            .field("page_size", &self.page_size)
            .field("strategy", &self.strategy)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// True for an Oracle attribute name that can be written into `q`, `fields` and `orderBy`
/// as is.
fn is_attribute(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl OracleConfig {
    /// A builder for `resource` under `base_url`, keyed by `key` (add columns with
    /// [`OracleBuilder::with_column`]).
    pub fn builder(
        base_url: impl Into<String>,
        resource: impl Into<String>,
        key: impl Into<String>,
    ) -> OracleBuilder {
        OracleBuilder {
            config: OracleConfig {
                base_url: base_url.into(),
                resource: resource.into(),
                stream: None,
                auth: Auth::None,
                framework_version: default_framework_version(),
                key: key.into(),
                cursor: default_cursor(),
                version: None,
                columns: Vec::new(),
                finder: None,
                filter: None,
                mode: OracleMode::default(),
                page_size: default_page_size(),
                max_page_size: default_page_size(),
                total_results: false,
                strategy: default_strategy(),
                rate_limit: None,
                http: default_http(),
            },
        }
    }

    /// The stream name: `stream`, or the resource.
    pub fn stream_name(&self) -> &str {
        self.stream.as_deref().unwrap_or(&self.resource)
    }

    /// The collection URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), self.resource)
    }

    /// The stream schema: the columns, the key, `LastUpdateDate` as the cursor.
    pub fn schema(&self) -> Result<StreamSchema> {
        let mut b = StreamSchema::builder(self.stream_name())
            .with_primary_key([self.key.clone()])
            .with_cursor([self.cursor.clone()]);
        for c in &self.columns {
            let mut c = c.clone();
            if c.name == self.cursor {
                // Keyset paging and the bounds need a value in every record.
                c.nullable = false;
            }
            b = b.with_column(c);
        }
        if let Some(v) = &self.version {
            b = b.with_version(v.clone());
        }
        b.build()
    }

    /// Checks the configuration without I/O.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::config(message).with_context("connector", "oracle"));
        match url::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => return bad("base_url is not an http(s) url".into()),
        }
        if self.resource.is_empty()
            || self
                .resource
                .contains(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
        {
            return bad(format!(
                "resource {:?} is not a resource name",
                self.resource
            ));
        }
        if !(2..=9).contains(&self.framework_version) {
            return bad("framework_version must be 2 to 9 (q expressions need 2 or later)".into());
        }
        if self.page_size == 0 || self.max_page_size == 0 || self.page_size > self.max_page_size {
            return bad("page_size must be between 1 and max_page_size".into());
        }
        let schema = self
            .schema()
            .map_err(|e| e.with_context("connector", "oracle"))?;
        for c in schema.columns() {
            if !is_attribute(c.field_name()) {
                return bad(format!(
                    "column {:?} reads attribute {:?}, which is not a plain attribute name",
                    c.name,
                    c.field_name()
                ));
            }
        }
        let cursor = &schema.columns()[schema.cursor()[0]];
        if cursor.ty != ColumnType::Timestamp {
            return bad(format!(
                "the cursor column {:?} must be a timestamp",
                cursor.name
            ));
        }
        let key = &schema.columns()[schema.primary_key()[0]];
        if !matches!(key.ty, ColumnType::Integer | ColumnType::Text) {
            return bad(format!(
                "the key column {:?} must be integer or text",
                key.name
            ));
        }
        for (what, text) in [("finder", &self.finder), ("filter", &self.filter)] {
            if text
                .as_deref()
                .is_some_and(|t| t.trim().is_empty() || t.contains(char::is_control))
            {
                return bad(format!("{what} is empty or holds control characters"));
            }
        }
        self.auth.validate()?;
        if let Some(limit) = &self.rate_limit {
            limit.validate()?;
        }
        self.http.validate()?;
        self.strategy
            .build(self.stream_name(), self.page_size)
            .map(|_| ())
    }

    /// The strategy this config names, for its stream and page size.
    pub fn strategy(&self) -> Result<Box<dyn sync_core::Strategy>> {
        self.strategy.build(self.stream_name(), self.page_size)
    }
}

/// Builds an [`OracleConfig`]; `build()` validates it without I/O.
#[derive(Debug, Clone)]
pub struct OracleBuilder {
    config: OracleConfig,
}

impl OracleBuilder {
    /// Sets the stream name (default: the resource).
    pub fn with_stream(mut self, stream: impl Into<String>) -> Self {
        self.config.stream = Some(stream.into());
        self
    }

    /// Sets the credentials.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.config.auth = auth;
        self
    }

    /// Pins the REST framework version.
    pub fn with_framework_version(mut self, version: u32) -> Self {
        self.config.framework_version = version;
        self
    }

    /// Sets the cursor column (default `LastUpdateDate`).
    pub fn with_cursor(mut self, column: impl Into<String>) -> Self {
        self.config.cursor = column.into();
        self
    }

    /// Sets the version column.
    pub fn with_version(mut self, column: impl Into<String>) -> Self {
        self.config.version = Some(column.into());
        self
    }

    /// Adds a column.
    pub fn with_column(mut self, column: Column) -> Self {
        self.config.columns.push(column);
        self
    }

    /// Sets the finder (`FinderName;Var=value`).
    pub fn with_finder(mut self, finder: impl Into<String>) -> Self {
        self.config.finder = Some(finder.into());
        self
    }

    /// Sets an extra `q` condition.
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.config.filter = Some(filter.into());
        self
    }

    /// Sets the paging mode.
    pub fn with_mode(mut self, mode: OracleMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Sets the records asked for per page.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.config.page_size = page_size;
        self
    }

    /// Sets the largest `limit` sent.
    pub fn with_max_page_size(mut self, max: u32) -> Self {
        self.config.max_page_size = max;
        self
    }

    /// Asks for `totalResults`.
    pub fn with_total_results(mut self, total: bool) -> Self {
        self.config.total_results = total;
        self
    }

    /// Sets the strategy.
    pub fn with_strategy(mut self, strategy: StrategySpec) -> Self {
        self.config.strategy = strategy;
        self
    }

    /// Sets a proactive rate limit.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = Some(limit);
        self
    }

    /// Sets the HTTP settings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.config.http = http;
        self
    }

    /// The validated config.
    pub fn build(self) -> Result<OracleConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}
