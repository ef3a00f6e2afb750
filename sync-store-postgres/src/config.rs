//! Configuration of a PostgreSQL store: serde data whose `Debug` never shows the password;
//! `validate` parses the URL and does no I/O.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::schema::validate_identifier;
use sync_core::{Error, Result};

use crate::tls::SslMode;

/// Configuration of a [`crate::PostgresStore`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` (a secret: never logged).
    pub url: String,
    /// The schema that holds the targets and the store's own tables.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long a run's lease on its sync lasts after the run's last store call, in
    /// milliseconds; `0` turns leases off (fencing only: a new run takes over at once).
    /// With leases a second run of a sync is refused while the first holds it; see
    /// [`crate::is_lease_held`].
    #[serde(default = "default_run_lease_ms")]
    pub run_lease_ms: u64,
}

fn default_schema() -> String {
    "public".into()
}
fn default_pool_size() -> usize {
    4
}
/// Ten minutes: longer than the default retry budget (five minutes), so a run waiting out a
/// flaky source keeps its sync.
fn default_run_lease_ms() -> u64 {
    600_000
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("run_lease_ms", &self.run_lease_ms)
            .finish()
    }
}

/// The URL with any password replaced by `***`: the password of a URL's user info and the
/// value of every `password` parameter, read with the grammar tokio-postgres reads them with
/// (percent-decoded query keys in a URL; in the key-value form, spaces around `=`, any
/// whitespace between pairs, quoted values with backslash escapes). What cannot be read as
/// parameters is not shown.
pub(crate) fn redact(url: &str) -> String {
    if is_url(url) {
        redact_url(url)
    } else {
        redact_key_values(url)
    }
}

fn is_password(key: &str) -> bool {
    key.eq_ignore_ascii_case("password")
}

