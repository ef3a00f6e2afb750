//! [`CiscoConfig`]: one Control Center account's devices as serde data, its builder, and the
//! two strategies of the device sync (a full sync of the last `full_window_days` days plus one,
//! then incremental).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sync_core::strategy::MissingCursorPolicy;
use sync_core::{Column, ColumnType, Error, Result, StreamSchema};

use crate::http::{HttpConfig, RateLimit, Secret};
use crate::rest::{CursorFormat, StrategySpec};

/// The synthetic cursor column: the end of the `modifiedSince`/`modifiedTill` window a device
/// was listed in (Search Devices returns no modification time), or `dateUpdated` for a
/// device read by its details. The device was last modified at or before this instant.
pub const MODIFIED_UNTIL: &str = "modified_until";

/// Query parameters the source sets itself.
const RESERVED: [&str; 5] = [
    "modifiedSince",
    "modifiedTill",
    "pageSize",
    "pageNumber",
    "accountId",
];

/// The devices of one Control Center account (the credential), synced into one stream.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiscoConfig {
    /// The REST API root on the pod's REST host: `https://restapi1.jasper.com/rws/api/v1`.
    pub base_url: String,
    /// The Control Center user.
    pub username: String,
    /// The user's API key (HTTP Basic password).
    pub api_key: Secret,
    /// The stream (target table) name.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// `accountId`, when the user sees more than one account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Further Search Devices filters sent as is (`status`, `accountCustom1`, ...).
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    /// `pageSize`: at most 50, the API's maximum.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Further columns read from the search results (`accountCustom1`, ...).
    #[serde(default)]
    pub extra_columns: Vec<Column>,
    /// Columns a device must have besides `iccid` (for instance `rate_plan` and
    /// `communication_plan`): validation in the store quarantines a device without one, with
    /// the reason `missing required field "<column>"`, counted in the ledger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// The account's rate limit: one call at a time, at most five per second.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
    /// The longest `modifiedSince`..`modifiedTill` window asked for, in milliseconds.
    #[serde(default = "default_slice")]
    pub slice_ms: i64,
    /// A window is never bisected below this, in milliseconds (at least the second the
    /// bounds are written in).
    #[serde(default = "default_min_slice")]
    pub min_slice_ms: i64,
    /// How `modifiedSince` and `modifiedTill` are written (ISO 8601 with an offset by default:
    /// `2016-04-18T17:31:34+00:00`).
    #[serde(default = "default_time_format")]
    pub time_format: CursorFormat,
    /// The full sync reads the last `full_window_days` days plus one (at most 363, so its
    /// start stays within the year the API lists).
    #[serde(default = "default_full_days")]
    pub full_window_days: u32,
    /// Incremental reads stop this far before the local clock (the API reports no server
    /// time), in milliseconds.
    #[serde(default = "default_settle_lag")]
    pub settle_lag_ms: i64,
    /// Incremental reads start this far before the checkpoint (`modifiedSince` inclusivity
    /// is undocumented), in milliseconds.
    #[serde(default = "default_lookback")]
    pub lookback_ms: i64,
    /// HTTP settings.
    #[serde(default)]
    pub http: HttpConfig,
}

fn default_stream() -> String {
    "devices".into()
}
fn default_page_size() -> u32 {
    50
}
fn default_rate_limit() -> RateLimit {
    RateLimit::per_second(5.0).with_max_concurrent(1)
}
fn default_slice() -> i64 {
    86_400_000
}
fn default_min_slice() -> i64 {
    1000
}
fn default_time_format() -> CursorFormat {
    CursorFormat::Strftime("%Y-%m-%dT%H:%M:%S%:z".into())
}
fn default_full_days() -> u32 {
    30
}
fn default_settle_lag() -> i64 {
    120_000
}
fn default_lookback() -> i64 {
    60_000
}

impl std::fmt::Debug for CiscoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiscoConfig")
            .field("base_url", &crate::http::redact_url(&self.base_url))
            .field("username", &self.username)
            .field("api_key", &self.api_key)
            .field("stream", &self.stream)
            .field("account_id", &self.account_id)
            .field("filters", &self.filters.keys().collect::<Vec<_>>())
            .field("page_size", &self.page_size)
            .field("required", &self.required)
            .field("rate_limit", &self.rate_limit)
            .field("slice_ms", &self.slice_ms)
            .field("full_window_days", &self.full_window_days)
            .finish_non_exhaustive()
    }
}

