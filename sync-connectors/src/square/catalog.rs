//! Catalog streams: categories, items, item variations, the per-location availability of
//! variations and vendor information, all read from SearchCatalogObjects.
//!
//! Every catalog row carries the object's `updated_at` (the cursor), `version` (the guard)
//! and `is_deleted`: a deleted object arrives as a tombstone (`is_deleted: true`, `updated_at`
//! the deletion time) and is kept as a soft-deleted row. The strategies do not pass source
//! deletes through, so nothing is removed from the target.

use sync_core::{Column, ColumnType, Result, Row, Value};

use super::model::{CatalogObject, LocationOverride};
use super::table::{amount, currency, flag, id_list, int, text, ts, Table};

/// One location of a variation: listed in `present_at_location_ids`,
/// `absent_at_location_ids` or `location_overrides`.
#[derive(Debug, Clone)]
pub(crate) struct Availability {
    location_id: String,
    present: bool,
    overrides: Option<LocationOverride>,
}

/// The catalog tables.
#[derive(Debug)]
pub(crate) struct CatalogTables {
    pub(crate) categories: Table<CatalogObject>,
    pub(crate) items: Table<CatalogObject>,
    pub(crate) variations: Table<CatalogObject>,
    pub(crate) availability: Table<CatalogObject, Availability>,
    pub(crate) vendor_info: Table<CatalogObject>,
}

fn common<C>(name: &str, id: &'static str) -> super::table::TableBuilder<CatalogObject, C> {
    Table::<CatalogObject, C>::builder(name)
        .col(Column::required(id, ColumnType::Text), |o, _| {
            Value::from(o.id.as_str())
        })
        .col(
            Column::required("updated_at", ColumnType::Timestamp),
            |o, _| ts(o.updated_at),
        )
        .col(Column::new("version", ColumnType::Integer), |o, _| {
            int(o.version)
        })
        .col(Column::required("is_deleted", ColumnType::Bool), |o, _| {
            Value::Bool(o.is_deleted.unwrap_or(false))
        })
        .cursor("updated_at")
        .version("version")
}

fn locations<C>(
    b: super::table::TableBuilder<CatalogObject, C>,
) -> super::table::TableBuilder<CatalogObject, C> {
    b.col(
        Column::new("present_at_all_locations", ColumnType::Bool),
        |o, _| flag(o.present_at_all_locations),
    )
    .col(
        Column::new("present_at_location_ids", ColumnType::Json),
        |o, _| id_list(&o.present_at_location_ids),
    )
    .col(
        Column::new("absent_at_location_ids", ColumnType::Json),
        |o, _| id_list(&o.absent_at_location_ids),
    )
}

