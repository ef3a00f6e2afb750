//! Seed 001's `validate_sync_integrity`: every synced table against what Square serves now
//! (counts, keys, a checksum of the values), and the foreign keys between the tables
//! (orders and their line items above all). A failure is an [`IntegrityError`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::Value as J;
use sync_connectors::fakes::square::SquareData;
use sync_core::{Column, ColumnType, Key, Result, Row, Source, StreamSchema, Value};

use super::backup::SquareTargets;
use super::export::{export_rows, CatalogRows};
use super::rows::{same_values, NamedRows};
use super::run::schema_of;
use super::tables::{synced_tables, EXPORT_TABLE};

/// One table compared with the source.
#[derive(Debug, Clone, PartialEq)]
pub struct TableCheck {
    /// The target table.
    pub table: &'static str,
    /// Rows the source has.
    pub expected: usize,
    /// Rows the target has (compared ones).
    pub actual: usize,
    /// Source keys the target lacks.
    pub missing: usize,
    /// Target keys the source lacks.
    pub extra: usize,
    /// Keys in both whose values differ.
    pub differing: usize,
    /// Checksums of the source's and the target's values.
    pub checksums: (u64, u64),
    /// Rows kept aside from the comparison, and why.
    pub note: Option<String>,
}

impl TableCheck {
    /// True when the target equals the source.
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.extra == 0
            && self.differing == 0
            && self.checksums.0 == self.checksums.1
    }
}

/// One foreign-key rule checked on the target.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKeyCheck {
    /// The rule, e.g. `order_line_items.order_id -> orders.id`.
    pub rule: &'static str,
    /// References checked.
    pub checked: usize,
    /// References that do not resolve.
    pub violations: usize,
    /// The first violation.
    pub example: Option<String>,
}

impl ForeignKeyCheck {
    /// True without violations.
    pub fn passed(&self) -> bool {
        self.violations == 0
    }
}

/// The result of an integrity check.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityReport {
    /// Every synced table.
    pub tables: Vec<TableCheck>,
    /// Every foreign-key rule.
    pub foreign_keys: Vec<ForeignKeyCheck>,
}

impl IntegrityReport {
    /// True when every table and rule passed.
    pub fn passed(&self) -> bool {
        self.tables.iter().all(TableCheck::passed)
            && self.foreign_keys.iter().all(ForeignKeyCheck::passed)
    }

    /// `Ok(self)` when it passed, else the [`IntegrityError`] naming what failed.
    pub fn into_result(self) -> std::result::Result<IntegrityReport, IntegrityError> {
        let mut failures: Vec<String> = self
            .tables
            .iter()
            .filter(|t| !t.passed())
            .map(|t| {
                format!(
                    "{}: {} missing, {} extra, {} differing",
                    t.table, t.missing, t.extra, t.differing
                )
            })
            .collect();
        failures.extend(self.foreign_keys.iter().filter(|f| !f.passed()).map(|f| {
            format!(
                "{}: {} of {} references broken",
                f.rule, f.violations, f.checked
            )
        }));
        if failures.is_empty() {
            Ok(self)
        } else {
            Err(IntegrityError {
                failures,
                report: self,
            })
        }
    }
}

/// The target does not equal the source, or a foreign key is broken.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityError {
    /// One line per failed table or rule.
    pub failures: Vec<String>,
    /// The whole report.
    pub report: IntegrityReport,
}

impl fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "integrity check failed: {}", self.failures.join("; "))
    }
}

impl std::error::Error for IntegrityError {}

fn compare(
    table: &'static str,
    expected: &NamedRows,
    actual: &NamedRows,
    note: Option<String>,
) -> TableCheck {
    let (want, got) = (expected.by_key(), actual.by_key());
    TableCheck {
        table,
        expected: want.len(),
        actual: got.len(),
        missing: want.keys().filter(|k| !got.contains_key(*k)).count(),
        extra: got.keys().filter(|k| !want.contains_key(*k)).count(),
        differing: want
            .iter()
            .filter(|(k, w)| got.get(*k).is_some_and(|g| !same_values(w, g)))
            .count(),
        checksums: (expected.checksum(), actual.checksum()),
        note,
    }
}

/// The text ids of `column` over `rows`.
fn ids(rows: &NamedRows, column: &str) -> BTreeSet<String> {
    rows.rows
        .iter()
        .filter_map(|r| rows.text(r, column).map(str::to_owned))
        .collect()
}

/// Every reference of `from.column` (non-NULL) must be in `to`.
fn references(
    rule: &'static str,
    from: &NamedRows,
    column: &str,
    to: &BTreeSet<String>,
) -> ForeignKeyCheck {
    let refs: Vec<&str> = from
        .rows
        .iter()
        .filter_map(|r| from.text(r, column))
        .collect();
    let broken: Vec<&&str> = refs.iter().filter(|r| !to.contains(**r)).collect();
    ForeignKeyCheck {
        rule,
        checked: refs.len(),
        violations: broken.len(),
        example: broken.first().map(|s| s.to_string()),
    }
}

/// Tables read whole, by stream.
type Tables = BTreeMap<&'static str, NamedRows>;

/// The tables read, with an empty table for the names not read.
struct Read {
    tables: Tables,
    empty: NamedRows,
}

impl Read {
    fn new(tables: Tables) -> Result<Self> {
        let schema = StreamSchema::builder("none")
            .with_column(Column::required("id", ColumnType::Text))
            .with_primary_key(["id"])
            .build()?;
        Ok(Read {
            tables,
            empty: NamedRows::new(Arc::new(schema), Vec::new()),
        })
    }

    fn get(&self, stream: &str) -> &NamedRows {
        self.tables.get(stream).unwrap_or(&self.empty)
    }

