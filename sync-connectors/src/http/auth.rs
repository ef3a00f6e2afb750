//! Authentication: [`Secret`], [`Auth`], and the OAuth2 token cache behind an [`HttpClient`].
//!
//! The token cache refreshes single-flight: the first request that finds the token missing or
//! due takes the lock and fetches; every other request waits on the same lock and then uses
//! the fresh token. A token is due 30 s before it expires (`expires_in - 30 s` after it was
//! issued; at half its lifetime for tokens shorter than a minute), or as soon as a request
//! using it got a 401.
//!
//! [`HttpClient`]: super::HttpClient

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sync_core::{Error, ErrorKind, Result};
use tokio::time::{Duration, Instant};

use super::classify::{classify_status, classify_transport, redact_url};
use super::client::read_capped;
use super::secret::Secret;
use super::HttpConfig;

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    /// A request header named after the key.
    #[default]
    Header,
    /// A query pair named after the key.
    Query,
}

/// How an OAuth2 client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret (`client_secret_basic`).
    #[default]
    #[serde(alias = "client_secret_basic")]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    #[serde(alias = "client_secret_post")]
    Body,
}

/// How requests authenticate. Serde data tagged by `type`; secrets are [`Secret`]s, so
/// `Debug` and serialization never show them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    #[default]
    #[serde(deserialize_with = "no_fields")]
    None,
    /// HTTP Basic.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// An API key in a header or a query pair.
    ApiKey {
        /// The header or query name, for example `X-Api-Key`.
        name: String,
        /// The key.
        value: Secret,
        /// Header (default) or query.
        #[serde(default)]
        location: ApiKeyLocation,
    },
    /// OAuth2 client credentials grant (RFC 6749 section 4.4); the token is sent as a bearer
    /// token, cached and shared by clones of the client.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        /// The token endpoint.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
        /// Scopes, sent space-separated as `scope` when not empty.
        #[serde(default)]
        scopes: Vec<String>,
        /// `audience`, sent when set (Auth0 and others).
        #[serde(default)]
        audience: Option<String>,
        /// Basic header (default) or form body.
        #[serde(default)]
        client_auth: ClientAuth,
    },
}

impl Auth {
    /// Checks the configuration without I/O: names are valid, the token URL is http(s).
    pub fn validate(&self) -> Result<()> {
        match self {
            Auth::None | Auth::Bearer { .. } => Ok(()),
            Auth::Basic { username, .. } => {
                if username.contains(':') {
                    return Err(Error::config("basic auth username must not contain ':'"));
                }
                Ok(())
            }
            Auth::ApiKey { name, location, .. } => {
                let valid = match location {
                    ApiKeyLocation::Header => {
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                    }
                    ApiKeyLocation::Query => !name.is_empty(),
                };
                if !valid {
                    return Err(
                        Error::config("api key name is not valid").with_context("name", name)
                    );
                }
                Ok(())
            }
            Auth::OAuth2ClientCredentials { token_url, .. } => match url::Url::parse(token_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
                _ => Err(Error::config("oauth2 token_url is not an http(s) url")
                    .with_context("url", redact_url(token_url))),
            },
        }
    }

    /// Every secret value this auth may send, in any form it is sent in.
    fn secret_values(&self) -> Vec<String> {
        match self {
            Auth::None => vec![],
            Auth::Basic { username, password } => vec![
                password.expose().to_owned(),
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose())),
            ],
            Auth::Bearer { token } => vec![token.expose().to_owned()],
            Auth::ApiKey { value, .. } => vec![value.expose().to_owned()],
            Auth::OAuth2ClientCredentials {
                client_id,
                client_secret,
                ..
            } => vec![
                client_secret.expose().to_owned(),
                basic_credentials(client_id, client_secret.expose()),
            ],
        }
    }
}

/// Rejects any field besides `type` for [`Auth::None`] (serde ignores `deny_unknown_fields`
/// for unit variants of tagged enums).
fn no_fields<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<(), D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoFields {}
    NoFields::deserialize(d).map(|NoFields {}| ())
}

/// `base64(urlencode(id) ":" urlencode(secret))`, as RFC 6749 section 2.3.1 asks.
fn basic_credentials(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
}

