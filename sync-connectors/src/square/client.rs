//! [`SquareClient`]: Square requests over the shared [`HttpClient`] (bearer token,
//! `Square-Version`), response bodies decoded into the model, and Square's `errors` turned
//! into typed errors.
//!
//! | answer | kind | class |
//! |---|---|---|
//! | 429, or any status whose `errors` hold `RATE_LIMITED` | `RateLimited` | transient (no `Retry-After` is promised: the retry policy backs off with jitter) |
//! | 5xx (JSON or an HTML page), or a 200 whose `errors` are `API_ERROR` | `Remote` | transient |
//! | other 4xx (`INVALID_CURSOR` among them), or a 200 with other `errors` | `Remote` | permanent, `code` and `detail` in the message |
//! | a 200 whose body ends early | `InvalidInput` | transient |
//! | a 200 that is not JSON, or not the documented shape | `InvalidInput` | permanent |
//!
//! Every error names the connector, the stream, the endpoint and the page (`first` or
//! `next`), never the token.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sync_core::{Error, ErrorKind, Result, RetryClass};

use super::config::SquareConfig;
use super::model::{ErrorsOnly, SquareError, WithErrors};
use crate::http::{HttpClient, HttpRequest};

/// Which request this is, for error context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) stream: &'a str,
    pub(crate) endpoint: &'static str,
    /// `first` for a read's first request, `next` for one with a cursor, `watermark` for a
    /// high-watermark probe, `locations` for the location fan-out.
    pub(crate) page: &'static str,
}

impl Call<'_> {
    fn context(&self, error: Error) -> Error {
        error
            .with_context("connector", "square")
            .with_context("stream", self.stream)
            .with_context("endpoint", self.endpoint)
            .with_context("page", self.page)
    }
}

/// A decoded response and the server's clock (`Date`) when it answered.
#[derive(Debug)]
pub(crate) struct Answer<T> {
    pub(crate) body: T,
    pub(crate) date: Option<DateTime<Utc>>,
}

/// Square requests over one [`HttpClient`].
#[derive(Debug, Clone)]
pub(crate) struct SquareClient {
    http: HttpClient,
    base: String,
    version: String,
}

impl SquareClient {
    pub(crate) fn new(config: &SquareConfig, http: HttpClient) -> Self {
        SquareClient {
            http,
            base: config.base().to_owned(),
            version: config.square_version.clone(),
        }
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post<T: DeserializeOwned + WithErrors>(
        &self,
        call: Call<'_>,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer<T>> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            call.context(Error::internal("a square request body does not serialize").with_source(e))
        })?;
        let request = HttpRequest::post_json(format!("{}{path}", self.base), Bytes::from(bytes));
        self.send(call, request).await
    }

    /// `GET path` with query pairs.
    pub(crate) async fn get<T: DeserializeOwned + WithErrors>(
        &self,
        call: Call<'_>,
        path: &str,
        query: Vec<(String, String)>,
    ) -> Result<Answer<T>> {
        let mut request = HttpRequest::get(format!("{}{path}", self.base));
        request.query = query;
        self.send(call, request).await
    }

    async fn send<T: DeserializeOwned + WithErrors>(
        &self,
        call: Call<'_>,
        request: HttpRequest,
    ) -> Result<Answer<T>> {
        let request = request
            .with_header("Square-Version", self.version.as_str())
            .with_header("Accept", "application/json");
        let response = match self.http.execute(&request).await {
            Ok(r) => r,
            Err(e) => return Err(call.context(reclassify(e))),
        };
        let body: T = decode(&response.body).map_err(|e| call.context(e))?;
        if !body.errors().is_empty() {
            let error = from_errors(body.errors(), response.status, None, None);
            return Err(call.context(error.with_context("status", response.status)));
        }
        Ok(Answer {
            body,
            date: response.date(),
        })
    }
}

/// Decodes a 2xx body, with a typed error for each way it can be wrong.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        let at = format!("line {} column {}", e.line(), e.column());
        let starts_like_html = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'<');
        let error = if starts_like_html {
            Error::invalid_input("square answered with an html page instead of json").permanent()
        } else if e.is_eof() {
            // Cut by a proxy or a dropped connection: asking again may get all of it.
            Error::invalid_input("square response body is truncated").transient()
        } else if e.is_data() {
            Error::invalid_input("square response does not have the documented shape").permanent()
        } else {
            Error::invalid_input("square response is not valid json").permanent()
        };
        error.with_context("at", at).with_source(e)
    })
}

/// An error of the HTTP layer, with Square's `errors` (when the body has them) in the
/// message and `RATE_LIMITED` on any status made transient.
fn reclassify(error: Error) -> Error {
    let status: Option<u16> = error.context_value("status").and_then(|s| s.parse().ok());
    let parsed = error
        .context_value("body")
        .and_then(|b| serde_json::from_str::<ErrorsOnly>(b).ok())
        .filter(|b| !b.errors.is_empty());
    let (Some(status), Some(body)) = (status, parsed) else {
        return error;
    };
    let retry_after = error.retry_after();
    let class = error.retry_class();
    let mut out = from_errors(&body.errors, status, Some(error.kind()), Some(class));
    if let Some(after) = retry_after {
        out = out.with_retry_after(after);
    }
    for (key, value) in error.context() {
        if *key != "body" {
            out = out.with_context(key, value);
        }
    }
    out.with_source(error)
}

