//! The admin API's errors: a status, a stable machine-readable code and a message, as JSON
//! `{"error": {"code": "...", "message": "..."}}`. Messages come from the library's errors,
//! which never hold a credential, and are scrubbed once more.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sync_core::jobs::scrub_secrets;
use sync_core::{Error, ErrorKind};

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code: `unauthorized`, `invalid_body`, `invalid_query`, `invalid_input`,
    /// `not_found`, `conflict`, `busy`, `integration_disabled`, `unsupported`, `payload_too_large`,
    /// `unavailable`, `internal`.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// When to try again (a `Retry-After` header, in whole seconds rounded up).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// A reply's JSON; a value that does not serialize is a 500 `internal`.
    pub fn json(value: impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
        serde_json::to_value(value).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match e.kind() {
            ErrorKind::InvalidInput | ErrorKind::CheckpointDelta => {
                (StatusCode::BAD_REQUEST, "invalid_input")
            }
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict | ErrorKind::Fenced => (StatusCode::CONFLICT, "conflict"),
            // Held by another run or a lock: the same request succeeds later.
            ErrorKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ErrorKind::Config => (StatusCode::CONFLICT, "integration_disabled"),
            ErrorKind::Unsupported => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported"),
            ErrorKind::Storage | ErrorKind::Timeout if e.is_transient() => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "admin request failed");
        }
        // The code says what the kind said; the message is the rest of the error's text.
        let text = e.to_string();
        let message = text
            .strip_prefix(e.kind().as_str())
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(&text);
        let mut api = ApiError::new(status, code, message);
        if e.kind() == ErrorKind::Busy {
            api.retry_after = e.retry_after();
        }
        api
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_body"
        };
        // Syntax and shape errors alike are 400; a body too large or not JSON keeps its status.
        let status = match status {
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => status,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": scrub_secrets(&self.message) }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs.max(1)),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_kinds_map_to_their_status_and_code() {
        let cases = [
            (
                Error::invalid_input("bad"),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (
                Error::new(ErrorKind::NotFound, "gone"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                Error::new(ErrorKind::Fenced, "stale"),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                Error::new(ErrorKind::Busy, "database is busy"),
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
            ),
            (
                Error::new(ErrorKind::Storage, "connection closed").transient(),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                Error::new(ErrorKind::Storage, "disk image malformed"),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (error, status, code) in cases {
            let kind = error.kind();
            let api = ApiError::from(error);
            assert_eq!((api.status, api.code), (status, code), "{kind}");
        }
        let held = Error::new(ErrorKind::Busy, "another run holds the sync")
            .with_retry_after(std::time::Duration::from_millis(2500));
        let busy = ApiError::from(held);
        assert_eq!(busy.message, "another run holds the sync");
        let response = busy.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "3");
    }
}
