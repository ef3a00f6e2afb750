//! What Oracle sends back: the collection envelope around `items` (`count`, `hasMore`,
//! `limit`, `offset`, `totalResults`) and the two error body formats (plain text, and the
//! `o:errorDetails` JSON of framework version 4 and later).

use serde::Deserialize;
use sync_core::{Error, Result};

/// The collection fields of one page (the records are decoded separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// Whether more records follow.
    pub(crate) has_more: bool,
    /// The number of items in this page, as the server reports it.
    pub(crate) count: Option<u64>,
    /// The limit the server actually used (it clamps silently).
    pub(crate) limit: Option<u64>,
    /// The offset the server read from.
    pub(crate) offset: Option<u64>,
    /// Records matching the request, when asked for with `totalResults=true`.
    pub(crate) total: Option<u64>,
}

fn number(fields: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<Option<u64>> {
    match fields.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Error::invalid_input("an oracle collection field is not a non-negative integer")
                .with_context("field", name)
        }),
    }
}

impl Envelope {
    /// The envelope of a decoded page; `items` received. Checks what it can: `hasMore` is
    /// there and boolean, `count` agrees with the items, `offset` is the one asked for.
    pub(crate) fn read(
        fields: &serde_json::Map<String, serde_json::Value>,
        items: usize,
        asked_offset: u64,
    ) -> Result<Envelope> {
        let has_more = match fields.get("hasMore") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(Error::invalid_input("oracle hasMore is not a boolean")),
            None => {
                return Err(Error::invalid_input(
                    "the oracle page has no hasMore (not a collection response)",
                ))
            }
        };
        let envelope = Envelope {
            has_more,
            count: number(fields, "count")?,
            limit: number(fields, "limit")?,
            offset: number(fields, "offset")?,
            total: number(fields, "totalResults")?,
        };
        if let Some(count) = envelope.count.filter(|&c| c != items as u64) {
            return Err(
                Error::invalid_input("the oracle page's count differs from its items")
                    .with_context("count", count)
                    .with_context("items", items),
            );
        }
        if let Some(offset) = envelope.offset.filter(|&o| o != asked_offset) {
            return Err(Error::invalid_input(
                "the oracle page starts at another offset than asked",
            )
            .with_context("offset", offset)
            .with_context("asked", asked_offset));
        }
        Ok(envelope)
    }
}

/// An Oracle REST error body: `{"title", "status", "detail", "o:errorCode",
/// "o:errorDetails": [{"detail", "o:errorCode", "o:errorPath"}]}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default, rename = "o:errorCode")]
    error_code: Option<Code>,
    #[serde(default, rename = "o:errorDetails")]
    details: Vec<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    detail: Option<String>,
    #[serde(default, rename = "o:errorCode")]
    error_code: Option<Code>,
    #[serde(default, rename = "o:errorPath")]
    error_path: Option<String>,
}

/// Error codes come as strings or numbers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Code {
    Text(String),
    Number(i64),
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::Text(s) => f.write_str(s),
            Code::Number(n) => write!(f, "{n}"),
        }
    }
}

/// What an error body says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ErrorInfo {
    /// The details, joined with `; `.
    pub(crate) detail: Option<String>,
    /// The first error code.
    pub(crate) code: Option<String>,
    /// The first error path.
    pub(crate) path: Option<String>,
    /// `json` or `text`.
    pub(crate) format: &'static str,
}

