//! `square_item_library_export`: one row per live item variation with its item, category,
//! price, vendor and the number of locations it is sold at, derived from the synced catalog
//! and rebuilt whole every run.
//!
//! The rebuild is a full sync from an in-memory source holding the derived rows: staged,
//! then promoted with `delete_missing` in one transaction (upsert, delete the rows the new
//! snapshot lacks, checkpoint), so a reader sees the previous export or the new one, never
//! an empty or half-built table.

use std::collections::BTreeMap;
use std::sync::Arc;

use sync_core::memory::MemorySource;
use sync_core::{Column, ColumnType, Result, Row, StreamSchema, Value};

use super::rows::NamedRows;
use super::tables::EXPORT_TABLE;

/// The catalog tables the export is derived from.
#[derive(Debug, Clone)]
pub struct CatalogRows {
    /// `catalog_items`.
    pub items: NamedRows,
    /// `catalog_item_variations`.
    pub variations: NamedRows,
    /// `catalog_categories`.
    pub categories: NamedRows,
    /// `catalog_vendor_info`.
    pub vendor_info: NamedRows,
    /// `catalog_item_location_availability`.
    pub availability: NamedRows,
    /// `vendors`.
    pub vendors: NamedRows,
}

/// The catalog streams [`CatalogRows`] reads, in its field order.
pub const CATALOG_STREAMS: [&str; 6] = [
    "catalog_items",
    "catalog_item_variations",
    "catalog_categories",
    "catalog_vendor_info",
    "catalog_item_location_availability",
    "vendors",
];

/// The export's schema.
pub fn export_schema() -> Result<StreamSchema> {
    let text = |n: &str| Column::new(n, ColumnType::Text);
    let int = |n: &str| Column::new(n, ColumnType::Integer);
    StreamSchema::builder(EXPORT_TABLE)
        .with_column(Column::required("variation_id", ColumnType::Text))
        .with_column(text("item_id"))
        .with_column(text("item_name"))
        .with_column(text("item_description"))
        .with_column(text("variation_name"))
        .with_column(text("sku"))
        .with_column(text("category_id"))
        .with_column(text("category_name"))
        .with_column(int("price_amount"))
        .with_column(text("price_currency"))
        .with_column(Column::new("track_inventory", ColumnType::Bool))
        .with_column(text("vendor_id"))
        .with_column(text("vendor_name"))
        .with_column(text("vendor_sku"))
        .with_column(int("vendor_price_amount"))
        .with_column(int("available_locations"))
        .with_primary_key(["variation_id"])
        .build()
}

fn live(t: &NamedRows, r: &Row) -> bool {
    !matches!(t.get(r, "is_deleted"), Value::Bool(true))
}

/// The export rows of `catalog`: every live variation whose item is live, ordered by id.
pub fn export_rows(catalog: &CatalogRows) -> Vec<Row> {
    let c = catalog;
    let index = |t: &NamedRows| -> BTreeMap<String, Row> {
        t.rows
            .iter()
            .filter(|r| live(t, r))
            .filter_map(|r| t.text(r, "id").map(|id| (id.to_owned(), r.clone())))
            .collect()
    };
    let (items, categories, vendors) = (index(&c.items), index(&c.categories), index(&c.vendors));
    let mut vendor_of: BTreeMap<String, Row> = BTreeMap::new();
    for r in c
        .vendor_info
        .rows
        .iter()
        .filter(|r| live(&c.vendor_info, r))
    {
        if let Some(v) = c.vendor_info.text(r, "item_variation_id") {
            vendor_of.entry(v.to_owned()).or_insert_with(|| r.clone());
        }
    }
    let mut present: BTreeMap<String, i64> = BTreeMap::new();
    for r in &c.availability.rows {
        if matches!(c.availability.get(r, "present"), Value::Bool(true)) {
            if let Some(v) = c.availability.text(r, "variation_id") {
                *present.entry(v.to_owned()).or_default() += 1;
            }
        }
    }
    let text = |v: Option<&str>| v.map_or(Value::Null, Value::from);
    let mut out = Vec::new();
    for v in c.variations.rows.iter().filter(|r| live(&c.variations, r)) {
        let vt = &c.variations;
        let (Some(id), Some(item_id)) = (vt.text(v, "id"), vt.text(v, "item_id")) else {
            continue;
        };
        let Some(item) = items.get(item_id) else {
            continue;
        };
        let category_id = c.items.text(item, "category_id");
        let category = category_id.and_then(|k| categories.get(k));
        let info = vendor_of.get(id);
        let vendor_id = info.and_then(|i| c.vendor_info.text(i, "vendor_id"));
        let vendor = vendor_id.and_then(|k| vendors.get(k));
        out.push(Row::new(vec![
            Value::from(id),
            Value::from(item_id),
            c.items.get(item, "name").clone(),
            c.items.get(item, "description").clone(),
            vt.get(v, "name").clone(),
            vt.get(v, "sku").clone(),
            text(category_id),
            category.map_or(Value::Null, |r| c.categories.get(r, "name").clone()),
            vt.get(v, "price_amount").clone(),
            vt.get(v, "price_currency").clone(),
            vt.get(v, "track_inventory").clone(),
            text(vendor_id),
            vendor.map_or(Value::Null, |r| c.vendors.get(r, "name").clone()),
            info.map_or(Value::Null, |r| c.vendor_info.get(r, "sku").clone()),
            info.map_or(Value::Null, |r| {
                c.vendor_info.get(r, "price_amount").clone()
            }),
            Value::Integer(present.get(id).copied().unwrap_or(0)),
        ]));
    }
    out
}

/// An in-memory source of the export stream holding `rows`: what the full sync of
/// [`EXPORT_TABLE`] reads.
pub fn export_source(rows: Vec<Row>) -> Result<Arc<MemorySource>> {
    let source = Arc::new(MemorySource::new(export_schema()?));
    for row in rows {
        source.upsert(row.values().to_vec());
    }
    Ok(source)
}