impl CiscoConfig {
    /// A builder for the devices of `username` (with `api_key`) at `base_url`.
    pub fn builder(
        base_url: impl Into<String>,
        username: impl Into<String>,
        api_key: Secret,
    ) -> CiscoBuilder {
        CiscoBuilder {
            config: CiscoConfig {
                base_url: base_url.into(),
                username: username.into(),
                api_key,
                stream: default_stream(),
                account_id: None,
                filters: BTreeMap::new(),
                page_size: default_page_size(),
                extra_columns: Vec::new(),
                required: Vec::new(),
                rate_limit: default_rate_limit(),
                slice_ms: default_slice(),
                min_slice_ms: default_min_slice(),
                time_format: default_time_format(),
                full_window_days: default_full_days(),
                settle_lag_ms: default_settle_lag(),
                lookback_ms: default_lookback(),
                http: HttpConfig::default(),
            },
        }
    }

    /// The stream schema: `iccid` (key), `status`, `rate_plan`, `communication_plan`,
    /// `date_updated` (only from device details), the extra columns and [`MODIFIED_UNTIL`]
    /// (cursor and version). The columns named in `required` are not nullable.
    pub fn schema(&self) -> Result<StreamSchema> {
        let columns = [
            Column::new("status", ColumnType::Text),
            Column::new("rate_plan", ColumnType::Text).with_source_field("ratePlan"),
            Column::new("communication_plan", ColumnType::Text)
                .with_source_field("communicationPlan"),
            Column::new("date_updated", ColumnType::Timestamp).with_source_field("dateUpdated"),
        ];
        if let Some(unknown) = self.required.iter().find(|r| {
            !columns
                .iter()
                .chain(&self.extra_columns)
                .any(|c| &c.name == *r)
        }) {
            return Err(Error::config("a required column is not a device column")
                .with_context("column", unknown));
        }
        let mut b = StreamSchema::builder(&self.stream)
            .with_column(Column::required("iccid", ColumnType::Text));
        for mut c in columns
            .into_iter()
            .chain(self.extra_columns.iter().cloned())
        {
            if self.required.contains(&c.name) {
                c.nullable = false;
            }
            b = b.with_column(c);
        }
        b.with_column(Column::required(MODIFIED_UNTIL, ColumnType::Timestamp))
            .with_primary_key(["iccid"])
            .with_cursor([MODIFIED_UNTIL])
            .build()
    }

    /// Checks the configuration without I/O.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::config(message).with_context("connector", "cisco"));
        match url::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => return bad("base_url is not an http(s) url".into()),
        }
        if self.username.is_empty() || self.username.contains(':') {
            return bad("username is empty or contains ':'".into());
        }
        if self.api_key.expose().is_empty() {
            return bad("api_key is empty".into());
        }
        if !(1..=50).contains(&self.page_size) {
            return bad("page_size must be 1 to 50 (the api's maximum)".into());
        }
        if let Some(key) = self.filters.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return bad(format!("filter {key} is set by the connector"));
        }
        if self.min_slice_ms < 1000 || self.slice_ms < self.min_slice_ms {
            return bad("windows need 1000 <= min_slice_ms <= slice_ms".into());
        }
        if !(1..=363).contains(&self.full_window_days) {
            return bad("full_window_days must be 1 to 363 (the api lists one year)".into());
        }
        if self.settle_lag_ms < 0 || self.lookback_ms < 0 {
            return bad("settle_lag_ms and lookback_ms must not be negative".into());
        }
        if let CursorFormat::Strftime(pattern) = &self.time_format {
            use chrono::format::{Item, StrftimeItems};
            if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                return bad(format!("time_format {pattern:?} is not a strftime pattern"));
            }
        }
        self.schema()
            .map_err(|e| e.with_context("connector", "cisco"))?;
        self.rate_limit.validate()?;
        self.http.validate()?;
        self.full_strategy().map(|_| ())
    }

    /// The full sync: the last `full_window_days` days plus one, staged and promoted at once.
    ///
    /// It upserts and deletes nothing: Control Center does not delete devices (they change
    /// status), and a device's window bound is not its modification time, so a device listed
    /// just before the full sync's start would look missing from its window.
    pub fn full_strategy(&self) -> Result<Box<dyn sync_core::Strategy>> {
        StrategySpec::Full {
            window_days: Some(self.full_window_days),
            delete_missing: false,
            // A page per staged batch: at a few calls a second the store's per-batch cost is
            // nothing, and a crash re-reads one rate-limited page, not many.
            batch_rows: self.page_size.max(1),
        }
        .build(&self.stream, self.page_size)
    }

    /// The incremental sync from the checkpoint (minus `lookback_ms`) up to the local clock
    /// minus `settle_lag_ms`.
    pub fn incremental_strategy(&self) -> Result<Box<dyn sync_core::Strategy>> {
        StrategySpec::Incremental {
            lookback: self.lookback_ms,
            settle_lag: self.settle_lag_ms,
            missing_cursor: MissingCursorPolicy::Fail,
            pages_per_window: 1,
        }
        .build(&self.stream, self.page_size)
    }
}