impl CatalogTables {
    pub(crate) fn new() -> Result<Self> {
        let categories = locations(common("catalog_categories", "id").key(&["id"]))
            .col(Column::new("name", ColumnType::Text), |o, _| {
                text(o.category_data.as_ref().and_then(|d| d.name.as_deref()))
            })
            .col(Column::new("category_type", ColumnType::Text), |o, _| {
                text(
                    o.category_data
                        .as_ref()
                        .and_then(|d| d.category_type.as_deref()),
                )
            })
            .col(
                Column::new("parent_category_id", ColumnType::Text),
                |o, _| {
                    text(
                        o.category_data
                            .as_ref()
                            .and_then(|d| d.parent_category.as_ref())
                            .and_then(|p| p.id.as_deref()),
                    )
                },
            )
            .col(Column::new("is_top_level", ColumnType::Bool), |o, _| {
                flag(o.category_data.as_ref().and_then(|d| d.is_top_level))
            })
            .build()?;
        let items = locations(common("catalog_items", "id").key(&["id"]))
            .col(Column::new("name", ColumnType::Text), |o, _| {
                text(o.item_data.as_ref().and_then(|d| d.name.as_deref()))
            })
            .col(Column::new("description", ColumnType::Text), |o, _| {
                text(o.item_data.as_ref().and_then(|d| d.description.as_deref()))
            })
            .col(Column::new("category_id", ColumnType::Text), |o, _| {
                let d = o.item_data.as_ref();
                text(d.and_then(|d| {
                    d.category_id
                        .as_deref()
                        .or_else(|| d.categories.first().and_then(|c| c.id.as_deref()))
                }))
            })
            .col(Column::new("category_ids", ColumnType::Json), |o, _| {
                let ids: Vec<String> = o
                    .item_data
                    .iter()
                    .flat_map(|d| d.categories.iter().filter_map(|c| c.id.clone()))
                    .collect();
                id_list(&ids)
            })
            .col(
                Column::new("reporting_category_id", ColumnType::Text),
                |o, _| {
                    text(
                        o.item_data
                            .as_ref()
                            .and_then(|d| d.reporting_category.as_ref())
                            .and_then(|c| c.id.as_deref()),
                    )
                },
            )
            .col(Column::new("product_type", ColumnType::Text), |o, _| {
                text(o.item_data.as_ref().and_then(|d| d.product_type.as_deref()))
            })
            .col(Column::new("is_archived", ColumnType::Bool), |o, _| {
                flag(o.item_data.as_ref().and_then(|d| d.is_archived))
            })
            .col(Column::new("is_taxable", ColumnType::Bool), |o, _| {
                flag(o.item_data.as_ref().and_then(|d| d.is_taxable))
            })
            .build()?;
        let variations = locations(common("catalog_item_variations", "id").key(&["id"]))
            .col(Column::new("item_id", ColumnType::Text), |o, _| {
                text(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.item_id.as_deref()),
                )
            })
            .col(Column::new("name", ColumnType::Text), |o, _| {
                text(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.name.as_deref()),
                )
            })
            .col(Column::new("sku", ColumnType::Text), |o, _| {
                text(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.sku.as_deref()),
                )
            })
            .col(Column::new("upc", ColumnType::Text), |o, _| {
                text(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.upc.as_deref()),
                )
            })
            .col(Column::new("ordinal", ColumnType::Integer), |o, _| {
                int(o.item_variation_data.as_ref().and_then(|d| d.ordinal))
            })
            .col(Column::new("pricing_type", ColumnType::Text), |o, _| {
                text(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.pricing_type.as_deref()),
                )
            })
            .col(Column::new("price_amount", ColumnType::Integer), |o, _| {
                amount(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.price_money.as_ref()),
                )
            })
            .col(Column::new("price_currency", ColumnType::Text), |o, _| {
                currency(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.price_money.as_ref()),
                )
            })
            .col(Column::new("track_inventory", ColumnType::Bool), |o, _| {
                flag(
                    o.item_variation_data
                        .as_ref()
                        .and_then(|d| d.track_inventory),
                )
            })
            .col(Column::new("sellable", ColumnType::Bool), |o, _| {
                flag(o.item_variation_data.as_ref().and_then(|d| d.sellable))
            })
            .col(Column::new("stockable", ColumnType::Bool), |o, _| {
                flag(o.item_variation_data.as_ref().and_then(|d| d.stockable))
            })
            .col(
                Column::new("inventory_alert_type", ColumnType::Text),
                |o, _| {
                    text(
                        o.item_variation_data
                            .as_ref()
                            .and_then(|d| d.inventory_alert_type.as_deref()),
                    )
                },
            )
            .col(
                Column::new("inventory_alert_threshold", ColumnType::Integer),
                |o, _| {
                    int(o
                        .item_variation_data
                        .as_ref()
                        .and_then(|d| d.inventory_alert_threshold))
                },
            )
            .build()?;
        let availability =
            Table::<CatalogObject, Availability>::builder("catalog_item_location_availability")
                .col(
                    Column::required("variation_id", ColumnType::Text),
                    |o, _| Value::from(o.id.as_str()),
                )
                .col(Column::required("location_id", ColumnType::Text), |_, a| {
                    Value::from(a.location_id.as_str())
                })
                .col(
                    Column::required("updated_at", ColumnType::Timestamp),
                    |o, _| ts(o.updated_at),
                )
                .col(Column::new("version", ColumnType::Integer), |o, _| {
                    int(o.version)
                })
                .col(Column::required("is_deleted", ColumnType::Bool), |o, _| {
                    Value::Bool(o.is_deleted.unwrap_or(false))
                })
                .col(Column::new("item_id", ColumnType::Text), |o, _| {
                    text(
                        o.item_variation_data
                            .as_ref()
                            .and_then(|d| d.item_id.as_deref()),
                    )
                })
                .col(Column::required("present", ColumnType::Bool), |_, a| {
                    Value::Bool(a.present)
                })
                .col(Column::new("sold_out", ColumnType::Bool), |_, a| {
                    flag(a.overrides.as_ref().and_then(|x| x.sold_out))
                })
                .col(Column::new("track_inventory", ColumnType::Bool), |_, a| {
                    flag(a.overrides.as_ref().and_then(|x| x.track_inventory))
                })
                .col(
                    Column::new("inventory_alert_type", ColumnType::Text),
                    |_, a| {
                        text(
                            a.overrides
                                .as_ref()
                                .and_then(|x| x.inventory_alert_type.as_deref()),
                        )
                    },
                )
                .col(
                    Column::new("inventory_alert_threshold", ColumnType::Integer),
                    |_, a| {
                        int(a
                            .overrides
                            .as_ref()
                            .and_then(|x| x.inventory_alert_threshold))
                    },
                )
                .col(Column::new("pricing_type", ColumnType::Text), |_, a| {
                    text(a.overrides.as_ref().and_then(|x| x.pricing_type.as_deref()))
                })
                .col(Column::new("price_amount", ColumnType::Integer), |_, a| {
                    amount(a.overrides.as_ref().and_then(|x| x.price_money.as_ref()))
                })
                .col(Column::new("price_currency", ColumnType::Text), |_, a| {
                    currency(a.overrides.as_ref().and_then(|x| x.price_money.as_ref()))
                })
                .key(&["variation_id", "location_id"])
                .cursor("updated_at")
                .version("version")
                .build()?;
        let vendor_info = common("catalog_vendor_info", "id")
            .key(&["id"])
            .col(
                Column::new("item_variation_id", ColumnType::Text),
                |o, _| {
                    text(
                        o.item_variation_vendor_info_data
                            .as_ref()
                            .and_then(|d| d.item_variation_id.as_deref()),
                    )
                },
            )
            .col(Column::new("vendor_id", ColumnType::Text), |o, _| {
                text(
                    o.item_variation_vendor_info_data
                        .as_ref()
                        .and_then(|d| d.vendor_id.as_deref()),
                )
            })
            .col(Column::new("sku", ColumnType::Text), |o, _| {
                text(
                    o.item_variation_vendor_info_data
                        .as_ref()
                        .and_then(|d| d.sku.as_deref()),
                )
            })
            .col(Column::new("ordinal", ColumnType::Integer), |o, _| {
                int(o
                    .item_variation_vendor_info_data
                    .as_ref()
                    .and_then(|d| d.ordinal))
            })
            .col(Column::new("price_amount", ColumnType::Integer), |o, _| {
                amount(
                    o.item_variation_vendor_info_data
                        .as_ref()
                        .and_then(|d| d.price_money.as_ref()),
                )
            })
            .col(Column::new("price_currency", ColumnType::Text), |o, _| {
                currency(
                    o.item_variation_vendor_info_data
                        .as_ref()
                        .and_then(|d| d.price_money.as_ref()),
                )
            })
            .build()?;
        Ok(CatalogTables {
            categories,
            items,
            variations,
            availability,
            vendor_info,
        })
    }

    /// The availability rows of a variation: one per location it names. Locations it does
    /// not name follow its `present_at_all_locations`.
    pub(crate) fn availability_rows(&self, variation: &CatalogObject) -> Vec<Row> {
        let all = variation.present_at_all_locations.unwrap_or(false);
        let mut found: Vec<Availability> = Vec::new();
        let mut entry = |location: &str| -> usize {
            match found.iter().position(|a| a.location_id == location) {
                Some(i) => i,
                None => {
                    found.push(Availability {
                        location_id: location.to_owned(),
                        present: all,
                        overrides: None,
                    });
                    found.len() - 1
                }
            }
        };
        let mut marks: Vec<(usize, Option<bool>, Option<LocationOverride>)> = Vec::new();
        for id in &variation.present_at_location_ids {
            marks.push((entry(id), Some(true), None));
        }
        for id in &variation.absent_at_location_ids {
            marks.push((entry(id), Some(false), None));
        }
        let overrides = variation
            .item_variation_data
            .iter()
            .flat_map(|d| d.location_overrides.iter());
        for o in overrides {
            if let Some(id) = o.location_id.as_deref() {
                marks.push((entry(id), None, Some(o.clone())));
            }
        }
        for (i, present, overrides) in marks {
            if let Some(p) = present {
                found[i].present = p;
            }
            if overrides.is_some() {
                found[i].overrides = overrides;
            }
        }
        found
            .iter()
            .map(|a| self.availability.row(variation, a))
            .collect()
    }
}
