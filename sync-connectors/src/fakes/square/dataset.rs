//! A deterministic Square data set of a chosen size: locations, a catalog (categories,
//! items, variations with per-location availability, vendor information), inventory counts,
//! vendors, orders with line items and tenders, and payments, shaped as Square returns them.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value as J};

use super::{rfc3339, Shared};

/// The data a fake serves, one list per endpoint family, each shared copy-on-write
/// ([`Shared`]).
#[derive(Debug, Clone, Default)]
pub struct SquareData {
    /// Catalog objects of every type (tombstones included).
    pub catalog: Shared,
    /// Locations.
    pub locations: Shared,
    /// Inventory counts.
    pub counts: Shared,
    /// Orders with their child lists.
    pub orders: Shared,
    /// Payments.
    pub payments: Shared,
    /// Vendors.
    pub vendors: Shared,
}

impl SquareData {
    /// The catalog objects of type `kind` (`ITEM`, `ITEM_VARIATION`, ...).
    pub fn catalog_of(&self, kind: &str) -> impl Iterator<Item = &J> + '_ {
        let kind = kind.to_owned();
        self.catalog
            .iter()
            .filter(move |o| o["type"] == kind.as_str())
    }
}

/// How many records of each kind [`SquareDataSet::generate`] makes.
#[derive(Debug, Clone, PartialEq)]
pub struct SquareDataSet {
    /// Locations.
    pub locations: usize,
    /// Catalog categories.
    pub categories: usize,
    /// Catalog items.
    pub items: usize,
    /// Item variations, spread over the items (every item has at least one when there are
    /// at least as many variations as items).
    pub variations: usize,
    /// Vendors.
    pub vendors: usize,
    /// `ITEM_VARIATION_VENDOR_INFO` objects (at most one per variation).
    pub vendor_infos: usize,
    /// Orders.
    pub orders: usize,
    /// Line items per order, drawn from `1..=max_line_items`.
    pub max_line_items: usize,
    /// Share of orders paid with a tender (0.0 to 1.0).
    pub tender_share: f64,
    /// Payments (for the first tendered orders).
    pub payments: usize,
}

impl SquareDataSet {
    /// The shape of seed 001's local database: 9 locations, 25 categories, 867 items, 1,002
    /// variations (9,018 inventory counts, one per variation and location), 11 vendors, 989
    /// vendor infos, 49 payments; orders scaled down tenfold to 3,039 (about 15,000 line
    /// items and 250 tenders) so a run takes seconds.
    pub fn seed_001() -> Self {
        SquareDataSet {
            locations: 9,
            categories: 25,
            items: 867,
            variations: 1002,
            vendors: 11,
            vendor_infos: 989,
            orders: 3039,
            max_line_items: 9,
            tender_share: 0.082,
            payments: 49,
        }
    }

    /// A small data set for quick tests: 3 locations, 4 categories, 20 items, 26 variations,
    /// 3 vendors, 60 orders.
    pub fn small() -> Self {
        SquareDataSet {
            locations: 3,
            categories: 4,
            items: 20,
            variations: 26,
            vendors: 3,
            vendor_infos: 20,
            orders: 60,
            max_line_items: 4,
            tender_share: 0.5,
            payments: 10,
        }
    }

    /// The data set drawn from `seed` (the same seed gives the same data), and the fake's
    /// clock: one minute after the newest record.
    pub fn generate(&self, seed: u64) -> (DateTime<Utc>, SquareData) {
        let mut g = Generator {
            rng: fastrand::Rng::with_seed(seed),
            start: DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            newest: DateTime::<Utc>::UNIX_EPOCH,
        };
        let locations = g.locations(self.locations);
        let location_ids: Vec<String> = (1..=self.locations).map(location_id).collect();
        let mut catalog = g.categories(self.categories);
        catalog.extend(g.items(self.items, self.categories));
        let variations = g.variations(self.variations, self.items, &location_ids);
        let counts = g.counts(&variations, &location_ids);
        catalog.extend(g.vendor_infos(self.vendor_infos, &variations, self.vendors));
        let vendors = g.vendors(self.vendors);
        let (orders, payments) = g.orders(self, &variations, &location_ids);
        catalog.extend(variations);
        let now = g.newest + Duration::minutes(1);
        let data = SquareData {
            catalog: catalog.into(),
            locations: locations.into(),
            counts: counts.into(),
            orders: orders.into(),
            payments: payments.into(),
            vendors: vendors.into(),
        };
        (now, data)
    }
}