/// Builds a [`CiscoConfig`]; `build()` validates it without I/O.
#[derive(Debug, Clone)]
pub struct CiscoBuilder {
    config: CiscoConfig,
}

impl CiscoBuilder {
    /// Sets the stream name (default `devices`).
    pub fn with_stream(mut self, stream: impl Into<String>) -> Self {
        self.config.stream = stream.into();
        self
    }

    /// Sets `accountId`.
    pub fn with_account_id(mut self, account: impl Into<String>) -> Self {
        self.config.account_id = Some(account.into());
        self
    }

    /// Adds a Search Devices filter (`status`, `accountCustom1`, ...).
    pub fn with_filter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.filters.insert(name.into(), value.into());
        self
    }

    /// Sets `pageSize` (at most 50).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.config.page_size = page_size;
        self
    }

    /// Requires these columns (besides `iccid`): devices without one are quarantined.
    pub fn with_required<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config
            .required
            .extend(columns.into_iter().map(Into::into));
        self
    }

    /// Adds a column read from the search results.
    pub fn with_extra_column(mut self, column: Column) -> Self {
        self.config.extra_columns.push(column);
        self
    }

    /// Sets the rate limit (default: five per second, one at a time).
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = limit;
        self
    }

    /// Sets the longest and the shortest window, in milliseconds.
    pub fn with_windows(mut self, slice_ms: i64, min_slice_ms: i64) -> Self {
        self.config.slice_ms = slice_ms;
        self.config.min_slice_ms = min_slice_ms;
        self
    }

    /// Sets how window bounds are written.
    pub fn with_time_format(mut self, format: CursorFormat) -> Self {
        self.config.time_format = format;
        self
    }

    /// Sets the full sync's window in days (plus one).
    pub fn with_full_window_days(mut self, days: u32) -> Self {
        self.config.full_window_days = days;
        self
    }

    /// Sets the incremental settle lag and lookback, in milliseconds.
    pub fn with_incremental(mut self, settle_lag_ms: i64, lookback_ms: i64) -> Self {
        self.config.settle_lag_ms = settle_lag_ms;
        self.config.lookback_ms = lookback_ms;
        self
    }

    /// Sets the HTTP settings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.config.http = http;
        self
    }

    /// The validated config.
    pub fn build(self) -> Result<CiscoConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> CiscoBuilder {
        CiscoConfig::builder(
            "https://restapi1.jasper.com/rws/api/v1",
            "user",
            Secret::new("key"),
        )
    }

    #[test]
    fn required_columns_are_not_nullable_and_unknown_ones_are_config_errors() {
        let config = builder()
            .with_required(["rate_plan", "communication_plan"])
            .build()
            .unwrap();
        let schema = config.schema().unwrap();
        let nullable = |name: &str| schema.columns()[schema.column_index(name).unwrap()].nullable;
        assert!(!nullable("rate_plan") && !nullable("communication_plan"));
        assert!(nullable("status") && nullable("date_updated"));
        let e = builder().with_required(["ratePlan"]).build().unwrap_err();
        assert_eq!(e.kind(), sync_core::ErrorKind::Config);
        assert_eq!(e.context_value("column"), Some("ratePlan"));
        // Without `required`, every device column but the key stays nullable.
        let plain = builder().build().unwrap().schema().unwrap();
        assert_eq!(plain.required().count(), 2, "iccid and modified_until");
    }
}
