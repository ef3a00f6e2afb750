//! Seed 001's table list mapped to what feeds each table: a Square connector stream (with
//! its change detection), the export derived from the catalog, or nothing in Square's API.

use sync_core::{
    FullConfig, FullStrategy, IncrementalConfig, IncrementalStrategy, Result, Strategy,
};

/// The stream of the full-rebuild export table.
pub const EXPORT_TABLE: &str = "square_item_library_export";

/// Payments are eventually consistent ("new payments or changes to payments might take
/// several seconds to appear"): their runs stop this far (ms) behind the server's clock.
pub const PAYMENTS_SETTLE_LAG_MS: i64 = 60_000;

/// How the changes of a table are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Catalog objects: SearchCatalogObjects from the checkpoint (`begin_time`, exclusive)
    /// up to the server's `latest_time`; Square's `version` decides which copy wins.
    Version,
    /// `updated_at` / `calculated_at` from the checkpoint up to the server's clock (the
    /// `Date` header or the newest record): orders, their child tables, payments, inventory.
    Timestamp,
    /// No change filter in the API (locations, vendors): a full scan every run, rows gone
    /// from Square removed; vendors compared on `version`.
    FullScan,
    /// Rebuilt from the synced catalog every run and replaced atomically.
    FullRebuild,
}

impl Detection {
    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Detection::Version => "version",
            Detection::Timestamp => "timestamp",
            Detection::FullScan => "full scan",
            Detection::FullRebuild => "full rebuild",
        }
    }
}

/// What feeds a seed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// A Square connector stream (the target table carries the stream's name).
    Stream {
        /// The connector stream.
        stream: &'static str,
        /// How its changes are found.
        detection: Detection,
    },
    /// The export derived from the synced catalog ([`EXPORT_TABLE`]).
    Export,
    /// No Square API serves it; why.
    NoApiSource(&'static str),
}

/// A table of seed 001's database and its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedTable {
    /// The seed's table name.
    pub seed_table: &'static str,
    /// What fills it.
    pub feed: Feed,
}

const fn stream(seed_table: &'static str, stream: &'static str, detection: Detection) -> SeedTable {
    SeedTable {
        seed_table,
        feed: Feed::Stream { stream, detection },
    }
}

const fn none(seed_table: &'static str, why: &'static str) -> SeedTable {
    SeedTable {
        seed_table,
        feed: Feed::NoApiSource(why),
    }
}

/// The seed's 21 tables, in its order.
pub const SEED_TABLES: [SeedTable; 21] = [
    none("alembic_version", "the database's migration bookkeeping"),
    stream(
        "catalog_categories",
        "catalog_categories",
        Detection::Version,
    ),
    stream(
        "catalog_inventory",
        "inventory_counts",
        Detection::Timestamp,
    ),
    stream("catalog_items", "catalog_items", Detection::Version),
    stream(
        "catalog_location_availability",
        "catalog_item_location_availability",
        Detection::Version,
    ),
    stream(
        "catalog_variations",
        "catalog_item_variations",
        Detection::Version,
    ),
    stream(
        "catalog_vendor_info",
        "catalog_vendor_info",
        Detection::Version,
    ),
    none(
        "inventory_counts",
        "the dashboard's own historical tracking (Square's counts feed catalog_inventory)",
    ),
    stream("locations", "locations", Detection::FullScan),
    none(
        "operating_seasons",
        "internal business logic, kept by the dashboard",
    ),
    stream(
        "order_fulfillments",
        "order_fulfillments",
        Detection::Timestamp,
    ),
    stream("order_line_items", "order_line_items", Detection::Timestamp),
    stream("order_refunds", "order_refunds", Detection::Timestamp),
    stream("order_returns", "order_returns", Detection::Timestamp),
    stream("orders", "orders", Detection::Timestamp),
    stream("payments", "payments", Detection::Timestamp),
    SeedTable {
        seed_table: EXPORT_TABLE,
        feed: Feed::Export,
    },
    none(
        "square_sales",
        "processed sales data the dashboard derives from orders",
    ),
    stream("tenders", "order_tenders", Detection::Timestamp),
    none(
        "transactions",
        "Square's Transactions API is retired; its data are orders, tenders and payments",
    ),
    stream("vendors", "vendors", Detection::FullScan),
];

/// A synced table: its target (the stream name), how changes are found, and the sync name
/// its checkpoint (its `sync_state` row) is kept under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedTable {
    /// The seed's name for it.
    pub seed_table: &'static str,
    /// The target table (the stream's name).
    pub stream: &'static str,
    /// How its changes are found.
    pub detection: Detection,
}

impl SyncedTable {
    /// The checkpoint key: `square/<stream>`.
    pub fn sync_name(&self) -> String {
        format!("square/{}", self.stream)
    }

    /// The strategy of its runs.
    pub fn strategy(&self) -> Result<Box<dyn Strategy>> {
        Ok(match self.detection {
            Detection::Version | Detection::Timestamp => {
                let mut config = IncrementalConfig::new(self.stream);
                if self.stream == "payments" {
                    config.settle_lag = PAYMENTS_SETTLE_LAG_MS;
                }
                Box::new(IncrementalStrategy::new(config)?)
            }
            Detection::FullScan | Detection::FullRebuild => {
                Box::new(FullStrategy::new(FullConfig::new(self.stream))?)
            }
        })
    }
}

/// The synced tables in the order they run: the catalog first (the export and the orders'
/// line items refer to it), the export last.
pub fn synced_tables() -> Vec<SyncedTable> {
    const ORDER: [&str; 16] = [
        "locations",
        "vendors",
        "catalog_categories",
        "catalog_items",
        "catalog_item_variations",
        "catalog_item_location_availability",
        "catalog_vendor_info",
        "inventory_counts",
        "orders",
        "order_line_items",
        "order_fulfillments",
        "order_refunds",
        "order_returns",
        "order_tenders",
        "payments",
        EXPORT_TABLE,
    ];
    ORDER
        .iter()
        .filter_map(|name| {
            SEED_TABLES.iter().find_map(|t| match t.feed {
                Feed::Stream { stream, detection } if stream == *name => Some(SyncedTable {
                    seed_table: t.seed_table,
                    stream,
                    detection,
                }),
                Feed::Export if *name == EXPORT_TABLE => Some(SyncedTable {
                    seed_table: t.seed_table,
                    stream: EXPORT_TABLE,
                    detection: Detection::FullRebuild,
                }),
                _ => None,
            })
        })
        .collect()
}

/// The seed tables no Square API serves, with the reason.
pub fn unsourced_tables() -> Vec<(&'static str, &'static str)> {
    SEED_TABLES
        .iter()
        .filter_map(|t| match t.feed {
            Feed::NoApiSource(why) => Some((t.seed_table, why)),
            _ => None,
        })
        .collect()
}
