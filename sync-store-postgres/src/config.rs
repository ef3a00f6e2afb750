//! Configuration of a PostgreSQL store: serde data whose `Debug` never shows the password;
//! `validate` parses the URL and does no I/O.

use std::str::FromStr;

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
}

fn default_schema() -> String {
    "public".into()
}
fn default_pool_size() -> usize {
    4
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
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
