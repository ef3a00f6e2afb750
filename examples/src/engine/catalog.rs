//! The streams of each provider, and what a tenant's integration makes of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::{RestSource, RestStreamConfig};
use sync_core::jobs::{check_name, Integration};
use sync_core::{Error, ErrorKind, Result, Source, Stager, StreamSchema};

/// Where each tenant's rows land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantTables {
    /// A table per tenant and stream, `{stream}__{tenant}`: tenants never see (or, in a full
    /// sync that deletes what the source no longer has, delete) each other's rows, even when
    /// their APIs reuse the same ids. The default.
    #[default]
    PerTenant,
    /// One table per stream shared by every tenant: only for providers whose keys are
    /// unique across tenants and whose full syncs do not delete missing rows.
    Shared,
}

/// The per-tenant part of a REST integration, read from
/// [`Integration::settings`]: `{"base_url": "...", "query": {"venue_id": "v-17"}}`. Unknown
/// fields are refused, so a typo is an error rather than a silently ignored setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The tenant's own endpoint in place of the stream's `base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Query parameters added to the stream's (a same-named one is replaced).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
}

impl TenantSettings {
    /// The settings of `integration` (none when its settings are null).
    pub fn of(integration: &Integration) -> Result<TenantSettings> {
        if integration.settings.is_null() {
            return Ok(TenantSettings::default());
        }
        serde_json::from_value(integration.settings.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the integration's settings are not REST tenant settings: {e}"),
            )
            .with_context("provider", &integration.provider)
            .with_context("tenant", &integration.tenant)
        })
    }
}

/// The REST streams of each provider, sharing one HTTP client.
#[derive(Debug)]
pub struct Catalog {
    client: HttpClient,
    tables: TenantTables,
    providers: BTreeMap<String, BTreeMap<String, Arc<RestSource>>>,
}

impl Catalog {
    /// An empty catalog whose sources use one client built from `http`, with a table per
    /// tenant.
    pub fn new(http: HttpConfig) -> Result<Self> {
        Ok(Catalog {
            client: HttpClient::new(http)?,
            tables: TenantTables::default(),
            providers: BTreeMap::new(),
        })
    }

    /// Sets where tenants' rows land.
    pub fn with_tables(mut self, tables: TenantTables) -> Self {
        self.tables = tables;
        self
    }

    /// Adds a provider's streams (validated as the REST source validates them).
    pub fn with_provider(
        mut self,
        provider: &str,
        streams: impl IntoIterator<Item = RestStreamConfig>,
    ) -> Result<Self> {
        check_name("provider", provider)?;
        let entry = self.providers.entry(provider.to_string()).or_default();
        for config in streams {
            let name = config.name.clone();
            check_name("stream", &name)?;
            entry.insert(
                name,
                Arc::new(RestSource::new(config, self.client.clone())?),
            );
        }
        Ok(self)
    }

    /// The providers, in name order.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// The source of one stream as the provider declares it (no tenant applied).
    pub fn source(&self, provider: &str, stream: &str) -> Result<Arc<RestSource>> {
        self.providers
            .get(provider)
            .and_then(|s| s.get(stream))
            .cloned()
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "the catalog has no such stream")
                    .with_context("provider", provider)
                    .with_context("stream", stream)
            })
    }

    /// The target table of `tenant`'s `stream`.
    pub fn target_table(&self, tenant: &str, stream: &str) -> String {
        match self.tables {
            TenantTables::PerTenant => format!("{stream}__{tenant}"),
            TenantTables::Shared => stream.to_string(),
        }
    }

    /// The source of `stream` for `integration`'s tenant: the provider's stream with the
    /// tenant's [`TenantSettings`] applied, writing to [`Catalog::target_table`]. Checks
    /// the stream, the settings and the table name, so an integration that passes here runs.
    pub fn tenant_source(
        &self,
        integration: &Integration,
        stream: &str,
    ) -> Result<Arc<RestSource>> {
        let declared = self.source(&integration.provider, stream)?;
        let settings = TenantSettings::of(integration)?;
        let table = self.target_table(&integration.tenant, stream);
        if settings == TenantSettings::default() && table == stream {
            return Ok(declared);
        }
        let mut config = declared.config().clone();
        config.name = table;
        if let Some(url) = settings.base_url {
            config.base_url = url;
        }
        config.query.extend(settings.query);
        let source = RestSource::new(config, self.client.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the integration's settings make an invalid stream: {e}"),
            )
            .with_context("provider", &integration.provider)
            .with_context("tenant", &integration.tenant)
        })?;
        Ok(Arc::new(source))
    }

    /// The schema of `integration`'s `stream` (its table name is the tenant's table).
    pub fn tenant_schema(
        &self,
        integration: &Integration,
        stream: &str,
    ) -> Result<Arc<StreamSchema>> {
        let source = self.tenant_source(integration, stream)?;
        source.schema(&source.config().name)
    }

    /// Creates the target table of every stream of `integrations` that lacks one, and adds
    /// the columns a stream gained (seed 001's table migration). Returns the tables ensured.
    pub async fn migrate_tables(
        &self,
        stager: &dyn Stager,
        integrations: &[Integration],
    ) -> Result<Vec<String>> {
        let mut ensured = vec![];
        for integration in integrations {
            for stream in &integration.streams {
                let schema = self.tenant_schema(integration, stream)?;
                stager.ensure_stream(&schema).await?;
                ensured.push(format!("{}/{}", integration.provider, schema.name()));
            }
        }
        ensured.sort();
        ensured.dedup();
        Ok(ensured)
    }
}
