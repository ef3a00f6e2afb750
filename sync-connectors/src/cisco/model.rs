//! What Control Center sends back: the Search Devices envelope (`devices`, `pageNumber`,
//! `lastPage`) and the error envelope `{"errorMessage": "...", "errorCode": "10000001"}`,
//! including the one reclassification this API needs: error code `40000029` ("Rate Limit
//! Exceeded") comes with HTTP 400 and means "slow down", not bad input.

use serde::Deserialize;
use sync_core::{Error, ErrorKind, Result};

/// The error code Control Center answers with (over HTTP 400) when an account makes more
/// than one call at a time or more than five per second.
pub const RATE_LIMIT_EXCEEDED: &str = "40000029";

/// The Search Devices fields besides the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SearchEnvelope {
    /// True on the last page.
    pub(crate) last_page: bool,
}

impl SearchEnvelope {
    /// Reads `lastPage` (required) and checks `pageNumber` (when present) is the page asked.
    pub(crate) fn read(
        fields: &serde_json::Map<String, serde_json::Value>,
        asked_page: u64,
    ) -> Result<SearchEnvelope> {
        let last_page = match fields.get("lastPage") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => return Err(Error::invalid_input("cisco lastPage is not a boolean")),
            None => {
                return Err(Error::invalid_input(
                    "the cisco search answer has no lastPage",
                ))
            }
        };
        let page = fields.get("pageNumber").and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        });
        if let Some(page) = page.filter(|&p| p != asked_page) {
            return Err(
                Error::invalid_input("the cisco answer is for another page than asked")
                    .with_context("page_number", page)
                    .with_context("asked", asked_page),
            );
        }
        Ok(SearchEnvelope { last_page })
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "errorCode")]
    code: Option<Code>,
    #[serde(default, rename = "errorMessage")]
    message: Option<String>,
}

/// The code is a string in Cisco's answers; accept a number too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Code {
    Text(String),
    Number(u64),
}

/// The `(errorCode, errorMessage)` of an error body, when it is Cisco's JSON envelope.
fn error_body(body: &str) -> Option<(Option<String>, Option<String>)> {
    let parsed: ErrorBody = serde_json::from_str(body.trim()).ok()?;
    let code = parsed.code.map(|c| match c {
        Code::Text(s) => s.trim().to_owned(),
        Code::Number(n) => n.to_string(),
    });
    Some((code, parsed.message))
}

/// Classifies an error returned by [`HttpClient::execute`](crate::http::HttpClient::execute)
/// for this API: an answer whose body carries error code [`RATE_LIMIT_EXCEEDED`] (Control
/// Center sends it with HTTP 400) becomes a transient [`ErrorKind::RateLimited`] error, so
/// the retry policy backs off instead of failing the run as bad input. Every other error keeps
/// its HTTP classification; Cisco's `errorCode` and `errorMessage` are added as context
/// (`error_code`, `detail`).
pub fn classify(error: Error) -> Error {
    if error.context_value("status").is_none() {
        return error;
    }
    let Some((code, message)) = error.context_value("body").and_then(error_body) else {
        return error;
    };
    let mut error = if code.as_deref() == Some(RATE_LIMIT_EXCEEDED) {
        let mut limited =
            Error::new(ErrorKind::RateLimited, "cisco rate limit exceeded").transient();
        if let Some(after) = error.retry_after() {
            limited = limited.with_retry_after(after);
        }
        for (k, v) in error.context() {
            limited = limited.with_context(k, v);
        }
        limited
    } else {
        error
    };
    if let Some(code) = code {
        error = error.with_context("error_code", code);
    }
    if let Some(message) = message {
        error = error.with_context("detail", message);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{classify_status, HeaderMap};
    use sync_core::RetryClass;

    fn http_error(status: u16, body: &str) -> Error {
        let url = "https://restapi1.jasper.com/rws/api/v1/devices?modifiedSince=x";
        classify_status(status, &HeaderMap::new(), body.as_bytes(), url, 512)
    }

    #[test]
    fn error_code_40000029_in_a_400_is_a_transient_rate_limit() {
        let e = classify(http_error(
            400,
            r#"{"errorMessage":"Rate Limit Exceeded","errorCode":"40000029"}"#,
        ));
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_class(), RetryClass::Transient);
        assert_eq!(e.context_value("status"), Some("400"));
        assert_eq!(e.context_value("error_code"), Some("40000029"));
        assert_eq!(e.context_value("detail"), Some("Rate Limit Exceeded"));
        assert_eq!(
            e.context_value("url"),
            Some("https://restapi1.jasper.com/rws/api/v1/devices")
        );
        // A number works too.
        let n = classify(http_error(400, r#"{"errorCode":40000029}"#));
        assert_eq!(n.kind(), ErrorKind::RateLimited);
    }

    #[test]
    fn other_codes_keep_their_http_classification_with_the_code() {
        let e = classify(http_error(
            400,
            r#"{"errorMessage":"ModifiedSince cannot be more than one year old","errorCode":"10000045"}"#,
        ));
        assert_eq!(
            (e.kind(), e.retry_class()),
            (ErrorKind::Remote, RetryClass::Permanent)
        );
        assert_eq!(e.context_value("error_code"), Some("10000045"));
        let auth = classify(http_error(
            401,
            r#"{"errorMessage":"Invalid credentials","errorCode":"10000001"}"#,
        ));
        assert_eq!(
            (auth.kind(), auth.is_transient()),
            (ErrorKind::Remote, false)
        );
        // Not Cisco's envelope, or not an HTTP error: unchanged.
        let html = classify(http_error(400, "<html>40000029</html>"));
        assert_eq!(
            (html.kind(), html.context_value("error_code")),
            (ErrorKind::Remote, None)
        );
        let transport =
            classify(Error::new(ErrorKind::Remote, "http connection failed").transient());
        assert_eq!(transport.message(), "http connection failed");
        let server = classify(http_error(503, ""));
        assert!(server.is_transient());
    }

    #[test]
    fn the_envelope_needs_last_page_and_the_page_asked() {
        let fields = |v: serde_json::Value| v.as_object().unwrap().clone();
        let ok = SearchEnvelope::read(
            &fields(serde_json::json!({"pageNumber": 2, "lastPage": true})),
            2,
        );
        assert_eq!(ok.unwrap(), SearchEnvelope { last_page: true });
        for body in [
            serde_json::json!({"pageNumber": 2}),
            serde_json::json!({"pageNumber": 2, "lastPage": 1}),
            serde_json::json!({"pageNumber": 3, "lastPage": false}),
        ] {
            assert!(
                SearchEnvelope::read(&fields(body.clone()), 2).is_err(),
                "{body}"
            );
        }
    }
}
