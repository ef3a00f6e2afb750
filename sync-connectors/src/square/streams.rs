//! The streams of the Square source, their endpoints, and the tables of the streams that
//! are not catalog or orders: locations, inventory counts, payments, vendors.

use std::sync::Arc;

use sync_core::{Column, ColumnType, Error, ErrorKind, Result, StreamSchema, Value};

use super::catalog::CatalogTables;
use super::model::{InventoryCount, Location, Payment, Vendor};
use super::orders::OrderTables;
use super::table::{amount, currency, flag, int, json, text, ts, Table};

/// Every stream of the Square source, in the order the source syncs them.
pub const STREAMS: [&str; 15] = [
    "locations",
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
    "vendors",
];

/// A stream, by the endpoint family it is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Locations,
    Catalog(CatalogStream),
    InventoryCounts,
    Orders(OrderStream),
    Payments,
    Vendors,
}

/// A catalog stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CatalogStream {
    Categories,
    Items,
    Variations,
    LocationAvailability,
    VendorInfo,
}

impl CatalogStream {
    /// The `CatalogObjectType` searched.
    pub(crate) fn object_type(self) -> &'static str {
        match self {
            CatalogStream::Categories => "CATEGORY",
            CatalogStream::Items => "ITEM",
            CatalogStream::Variations | CatalogStream::LocationAvailability => "ITEM_VARIATION",
            CatalogStream::VendorInfo => "ITEM_VARIATION_VENDOR_INFO",
        }
    }
}

/// An order stream: the orders or one of their child lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderStream {
    Orders,
    LineItems,
    Fulfillments,
    Refunds,
    Returns,
    Tenders,
}

impl Stream {
    /// The streams in [`STREAMS`] order.
    pub(crate) const ALL: [Stream; 15] = [
        Stream::Locations,
        Stream::Catalog(CatalogStream::Categories),
        Stream::Catalog(CatalogStream::Items),
        Stream::Catalog(CatalogStream::Variations),
        Stream::Catalog(CatalogStream::LocationAvailability),
        Stream::Catalog(CatalogStream::VendorInfo),
        Stream::InventoryCounts,
        Stream::Orders(OrderStream::Orders),
        Stream::Orders(OrderStream::LineItems),
        Stream::Orders(OrderStream::Fulfillments),
        Stream::Orders(OrderStream::Refunds),
        Stream::Orders(OrderStream::Returns),
        Stream::Orders(OrderStream::Tenders),
        Stream::Payments,
        Stream::Vendors,
    ];

    /// The stream named `name`, or `NotFound`.
    pub(crate) fn named(name: &str) -> Result<Stream> {
        STREAMS
            .iter()
            .position(|s| *s == name)
            .map(|i| Stream::ALL[i])
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "unknown stream")
                    .with_context("connector", "square")
                    .with_context("stream", name)
            })
    }

    /// The endpoint it is read from, for errors and logs.
    pub(crate) fn endpoint(self) -> &'static str {
        match self {
            Stream::Locations => "GET /v2/locations",
            Stream::Catalog(_) => "POST /v2/catalog/search",
            Stream::InventoryCounts => "POST /v2/inventory/counts/batch-retrieve",
            Stream::Orders(_) => "POST /v2/orders/search",
            Stream::Payments => "GET /v2/payments",
            Stream::Vendors => "POST /v2/vendors/search",
        }
    }
}

/// The tables of every stream, built once per source.
#[derive(Debug)]
pub(crate) struct Tables {
    pub(crate) locations: Table<Location>,
    pub(crate) catalog: CatalogTables,
    pub(crate) inventory_counts: Table<InventoryCount>,
    pub(crate) orders: OrderTables,
    pub(crate) payments: Table<Payment>,
    pub(crate) vendors: Table<Vendor>,
}

impl Tables {
    pub(crate) fn new() -> Result<Self> {
        Ok(Tables {
            locations: locations()?,
            catalog: CatalogTables::new()?,
            inventory_counts: inventory_counts()?,
            orders: OrderTables::new()?,
            payments: payments()?,
            vendors: vendors()?,
        })
    }

