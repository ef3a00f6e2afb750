//! The source: the Oracle fake from `sync_connectors::fakes::oracle` started in this
//! process with a seeded set of opportunities, and the Oracle connector reading it by offset.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use sync_connectors::fakes::oracle::{
    backdated_opportunities, opportunities, Opportunity, OracleFake, State,
};
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::oracle::{OracleConfig, OracleMode, OracleSource};
use sync_connectors::rest::StrategySpec;
use sync_core::strategy::DriftPolicy;
use sync_core::{Column, ColumnType, Error, Result, Row, StreamSchema, Value};

use super::STREAM;

/// The seed's finder, sent as is.
pub const FINDER: &str = "MyOpportunitiesFinder;RecordSet='ALLOPTIES'";

/// What the fake serves. The same settings give the same records in every process, so a
/// run stopped in one process and resumed in another reads the same source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSettings {
    /// The seed of the data set.
    pub seed: u64,
    /// How many opportunities.
    pub records: usize,
    /// How long every answer of the fake waits (so a run can be interrupted by hand).
    pub delay: Option<Duration>,
    /// The largest page the fake serves (Oracle clamps `limit` silently; 500 here).
    pub max_limit: usize,
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings {
            seed: 4,
            records: 5_000,
            delay: None,
            max_limit: 500,
        }
    }
}

/// The Oracle fake holding the opportunities, on 127.0.0.1.
#[derive(Debug)]
pub struct OpportunitySource {
    fake: OracleFake,
    settings: SourceSettings,
}

/// The target's columns: every attribute the seed's `minimal_opportunities` keeps (`OptyId`,
/// `OptyNumber`) plus the name, the amount, its currency, the status and `LastUpdateDate`.
pub fn columns() -> Vec<Column> {
    let money = ColumnType::Decimal {
        precision: Some(18),
        scale: Some(2),
    };
    vec![
        Column::required("opty_id", ColumnType::Integer).with_source_field("OptyId"),
        Column::required("opty_number", ColumnType::Text).with_source_field("OptyNumber"),
        Column::new("name", ColumnType::Text).with_source_field("Name"),
        Column::new("revenue", money).with_source_field("Revenue"),
        Column::new("currency", ColumnType::Text).with_source_field("CurrencyCode"),
        Column::new("status", ColumnType::Text).with_source_field("StatusCode"),
        Column::required("last_update_date", ColumnType::Timestamp)
            .with_source_field("LastUpdateDate"),
    ]
}

/// An opportunity as a target row (in [`columns`] order).
pub fn row_of(o: &Opportunity) -> Result<Row> {
    let revenue = Decimal::from_str(&o.revenue())
        .map_err(|e| Error::invalid_input("a revenue is not a decimal").with_source(e))?;
    Ok(Row::new(vec![
        Value::Integer(o.opty_id),
        Value::from(o.opty_number.as_str()),
        Value::from(o.name.as_str()),
        Value::Decimal(revenue),
        Value::from(o.currency.as_str()),
        Value::from(o.status.as_str()),
        Value::Timestamp(o.updated),
    ]))
}

impl OpportunitySource {
    /// Starts the fake with the seeded opportunities of `settings`.
    pub async fn start(settings: SourceSettings) -> Result<Self> {
        if settings.records == 0 || settings.max_limit == 0 {
            return Err(Error::config(
                "the source needs at least one record and a page size",
            ));
        }
        let fake = OracleFake::start_with(State {
            opportunities: opportunities(settings.seed, settings.records),
            max_limit: settings.max_limit,
            delay: settings.delay,
            ..State::default()
        })
        .await;
        Ok(OpportunitySource { fake, settings })
    }

    /// The settings it was started with.
    pub fn settings(&self) -> SourceSettings {
        self.settings
    }

    /// The fake itself (to change its data between runs).
    pub fn fake(&self) -> &OracleFake {
        &self.fake
    }

    /// The resources URL of the fake.
    pub fn base_url(&self) -> String {
        self.fake.base_url()
    }

    /// How many opportunities the fake holds now.
    pub fn len(&self) -> usize {
        self.fake.opportunities().len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `n` back-dated opportunities (a data import), which sort before every record in
    /// `LastUpdateDate` order: before the offset a sync reached. The same seed gives the same
    /// records.
    pub fn import_backdated(&self, n: usize) {
        let imported = backdated_opportunities(self.settings.seed, n, self.settings.records);
        self.fake.insert_opportunities(imported);
    }

    /// Updates the opportunities at these places of the `LastUpdateDate` order, as a user
    /// would: each moves from its place to the end. Returns their `OptyId`s.
    pub fn update_at(&self, places: &[usize]) -> Vec<i64> {
        let mut held = self.fake.opportunities();
        held.sort_by_key(|o| (o.updated, o.opty_id));
        let ids: Vec<i64> = places
            .iter()
            .filter_map(|&p| held.get(p).map(|o| o.opty_id))
            .collect();
        for &id in &ids {
            self.fake.update_opportunity(id);
        }
        ids
    }

    /// The source as target rows, ordered by `OptyId`.
    pub fn rows(&self) -> Result<Vec<Row>> {
        let mut held = self.fake.opportunities();
        held.sort_by_key(|o| o.opty_id);
        held.iter().map(row_of).collect()
    }

    /// The connector's configuration: offset mode (`offset` advanced by the `count`
    /// received), the seed's finder, `fields` of the columns, `orderBy=LastUpdateDate:asc,
    /// OptyId:asc`, `totalResults=true` (so a total that changes within a run is drift too),
    /// `limit=batch_size`.
    pub fn config(&self, batch_size: u32, drift: DriftPolicy) -> Result<OracleConfig> {
        let mut builder = OracleConfig::builder(self.base_url(), "opportunities", "opty_id")
            .with_stream(STREAM)
            .with_cursor("last_update_date")
            .with_finder(FINDER)
            .with_mode(OracleMode::Offset)
            .with_total_results(true)
            .with_page_size(batch_size)
            .with_max_page_size(batch_size.max(500))
            .with_strategy(StrategySpec::Offset { drift });
        for c in columns() {
            builder = builder.with_column(c);
        }
        builder.build()
    }

    /// The Oracle source over the fake, asking for `batch_size` records per page.
    pub fn oracle_source(&self, batch_size: u32, drift: DriftPolicy) -> Result<OracleSource> {
        let client = HttpClient::new(HttpConfig {
            total_timeout_ms: Some(30_000),
            error_body_excerpt_bytes: 4096,
            ..HttpConfig::default()
        })?;
        OracleSource::with_client(self.config(batch_size, drift)?, client)
    }

    /// The target's schema (as the connector derives it).
    pub fn schema(&self) -> Result<Arc<StreamSchema>> {
        Ok(Arc::new(self.config(1, DriftPolicy::Restart)?.schema()?))
    }
}
