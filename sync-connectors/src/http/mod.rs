//! The HTTP layer every connector shares.
//!
//! One [`HttpClient`] per credential: it owns the connection pool (rustls, gzip and deflate),
//! the timeouts, the response size cap, the authentication ([`Auth`], secrets in [`Secret`])
//! and a proactive [`RateLimit`]. Clones share all of them.
//!
//! A request goes through these steps, in [`HttpClient::execute`]:
//!
//! 1. wait for a concurrency permit and a rate-limit slot ([`RateLimit`]);
//! 2. apply authentication (an OAuth2 token is fetched once and cached, refreshed before it
//!    expires or once after a 401);
//! 3. send, read the body as a stream under the decompressed size cap;
//! 4. turn a non-2xx status into an [`Error`](sync_core::Error) with [`classify_status`], the
//!    one classification function, and a transport failure into a transient or permanent error.
//!
//! [`HttpClient::execute_with_retry`] runs the same under a [`RetryPolicy`](sync_core::RetryPolicy):
//! transient errors are retried and `Retry-After` is honoured exactly.
//!
//! No credential reaches an error, a log line or `Debug` output: URLs are reported as
//! `scheme://host[:port]/path` without the query ([`redact_url`]), header values are never
//! printed, and secrets print as `***`.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod auth;
mod classify;
mod client;
mod limit;
mod link;
mod secret;

pub use auth::{ApiKeyLocation, Auth, ClientAuth};
pub use classify::{classify_status, parse_retry_after, redact_url};
pub use client::HttpClient;
pub use limit::RateLimit;
pub use link::{next_link, parse_link_header, Link};
pub use reqwest::header::HeaderMap;
pub use secret::Secret;

/// Settings of an [`HttpClient`]: timeouts, pool, compression, the response size cap.
///
/// Every field has a default, so `{}` is a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Time allowed to open a connection (TCP and TLS), in milliseconds; `None` waits forever.
    pub connect_timeout_ms: Option<u64>,
    /// Time allowed between two reads: for the response head and between body chunks, in
    /// milliseconds; `None` waits forever.
    pub read_timeout_ms: Option<u64>,
    /// Time allowed for the whole request, body included, in milliseconds; `None` waits
    /// forever.
    pub total_timeout_ms: Option<u64>,
    /// Largest response body accepted, counted after decompression. A larger body fails with
    /// a permanent [`ErrorKind::InvalidInput`](sync_core::ErrorKind::InvalidInput) error once
    /// the limit is passed; it is never buffered whole.
    pub max_response_bytes: u64,
    /// Idle connections kept open per host.
    pub max_idle_connections_per_host: usize,
    /// How long an idle connection stays in the pool, in milliseconds; `None` keeps it until
    /// the server closes it (and runs no pool timer, which paused-clock tests need).
    pub pool_idle_timeout_ms: Option<u64>,
    /// Accept and decode gzip and deflate responses.
    pub compression: bool,
    /// The `User-Agent` header; `None` sends `sync-connectors/<version>`.
    pub user_agent: Option<String>,
    /// How much of an error response's body goes into the error, in bytes.
    pub error_body_excerpt_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout_ms: Some(10_000),
            read_timeout_ms: Some(60_000),
            total_timeout_ms: Some(300_000),
            max_response_bytes: 64 * 1024 * 1024,
            max_idle_connections_per_host: 8,
            pool_idle_timeout_ms: Some(90_000),
            compression: true,
            user_agent: Some(default_user_agent()),
            error_body_excerpt_bytes: 512,
        }
    }
}

/// `sync-connectors/<version>`.
pub(crate) fn default_user_agent() -> String {
    format!("sync-connectors/{}", env!("CARGO_PKG_VERSION"))
}

impl HttpConfig {
    /// Checks the values without doing any I/O: timeouts and the size cap must not be zero,
    /// the user agent must be a valid header value.
    pub fn validate(&self) -> sync_core::Result<()> {
        let timeouts = [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("read_timeout_ms", self.read_timeout_ms),
            ("total_timeout_ms", self.total_timeout_ms),
            ("pool_idle_timeout_ms", self.pool_idle_timeout_ms),
        ];
        for (field, value) in timeouts {
            if value == Some(0) {
                return Err(
                    sync_core::Error::config("a timeout must be positive or unset")
                        .with_context("field", field),
                );
            }
        }
        if self.max_response_bytes == 0 {
            return Err(sync_core::Error::config(
                "max_response_bytes must be positive",
            ));
        }
        if let Some(agent) = &self.user_agent {
            if reqwest::header::HeaderValue::from_str(agent).is_err() {
                return Err(sync_core::Error::config(
                    "user_agent is not a valid header value",
                ));
            }
        }
        Ok(())
    }
}

/// An HTTP method. Serde accepts `"GET"` as well as `"get"`; it writes `"GET"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// `GET`.
    #[default]
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The method name in upper case, as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Parses a method name, ignoring case.
    pub fn parse(name: &str) -> Option<Method> {
        [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Method::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown http method `{name}`, expected GET, POST, PUT, PATCH or DELETE"
            ))
        })
    }
}

