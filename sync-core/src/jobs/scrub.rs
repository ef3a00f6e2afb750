//! Scrubbing secrets out of error text before a queue stores it or an API shows it.
//!
//! The library never puts a credential into an error, but a remote system may echo one back
//! (a body that repeats the request, a URL with user info). Values after well-known secret
//! names, `Bearer`/`Basic` credentials and URL passwords are replaced by `***`.

/// The longest error text a queue keeps; longer text is cut at a character boundary.
pub const MAX_ERROR_LEN: usize = 2000;

const SECRET_NAMES: [&str; 12] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "authorization",
    "signature",
    "credential",
    "sig",
];

/// `text` with secrets replaced by `***` and cut to [`MAX_ERROR_LEN`] bytes.
pub fn scrub_secrets(text: &str) -> String {
    let mut out = scrub_url_passwords(text);
    for scheme in ["bearer ", "basic "] {
        out = redact_after(&out, scheme, |_| true);
    }
    for name in SECRET_NAMES {
        // `name=value`, `name: value`, `"name":"value"`: the value follows a separator.
        out = redact_after(&out, name, |rest| {
            let rest = rest.trim_start_matches(['"', '\'', ' ']);
            rest.starts_with(['=', ':'])
        });
    }
    if out.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Replaces the value after each case-insensitive occurrence of `marker` that `applies` accepts
/// (given the text after the marker).
fn redact_after(text: &str, marker: &str, applies: impl Fn(&str) -> bool) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(marker) {
        let start = pos + found;
        let after = start + marker.len();
        out.push_str(&text[pos..after]);
        pos = after;
        if !applies(&text[after..]) {
            continue;
        }
        // Skip the separator and quotes, then the value up to a delimiter.
        let sep_len = text[after..]
            .find(|c: char| !matches!(c, '"' | '\'' | '=' | ':' | ' '))
            .unwrap_or(text.len() - after);
        out.push_str(&text[after..after + sep_len]);
        let value_start = after + sep_len;
        let value_len = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '&' | ',' | ';' | '}'))
            .unwrap_or(text.len() - value_start);
        if value_len > 0 {
            out.push_str("***");
        }
        pos = value_start + value_len;
    }
    out.push_str(&text[pos..]);
    out
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn scrub_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = text[pos..].find("://") {
        let auth_start = pos + found + 3;
        out.push_str(&text[pos..auth_start]);
        pos = auth_start;
        let end = text[auth_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\''))
            .map_or(text.len(), |e| auth_start + e);
        let authority = &text[auth_start..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                out.push_str(&authority[..colon + 1]);
                out.push_str("***");
                out.push_str(&authority[at..]);
                pos = end;
            }
        }
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_common_shapes_are_replaced() {
        let cases = [
            ("HTTP 401: Authorization: Bearer abc.def", "abc.def"),
            ("url https://u:hunter2@db.example/x failed", "hunter2"),
            ("postgres://app:pa55@127.0.0.1:5432/db", "pa55"),
            (r#"{"error":"bad","client_secret":"s3cr3t"}"#, "s3cr3t"),
            ("GET /v1?api_key=k123&page=2", "k123"),
            ("password = letmein; retry", "letmein"),
            ("X-Amz-Signature=deadbeef", "deadbeef"),
        ];
        for (text, secret) in cases {
            let out = scrub_secrets(text);
            assert!(!out.contains(secret), "{text} -> {out}");
            assert!(out.contains("***"), "{text} -> {out}");
        }
    }

    #[test]
    fn plain_text_is_kept_and_long_text_is_cut() {
        let text = "HTTP 503 from /items: the token bucket is empty";
        assert_eq!(scrub_secrets(text), text);
        let long = "é".repeat(MAX_ERROR_LEN);
        let out = scrub_secrets(&long);
        assert!(out.len() <= MAX_ERROR_LEN && out.chars().all(|c| c == 'é'));
    }
}
