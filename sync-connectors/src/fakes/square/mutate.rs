//! Changes to the fake's data the way Square makes them: every change first moves the fake's
//! clock forward by one second and is stamped with the new time (`updated_at`,
//! `calculated_at`), catalog objects get a larger `version`, orders a `version + 1`, and a
//! deleted catalog object becomes a tombstone (`is_deleted: true`, `updated_at` the deletion
//! time, no data).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value as J};

use super::dataset::{add_tender, payment_of, push_line_item, version_at};
use super::{parse_time, put, rfc3339, FakeSquare, SquareState};

impl SquareState {
    /// Moves the clock one second on and returns the new time.
    fn tick(&mut self) -> DateTime<Utc> {
        self.now += Duration::seconds(1);
        self.now
    }

    /// The catalog object `id`, mutable.
    fn catalog_object(&mut self, id: &str) -> Option<&mut J> {
        self.catalog.iter_mut().find(|o| o["id"] == id)
    }
}

/// Stamps a catalog object changed at `at`: `updated_at` and a version above the old one.
fn stamp(object: &mut J, at: DateTime<Utc>) -> i64 {
    let version = version_at(at).max(object["version"].as_i64().unwrap_or(0) + 1);
    object["updated_at"] = json!(rfc3339(at));
    object["version"] = json!(version);
    version
}

impl FakeSquare {
    /// Moves the fake's clock forward by `by`.
    pub fn advance_clock(&self, by: Duration) {
        self.with(|s| s.now += by);
    }