fn redact_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    // The last `@` ends the user info (a password may hold `@` or `?` unescaped); one in the
    // query instead makes more of the URL hidden, never less.
    let (mut out, rest) = match url[scheme_end..].rfind('@').map(|i| scheme_end + i) {
        Some(at) => {
            let userinfo = &url[scheme_end..at];
            let user = userinfo
                .find(':')
                .map_or(userinfo, |colon| &userinfo[..colon]);
            let masked = if user.len() < userinfo.len() {
                ":***"
            } else {
                ""
            };
            (format!("{}{user}{masked}", &url[..scheme_end]), &url[at..])
        }
        None => (String::new(), url),
    };
    let (head, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    out.push_str(head);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_password(&percent_decoded(key)) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `key` with its `%XX` escapes decoded (invalid escapes are kept as they are).
fn percent_decoded(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key-value form (`host=h password=p`), each pair shown as written but for passwords;
/// from the first text that is not a `key = value` pair on, `***`.
fn redact_key_values(text: &str) -> String {
    key_value_pairs(text)
        .map(|part| match part {
            KeyValue::Pair { key, .. } if is_password(key) => format!("{key}=***"),
            KeyValue::Pair { key, value, .. } => format!("{key}={value}"),
            KeyValue::Unreadable(_) => "***".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// True for the URL form of a connection string (`postgres://...`), false for the key-value
/// form (`host=h user=u`).
pub(crate) fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// A part of a key-value connection string.
pub(crate) enum KeyValue<'a> {
    /// `key = value`: the value as written (quotes and escapes included), and the pair's text.
    Pair {
        key: &'a str,
        value: &'a str,
        text: &'a str,
    },
    /// The rest of the string from the first text that is not a pair (the last part).
    Unreadable(&'a str),
}

/// The parts of a key-value connection string, read with tokio-postgres's grammar.
pub(crate) fn key_value_pairs(text: &str) -> impl Iterator<Item = KeyValue<'_>> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?.trim_start();
        if text.is_empty() {
            rest = None;
            return None;
        }
        match key_value(text) {
            Some((key, value, after)) => {
                rest = Some(after);
                Some(KeyValue::Pair {
                    key,
                    value,
                    text: &text[..text.len() - after.len()],
                })
            }
            None => {
                rest = None;
                Some(KeyValue::Unreadable(text))
            }
        }
    })
}

/// One `key = value` pair at the start of `text`: the key, the value as written (quotes and
/// escapes included) and the text after it; `None` when `text` does not start with one.
fn key_value(text: &str) -> Option<(&str, &str, &str)> {
    let key_end = text.find(|c: char| c.is_whitespace() || c == '=')?;
    let key = &text[..key_end];
    let after_key = text[key_end..].trim_start();
    let value_text = after_key.strip_prefix('=')?.trim_start();
    let quoted = value_text.starts_with('\'');
    let (mut escaped, mut closed) = (false, false);
    let mut end = value_text.len();
    for (i, c) in value_text.char_indices().skip(usize::from(quoted)) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if quoted && c == '\'' {
            (end, closed) = (i + 1, true);
            break;
        } else if !quoted && c.is_whitespace() {
            end = i;
            break;
        }
    }
    // An unterminated quote is not a pair.
    if key.is_empty() || (quoted && !closed) {
        return None;
    }
    Some((key, &value_text[..end], &value_text[end..]))
}

impl PostgresConfig {
    /// A configuration for `url` with the `public` schema.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: default_schema(),
            pool_size: default_pool_size(),
            run_lease_ms: default_run_lease_ms(),
        }
    }

    /// Uses `schema` for every table.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the pool size.
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets how long a run's lease lasts after its last store call; `None` turns leases off.
    pub fn with_run_lease(mut self, lease: Option<Duration>) -> Self {
        self.run_lease_ms = lease.map_or(0, |l| (l.as_millis() as u64).max(1));
        self
    }

    /// The run lease, `None` when leases are off.
    pub fn run_lease(&self) -> Option<Duration> {
        (self.run_lease_ms > 0).then(|| Duration::from_millis(self.run_lease_ms))
    }

    /// Parses the URL (with its `sslmode` and `sslrootcert`) and checks the values; does no
    /// I/O and builds the TLS configuration the mode asks for.
    pub(crate) fn validate(
        &self,
    ) -> Result<(tokio_postgres::Config, Option<rustls::ClientConfig>)> {
        validate_identifier("schema", &self.schema)?;
        if self.pool_size == 0 {
            return Err(Error::config("pool_size must be at least 1"));
        }
        let settings =
            crate::tls::parse(&self.url).map_err(|e| e.with_context("url", redact(&self.url)))?;
        let mut pg = tokio_postgres::Config::from_str(&settings.url).map_err(|_| {
            Error::config("invalid postgres url").with_context("url", redact(&self.url))
        })?;
        let tls = crate::tls::client_config(&settings)?;
        pg.ssl_mode(match settings.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok((pg, tls))
    }

    /// The `sslmode` the URL asks for (libpq's default `prefer` when absent).
    pub fn ssl_mode(&self) -> Result<SslMode> {
        crate::tls::parse(&self.url).map(|s| s.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let c = PostgresConfig::new("postgres://sync:hunter2@db.example:5432/app");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("sync:***@db.example"),
            "{shown}"
        );
        let bad = PostgresConfig::new("postgres://sync:hunter2@db.example:notaport/app");
        let err = bad.validate().unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        assert!(PostgresConfig::new("postgres://a@b/c")
            .with_pool_size(0)
            .validate()
            .is_err());
        for url in [
            "postgres://u@h/db?password=hunter2&sslmode=disable",
            "postgres://u@h/db?sslmode=disable&pass%77ord=hunter2",
            "postgres://u:hun?ter2@h/db",
            "postgres://u:hunter2@h/db?application_name=a@b",
            "host=h user=u password=hunter2 dbname=db",
            "host=h password='hunter 2' dbname=db",
            "host=h password = hunter2 dbname=db",
            "host=h user=u\npassword=hunter2",
            "host=h\tPASSWORD=hunter2",
            r"host=h password='a\'hunter2' dbname=db",
            r"host=h password=a\ hunter2 dbname=db",
        ] {
            let shown = format!("{:?}", PostgresConfig::new(url));
            assert!(!shown.contains("hunter"), "{url}: {shown}");
            assert!(shown.contains("***"), "{url}: {shown}");
        }
        // What cannot be read as pairs is not shown at all.
        for url in [
            "host=h password='hunter2",
            "host=h garbage hunter2",
            r"host=h dbname='x\' password=hunter2\'",
        ] {
            let shown = format!("{:?}", PostgresConfig::new(url));
            assert!(!shown.contains("hunter"), "{url}: {shown}");
        }
        let plain = format!("{:?}", PostgresConfig::new("host=h  user=u dbname='my db'"));
        assert!(plain.contains("host=h user=u dbname='my db'"), "{plain}");
    }
}