    /// The schema of `stream`.
    pub(crate) fn schema(&self, stream: Stream) -> &Arc<StreamSchema> {
        let c = &self.catalog;
        let o = &self.orders;
        match stream {
            Stream::Locations => self.locations.schema(),
            Stream::Catalog(CatalogStream::Categories) => c.categories.schema(),
            Stream::Catalog(CatalogStream::Items) => c.items.schema(),
            Stream::Catalog(CatalogStream::Variations) => c.variations.schema(),
            Stream::Catalog(CatalogStream::LocationAvailability) => c.availability.schema(),
            Stream::Catalog(CatalogStream::VendorInfo) => c.vendor_info.schema(),
            Stream::InventoryCounts => self.inventory_counts.schema(),
            Stream::Orders(OrderStream::Orders) => o.orders.schema(),
            Stream::Orders(OrderStream::LineItems) => o.line_items.schema(),
            Stream::Orders(OrderStream::Fulfillments) => o.fulfillments.schema(),
            Stream::Orders(OrderStream::Refunds) => o.refunds.schema(),
            Stream::Orders(OrderStream::Returns) => o.returns.schema(),
            Stream::Orders(OrderStream::Tenders) => o.tenders.schema(),
            Stream::Payments => self.payments.schema(),
            Stream::Vendors => self.vendors.schema(),
        }
    }
}

fn locations() -> Result<Table<Location>> {
    Table::builder("locations")
        .col(
            Column::required("id", ColumnType::Text),
            |l: &Location, _| Value::from(l.id.as_str()),
        )
        .col(Column::new("name", ColumnType::Text), |l, _| {
            text(l.name.as_deref())
        })
        .col(Column::new("status", ColumnType::Text), |l, _| {
            text(l.status.as_deref())
        })
        .col(Column::new("type", ColumnType::Text), |l, _| {
            text(l.kind.as_deref())
        })
        .col(Column::new("business_name", ColumnType::Text), |l, _| {
            text(l.business_name.as_deref())
        })
        .col(Column::new("timezone", ColumnType::Text), |l, _| {
            text(l.timezone.as_deref())
        })
        .col(Column::new("currency", ColumnType::Text), |l, _| {
            text(l.currency.as_deref())
        })
        .col(Column::new("country", ColumnType::Text), |l, _| {
            text(l.country.as_deref())
        })
        .col(Column::new("merchant_id", ColumnType::Text), |l, _| {
            text(l.merchant_id.as_deref())
        })
        .col(Column::new("created_at", ColumnType::Timestamp), |l, _| {
            ts(l.created_at)
        })
        .col(Column::new("address", ColumnType::Json), |l, _| {
            json(l.address.as_ref())
        })
        .key(&["id"])
        .build()
}