/// The id of location `n` (1-based).
fn location_id(n: usize) -> String {
    format!("LOC-{n:02}")
}

/// `Money` in US cents.
pub(crate) fn money(amount: i64) -> J {
    json!({"amount": amount, "currency": "USD"})
}

/// Square catalog versions grow with the update time; this one is its milliseconds.
pub(crate) fn version_at(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

const WORDS: [&str; 16] = [
    "Alpine", "Basil", "Cedar", "Dune", "Ember", "Fjord", "Garnet", "Harbor", "Indigo", "Juniper",
    "Kelp", "Lumen", "Maple", "Nectar", "Onyx", "Pebble",
];
const GOODS: [&str; 12] = [
    "Candle", "Mug", "Tote", "Soap", "Notebook", "Scarf", "Tea", "Honey", "Card", "Poster",
    "Blanket", "Planter",
];
const SIZES: [&str; 4] = ["Regular", "Large", "Small", "Gift"];

struct Generator {
    rng: fastrand::Rng,
    start: DateTime<Utc>,
    newest: DateTime<Utc>,
}

impl Generator {
    /// A time within the 90 days after the start, to the millisecond.
    fn time(&mut self) -> DateTime<Utc> {
        let t = self.start + Duration::milliseconds(self.rng.i64(0..90 * 86_400_000));
        self.newest = self.newest.max(t);
        t
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.rng.usize(..WORDS.len())]
    }

    fn catalog_object(&mut self, kind: &str, id: String) -> J {
        let at = self.time();
        json!({
            "type": kind, "id": id, "updated_at": rfc3339(at), "version": version_at(at),
            "is_deleted": false, "present_at_all_locations": true,
        })
    }

    fn locations(&mut self, n: usize) -> Vec<J> {
        let mut out: Vec<J> = (1..=n)
            .map(|i| {
                json!({
                    "id": location_id(i), "name": format!("{} Street Shop", WORDS[i % WORDS.len()]),
                    "status": if i == n && n > 2 { "INACTIVE" } else { "ACTIVE" },
                    "type": "PHYSICAL", "business_name": "Seed Goods Co.",
                    "timezone": "America/Los_Angeles", "currency": "USD", "country": "US",
                    "merchant_id": "MERCHANT-1", "created_at": rfc3339(self.start - Duration::days(400 - i as i64)),
                    "address": {"address_line_1": format!("{} Main St", 100 + i), "locality": "Portland",
                                "administrative_district_level_1": "OR", "postal_code": "97201", "country": "US"},
                })
            })
            .collect();
        // ListLocations lists them alphabetically by name.
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        out
    }

    fn categories(&mut self, n: usize) -> Vec<J> {
        (1..=n)
            .map(|i| {
                let mut o = self.catalog_object("CATEGORY", format!("CAT-{i:03}"));
                let parent = (i > 5).then(|| format!("CAT-{:03}", 1 + i % 5));
                o["category_data"] = json!({
                    "name": format!("{} {}", self.word(), GOODS[i % GOODS.len()]),
                    "category_type": "REGULAR_CATEGORY", "is_top_level": parent.is_none(),
                });
                if let Some(p) = parent {
                    o["category_data"]["parent_category"] = json!({"id": p, "ordinal": 0});
                }
                o
            })
            .collect()
    }

    fn items(&mut self, n: usize, categories: usize) -> Vec<J> {
        (1..=n)
            .map(|i| {
                let mut o = self.catalog_object("ITEM", format!("ITEM-{i:04}"));
                let category = format!("CAT-{:03}", 1 + self.rng.usize(..categories.max(1)));
                o["item_data"] = json!({
                    "name": format!("{} {} #{i}", self.word(), GOODS[self.rng.usize(..GOODS.len())]),
                    "description": format!("Hand-picked item number {i}"),
                    "categories": [{"id": category, "ordinal": 0}],
                    "reporting_category": {"id": category},
                    "product_type": "REGULAR", "is_taxable": self.rng.u8(..10) > 1, "is_archived": false,
                });
                o
            })
            .collect()
    }

    /// Variation `v` belongs to item `v % items`; each is present at a subset of locations.
    fn variations(&mut self, n: usize, items: usize, locations: &[String]) -> Vec<J> {
        (0..n)
            .map(|v| {
                let item = 1 + v % items.max(1);
                let mut o = self.catalog_object("ITEM_VARIATION", format!("VAR-{:05}", v + 1));
                let present: Vec<&String> = locations
                    .iter()
                    .filter(|_| self.rng.u8(..100) < 84)
                    .collect();
                o["present_at_all_locations"] = json!(false);
                o["present_at_location_ids"] = json!(present);
                let price = 100 * self.rng.i64(2..60) + [0, 50, 99][self.rng.usize(..3)];
                let mut data = json!({
                    "item_id": format!("ITEM-{item:04}"), "name": SIZES[v / items.max(1) % SIZES.len()],
                    "sku": format!("SKU-{:05}", v + 1), "ordinal": 1 + v / items.max(1),
                    "pricing_type": "FIXED_PRICING", "price_money": money(price),
                    "track_inventory": true, "sellable": true, "stockable": true,
                    "inventory_alert_type": "LOW_QUANTITY", "inventory_alert_threshold": 3,
                });
                if let Some(first) = present.first().filter(|_| self.rng.u8(..10) == 0) {
                    data["location_overrides"] = json!([{
                        "location_id": first, "price_money": money(price + 100),
                        "pricing_type": "FIXED_PRICING", "track_inventory": true, "sold_out": false,
                    }]);
                }
                o["item_variation_data"] = data;
                o
            })
            .collect()
    }

    /// One `IN_STOCK` count per variation and location.
    fn counts(&mut self, variations: &[J], locations: &[String]) -> Vec<J> {
        let mut out = Vec::with_capacity(variations.len() * locations.len());
        for v in variations {
            for l in locations {
                let at = self.time();
                out.push(json!({
                    "catalog_object_id": v["id"], "catalog_object_type": "ITEM_VARIATION",
                    "state": "IN_STOCK", "location_id": l,
                    "quantity": self.rng.u32(0..80).to_string(), "calculated_at": rfc3339(at),
                }));
            }
        }
        out
    }

    fn vendor_infos(&mut self, n: usize, variations: &[J], vendors: usize) -> Vec<J> {
        variations
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, v)| {
                let mut o =
                    self.catalog_object("ITEM_VARIATION_VENDOR_INFO", format!("VI-{:05}", i + 1));
                let price = v["item_variation_data"]["price_money"]["amount"]
                    .as_i64()
                    .unwrap_or(0)
                    / 2;
                o["item_variation_vendor_info_data"] = json!({
                    "ordinal": 1, "sku": format!("VSKU-{:05}", i + 1), "price_money": money(price),
                    "item_variation_id": v["id"],
                    "vendor_id": format!("VEN-{:02}", 1 + i % vendors.max(1)),
                });
                o
            })
            .collect()
    }

    fn vendors(&mut self, n: usize) -> Vec<J> {
        (1..=n)
            .map(|i| {
                let at = self.time();
                let created = self.start - Duration::days(200 - i as i64);
                json!({
                    "id": format!("VEN-{i:02}"), "created_at": rfc3339(created), "updated_at": rfc3339(at),
                    "name": format!("{} Supply {i}", self.word()), "status": "ACTIVE", "version": 1,
                    "account_number": format!("ACCT-{:04}", 1000 + i), "note": "net 30",
                    "address": {"locality": "Seattle", "country": "US"},
                    "contacts": [{"name": "Orders desk", "email_address": format!("orders{i}@vendor.example")}],
                })
            })
            .collect()
    }

    /// Orders with line items of live variations; a share of them paid by a tender, and
    /// the first tendered ones with a payment.
    fn orders(
        &mut self,
        shape: &SquareDataSet,
        variations: &[J],
        locations: &[String],
    ) -> (Vec<J>, Vec<J>) {
        let mut orders = Vec::with_capacity(shape.orders);
        let mut payments = Vec::new();
        for i in 1..=shape.orders {
            let created = self.time();
            let location = &locations[self.rng.usize(..locations.len().max(1))];
            let lines = 1 + self.rng.usize(..shape.max_line_items.max(1));
            let picked: Vec<&J> = (0..lines)
                .filter_map(|_| variations.get(self.rng.usize(..variations.len().max(1))))
                .collect();
            let id = format!("ORD-{i:06}");
            let mut order = new_order(&id, location, created, &picked, |_| self.rng.i64(1..4));
            let updated = created + Duration::milliseconds(self.rng.i64(0..3_600_000));
            self.newest = self.newest.max(updated);
            order["updated_at"] = json!(rfc3339(updated));
            order["version"] = json!(1 + self.rng.i64(0..3));
            if self.rng.f64() < shape.tender_share {
                let payment = (payments.len() < shape.payments)
                    .then(|| format!("PAY-{:06}", payments.len() + 1));
                add_tender(&mut order, payment.as_deref(), created);
                if payment.is_some() {
                    payments.push(payment_of(&order, updated));
                }
            }
            orders.push(order);
        }
        (orders, payments)
    }
}

