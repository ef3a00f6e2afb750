//! [`DataverseConfig`]: where the Web API is, how to authenticate, how rows map to
//! entities, and how large the `$batch` requests are.

use std::fmt;

use serde::{Deserialize, Serialize};
use sync_core::{Error, Result, RetryPolicy, StreamSchema};

use crate::http::{Auth, ClientAuth, HttpConfig, RateLimit, Secret};

/// Most operations Dataverse accepts in one `$batch` request.
pub const MAX_BATCH_OPERATIONS: usize = 1000;

/// One stream column written to one entity attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMapping {
    /// The stream column.
    pub column: String,
    /// The entity attribute (logical name), for example `name`.
    pub attribute: String,
}

impl AttributeMapping {
    /// `column` written to `attribute`.
    pub fn new(column: impl Into<String>, attribute: impl Into<String>) -> Self {
        AttributeMapping {
            column: column.into(),
            attribute: attribute.into(),
        }
    }
}

/// A column holding a reference to another record, sent as
/// `"<navigation_property>@odata.bind": "/<entity_set>(<key>)"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupMapping {
    /// The stream column holding the referenced record's key value.
    pub column: String,
    /// The single-valued navigation property, for example `parentcustomerid_account`.
    pub navigation_property: String,
    /// The referenced entity set, for example `accounts`.
    pub entity_set: String,
    /// The referenced table's alternate key attribute; `None`: the column holds the GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_attribute: Option<String>,
}

/// How the rows of one stream become records of one Dataverse table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityMapping {
    /// The stream whose deliveries this mapping handles.
    pub stream: String,
    /// The entity set name (plural), for example `accounts`.
    pub entity_set: String,
    /// The alternate key: stream columns to key attributes, in the key's order. They go into
    /// the URL (`accounts(accountnumber='A-1')`) and never into the body.
    pub alternate_key: Vec<AttributeMapping>,
    /// The other columns written, each to its attribute.
    #[serde(default)]
    pub attributes: Vec<AttributeMapping>,
    /// Lookup columns, written as `@odata.bind` references.
    #[serde(default)]
    pub lookups: Vec<LookupMapping>,
}

impl EntityMapping {
    /// A mapping of `stream` to `entity_set` with no columns yet.
    pub fn new(stream: impl Into<String>, entity_set: impl Into<String>) -> Self {
        EntityMapping {
            stream: stream.into(),
            entity_set: entity_set.into(),
            alternate_key: Vec::new(),
            attributes: Vec::new(),
            lookups: Vec::new(),
        }
    }

    /// Adds an alternate key column.
    pub fn with_key(mut self, column: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.alternate_key
            .push(AttributeMapping::new(column, attribute));
        self
    }

    /// Adds an attribute column.
    pub fn with_attribute(
        mut self,
        column: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.attributes
            .push(AttributeMapping::new(column, attribute));
        self
    }

    /// Adds a lookup column.
    pub fn with_lookup(mut self, lookup: LookupMapping) -> Self {
        self.lookups.push(lookup);
        self
    }

    /// Checks names without a schema: a key, valid identifiers, no attribute written twice
    /// and no key attribute in the body.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Error::config(m.to_owned()).with_context("stream", &self.stream);
        if !is_identifier(&self.entity_set) {
            return Err(bad("dataverse entity set name is not an identifier")
                .with_context("entity_set", &self.entity_set));
        }
        if self.alternate_key.is_empty() || self.alternate_key.len() > 16 {
            return Err(bad("a dataverse alternate key needs 1 to 16 columns"));
        }
        let mut seen = std::collections::BTreeSet::new();
        let names = self
            .alternate_key
            .iter()
            .chain(&self.attributes)
            .map(|m| m.attribute.as_str())
            .chain(self.lookups.iter().map(|l| l.navigation_property.as_str()));
        for name in names {
            if !is_identifier(name) {
                return Err(bad("dataverse attribute name is not an identifier")
                    .with_context("attribute", name));
            }
            if !seen.insert(name) {
                return Err(bad(
                    "dataverse attribute is mapped twice (a key attribute must not be in the body)",
                )
                .with_context("attribute", name));
            }
        }
        for lookup in &self.lookups {
            let key_ok = lookup.key_attribute.as_deref().map_or(true, is_identifier);
            if !is_identifier(&lookup.entity_set) || !key_ok {
                return Err(bad("dataverse lookup names are not identifiers")
                    .with_context("column", &lookup.column));
            }
        }
        Ok(())
    }

    /// Checks that every mapped column exists in `schema`.
    pub fn check_schema(&self, schema: &StreamSchema) -> Result<()> {
        let columns = self
            .alternate_key
            .iter()
            .chain(&self.attributes)
            .map(|m| m.column.as_str())
            .chain(self.lookups.iter().map(|l| l.column.as_str()));
        for column in columns {
            if schema.column_index(column).is_none() {
                return Err(Error::config("dataverse mapping names an unknown column")
                    .with_context("stream", schema.name())
                    .with_context("column", column));
            }
        }
        Ok(())
    }
}