    fn catalog(&self) -> CatalogRows {
        CatalogRows {
            items: self.get("catalog_items").clone(),
            variations: self.get("catalog_item_variations").clone(),
            categories: self.get("catalog_categories").clone(),
            vendor_info: self.get("catalog_vendor_info").clone(),
            availability: self.get("catalog_item_location_availability").clone(),
            vendors: self.get("vendors").clone(),
        }
    }
}

/// Checks the target against `source` (what Square serves now) and `data` (the fake's
/// records, for the orders' own line item lists).
pub async fn check_integrity(
    targets: &SquareTargets,
    source: &dyn Source,
    data: &SquareData,
) -> Result<IntegrityReport> {
    let stager = targets.stager.as_ref();
    let (mut sources, mut targets_read) = (Tables::new(), Tables::new());
    for table in synced_tables()
        .into_iter()
        .filter(|t| t.stream != EXPORT_TABLE)
    {
        let schema = schema_of(source, table.stream)?;
        sources.insert(
            table.stream,
            NamedRows::of_source(source, table.stream).await?,
        );
        targets_read.insert(table.stream, NamedRows::of_target(stager, schema).await?);
    }
    let (sources, target) = (Read::new(sources)?, Read::new(targets_read)?);
    // A deleted variation arrives as a tombstone without locations: its availability rows
    // stay in the target (soft delete through catalog_item_variations.is_deleted).
    let variations = sources.get("catalog_item_variations");
    let deleted: BTreeSet<&str> = variations
        .rows
        .iter()
        .filter(|r| matches!(variations.get(r, "is_deleted"), Value::Bool(true)))
        .filter_map(|r| variations.text(r, "id"))
        .collect();
    let mut tables = Vec::new();
    for table in synced_tables() {
        if table.stream == EXPORT_TABLE {
            let schema = schema_of(source, EXPORT_TABLE)?;
            let expected = NamedRows::new(schema.clone(), export_rows(&sources.catalog()));
            let actual = NamedRows::of_target(stager, schema).await?;
            tables.push(compare(EXPORT_TABLE, &expected, &actual, None));
            continue;
        }
        let (expected, actual) = (sources.get(table.stream), target.get(table.stream));
        if table.stream != "catalog_item_location_availability" {
            tables.push(compare(table.stream, expected, actual, None));
            continue;
        }
        let live: Vec<Row> = actual
            .rows
            .iter()
            .filter(|r| {
                actual
                    .text(r, "variation_id")
                    .map_or(true, |v| !deleted.contains(v))
            })
            .cloned()
            .collect();
        let kept = actual.rows.len() - live.len();
        let note = (kept > 0).then(|| format!("{kept} rows of deleted variations kept"));
        let live = NamedRows::new(actual.schema.clone(), live);
        tables.push(compare(table.stream, expected, &live, note));
    }
    Ok(IntegrityReport {
        tables,
        foreign_keys: foreign_keys(&target, data),
    })
}

fn foreign_keys(target: &Read, data: &SquareData) -> Vec<ForeignKeyCheck> {
    let orders = target.get("orders");
    let lines = target.get("order_line_items");
    let order_ids = ids(orders, "id");
    let mut out = vec![references(
        "order_line_items.order_id -> orders.id",
        lines,
        "order_id",
        &order_ids,
    )];
    // Every order's line items (as Square has them) are in the target, at the order's version.
    let have: BTreeSet<Key> = lines.keys().into_iter().collect();
    let version_of = |o: &J| o["version"].as_i64();
    let target_versions: BTreeMap<String, Option<i64>> = orders
        .rows
        .iter()
        .filter_map(|r| {
            orders
                .text(r, "id")
                .map(|id| (id.to_owned(), orders.get(r, "version").as_i64()))
        })
        .collect();
    let (mut checked, mut broken, mut example) = (0, 0, None);
    for order in data.orders.iter() {
        let id = order["id"].as_str().unwrap_or_default();
        for line in order["line_items"].as_array().into_iter().flatten() {
            checked += 1;
            let uid = line["uid"].as_str().unwrap_or_default();
            let key = Key(vec![Value::from(id), Value::from(uid)]);
            let current = target_versions.get(id).copied().flatten() == version_of(order);
            if !have.contains(&key) || !current {
                broken += 1;
                example.get_or_insert_with(|| format!("{id}/{uid}"));
            }
        }
    }
    out.push(ForeignKeyCheck {
        rule: "orders.line_items -> order_line_items (every item present)",
        checked,
        violations: broken,
        example,
    });
    let stale = lines
        .rows
        .iter()
        .filter(|r| {
            let order = lines.text(r, "order_id").unwrap_or_default();
            target_versions.get(order).copied().flatten() != lines.get(r, "order_version").as_i64()
        })
        .count();
    out.push(ForeignKeyCheck {
        rule: "order_line_items.order_version = orders.version",
        checked: lines.rows.len(),
        violations: stale,
        example: None,
    });
    out.push(references(
        "order_tenders.order_id -> orders.id",
        target.get("order_tenders"),
        "order_id",
        &order_ids,
    ));
    out.push(references(
        "payments.order_id -> orders.id",
        target.get("payments"),
        "order_id",
        &order_ids,
    ));
    let items = ids(target.get("catalog_items"), "id");
    out.push(references(
        "catalog_item_variations.item_id -> catalog_items.id",
        target.get("catalog_item_variations"),
        "item_id",
        &items,
    ));
    let variations = ids(target.get("catalog_item_variations"), "id");
    out.push(references(
        "inventory_counts.catalog_object_id -> variations.id",
        target.get("inventory_counts"),
        "catalog_object_id",
        &variations,
    ));
    out
}
