//! [`SquareConfig`]: serde data for a [`SquareSource`](super::SquareSource), and its builder.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::{Error, Result, RetryPolicy};

use crate::http::{HttpConfig, RateLimit, Secret};

/// The production API.
pub const PRODUCTION_URL: &str = "https://connect.squareup.com";
/// The sandbox API.
pub const SANDBOX_URL: &str = "https://connect.squareupsandbox.com";
/// The `Square-Version` sent unless configured otherwise (the spec release this connector
/// was written against).
pub const DEFAULT_SQUARE_VERSION: &str = "2025-08-20";

/// Settings of a Square source. Serde data (`deny_unknown_fields`); build one in code with
/// [`SquareConfig::builder`].
///
/// `Debug` never shows the access token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquareConfig {
    /// The access token (OAuth2 or personal), sent as `Authorization: Bearer`.
    pub access_token: Secret,
    /// `https://connect.squareup.com` (default), the sandbox, or a fake server in tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The `Square-Version` header, `YYYY-MM-DD`.
    #[serde(default = "default_square_version")]
    pub square_version: String,
    /// Locations read by orders, payments and inventory counts; `None` reads every location
    /// ListLocations returns (inactive ones included), resolved when a read starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_ids: Option<Vec<String>>,
    /// ListPayments filters on `created_at` too and defaults that filter to the last year:
    /// payments created before this instant are never read. Default `1970-01-01T00:00:00Z`.
    #[serde(default = "default_payments_created_since")]
    pub payments_created_since: DateTime<Utc>,
    /// The HTTP client: timeouts, pool, body cap.
    #[serde(default = "default_http")]
    pub http: HttpConfig,
    /// A proactive limit on requests (Square publishes none; it answers 429 `RATE_LIMITED`).
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Retries of the requests the strategies do not retry themselves: the high-watermark
    /// probe (and the location list it may need). Pages are retried by the strategy's
    /// policy. Square sends no `Retry-After`, so 429s wait by exponential backoff with jitter.
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn default_base_url() -> String {
    PRODUCTION_URL.to_owned()
}

fn default_square_version() -> String {
    DEFAULT_SQUARE_VERSION.to_owned()
}

fn default_payments_created_since() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The default HTTP settings with an error-body excerpt large enough to hold Square's whole
/// `errors` array (the connector reads codes out of it).
fn default_http() -> HttpConfig {
    HttpConfig {
        error_body_excerpt_bytes: 4096,
        ..HttpConfig::default()
    }
}

impl fmt::Debug for SquareConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SquareConfig")
            .field("access_token", &"***")
            .field("base_url", &self.base_url)
            .field("square_version", &self.square_version)
            .field("location_ids", &self.location_ids)
            .field("payments_created_since", &self.payments_created_since)
            .field("http", &self.http)
            .field("rate_limit", &self.rate_limit)
            .field("retry", &self.retry)
            .finish()
    }
}

impl SquareConfig {
    /// A builder with the production URL and the default `Square-Version`.
    pub fn builder(access_token: impl Into<String>) -> SquareConfigBuilder {
        SquareConfigBuilder {
            config: SquareConfig {
                access_token: Secret::new(access_token.into()),
                base_url: default_base_url(),
                square_version: default_square_version(),
                location_ids: None,
                payments_created_since: default_payments_created_since(),
                http: default_http(),
                rate_limit: RateLimit::none(),
                retry: RetryPolicy::default(),
            },
        }
    }

    /// Checks every value without I/O: a token, an http(s) base URL without query, a
    /// `YYYY-MM-DD` version, non-empty location ids, valid HTTP and rate-limit settings.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, message: &str| {
            Err(Error::config(format!("square config: {message}"))
                .with_context("connector", "square")
                .with_context("field", field))
        };
        let token = self.access_token.expose();
        if token.trim().is_empty() {
            return invalid("access_token", "the access token is empty");
        }
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return invalid(
                "access_token",
                "the access token holds spaces or control characters",
            );
        }
        match url::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => {}
            _ => {
                return invalid(
                    "base_url",
                    "base_url must be an http(s) url without a query",
                )
            }
        }
        if chrono::NaiveDate::parse_from_str(&self.square_version, "%Y-%m-%d").is_err() {
            return invalid("square_version", "square_version must be a YYYY-MM-DD date");
        }
        if let Some(ids) = &self.location_ids {
            if ids.is_empty() {
                return invalid(
                    "location_ids",
                    "location_ids is empty (leave it out to read every location)",
                );
            }
            if ids.iter().any(|id| id.trim().is_empty()) {
                return invalid("location_ids", "a location id is empty");
            }
        }
        self.http.validate()?;
        self.rate_limit.validate()?;
        Ok(())
    }

    /// `base_url` without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// Builder for [`SquareConfig`]; [`build`](Self::build) validates and does no I/O.
#[derive(Debug, Clone)]
pub struct SquareConfigBuilder {
    config: SquareConfig,
}

impl SquareConfigBuilder {
    /// Sets the base URL (production, [`SANDBOX_URL`], or a test server).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = url.into();
        self
    }

    /// Sets the `Square-Version` header.
    pub fn with_square_version(mut self, version: impl Into<String>) -> Self {
        self.config.square_version = version.into();
        self
    }

    /// Reads only these locations (orders, payments, inventory counts).
    pub fn with_location_ids<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.config.location_ids = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the earliest payment creation time read.
    pub fn with_payments_created_since(mut self, since: DateTime<Utc>) -> Self {
        self.config.payments_created_since = since;
        self
    }

    /// Sets the HTTP client settings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.config.http = http;
        self
    }

    /// Sets a proactive rate limit.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = limit;
        self
    }

    /// Sets the retry policy of the high-watermark probe.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Validates ([`SquareConfig::validate`]) and returns the config.
    pub fn build(self) -> Result<SquareConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}