/// An OAuth2 access token as cached.
#[derive(Clone)]
pub(crate) struct BearerToken {
    pub(crate) value: Secret,
    /// Bumped at every fetch: a 401 invalidates only the token the request used.
    pub(crate) generation: u64,
    refresh_at: Option<Instant>,
}

/// The authentication of one client and its clones, with the OAuth2 token cache.
pub(crate) struct AuthState {
    auth: Auth,
    invalid: Option<String>,
    token: tokio::sync::Mutex<Option<BearerToken>>,
}

impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.auth.fmt(f)
    }
}

impl AuthState {
    pub(crate) fn new(auth: Auth) -> Self {
        let invalid = auth.validate().err().map(|e| e.to_string());
        AuthState {
            auth,
            invalid,
            token: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Fails when the auth configuration did not validate.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.invalid {
            None => Ok(()),
            Some(message) => Err(Error::config(message.clone())),
        }
    }

    /// The OAuth2 token to send, fetched when missing or due; `None` for other auth kinds.
    pub(crate) async fn bearer(
        &self,
        http: &reqwest::Client,
        config: &HttpConfig,
    ) -> Result<Option<BearerToken>> {
        if !matches!(self.auth, Auth::OAuth2ClientCredentials { .. }) {
            return Ok(None);
        }
        // Single flight: whoever holds the lock fetches, the others wait and reuse.
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if token.refresh_at.map_or(true, |at| Instant::now() < at) {
                return Ok(Some(token.clone()));
            }
        }
        let generation = cached.as_ref().map_or(1, |t| t.generation + 1);
        let (value, lifetime) = self.fetch(http, config).await?;
        let refresh_at = lifetime.map(|life| {
            let early = life.saturating_sub(Duration::from_secs(30)).max(life / 2);
            Instant::now() + early
        });
        tracing::debug!(
            generation,
            expires_in_s = lifetime.map(|d| d.as_secs()),
            "oauth2 token fetched"
        );
        let token = BearerToken {
            value,
            generation,
            refresh_at,
        };
        *cached = Some(token.clone());
        Ok(Some(token))
    }