/// OData identifiers: a letter or `_`, then letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Configuration of a [`DataverseSink`](super::DataverseSink).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataverseConfig {
    /// The Web API root, for example `https://org.crm.dynamics.com/api/data/v9.2/`.
    pub base_url: String,
    /// Authentication; Dataverse takes OAuth2 client credentials from Microsoft Entra ID
    /// ([`DataverseBuilder::with_client_credentials`]).
    pub auth: Auth,
    /// One mapping per stream delivered.
    pub entities: Vec<EntityMapping>,
    /// Operations per `$batch` request, at most 1000 (default 100: Microsoft advises small
    /// batches, which also count less execution time per request).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Operations per changeset (atomic group) inside a batch (default 1: every record
    /// succeeds or fails on its own, and its result maps back to it alone).
    #[serde(default = "default_changeset_size")]
    pub changeset_size: usize,
    /// Requests per second and in flight; the default keeps well under the service
    /// protection limits (6000 requests per 5 minutes, 52 concurrent).
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimit,
    /// Retries of a whole `$batch` request (429 with `Retry-After`, 5xx, transport errors)
    /// and rounds of re-sending the operations that failed transiently inside one.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// HTTP settings.
    #[serde(default)]
    pub http: HttpConfig,
}

fn default_batch_size() -> usize {
    100
}
fn default_changeset_size() -> usize {
    1
}

/// 20 requests per second (6000 per 300 s), a burst of 20, 16 in flight (the limit is 52).
pub fn default_rate_limit() -> RateLimit {
    RateLimit::per_second(20.0)
        .with_burst(20)
        .with_max_concurrent(16)
}

impl fmt::Debug for DataverseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Auth` prints its secrets as `***`; the URL loses any query.
        f.debug_struct("DataverseConfig")
            .field("base_url", &crate::http::redact_url(&self.base_url))
            .field("auth", &self.auth)
            .field("entities", &self.entities)
            .field("batch_size", &self.batch_size)
            .field("changeset_size", &self.changeset_size)
            .field("rate_limit", &self.rate_limit)
            .field("retry", &self.retry)
            .field("http", &self.http)
            .finish()
    }
}

impl DataverseConfig {
    /// A builder for the Web API at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> DataverseBuilder {
        DataverseBuilder {
            config: DataverseConfig {
                base_url: base_url.into(),
                auth: Auth::None,
                entities: Vec::new(),
                batch_size: default_batch_size(),
                changeset_size: default_changeset_size(),
                rate_limit: default_rate_limit(),
                retry: RetryPolicy::default(),
                http: HttpConfig::default(),
            },
        }
    }

    /// Checks everything without I/O; the base URL gets a trailing `/`.
    pub fn validate(&mut self) -> Result<()> {
        let url = url::Url::parse(&self.base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.query().is_none());
        if url.is_none() {
            return Err(Error::config("dataverse base_url is not an http(s) url")
                .with_context("url", crate::http::redact_url(&self.base_url)));
        }
        if !self.base_url.ends_with('/') {
            self.base_url.push('/');
        }
        self.auth.validate()?;
        self.rate_limit.validate()?;
        self.http.validate()?;
        if !(1..=MAX_BATCH_OPERATIONS).contains(&self.batch_size) {
            return Err(Error::config("dataverse batch_size must be 1 to 1000")
                .with_context("batch_size", self.batch_size));
        }
        if self.changeset_size == 0 || self.changeset_size > self.batch_size {
            return Err(
                Error::config("dataverse changeset_size must be 1 to batch_size")
                    .with_context("changeset_size", self.changeset_size),
            );
        }
        if self.entities.is_empty() {
            return Err(Error::config(
                "dataverse sink needs at least one entity mapping",
            ));
        }
        let mut streams = std::collections::BTreeSet::new();
        for entity in &self.entities {
            entity.validate()?;
            if !streams.insert(entity.stream.as_str()) {
                return Err(Error::config("dataverse stream is mapped twice")
                    .with_context("stream", &entity.stream));
            }
        }
        Ok(())
    }

    /// The mapping of `stream`.
    pub fn entity(&self, stream: &str) -> Option<&EntityMapping> {
        self.entities.iter().find(|e| e.stream == stream)
    }
}

/// Builds a [`DataverseConfig`]; [`build`](Self::build) validates without I/O.
#[derive(Debug, Clone)]
pub struct DataverseBuilder {
    config: DataverseConfig,
}

impl DataverseBuilder {
    /// OAuth2 client credentials against Microsoft Entra ID:
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`, scope
    /// `<environment origin>/.default`, the secret in the form body.
    pub fn with_client_credentials(
        mut self,
        tenant: &str,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        let scope = url::Url::parse(&self.config.base_url)
            .map(|u| format!("{}/.default", u.origin().ascii_serialization()))
            .unwrap_or_default();
        self.config.auth = Auth::OAuth2ClientCredentials {
            token_url: format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
            client_id: client_id.into(),
            client_secret,
            scopes: vec![scope],
            audience: None,
            client_auth: ClientAuth::Body,
        };
        self
    }

    /// Replaces the token endpoint of OAuth2 client credentials (sovereign clouds, tests).
    pub fn with_token_url(mut self, url: impl Into<String>) -> Self {
        if let Auth::OAuth2ClientCredentials { token_url, .. } = &mut self.config.auth {
            *token_url = url.into();
        }
        self
    }

    /// Any other authentication.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.config.auth = auth;
        self
    }

    /// Adds an entity mapping.
    pub fn with_entity(mut self, entity: EntityMapping) -> Self {
        self.config.entities.push(entity);
        self
    }

    /// Operations per `$batch`.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// Operations per changeset.
    pub fn with_changeset_size(mut self, n: usize) -> Self {
        self.config.changeset_size = n;
        self
    }

    /// The rate limit.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = limit;
        self
    }

    /// The retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// HTTP settings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.config.http = http;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(mut self) -> Result<DataverseConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}