/// An open order at `location` with one line item per variation in `picked`, quantities
/// from `quantity`, created and updated at `at`, version 1.
pub(crate) fn new_order(
    id: &str,
    location: &str,
    at: DateTime<Utc>,
    picked: &[&J],
    mut quantity: impl FnMut(usize) -> i64,
) -> J {
    let mut order = json!({
        "id": id, "location_id": location, "reference_id": format!("REF-{id}"),
        "source": {"name": "Point of Sale"}, "state": "COMPLETED", "version": 1,
        "created_at": rfc3339(at), "updated_at": rfc3339(at), "closed_at": rfc3339(at),
        "line_items": [],
    });
    for (n, v) in picked.iter().enumerate() {
        let q = quantity(n);
        push_line_item(&mut order, v, q);
    }
    order
}

/// Appends a line item of variation `v` × `quantity` and recomputes the order's totals.
pub(crate) fn push_line_item(order: &mut J, v: &J, quantity: i64) {
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    let n = order["line_items"].as_array().map_or(0, Vec::len) + 1;
    let price = v["item_variation_data"]["price_money"]["amount"]
        .as_i64()
        .unwrap_or(0);
    let gross = price * quantity;
    let tax = gross * 8 / 100;
    let line = json!({
        "uid": format!("{id}-L{n}"), "name": v["item_variation_data"]["item_id"],
        "variation_name": v["item_variation_data"]["name"], "quantity": quantity.to_string(),
        "catalog_object_id": v["id"], "catalog_version": v["version"], "item_type": "ITEM",
        "base_price_money": money(price), "gross_sales_money": money(gross),
        "total_tax_money": money(tax), "total_discount_money": money(0), "total_money": money(gross + tax),
    });
    if let Some(lines) = order["line_items"].as_array_mut() {
        lines.push(line);
    }
    let sum = |field: &str| -> i64 {
        order["line_items"].as_array().map_or(0, |l| {
            l.iter().filter_map(|x| x[field]["amount"].as_i64()).sum()
        })
    };
    let (total, tax) = (sum("total_money"), sum("total_tax_money"));
    order["total_money"] = money(total);
    order["total_tax_money"] = money(tax);
    order["total_discount_money"] = money(0);
    order["total_tip_money"] = money(0);
    order["total_service_charge_money"] = money(0);
}

