//! The streams of each provider, and what a tenant's integration makes of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sync_connectors::http::{Auth, HttpClient, HttpConfig};
use sync_connectors::rest::{PipelineConfig, RestSource, RestStreamConfig};
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
    /// The tenant's own endpoint in place of the stream's `base_url`. When the stream sends
    /// credentials, the endpoint must keep the stream's origin (scheme, host and port), so a
    /// tenant's setting can never take them to another host.
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

    /// Adds the streams of a pipeline file as a provider named after it; a stream without
    /// its own `auth` or `rate_limit` takes the pipeline's, as the `sync` command runs it.
    pub fn with_pipeline(self, pipeline: PipelineConfig) -> Result<Self> {
        let PipelineConfig {
            name,
            auth,
            rate_limit,
            streams,
            ..
        } = pipeline;
        let streams = streams.into_iter().map(|mut s| {
            if s.auth.is_none() {
                s.auth.clone_from(&auth);
            }
            if s.rate_limit.is_none() {
                s.rate_limit.clone_from(&rate_limit);
            }
            s
        });
        self.with_provider(&name, streams)
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
            if !matches!(config.auth, None | Some(Auth::None))
                && !same_origin(&config.base_url, &url)
            {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "a tenant's base_url may not take the stream's credentials to another origin",
                )
                .with_context("provider", &integration.provider)
                .with_context("tenant", &integration.tenant));
            }
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

/// True when both URLs parse and share scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use sync_connectors::http::Secret;
    use sync_core::StrategyKind;

    use super::*;
    use crate::demo_api::items_stream;

    fn integration(settings: serde_json::Value) -> Integration {
        let mut i = Integration::new("pos", "venue-1", StrategyKind::Incremental, ["items"]);
        i.settings = settings;
        i
    }

    #[test]
    fn tenant_settings_give_each_tenant_its_table_and_endpoint() {
        let catalog = Catalog::new(HttpConfig::default())
            .unwrap()
            .with_provider("pos", [items_stream("http://127.0.0.1:9")])
            .unwrap();
        let source = catalog
            .tenant_source(
                &integration(serde_json::json!({
                    "base_url": "http://127.0.0.1:7000",
                    "query": { "venue": "v1" },
                })),
                "items",
            )
            .unwrap();
        assert_eq!(source.config().name, "items__venue-1");
        assert_eq!(source.config().base_url, "http://127.0.0.1:7000");
        assert_eq!(source.config().query["venue"], "v1");
        for bad in [
            serde_json::json!({ "venue_code": "x" }),
            serde_json::json!({ "base_url": 7 }),
            serde_json::json!({ "base_url": "not a url" }),
        ] {
            let err = catalog
                .tenant_source(&integration(bad.clone()), "items")
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
        }
        let shared = Catalog::new(HttpConfig::default())
            .unwrap()
            .with_tables(TenantTables::Shared)
            .with_provider("pos", [items_stream("http://127.0.0.1:9")])
            .unwrap();
        let declared = shared.source("pos", "items").unwrap();
        let same = shared
            .tenant_source(&integration(serde_json::Value::Null), "items")
            .unwrap();
        assert!(Arc::ptr_eq(&declared, &same));
    }

    #[test]
    fn a_tenant_endpoint_never_takes_the_streams_credentials_elsewhere() {
        let mut stream = items_stream("https://api.example.com/v2");
        stream.auth = Some(Auth::Bearer {
            token: Secret::new("tok-0123456789"),
        });
        let catalog = Catalog::new(HttpConfig::default())
            .unwrap()
            .with_provider("pos", [stream])
            .unwrap();
        let to = |url: &str| {
            catalog.tenant_source(
                &integration(serde_json::json!({ "base_url": url })),
                "items",
            )
        };
        let err = to("https://evil.example.net/v2").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("tok-0123456789"));
        assert_eq!(
            to("http://api.example.com/v2").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(
            to("https://api.example.com/v3").is_ok(),
            "same origin, another path"
        );
    }
}
