//! A typed client of the admin API over reqwest: what an operator's script, a dashboard or
//! another service calls. Error replies become the library's [`Error`] with the API's code
//! and message (never the token).

use std::fmt;

use reqwest::Method;
use serde_json::{json, Value};
use sync_core::jobs::{check_name, Job};
use sync_core::{Error, ErrorKind, Result};

/// A client of one admin API.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("token", &"***")
            .finish()
    }
}

impl AdminClient {
    /// A client of the API at `base` (`http://127.0.0.1:8080`) sending `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::config("cannot build the HTTP client").with_source(e))?;
        Ok(AdminClient {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
        })
    }

    /// Sends one request to `path` (already encoded); a non-2xx reply is an error carrying the
    /// API's code and message. The typed calls below check the names they put in paths and
    /// query strings first (letters, digits, `_`, `-`, `.`, `:`, as the API requires), so a
    /// name can never add a path segment or a query parameter.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            Error::new(ErrorKind::Remote, "the admin API did not answer")
                .with_context("path", path)
                .with_source(e)
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        let reply: Value = response.json().await.map_err(|e| {
            Error::new(ErrorKind::Remote, "the admin API's reply is not JSON")
                .with_context("path", path)
                .with_source(e)
        })?;
        if status.is_success() {
            return Ok(reply);
        }
        let code = reply["error"]["code"].as_str().unwrap_or("unknown");
        let message = reply["error"]["message"].as_str().unwrap_or("");
        let kind = match (status.as_u16(), code) {
            (_, "busy") => ErrorKind::Busy,
            (400 | 413 | 422, _) => ErrorKind::InvalidInput,
            (404, _) => ErrorKind::NotFound,
            (409, _) => ErrorKind::Conflict,
            (401 | 403, _) => ErrorKind::Config,
            _ => ErrorKind::Remote,
        };
        let mut err = Error::new(kind, message)
            .with_context("code", code)
            .with_context("method", method)
            .with_context("path", path)
            .with_context("status", status.as_u16());
        if let Some(after) = retry_after {
            err = err.with_retry_after(after);
        }
        Err(err)
    }

    /// `PUT /{provider}/integrations/{tenant}`: creates or replaces an integration (`body`
    /// as the route takes it: strategy, streams, settings, max_attempts, ...).
    pub async fn put_integration(
        &self,
        provider: &str,
        tenant: &str,
        body: &Value,
    ) -> Result<Value> {
        check_name("provider", provider)?;
        check_name("tenant", tenant)?;
        let path = format!("/{provider}/integrations/{tenant}");
        self.call(Method::PUT, &path, Some(body)).await
    }

    /// `POST /{provider}/sync`: triggers the tenant's streams; returns the open jobs (new or
    /// already there).
    pub async fn trigger(&self, provider: &str, tenant: &str) -> Result<Vec<Job>> {
        check_name("provider", provider)?;
        check_name("tenant", tenant)?;
        let reply = self
            .call(
                Method::POST,
                &format!("/{provider}/sync"),
                Some(&json!({ "tenant": tenant })),
            )
            .await?;
        reply["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| job_of(&e["job"]))
            .collect()
    }

    /// `POST /{provider}/sync/stop`: stops the tenant's open jobs gracefully; returns how
    /// many were asked to stop.
    pub async fn stop(&self, provider: &str, tenant: &str) -> Result<u64> {
        check_name("provider", provider)?;
        check_name("tenant", tenant)?;
        let path = format!("/{provider}/sync/stop");
        let reply = self
            .call(Method::POST, &path, Some(&json!({ "tenant": tenant })))
            .await?;
        Ok(reply["stopped"].as_u64().unwrap_or(0))
    }

    /// `POST /{provider}/sync/retry`: requeues the tenant's failed jobs; returns how many.
    pub async fn retry_failed(&self, provider: &str, tenant: &str) -> Result<u64> {
        check_name("provider", provider)?;
        check_name("tenant", tenant)?;
        let path = format!("/{provider}/sync/retry");
        let reply = self
            .call(Method::POST, &path, Some(&json!({ "tenant": tenant })))
            .await?;
        Ok(reply["requeued"].as_u64().unwrap_or(0))
    }

    /// `POST /{provider}/sync/reset`: forgets the checkpoint of the tenant's `stream` (the
    /// next sync starts from the beginning); refused while it runs.
    pub async fn reset(&self, provider: &str, tenant: &str, stream: &str) -> Result<()> {
        check_name("provider", provider)?;
        check_name("tenant", tenant)?;
        check_name("stream", stream)?;
        let body = json!({
            "tenant": tenant,
            "stream": stream,
            "confirm": format!("{provider}/{tenant}/{stream}"),
        });
        let path = format!("/{provider}/sync/reset");
        self.call(Method::POST, &path, Some(&body)).await.map(drop)
    }

    /// `GET /{provider}/sync/status[?tenant=]`: integrations, checkpoints, job counts by
    /// status and open jobs.
    pub async fn status(&self, provider: &str, tenant: Option<&str>) -> Result<Value> {
        check_name("provider", provider)?;
        if let Some(t) = tenant {
            check_name("tenant", t)?;
        }
        let path = match tenant {
            Some(t) => format!("/{provider}/sync/status?tenant={t}"),
            None => format!("/{provider}/sync/status"),
        };
        self.call(Method::GET, &path, None).await
    }

    /// `GET /{provider}/sync/history`: the ledger, sync log and jobs of one stream.
    pub async fn history(&self, provider: &str, tenant: &str, stream: &str) -> Result<Value> {
        check_name("provider", provider)?;
        check_name("tenant", tenant)?;
        check_name("stream", stream)?;
        let path = format!("/{provider}/sync/history?tenant={tenant}&stream={stream}");
        self.call(Method::GET, &path, None).await
    }

    /// The tenant's jobs of `stream`, newest first (from the history).
    pub async fn jobs(&self, provider: &str, tenant: &str, stream: &str) -> Result<Vec<Job>> {
        let history = self.history(provider, tenant, stream).await?;
        history["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(job_of)
            .collect()
    }
}

fn job_of(value: &Value) -> Result<Job> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Error::new(
            ErrorKind::Remote,
            "the admin API sent a job this client cannot read",
        )
        .with_source(e)
    })
}
