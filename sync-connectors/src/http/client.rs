//! [`HttpClient`]: one reqwest client (pool, TLS, compression, timeouts) with the
//! authentication and the rate limiter of one credential.

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use sync_core::{Error, ErrorKind, Result, RetryPolicy};
use tokio::time::{Duration, Instant};

use super::auth::{AuthState, BearerToken};
use super::classify::{classify_status, classify_transport, redact_url};
use super::limit::{Limiter, RateLimit};
use super::{
    default_user_agent, ApiKeyLocation, Auth, HttpConfig, HttpRequest, HttpResponse, RequestBody,
};

/// Redirects followed at most, within one origin.
const MAX_REDIRECTS: usize = 10;

/// The HTTP client of one credential.
///
/// Clones share the connection pool, the rate limiter and the OAuth2 token cache.
/// [`with_auth`](Self::with_auth) gives the client a token cache of its own and keeps the
/// limiter; [`with_rate_limit`](Self::with_rate_limit) gives it a limiter of its own. Clones
/// made before keep the old ones. For a limit per credential, configure one client per
/// credential (`with_auth` then `with_rate_limit`) and clone that.
///
/// Redirects are followed within the origin of the request only (at most 10): a redirect to
/// another origin is returned as a permanent error, so a credential never travels to a host
/// it was not configured for.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    config: Arc<HttpConfig>,
    auth: Arc<AuthState>,
    limiter: Arc<Limiter>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .field("rate_limit", self.limiter.limit())
            .finish()
    }
}

impl HttpClient {
    /// Validates `config` and builds the client; no I/O happens until a request is sent.
    pub fn new(config: HttpConfig) -> Result<HttpClient> {
        config.validate()?;
        let millis = Duration::from_millis;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .pool_max_idle_per_host(config.max_idle_connections_per_host)
            .pool_idle_timeout(config.pool_idle_timeout_ms.map(millis))
            .gzip(config.compression)
            .deflate(config.compression)
            .redirect(redirect_policy())
            .user_agent(config.user_agent.clone().unwrap_or_else(default_user_agent));
        if let Some(ms) = config.connect_timeout_ms {
            builder = builder.connect_timeout(millis(ms));
        }
        if let Some(ms) = config.read_timeout_ms {
            builder = builder.read_timeout(millis(ms));
        }
        if let Some(ms) = config.total_timeout_ms {
            builder = builder.timeout(millis(ms));
        }
        let http = builder.build().map_err(|e| {
            Error::config("http client cannot be built").with_source(e.without_url())
        })?;
        Ok(HttpClient {
            http,
            config: Arc::new(config),
            auth: Arc::new(AuthState::new(Auth::None)),
            limiter: Arc::new(Limiter::new(RateLimit::none())?),
        })
    }