/// One request: method, absolute URL, extra query pairs, headers and an optional body.
///
/// `Debug` prints the URL without its query, the names of query pairs and headers, and the
/// body's size: never a value, which may be a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The absolute URL; it may already hold a query.
    pub url: String,
    /// Pairs appended to the URL's query, percent-encoded.
    pub query: Vec<(String, String)>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<RequestBody>,
}

impl HttpRequest {
    /// A request with this method and URL, nothing else.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        HttpRequest {
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request with a JSON body (`Content-Type: application/json`).
    pub fn post_json(url: impl Into<String>, body: Bytes) -> Self {
        Self::new(Method::Post, url).with_body(RequestBody::Json(body))
    }

    /// Appends a query pair.
    pub fn with_query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: RequestBody) -> Self {
        self.body = Some(body);
        self
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query: Vec<&str> = self.query.iter().map(|(k, _)| k.as_str()).collect();
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("query", &query)
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

/// A request body.
///
/// `Debug` prints the kind and size, and the field names of a form, never the content.
#[derive(Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// JSON bytes, sent with `Content-Type: application/json`.
    Json(Bytes),
    /// Pairs sent as `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// Bytes with their own content type.
    Raw {
        /// The `Content-Type` header.
        content_type: String,
        /// The bytes.
        bytes: Bytes,
    },
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Json(b) => write!(f, "Json({} bytes)", b.len()),
            RequestBody::Form(pairs) => {
                let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                f.debug_tuple("Form").field(&names).finish()
            }
            RequestBody::Raw {
                content_type,
                bytes,
            } => write!(f, "Raw({content_type}, {} bytes)", bytes.len()),
        }
    }
}

/// A successful (2xx) response with its whole, decompressed body.
#[derive(Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The response headers (after decompression `Content-Encoding` and `Content-Length`
    /// are gone).
    pub headers: HeaderMap,
    /// The whole decompressed body, at most `max_response_bytes`.
    pub body: Bytes,
    /// The final URL (after redirects), without its query.
    pub url: String,
}

impl HttpResponse {
    /// The first value of a header, when present and valid UTF-8 (ASCII in practice).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Date` header: the server's clock when it answered.
    pub fn date(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let value = self.header("date")?;
        let time = httpdate::parse_http_date(value.trim()).ok()?;
        Some(chrono::DateTime::<chrono::Utc>::from(time))
    }

    /// The `Link` target with `rel="next"`, if any (see [`next_link`]), resolved against the
    /// response URL when it is relative.
    pub fn next_link(&self) -> Option<String> {
        let target = next_link(&self.headers)?;
        let resolved = url::Url::parse(&self.url).and_then(|base| base.join(&target));
        Some(resolved.map(String::from).unwrap_or(target))
    }

    /// Decodes the body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> sync_core::Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| sync_core::Error::from(e).with_context("url", &self.url))
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_empty_object_agree() {
        let parsed: HttpConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, HttpConfig::default());
        assert_eq!(parsed.max_response_bytes, 64 * 1024 * 1024);
        assert!(serde_json::from_str::<HttpConfig>(r#"{"nope": 1}"#).is_err());
        assert!(HttpConfig::default().validate().is_ok());
        let zero = HttpConfig {
            read_timeout_ms: Some(0),
            ..HttpConfig::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn method_accepts_both_cases() {
        let m: Method = serde_json::from_str(r#""get""#).unwrap();
        assert_eq!(m, Method::Get);
        let m: Method = serde_json::from_str(r#""PATCH""#).unwrap();
        assert_eq!(m, Method::Patch);
        assert_eq!(
            serde_json::to_string(&Method::Delete).unwrap(),
            r#""DELETE""#
        );
        assert!(serde_json::from_str::<Method>(r#""TRACE""#).is_err());
    }

    #[test]
    fn request_debug_shows_names_only() {
        let req = HttpRequest::get("https://api.example.com/v1/items?api_key=k-123")
            .with_query("token", "t-456")
            .with_header("Authorization", "Bearer b-789")
            .with_body(RequestBody::Form(vec![("password".into(), "p-000".into())]));
        let out = format!("{req:?}");
        for secret in ["k-123", "t-456", "b-789", "p-000"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(
            out.contains("Authorization") && out.contains("token"),
            "{out}"
        );
    }

    #[test]
    fn response_next_link_is_resolved_against_the_response_url() {
        let mut headers = HeaderMap::new();
        headers.insert("link", r#"</v1/items?page=2>; rel="next""#.parse().unwrap());
        let resp = HttpResponse {
            status: 200,
            headers,
            body: Bytes::new(),
            url: "https://api.example.com/v1/items".into(),
        };
        assert_eq!(
            resp.next_link().as_deref(),
            Some("https://api.example.com/v1/items?page=2")
        );
    }

    #[test]
    fn response_date_is_the_server_clock() {
        let mut headers = HeaderMap::new();
        headers.insert("date", "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        let resp = HttpResponse {
            status: 200,
            headers,
            body: Bytes::new(),
            url: "http://x/".into(),
        };
        assert_eq!(
            resp.date().unwrap().to_rfc3339(),
            "1994-11-06T08:49:37+00:00"
        );
    }
}
