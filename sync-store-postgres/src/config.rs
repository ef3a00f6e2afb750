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

/// The URL with any password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let masked = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    // `password=...` as a query parameter or in the key-value form (`host=h password=p`).
    let mut out = String::with_capacity(masked.len());
    let mut rest = masked.as_str();
    while let Some(i) = rest.find("password=") {
        let boundary = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&' | b' ' | b'\t');
        let value_start = i + "password=".len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if boundary {
            let quoted = rest.starts_with('\'');
            let end = if quoted {
                rest[1..].find('\'').map_or(rest.len(), |e| e + 2)
            } else {
                rest.find(['&', ' ', '\t']).unwrap_or(rest.len())
            };
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
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
            "host=h user=u password=hunter2 dbname=db",
            "host=h password='hunter 2' dbname=db",
        ] {
            let shown = format!("{:?}", PostgresConfig::new(url));
            assert!(!shown.contains("hunter"), "{shown}");
            assert!(shown.contains("password=***"), "{shown}");
        }
    }
}
