//! A day of changes at the fake Square account, picked from its data (so any data set and
//! seed works): new prices, renamed items, a deleted item with its variations (tombstones),
//! a deleted category, recounted inventory, new orders, line items added to orders, orders
//! paid, a renamed vendor. Then the clock moves on past the payments' settle lag.

use chrono::Duration;
use serde_json::Value as J;
use sync_connectors::fakes::square::FakeSquare;

/// What [`apply_mutations`] changed, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutationReport {
    /// Variations with a new price (new `version`).
    pub prices_changed: usize,
    /// Items renamed (new `version`).
    pub items_renamed: usize,
    /// Catalog objects deleted (tombstones): an item, its variations, a category.
    pub objects_deleted: usize,
    /// Inventory counts recounted.
    pub counts_changed: usize,
    /// Orders added.
    pub orders_added: usize,
    /// Line items added to new and existing orders.
    pub line_items_added: usize,
    /// Orders paid (a tender and a payment each).
    pub orders_paid: usize,
    /// Vendors renamed.
    pub vendors_renamed: usize,
}

impl MutationReport {
    /// Every change, as (what, how many).
    pub fn lines(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("variation prices changed", self.prices_changed),
            ("items renamed", self.items_renamed),
            ("catalog objects deleted", self.objects_deleted),
            ("inventory counts recounted", self.counts_changed),
            ("orders added", self.orders_added),
            ("line items added", self.line_items_added),
            ("orders paid", self.orders_paid),
            ("vendors renamed", self.vendors_renamed),
        ]
    }
}

fn id(o: &J) -> String {
    o["id"].as_str().unwrap_or_default().to_owned()
}

fn live(o: &&J) -> bool {
    o["is_deleted"] != true
}

/// Applies the changes to `fake` (the `round`-th time: new ids do not collide).
pub fn apply_mutations(fake: &FakeSquare, round: usize) -> MutationReport {
    // What the changes need, read from a snapshot that is dropped before the first change:
    // the fake's lists are copy-on-write, and a live snapshot would make it copy them.
    let data = fake.data();
    let mut report = MutationReport::default();
    let variations: Vec<J> = data
        .catalog_of("ITEM_VARIATION")
        .filter(live)
        .cloned()
        .collect();
    let items: Vec<String> = data.catalog_of("ITEM").filter(live).map(id).collect();
    let locations: Vec<String> = data.locations.iter().map(id).collect();
    let category = data.catalog_of("CATEGORY").filter(live).last().map(id);
    let first_orders: Vec<String> = data.orders.iter().take(8).map(id).collect();
    let vendor = data.vendors.first().map(id);
    drop(data);
    for v in variations.iter().take(5) {
        let price = v["item_variation_data"]["price_money"]["amount"]
            .as_i64()
            .unwrap_or(0);
        report.prices_changed += usize::from(fake.change_price(&id(v), price + 125).is_some());
    }
    for item in items.iter().skip(1).take(2) {
        let renamed = fake
            .rename_catalog_object(item, &format!("Renamed {item}"))
            .is_some();
        report.items_renamed += usize::from(renamed);
    }
    if let Some(item) = items.last() {
        report.objects_deleted += fake.delete_catalog_object(item).len();
    }
    if let Some(category) = category {
        report.objects_deleted += fake.delete_catalog_object(&category).len();
    }
    for (i, v) in variations.iter().skip(10).take(12).enumerate() {
        if let Some(location) = locations.get(i % locations.len().max(1)) {
            fake.set_inventory(&id(v), location, 40 + i as u32);
            report.counts_changed += 1;
        }
    }
    let live_now: Vec<String> = fake
        .data()
        .catalog_of("ITEM_VARIATION")
        .filter(live)
        .map(id)
        .collect();
    for n in 0..20 {
        let picked: Vec<&str> = (0..3)
            .filter_map(|k| live_now.get((n * 7 + k * 13) % live_now.len().max(1)))
            .map(String::as_str)
            .collect();
        let location = &locations[n % locations.len().max(1)];
        let order_id = format!("ORD-R{round}-{:03}", n + 1);
        report.line_items_added += fake.add_order(&order_id, location, &picked);
        report.orders_added += 1;
    }
    for (n, order) in first_orders.iter().take(5).enumerate() {
        if let Some(v) = live_now.get(n * 11 % live_now.len().max(1)) {
            report.line_items_added += usize::from(fake.add_line_item(order, v, 2));
        }
    }
    for (n, order) in first_orders.iter().skip(5).enumerate() {
        let payment = format!("PAY-R{round}-{:03}", n + 1);
        report.orders_paid += usize::from(fake.pay_order(order, &payment));
    }
    if let Some(vendor) = vendor {
        report.vendors_renamed += usize::from(fake.rename_vendor(&vendor, "Renamed supply"));
    }
    // Time passes: the changes are older than the payments' settle lag.
    fake.advance_clock(Duration::minutes(5));
    report
}