/// The error for Square `errors`: codes and details in the message, `code` and `category`
/// of the first in context. Without `kind`/`class` (a 200), they follow the codes.
fn from_errors(
    errors: &[SquareError],
    status: u16,
    kind: Option<ErrorKind>,
    class: Option<RetryClass>,
) -> Error {
    let described: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.code.as_deref().unwrap_or("UNKNOWN");
            let mut s = code.to_owned();
            if let Some(detail) = e.detail.as_deref() {
                s.push_str(": ");
                s.push_str(detail);
            }
            if let Some(field) = e.field.as_deref() {
                s.push_str(&format!(" (field {field})"));
            }
            s
        })
        .collect();
    let has = |code: &str| errors.iter().any(|e| e.code.as_deref() == Some(code));
    let server_side = errors.iter().any(|e| {
        e.category.as_deref() == Some("API_ERROR")
            || matches!(
                e.code.as_deref(),
                Some("INTERNAL_SERVER_ERROR" | "SERVICE_UNAVAILABLE" | "GATEWAY_TIMEOUT")
            )
    });
    let message = format!("square returned http {status}: {}", described.join("; "));
    let error = if has("RATE_LIMITED") {
        Error::new(ErrorKind::RateLimited, message).transient()
    } else {
        match (kind, class) {
            (Some(kind), Some(class)) => Error::new(kind, message).with_retry(class),
            _ if server_side => Error::new(ErrorKind::Remote, message).transient(),
            _ => Error::new(ErrorKind::Remote, message).permanent(),
        }
    };
    let first = &errors[0];
    let error = match first.code.as_deref() {
        Some(code) => error.with_context("code", code),
        None => error,
    };
    match first.category.as_deref() {
        Some(category) => error.with_context("category", category),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::classify_status;
    use crate::http::HeaderMap;

    fn http_error(status: u16, body: &str) -> Error {
        classify_status(
            status,
            &HeaderMap::new(),
            body.as_bytes(),
            "https://connect.squareup.com/v2/x",
            4096,
        )
    }

    #[test]
    fn rate_limited_is_transient_whatever_the_status() {
        let body = r#"{"errors":[{"category":"RATE_LIMIT_ERROR","code":"RATE_LIMITED","detail":"Rate limited"}]}"#;
        for status in [429, 400] {
            let e = reclassify(http_error(status, body));
            assert_eq!(
                (e.kind(), e.retry_class()),
                (ErrorKind::RateLimited, RetryClass::Transient)
            );
            assert_eq!(e.context_value("code"), Some("RATE_LIMITED"));
        }
    }

    #[test]
    fn invalid_cursor_is_permanent_with_code_and_detail() {
        let body = r#"{"errors":[{"category":"INVALID_REQUEST_ERROR","code":"INVALID_CURSOR","detail":"The cursor is invalid","field":"cursor"}]}"#;
        let e = reclassify(http_error(400, body));
        assert_eq!(
            (e.kind(), e.retry_class()),
            (ErrorKind::Remote, RetryClass::Permanent)
        );
        assert!(
            e.message()
                .contains("INVALID_CURSOR: The cursor is invalid (field cursor)"),
            "{e}"
        );
        assert_eq!(e.context_value("status"), Some("400"));
        assert_eq!(e.context_value("body"), None);
    }

    #[test]
    fn a_non_json_error_page_keeps_the_http_classification() {
        let e = reclassify(http_error(502, "<html><body>Bad Gateway</body></html>"));
        assert_eq!(
            (e.kind(), e.retry_class()),
            (ErrorKind::Remote, RetryClass::Transient)
        );
        assert!(e.context_value("body").unwrap().contains("Bad Gateway"));
    }

    #[test]
    fn a_200_with_errors_is_an_error_classified_by_code() {
        let errs = |category: &str, code: &str| {
            vec![SquareError {
                category: Some(category.into()),
                code: Some(code.into()),
                detail: None,
                field: None,
            }]
        };
        let e = from_errors(
            &errs("INVALID_REQUEST_ERROR", "BAD_REQUEST"),
            200,
            None,
            None,
        );
        assert_eq!(e.retry_class(), RetryClass::Permanent);
        let e = from_errors(&errs("API_ERROR", "INTERNAL_SERVER_ERROR"), 200, None, None);
        assert_eq!(e.retry_class(), RetryClass::Transient);
    }

    #[test]
    fn bodies_that_are_not_the_model_are_typed() {
        let truncated = decode::<ErrorsOnly>(br#"{"errors":[{"code":"X""#).unwrap_err();
        assert_eq!(
            (truncated.kind(), truncated.retry_class()),
            (ErrorKind::InvalidInput, RetryClass::Transient)
        );
        let html = decode::<ErrorsOnly>(b"  <html>maintenance</html>").unwrap_err();
        assert_eq!(
            (html.kind(), html.retry_class()),
            (ErrorKind::InvalidInput, RetryClass::Permanent)
        );
        let shape = decode::<ErrorsOnly>(br#"{"errors":"nope"}"#).unwrap_err();
        assert!(shape.message().contains("shape"), "{shape}");
    }
}