/// Reads an error body in either format. A JSON body is read for `o:errorDetails` (then
/// `detail`, then `title`); anything else is taken as the plain-text message, unless it is an
/// HTML page (a proxy or login page), which is named as such.
pub(crate) fn error_info(body: &str) -> ErrorInfo {
    let body = body.trim().trim_end_matches('…').trim();
    if body.is_empty() {
        return ErrorInfo::default();
    }
    if let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) {
        let details: Vec<&str> = parsed
            .details
            .iter()
            .filter_map(|d| d.detail.as_deref())
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        let detail = if details.is_empty() {
            parsed.detail.clone().or(parsed.title.clone())
        } else {
            Some(details.join("; "))
        };
        let code = parsed
            .details
            .iter()
            .find_map(|d| d.error_code.as_ref())
            .or(parsed.error_code.as_ref())
            .map(ToString::to_string);
        let path = parsed.details.iter().find_map(|d| d.error_path.clone());
        return ErrorInfo {
            detail,
            code,
            path,
            format: "json",
        };
    }
    let lower = body.get(..15).unwrap_or(body).to_ascii_lowercase();
    let detail = if lower.starts_with("<!doctype") || lower.starts_with("<html") {
        "an html page instead of an oracle error".to_owned()
    } else {
        body.to_owned()
    };
    ErrorInfo {
        detail: Some(detail),
        code: None,
        path: None,
        format: "text",
    }
}

/// The error of a failed request with what Oracle's body says added as context (`detail`,
/// `error_code`, `error_path`, `error_format`); kind and retry class stay those of the HTTP
/// classification.
pub(crate) fn with_oracle_detail(error: Error) -> Error {
    if error.context_value("status").is_none() {
        return error;
    }
    let info = error_info(error.context_value("body").unwrap_or_default());
    let mut error = error;
    if let Some(detail) = info.detail {
        error = error
            .with_context("detail", detail)
            .with_context("error_format", info.format);
    }
    if let Some(code) = info.code {
        error = error.with_context("error_code", code);
    }
    if let Some(path) = info.path {
        error = error.with_context("error_path", path);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_details_are_joined_and_the_first_code_kept() {
        let info = error_info(
            r#"{"title":"Bad Request","status":"400","o:errorDetails":[
                {"detail":"URL request parameter q with value Foo > 1 is not valid.","o:errorCode":"27024","o:errorPath":"q"},
                {"detail":"second","o:errorCode":27025}]}"#,
        );
        assert_eq!(
            info.detail.as_deref(),
            Some("URL request parameter q with value Foo > 1 is not valid.; second")
        );
        assert_eq!(
            (info.code.as_deref(), info.path.as_deref(), info.format),
            (Some("27024"), Some("q"), "json")
        );
        let title_only = error_info(r#"{"title":"Unauthorized","status":"401"}"#);
        assert_eq!(title_only.detail.as_deref(), Some("Unauthorized"));
    }

    #[test]
    fn text_and_html_bodies_are_told_apart() {
        let text = error_info("Invalid operation create for the specified resource.\n");
        assert_eq!(
            (text.detail.as_deref(), text.format),
            (
                Some("Invalid operation create for the specified resource."),
                "text"
            )
        );
        let html = error_info("<!DOCTYPE html><html><body>Sign in</body></html>");
        assert_eq!(
            html.detail.as_deref(),
            Some("an html page instead of an oracle error")
        );
        assert_eq!(error_info("  "), ErrorInfo::default());
    }

    #[test]
    fn the_envelope_checks_count_offset_and_has_more() {
        let fields = |v: serde_json::Value| v.as_object().unwrap().clone();
        let ok = Envelope::read(
            &fields(serde_json::json!({"count": 2, "hasMore": true, "limit": 25, "offset": 50})),
            2,
            50,
        )
        .unwrap();
        assert_eq!((ok.has_more, ok.limit, ok.total), (true, Some(25), None));
        for (body, items) in [
            (serde_json::json!({"count": 3, "hasMore": true}), 2),
            (serde_json::json!({"count": 2, "hasMore": "yes"}), 2),
            (serde_json::json!({"count": 2}), 2),
            (
                serde_json::json!({"count": 2, "hasMore": false, "offset": 0}),
                2,
            ),
        ] {
            let e = Envelope::read(&fields(body.clone()), items, 50).unwrap_err();
            assert_eq!(e.kind(), sync_core::ErrorKind::InvalidInput, "{body}");
        }
    }
}