/// Pays `order` with one card tender (carrying `payment` as its payment id).
pub(crate) fn add_tender(order: &mut J, payment: Option<&str>, at: DateTime<Utc>) {
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    let n = order["tenders"].as_array().map_or(0, Vec::len) + 1;
    let mut tender = json!({
        "id": format!("TND-{id}-{n}"), "location_id": order["location_id"], "transaction_id": id,
        "created_at": rfc3339(at), "type": "CARD", "amount_money": order["total_money"],
        "tip_money": money(0), "processing_fee_money": money(order["total_money"]["amount"].as_i64().unwrap_or(0) * 3 / 100),
    });
    if let Some(p) = payment {
        tender["payment_id"] = json!(p);
    }
    match order["tenders"].as_array_mut() {
        Some(t) => t.push(tender),
        None => order["tenders"] = json!([tender]),
    }
}

/// The completed card payment of `order`'s last tender, updated at `at`.
pub(crate) fn payment_of(order: &J, at: DateTime<Utc>) -> J {
    let tender = order["tenders"]
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .unwrap_or(J::Null);
    let amount = order["total_money"]["amount"].as_i64().unwrap_or(0);
    json!({
        "id": tender["payment_id"], "created_at": tender["created_at"], "updated_at": rfc3339(at),
        "amount_money": money(amount), "tip_money": money(0), "total_money": money(amount),
        "app_fee_money": money(0), "status": "COMPLETED", "source_type": "CARD",
        "location_id": order["location_id"], "order_id": order["id"],
        "receipt_number": tender["payment_id"].as_str().map(|p| p.replace("PAY-", "R")),
        "version_token": format!("vt-{}", at.timestamp_millis()),
        "card_details": {"status": "CAPTURED", "card": {"card_brand": "VISA", "last_4": "1111"}},
    })
}