    /// Uses `auth` for every request, with a token cache of its own. An invalid `auth` makes
    /// every request fail with a [`ErrorKind::Config`] error (see [`Auth::validate`]).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = Arc::new(AuthState::new(auth));
        self
    }

    /// Limits the requests of this client and its future clones.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Result<Self> {
        self.limiter = Arc::new(Limiter::new(limit)?);
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The authentication (secrets stay [`Secret`](super::Secret)s).
    pub fn auth(&self) -> &Auth {
        self.auth.auth()
    }

    /// The rate limit.
    pub fn rate_limit(&self) -> &RateLimit {
        self.limiter.limit()
    }

    /// One attempt: waits for the rate limiter, applies auth, sends, reads the capped body, and
    /// turns a non-2xx status or a transport failure into a classified Error. For OAuth2, a
    /// 401 refreshes the token once and resends.
    pub async fn execute(&self, request: &HttpRequest) -> Result<HttpResponse> {
        let url = request_url(request)?;
        let redacted = redact_url(url.as_str());
        self.auth.check()?;
        let started = Instant::now();
        let outcome = self.attempt(request, url, &redacted).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let method = request.method.as_str();
        match &outcome {
            Ok(response) => tracing::debug!(
                method,
                url = %redacted,
                status = response.status,
                bytes = response.body.len(),
                elapsed_ms,
                "http request"
            ),
            Err(error) => tracing::debug!(
                method,
                url = %redacted,
                status = error.context_value("status"),
                elapsed_ms,
                error = %error,
                "http request failed"
            ),
        }
        outcome
    }

    /// `execute` under a sync-core RetryPolicy (transient errors retried, Retry-After
    /// honoured).
    pub async fn execute_with_retry(
        &self,
        request: &HttpRequest,
        policy: &RetryPolicy,
    ) -> Result<HttpResponse> {
        policy.run(|| self.execute(request), |_, _, _| {}).await
    }

    async fn attempt(
        &self,
        request: &HttpRequest,
        url: url::Url,
        redacted: &str,
    ) -> Result<HttpResponse> {
        // Held until the body has been read: it counts requests in flight.
        let _permit = self.limiter.permit().await;
        let mut refreshed = false;
        loop {
            self.limiter.pace().await;
            let token = self.auth.bearer(&self.http, &self.config).await?;
            let builder = self.build(request, url.clone(), token.as_ref())?;
            let response = builder
                .send()
                .await
                .map_err(|e| classify_transport(e, redacted))?;
            let status = response.status().as_u16();
            if status == 401 && !refreshed {
                if let Some(token) = &token {
                    tracing::debug!(url = %redacted, "401 with an oauth2 token, refreshing it");
                    self.auth.invalidate(token.generation).await;
                    refreshed = true;
                    continue;
                }
            }
            if !(200..300).contains(&status) {
                return Err(self.status_error(response, redacted).await);
            }
            let final_url = redact_url(response.url().as_str());
            let headers = response.headers().clone();
            let body =
                read_capped(response, self.config.max_response_bytes, redacted, false).await?;
            return Ok(HttpResponse {
                status,
                headers,
                body,
                url: final_url,
            });
        }
    }

    /// The classified error of a non-2xx response, with an excerpt of its body from which
    /// every known secret has been removed.
    async fn status_error(&self, response: reqwest::Response, redacted: &str) -> Error {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let excerpt = self.config.error_body_excerpt_bytes;
        // A little more than the excerpt, so a secret cut at the limit is still recognised.
        let limit = excerpt.saturating_add(256) as u64;
        let body = read_capped(response, limit, redacted, true)
            .await
            .unwrap_or_default();
        let body = self.auth.scrub(&body);
        let mut error = classify_status(status, &headers, &body, redacted, excerpt);
        if (300..400).contains(&status) {
            if let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
                error = error
                    .with_context("location", redact_url(location))
                    .with_context("reason", "redirect to another origin not followed");
            }
        }
        error
    }

    fn build(
        &self,
        request: &HttpRequest,
        mut url: url::Url,
        token: Option<&BearerToken>,
    ) -> Result<reqwest::RequestBuilder> {
        if let Auth::ApiKey {
            name,
            value,
            location: ApiKeyLocation::Query,
        } = self.auth.auth()
        {
            url.query_pairs_mut().append_pair(name, value.expose());
        }
        let mut builder = self.http.request(request.method.to_reqwest(), url);
        let mut has_content_type = false;
        for (name, value) in &request.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::invalid_input("invalid request header name").with_context("header", name)
            })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                Error::invalid_input("invalid request header value").with_context("header", name)
            })?;
            value.set_sensitive(is_sensitive_header(header.as_str()));
            has_content_type |= header == CONTENT_TYPE;
            builder = builder.header(header, value);
        }
        builder = match self.auth.auth() {
            Auth::None | Auth::OAuth2ClientCredentials { .. } => builder,
            Auth::Basic { username, password } => {
                builder.basic_auth(username, Some(password.expose()))
            }
            Auth::Bearer { token } => builder.bearer_auth(token.expose()),
            Auth::ApiKey {
                name,
                value,
                location: ApiKeyLocation::Header,
            } => {
                let mut value = HeaderValue::from_str(value.expose())
                    .map_err(|_| Error::config("api key is not a valid header value"))?;
                value.set_sensitive(true);
                builder.header(name.as_str(), value)
            }
            Auth::ApiKey { .. } => builder,
        };
        if let Some(token) = token {
            builder = builder.bearer_auth(token.value.expose());
        }
        let (content_type, body): (&str, Bytes) = match &request.body {
            None => return Ok(builder),
            Some(RequestBody::Json(bytes)) => ("application/json", bytes.clone()),
            Some(RequestBody::Form(pairs)) => {
                let form = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                ("application/x-www-form-urlencoded", Bytes::from(form))
            }
            Some(RequestBody::Raw {
                content_type,
                bytes,
            }) => (content_type.as_str(), bytes.clone()),
        };
        if !has_content_type {
            let value = HeaderValue::from_str(content_type)
                .map_err(|_| Error::invalid_input("invalid request body content type"))?;
            builder = builder.header(CONTENT_TYPE, value);
        }
        Ok(builder.body(body))
    }
}

/// The request URL with the extra query pairs appended; only absolute http(s) URLs.
fn request_url(request: &HttpRequest) -> Result<url::Url> {
    let invalid = |message: &str| {
        Error::invalid_input(message.to_owned()).with_context("url", redact_url(&request.url))
    };
    let mut url = url::Url::parse(&request.url).map_err(|_| invalid("invalid request url"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("request url is not http or https"));
    }
    if !request.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&request.query);
    }
    Ok(url)
}

/// Header names whose values are marked sensitive (kept out of reqwest's and hyper's debug
/// output and out of HPACK tables).
fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["key", "token", "secret", "password", "signature"]
        .iter()
        .any(|word| name.contains(word))
}

/// Follows up to [`MAX_REDIRECTS`] redirects within one origin; stops at a redirect to another
/// origin (the 3xx becomes a permanent error) and fails on a loop.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let previous = attempt.previous();
        let same_origin = previous
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if previous.contains(attempt.url()) {
            attempt.error("redirect loop")
        } else if previous.len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if !same_origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// Reads the body as a stream, failing once more than `limit` decompressed bytes arrive; with
/// `truncate` it stops there instead and returns the first `limit` bytes.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
    redacted: &str,
    truncate: bool,
) -> Result<Bytes> {
    let too_large = || {
        Error::new(
            ErrorKind::InvalidInput,
            "http response body exceeds the size limit",
        )
        .permanent()
        .with_context("limit_bytes", limit)
        .with_context("url", redacted)
    };
    let announced = response.content_length();
    if !truncate && announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let capacity = announced.unwrap_or(0).min(limit).min(16 * 1024 * 1024) as usize;
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| classify_transport(e, redacted))?
    {
        let room = limit - buf.len() as u64;
        if chunk.len() as u64 > room {
            if truncate {
                buf.extend_from_slice(&chunk[..room as usize]);
                break;
            }
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
