//! Error classification, in one place: HTTP status codes, transport failures and
//! `Retry-After`.
//!
//! | what | kind | class |
//! |---|---|---|
//! | 408 | `Timeout` | transient |
//! | 429 | `RateLimited` | transient, `retry_after` from `Retry-After` |
//! | 5xx | `Remote` | transient, `retry_after` when the server gives one |
//! | other 4xx (401 and 403 included), unfollowed 3xx | `Remote` | permanent, body excerpt in context `body` |
//! | connect error, connection reset, broken response | `Remote` | transient |
//! | timeout (connect, read, total) | `Timeout` | transient |
//! | body that does not decompress | `InvalidInput` | permanent |
//! | redirect loop, too many redirects | `Remote` | permanent |

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use sync_core::{Error, ErrorKind};

/// The error for a non-2xx response.
///
/// The context holds `status`, `url` (reduced to `scheme://host[:port]/path`, whatever is
/// passed) and, for statuses that are the caller's fault, `body`: the start of the body,
/// decoded as lossy UTF-8 and cut at `excerpt_bytes` on a character boundary.
pub fn classify_status(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
    excerpt_bytes: usize,
) -> Error {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(str::to_ascii_lowercase);
    let message = match reason {
        Some(reason) => format!("http status {status} {reason}"),
        None => format!("http status {status}"),
    };
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let mut error = match status {
        408 => Error::new(ErrorKind::Timeout, message).transient(),
        429 => Error::new(ErrorKind::RateLimited, message).transient(),
        500..=599 => Error::new(ErrorKind::Remote, message).transient(),
        _ => Error::new(ErrorKind::Remote, message).permanent(),
    };
    if matches!(status, 429 | 500..=599) {
        if let Some(after) = retry_after {
            error = error.with_retry_after(after);
        }
    }
    error = error
        .with_context("status", status)
        .with_context("url", redact_url(url));
    let excerpt = body_excerpt(body, excerpt_bytes);
    if !excerpt.is_empty() {
        error = error.with_context("body", excerpt);
    }
    error
}

/// The start of `body` as text: lossy UTF-8, at most `max` bytes, cut on a character
/// boundary, trimmed; `…` marks a cut.
fn body_excerpt(body: &[u8], max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    // A few bytes more than asked, so a character cut by the byte limit is not turned into
    // a replacement character.
    let head = &body[..body.len().min(max.saturating_add(4))];
    let text = String::from_utf8_lossy(head);
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = end < text.len() || head.len() < body.len();
    let mut out = text[..end].trim().to_owned();
    if cut {
        out.push('…');
    }
    out
}

/// Parses a `Retry-After` value: delta-seconds (`"120"`) or an HTTP-date. A date in the past
/// means no wait (zero); anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long numbers saturate to a day: RetryPolicy's budget ends it anyway.
        let secs = value.parse::<u64>().unwrap_or(86_400);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `scheme://host[:port]/path` of a URL: no user info, no query, no fragment, which may hold
/// credentials. A string that does not parse as a URL is cut at the first `?` or `#` and
/// after any `@`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => {
            let mut out = format!("{}://", u.scheme());
            if let Some(host) = u.host_str() {
                out.push_str(host);
            }
            if let Some(port) = u.port() {
                out.push_str(&format!(":{port}"));
            }
            out.push_str(u.path());
            out
        }
        _ => {
            let end = url.find(['?', '#']).unwrap_or(url.len());
            let url = &url[..end];
            match url.rfind('@') {
                Some(at) => format!("***@{}", &url[at + 1..]),
                None => url.to_owned(),
            }
        }
    }
}