fn inventory_counts() -> Result<Table<InventoryCount>> {
    Table::builder("inventory_counts")
        .col(
            Column::required("catalog_object_id", ColumnType::Text),
            |c: &InventoryCount, _| Value::from(c.catalog_object_id.as_str()),
        )
        .col(Column::required("location_id", ColumnType::Text), |c, _| {
            Value::from(c.location_id.as_str())
        })
        .col(Column::required("state", ColumnType::Text), |c, _| {
            Value::from(c.state.as_str())
        })
        .col(
            Column::new("catalog_object_type", ColumnType::Text),
            |c, _| text(c.catalog_object_type.as_deref()),
        )
        .col(
            Column::new(
                "quantity",
                ColumnType::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            |c, _| c.quantity.clone(),
        )
        .col(
            Column::required("calculated_at", ColumnType::Timestamp),
            |c, _| ts(c.calculated_at),
        )
        .col(Column::new("is_estimated", ColumnType::Bool), |c, _| {
            flag(c.is_estimated)
        })
        .key(&["catalog_object_id", "location_id", "state"])
        // No version: the guard is `calculated_at`, so an older count never replaces a newer.
        .cursor("calculated_at")
        .build()
}

fn payments() -> Result<Table<Payment>> {
    Table::builder("payments")
        .col(
            Column::required("id", ColumnType::Text),
            |p: &Payment, _| Value::from(p.id.as_str()),
        )
        .col(Column::new("created_at", ColumnType::Timestamp), |p, _| {
            ts(p.created_at)
        })
        .col(
            Column::required("updated_at", ColumnType::Timestamp),
            |p, _| ts(p.updated_at),
        )
        .col(Column::new("status", ColumnType::Text), |p, _| {
            text(p.status.as_deref())
        })
        .col(Column::new("source_type", ColumnType::Text), |p, _| {
            text(p.source_type.as_deref())
        })
        .col(Column::new("location_id", ColumnType::Text), |p, _| {
            text(p.location_id.as_deref())
        })
        .col(Column::new("order_id", ColumnType::Text), |p, _| {
            text(p.order_id.as_deref())
        })
        .col(Column::new("customer_id", ColumnType::Text), |p, _| {
            text(p.customer_id.as_deref())
        })
        .col(Column::new("reference_id", ColumnType::Text), |p, _| {
            text(p.reference_id.as_deref())
        })
        .col(Column::new("receipt_number", ColumnType::Text), |p, _| {
            text(p.receipt_number.as_deref())
        })
        .col(Column::new("note", ColumnType::Text), |p, _| {
            text(p.note.as_deref())
        })
        .col(Column::new("currency", ColumnType::Text), |p, _| {
            currency(p.amount_money.as_ref())
        })
        .col(Column::new("amount", ColumnType::Integer), |p, _| {
            amount(p.amount_money.as_ref())
        })
        .col(Column::new("tip_amount", ColumnType::Integer), |p, _| {
            amount(p.tip_money.as_ref())
        })
        .col(Column::new("total_amount", ColumnType::Integer), |p, _| {
            amount(p.total_money.as_ref())
        })
        .col(
            Column::new("app_fee_amount", ColumnType::Integer),
            |p, _| amount(p.app_fee_money.as_ref()),
        )
        .col(
            Column::new("refunded_amount", ColumnType::Integer),
            |p, _| amount(p.refunded_money.as_ref()),
        )
        .col(Column::new("version_token", ColumnType::Text), |p, _| {
            text(p.version_token.as_deref())
        })
        .col(Column::new("card_details", ColumnType::Json), |p, _| {
            json(p.card_details.as_ref())
        })
        .key(&["id"])
        // `version_token` is opaque, not ordered: the guard is `updated_at`.
        .cursor("updated_at")
        .build()
}

fn vendors() -> Result<Table<Vendor>> {
    Table::builder("vendors")
        .col(Column::required("id", ColumnType::Text), |v: &Vendor, _| {
            Value::from(v.id.as_str())
        })
        .col(Column::new("name", ColumnType::Text), |v, _| {
            text(v.name.as_deref())
        })
        .col(Column::new("status", ColumnType::Text), |v, _| {
            text(v.status.as_deref())
        })
        .col(Column::new("version", ColumnType::Integer), |v, _| {
            int(v.version)
        })
        .col(Column::new("created_at", ColumnType::Timestamp), |v, _| {
            ts(v.created_at)
        })
        .col(Column::new("updated_at", ColumnType::Timestamp), |v, _| {
            ts(v.updated_at)
        })
        .col(Column::new("account_number", ColumnType::Text), |v, _| {
            text(v.account_number.as_deref())
        })
        .col(Column::new("note", ColumnType::Text), |v, _| {
            text(v.note.as_deref())
        })
        .col(Column::new("address", ColumnType::Json), |v, _| {
            json(v.address.as_ref())
        })
        .col(Column::new("contacts", ColumnType::Json), |v, _| {
            json(v.contacts.as_ref())
        })
        .key(&["id"])
        // No change filter: a full scan each run, compared on `version`.
        .version("version")
        .build()
}