    /// The fake's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.with(|s| s.now)
    }

    /// Sets the price of the live item variation `id`; returns its new version, `None` when
    /// there is no such live variation.
    pub fn change_price(&self, id: &str, amount: i64) -> Option<i64> {
        self.with(|s| {
            let at = s.tick();
            let v = s
                .catalog_object(id)
                .filter(|o| o["type"] == "ITEM_VARIATION" && o["is_deleted"] != true)?;
            v["item_variation_data"]["price_money"] = super::dataset::money(amount);
            Some(stamp(v, at))
        })
    }

    /// Renames the live catalog object `id` (its `*_data.name`); returns its new version.
    pub fn rename_catalog_object(&self, id: &str, name: &str) -> Option<i64> {
        self.with(|s| {
            let at = s.tick();
            let o = s.catalog_object(id).filter(|o| o["is_deleted"] != true)?;
            let field = match o["type"].as_str() {
                Some("ITEM") => "item_data",
                Some("CATEGORY") => "category_data",
                Some("ITEM_VARIATION") => "item_variation_data",
                _ => return None,
            };
            o[field]["name"] = json!(name);
            Some(stamp(o, at))
        })
    }

    /// Deletes the catalog object `id`: it becomes a tombstone (`is_deleted: true`, the
    /// deletion time as `updated_at`, a new version, no data). Deleting an `ITEM` deletes its
    /// variations too, as Square does. Returns the ids now deleted (empty when `id` is not a
    /// live object).
    pub fn delete_catalog_object(&self, id: &str) -> Vec<String> {
        self.with(|s| {
            let at = s.tick();
            let Some(kind) = s
                .catalog_object(id)
                .filter(|o| o["is_deleted"] != true)
                .and_then(|o| o["type"].as_str().map(str::to_owned))
            else {
                return Vec::new();
            };
            let mut ids = vec![id.to_owned()];
            if kind == "ITEM" {
                ids.extend(
                    s.catalog
                        .iter()
                        .filter(|o| o["item_variation_data"]["item_id"] == id)
                        .filter(|o| o["is_deleted"] != true)
                        .filter_map(|o| o["id"].as_str().map(str::to_owned)),
                );
            }
            for victim in &ids {
                if let Some(o) = s.catalog_object(victim) {
                    let version = o["version"].as_i64().unwrap_or(0);
                    let mut tomb = json!({"type": o["type"], "id": victim, "version": version, "is_deleted": true});
                    stamp(&mut tomb, at);
                    *o = tomb;
                }
            }
            ids
        })
    }

    /// Sets the `IN_STOCK` quantity of variation `variation` at `location` (a new count when
    /// there was none), calculated now.
    pub fn set_inventory(&self, variation: &str, location: &str, quantity: u32) {
        self.with(|s| {
            let at = rfc3339(s.tick());
            let count = json!({
                "catalog_object_id": variation, "catalog_object_type": "ITEM_VARIATION",
                "state": "IN_STOCK", "location_id": location,
                "quantity": quantity.to_string(), "calculated_at": at,
            });
            let same = |c: &J| {
                c["catalog_object_id"] == variation
                    && c["location_id"] == location
                    && c["state"] == "IN_STOCK"
            };
            match s.counts.iter().position(same) {
                Some(i) => s.counts[i] = count,
                None => s.counts.push(count),
            }
        });
    }

    /// Adds order `id` at `location` with one line item per variation in `variations`
    /// (quantity 1, the variations' current prices), created now, version 1. Unknown or
    /// deleted variations are skipped. Returns the number of line items.
    pub fn add_order(&self, id: &str, location: &str, variations: &[&str]) -> usize {
        self.with(|s| {
            let at = s.tick();
            let picked: Vec<J> = variations
                .iter()
                .filter_map(|v| {
                    s.catalog
                        .iter()
                        .find(|o| o["id"] == *v && o["is_deleted"] != true)
                        .cloned()
                })
                .collect();
            let refs: Vec<&J> = picked.iter().collect();
            let order = super::dataset::new_order(id, location, at, &refs, |_| 1);
            put(&mut s.orders, order);
            refs.len()
        })
    }

    /// Adds a line item of `variation` × `quantity` to order `id` (version + 1, updated now);
    /// false when the order or the live variation is missing.
    pub fn add_line_item(&self, id: &str, variation: &str, quantity: i64) -> bool {
        self.with(|s| {
            let at = s.tick();
            let Some(v) = s
                .catalog
                .iter()
                .find(|o| o["id"] == variation && o["is_deleted"] != true)
                .cloned()
            else {
                return false;
            };
            let Some(order) = s.orders.iter_mut().find(|o| o["id"] == id) else {
                return false;
            };
            push_line_item(order, &v, quantity);
            bump_order(order, at);
            true
        })
    }

    /// Pays order `id` with a card tender and records the payment `payment_id` (completed,
    /// updated now); the order's version goes up. False when there is no such order.
    pub fn pay_order(&self, id: &str, payment_id: &str) -> bool {
        self.with(|s| {
            let at = s.tick();
            let Some(order) = s.orders.iter_mut().find(|o| o["id"] == id) else {
                return false;
            };
            add_tender(order, Some(payment_id), at);
            bump_order(order, at);
            let payment = payment_of(order, at);
            put(&mut s.payments, payment);
            true
        })
    }

    /// Renames vendor `id` (version + 1, updated now); false when there is no such vendor.
    pub fn rename_vendor(&self, id: &str, name: &str) -> bool {
        self.with(|s| {
            let at = s.tick();
            let Some(v) = s.vendors.iter_mut().find(|v| v["id"] == id) else {
                return false;
            };
            v["name"] = json!(name);
            v["version"] = json!(v["version"].as_i64().unwrap_or(0) + 1);
            v["updated_at"] = json!(rfc3339(at));
            true
        })
    }
}

/// `version + 1` and `updated_at = at` on an order.
fn bump_order(order: &mut J, at: DateTime<Utc>) {
    order["version"] = json!(order["version"].as_i64().unwrap_or(0) + 1);
    order["updated_at"] = json!(rfc3339(at));
    if parse_time(order["closed_at"].as_str().unwrap_or_default()).is_none() {
        order["closed_at"] = json!(rfc3339(at));
    }
}