/// The error for a request that got no usable response: connect failure, reset, timeout,
/// redirect trouble or a body that does not decode. The reqwest error is attached without
/// its URL (which may hold a query).
pub(crate) fn classify_transport(error: reqwest::Error, url: &str) -> Error {
    let error = error.without_url();
    let classified = if error.is_timeout() {
        Error::new(ErrorKind::Timeout, "http request timed out").transient()
    } else if error.is_redirect() {
        Error::new(ErrorKind::Remote, "http redirect failed").permanent()
    } else if error.is_connect() {
        Error::new(ErrorKind::Remote, "http connection failed").transient()
    } else if error.is_builder() {
        Error::new(ErrorKind::InvalidInput, "invalid http request").permanent()
    } else if error.is_decode() && !from_transport(&error) {
        // Body errors reach reqwest's `chunk()` as `decode` errors; only those that do not
        // come from the connection are a body that does not decompress.
        Error::new(
            ErrorKind::InvalidInput,
            "http response body does not decode",
        )
        .permanent()
    } else {
        // Connection reset, closed early, malformed response head: retrying may work.
        Error::new(ErrorKind::Remote, "http transport failed").transient()
    };
    classified
        .with_context("url", redact_url(url))
        .with_source(error)
}

/// True when the error chain holds a hyper error or a connection-level I/O error: the
/// connection failed, not the decoding. (reqwest wraps every body error, a decompression
/// failure too, in `Body` and `Decode` errors, so those say nothing.)
fn from_transport(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if e.is::<hyper::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            if matches!(
                io.kind(),
                Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::TimedOut
            ) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::RetryClass;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn statuses_classify_as_documented() {
        let h = HeaderMap::new();
        let url = "https://api.example.com/v1/x?api_key=SECRET";
        let e = classify_status(408, &h, b"", url, 64);
        assert_eq!(
            (e.kind(), e.retry_class()),
            (ErrorKind::Timeout, RetryClass::Transient)
        );
        let e = classify_status(429, &headers(&[("retry-after", "7")]), b"", url, 64);
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = classify_status(503, &headers(&[("retry-after", "3")]), b"", url, 64);
        assert_eq!(
            (e.kind(), e.retry_class(), e.retry_after()),
            (
                ErrorKind::Remote,
                RetryClass::Transient,
                Some(Duration::from_secs(3))
            )
        );
        let e = classify_status(500, &h, b"", url, 64);
        assert!(e.is_transient() && e.retry_after().is_none());
        for status in [400, 401, 403, 404, 422, 304] {
            let e = classify_status(status, &h, b"{\"error\":\"bad\"}", url, 64);
            assert_eq!(e.kind(), ErrorKind::Remote);
            assert_eq!(e.retry_class(), RetryClass::Permanent, "{status}");
            assert_eq!(e.context_value("status"), Some(status.to_string().as_str()));
            assert_eq!(e.context_value("body"), Some("{\"error\":\"bad\"}"));
            assert_eq!(e.context_value("url"), Some("https://api.example.com/v1/x"));
            assert!(!e.to_string().contains("SECRET"));
        }
        assert_eq!(
            classify_status(404, &h, b"", url, 64).message(),
            "http status 404 not found"
        );
    }

    #[test]
    fn excerpt_is_cut_on_a_char_boundary() {
        let body = "ééééé".as_bytes(); // 10 bytes
        assert_eq!(body_excerpt(body, 5), "éé…");
        assert_eq!(body_excerpt(body, 10), "ééééé");
        assert_eq!(body_excerpt(b"\xff\xfeok", 64), "\u{fffd}\u{fffd}ok");
        assert_eq!(body_excerpt(b"abc", 0), "");
        let long = vec![b'x'; 10_000];
        assert_eq!(body_excerpt(&long, 512).len(), 512 + '…'.len_utf8());
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for garbage in ["", "soon", "-5", "1.5", "Sun, 99 Nov 1994"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage}");
        }
    }

    #[test]
    fn redacted_urls_keep_scheme_host_port_path_only() {
        assert_eq!(
            redact_url("https://user:pw@api.example.com:8443/v1/items?key=s#frag"),
            "https://api.example.com:8443/v1/items"
        );
        assert_eq!(redact_url("http://127.0.0.1/"), "http://127.0.0.1/");
        assert_eq!(redact_url("not a url?key=s"), "not a url");
        assert_eq!(redact_url("user:pw@host/x?k=s"), "***@host/x");
    }
}