    /// Drops the cached token if it is still the one of `generation` (a request using it got
    /// a 401), so that many 401s of the same token cause one refresh.
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_mut() {
            if token.generation == generation {
                token.refresh_at = Some(Instant::now());
            }
        }
    }

    /// Replaces every secret this auth knows (and the cached token) by `***` in `text`.
    pub(crate) fn scrub(&self, text: &[u8]) -> Vec<u8> {
        let mut secrets = self.auth.secret_values();
        if let Ok(cached) = self.token.try_lock() {
            if let Some(token) = cached.as_ref() {
                secrets.push(token.value.expose().to_owned());
            }
        }
        let mut out = text.to_vec();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            out = replace_all(&out, secret.as_bytes(), b"***");
        }
        out
    }

    /// Requests a token from the token endpoint: the value and its lifetime, if given.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        config: &HttpConfig,
    ) -> Result<(Secret, Option<Duration>)> {
        let Auth::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            client_auth,
        } = &self.auth
        else {
            return Err(Error::internal("oauth2 fetch without oauth2 auth"));
        };
        let redacted = redact_url(token_url);
        let mut pairs = vec![("grant_type", "client_credentials".to_owned())];
        if !scopes.is_empty() {
            pairs.push(("scope", scopes.join(" ")));
        }
        if let Some(audience) = audience {
            pairs.push(("audience", audience.clone()));
        }
        let mut request = http
            .post(token_url.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        match client_auth {
            ClientAuth::Basic => {
                let credentials = basic_credentials(client_id, client_secret.expose());
                let mut value =
                    reqwest::header::HeaderValue::from_str(&format!("Basic {credentials}"))
                        .map_err(|_| {
                            Error::config("oauth2 client credentials are not valid in a header")
                        })?;
                value.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            ClientAuth::Body => {
                pairs.push(("client_id", client_id.clone()));
                pairs.push(("client_secret", client_secret.expose().to_owned()));
            }
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let request = request.body(form);
        let token_error = |e: Error| e.with_context("step", "oauth2 token request");
        let response = request
            .send()
            .await
            .map_err(|e| token_error(classify_transport(e, &redacted)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if !(200..300).contains(&status) {
            let limit = config.error_body_excerpt_bytes.saturating_add(4) as u64;
            let body = read_capped(response, limit, &redacted, true)
                .await
                .unwrap_or_default();
            let body = self.scrub(&body);
            let error = classify_status(
                status,
                &headers,
                &body,
                &redacted,
                config.error_body_excerpt_bytes,
            );
            return Err(token_error(error));
        }
        let body: Bytes = read_capped(response, config.max_response_bytes, &redacted, false)
            .await
            .map_err(token_error)?;
        parse_token(&body).map_err(|e| token_error(e.with_context("url", &redacted)))
    }
}

/// Parses `{"access_token": "...", "expires_in": 3600}` (`expires_in` may be a string).
/// The serde error is not attached: its message could quote the token.
fn parse_token(body: &[u8]) -> Result<(Secret, Option<Duration>)> {
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let malformed = || {
        Error::new(
            ErrorKind::InvalidInput,
            "oauth2 token response is malformed",
        )
    };
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|_| malformed())?;
    let expires_in = match parsed.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(n.as_f64().ok_or_else(malformed)?),
        Some(serde_json::Value::String(s)) => {
            Some(s.trim().parse::<f64>().map_err(|_| malformed())?)
        }
        Some(_) => return Err(malformed()),
    };
    let lifetime = match expires_in {
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            Some(Duration::from_secs_f64(secs.min(u32::MAX as f64)))
        }
        Some(_) => return Err(malformed()),
        None => None,
    };
    if parsed.access_token.is_empty() {
        return Err(malformed());
    }
    Ok((Secret::new(parsed.access_token), lifetime))
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_serde_uses_the_type_tag() {
        let auth: Auth =
            serde_json::from_str(r#"{"type": "api_key", "name": "X-Api-Key", "value": "k-1"}"#)
                .unwrap();
        assert_eq!(
            auth,
            Auth::ApiKey {
                name: "X-Api-Key".into(),
                value: Secret::new("k-1"),
                location: ApiKeyLocation::Header
            }
        );
        let auth: Auth = serde_json::from_str(
            r#"{"type": "oauth2_client_credentials", "token_url": "https://a/t",
                "client_id": "id", "client_secret": "s-1", "client_auth": "client_secret_post"}"#,
        )
        .unwrap();
        let Auth::OAuth2ClientCredentials {
            scopes,
            client_auth,
            audience,
            ..
        } = &auth
        else {
            panic!("{auth:?}");
        };
        assert!(scopes.is_empty() && audience.is_none());
        assert_eq!(*client_auth, ClientAuth::Body);
        assert!(serde_json::from_str::<Auth>(r#"{"type": "none", "extra": 1}"#).is_err());
        assert!(
            serde_json::from_str::<Auth>(r#"{"type": "bearer", "token": "t", "x": 1}"#).is_err()
        );
        let out = serde_json::to_string(&auth).unwrap();
        assert!(!out.contains("s-1"), "{out}");
    }

    #[test]
    fn scrub_replaces_every_known_secret() {
        let state = AuthState::new(Auth::Basic {
            username: "u".into(),
            password: Secret::new("pw-123"),
        });
        let encoded = base64::engine::general_purpose::STANDARD.encode("u:pw-123");
        let body = format!("bad password pw-123, header {encoded}");
        let out = String::from_utf8(state.scrub(body.as_bytes())).unwrap();
        assert_eq!(out, "bad password ***, header ***");
    }

    #[test]
    fn token_responses_parse_or_fail_without_quoting() {
        let (t, life) = parse_token(br#"{"access_token": "a", "expires_in": "60"}"#).unwrap();
        assert_eq!((t.expose(), life), ("a", Some(Duration::from_secs(60))));
        let (_, life) = parse_token(br#"{"access_token": "a", "token_type": "bearer"}"#).unwrap();
        assert_eq!(life, None);
        let e = parse_token(br#"{"access_token": 12345678}"#).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("12345678"));
    }
}
