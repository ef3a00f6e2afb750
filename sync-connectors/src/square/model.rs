//! Square's response shapes, as far as the connector reads them (spec `api.json`, release
//! 2025-08-20). Unknown fields are ignored; a missing required field, a wrong type or a
//! timestamp that is not RFC 3339 fails the decode of the page.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use sync_core::{ColumnType, Value};

/// `null` and absent both mean "none" for a list.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A decimal string (`"79"`, `"1.50000"`) as an exact decimal cell; absent or `null` is NULL.
fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let decimal = ColumnType::Decimal {
        precision: None,
        scale: None,
    };
    match Option::<String>::deserialize(d)? {
        None => Ok(Value::Null),
        Some(text) => Value::parse(decimal, &text)
            .map_err(|_| serde::de::Error::custom(format_args!("invalid decimal string {text:?}"))),
    }
}

/// One entry of an `errors` array.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct SquareError {
    pub(crate) category: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) field: Option<String>,
}

/// Any response's `errors` (every response schema has the field).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorsOnly {
    #[serde(default, deserialize_with = "list")]
    pub(crate) errors: Vec<SquareError>,
}

/// `Money`: an amount in the smallest unit of the currency.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Money {
    pub(crate) amount: Option<i64>,
    pub(crate) currency: Option<String>,
}

/// A reference to another object by id.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IdRef {
    pub(crate) id: Option<String>,
}

// ---- Catalog ---------------------------------------------------------------------------

/// `SearchCatalogObjectsResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchCatalogResponse {
    #[serde(default, deserialize_with = "list")]
    pub(crate) objects: Vec<CatalogObject>,
    pub(crate) cursor: Option<String>,
    pub(crate) latest_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) errors: Vec<SquareError>,
}

/// `CatalogObject`, with the data of the types the connector reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CatalogObject {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) updated_at: Option<DateTime<Utc>>,
    pub(crate) version: Option<i64>,
    pub(crate) is_deleted: Option<bool>,
    pub(crate) present_at_all_locations: Option<bool>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) present_at_location_ids: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) absent_at_location_ids: Vec<String>,
    pub(crate) item_data: Option<ItemData>,
    pub(crate) category_data: Option<CategoryData>,
    pub(crate) item_variation_data: Option<VariationData>,
    pub(crate) item_variation_vendor_info_data: Option<VendorInfoData>,
}

/// `CatalogItem`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ItemData {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) category_id: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) categories: Vec<IdRef>,
    pub(crate) reporting_category: Option<IdRef>,
    pub(crate) product_type: Option<String>,
    pub(crate) is_archived: Option<bool>,
    pub(crate) is_taxable: Option<bool>,
}

/// `CatalogCategory`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CategoryData {
    pub(crate) name: Option<String>,
    pub(crate) category_type: Option<String>,
    pub(crate) parent_category: Option<IdRef>,
    pub(crate) is_top_level: Option<bool>,
}

/// `CatalogItemVariation`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VariationData {
    pub(crate) item_id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) sku: Option<String>,
    pub(crate) upc: Option<String>,
    pub(crate) ordinal: Option<i64>,
    pub(crate) pricing_type: Option<String>,
    pub(crate) price_money: Option<Money>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) location_overrides: Vec<LocationOverride>,
    pub(crate) track_inventory: Option<bool>,
    pub(crate) inventory_alert_type: Option<String>,
    pub(crate) inventory_alert_threshold: Option<i64>,
    pub(crate) sellable: Option<bool>,
    pub(crate) stockable: Option<bool>,
}

/// `ItemVariationLocationOverrides`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LocationOverride {
    pub(crate) location_id: Option<String>,
    pub(crate) price_money: Option<Money>,
    pub(crate) pricing_type: Option<String>,
    pub(crate) track_inventory: Option<bool>,
    pub(crate) inventory_alert_type: Option<String>,
    pub(crate) inventory_alert_threshold: Option<i64>,
    pub(crate) sold_out: Option<bool>,
}

/// `CatalogItemVariationVendorInfo` (objects of type `ITEM_VARIATION_VENDOR_INFO`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VendorInfoData {
    pub(crate) ordinal: Option<i64>,
    pub(crate) sku: Option<String>,
    pub(crate) price_money: Option<Money>,
    pub(crate) item_variation_id: Option<String>,
    pub(crate) vendor_id: Option<String>,
}

// ---- Locations, inventory, payments, vendors --------------------------------------------

/// `ListLocationsResponse`: `locations` or `errors`, never both.
#[derive(Debug, Deserialize)]
pub(crate) struct ListLocationsResponse {
    #[serde(default, deserialize_with = "list")]
    pub(crate) locations: Vec<Location>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) errors: Vec<SquareError>,
}

/// `Location`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Location {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) status: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) business_name: Option<String>,
    pub(crate) timezone: Option<String>,
    pub(crate) currency: Option<String>,
    pub(crate) country: Option<String>,
    pub(crate) merchant_id: Option<String>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) address: Option<serde_json::Value>,
}

/// `BatchRetrieveInventoryCountsResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct InventoryCountsResponse {
    #[serde(default, deserialize_with = "list")]
    pub(crate) counts: Vec<InventoryCount>,
    pub(crate) cursor: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) errors: Vec<SquareError>,
}

/// `InventoryCount`: the latest state of one (object, location, state).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InventoryCount {
    pub(crate) catalog_object_id: String,
    pub(crate) catalog_object_type: Option<String>,
    pub(crate) state: String,
    pub(crate) location_id: String,
    #[serde(default = "null", deserialize_with = "decimal")]
    pub(crate) quantity: Value,
    pub(crate) calculated_at: Option<DateTime<Utc>>,
    pub(crate) is_estimated: Option<bool>,
}

fn null() -> Value {
    Value::Null
}

/// `ListPaymentsResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPaymentsResponse {
    #[serde(default, deserialize_with = "list")]
    pub(crate) payments: Vec<Payment>,
    pub(crate) cursor: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) errors: Vec<SquareError>,
}

/// `Payment`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Payment {
    pub(crate) id: String,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) updated_at: Option<DateTime<Utc>>,
    pub(crate) amount_money: Option<Money>,
    pub(crate) tip_money: Option<Money>,
    pub(crate) total_money: Option<Money>,
    pub(crate) app_fee_money: Option<Money>,
    pub(crate) refunded_money: Option<Money>,
    pub(crate) status: Option<String>,
    pub(crate) source_type: Option<String>,
    pub(crate) location_id: Option<String>,
    pub(crate) order_id: Option<String>,
    pub(crate) customer_id: Option<String>,
    pub(crate) reference_id: Option<String>,
    pub(crate) receipt_number: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) version_token: Option<String>,
    pub(crate) card_details: Option<serde_json::Value>,
}

/// `SearchVendorsResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchVendorsResponse {
    #[serde(default, deserialize_with = "list")]
    pub(crate) vendors: Vec<Vendor>,
    pub(crate) cursor: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) errors: Vec<SquareError>,
}

/// `Vendor`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Vendor {
    pub(crate) id: String,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) updated_at: Option<DateTime<Utc>>,
    pub(crate) name: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) version: Option<i64>,
    pub(crate) account_number: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) address: Option<serde_json::Value>,
    pub(crate) contacts: Option<serde_json::Value>,
}

// ---- Orders ------------------------------------------------------------------------------

/// `SearchOrdersResponse` (with `return_entries: false`).
#[derive(Debug, Deserialize)]
pub(crate) struct SearchOrdersResponse {
    #[serde(default, deserialize_with = "list")]
    pub(crate) orders: Vec<Order>,
    pub(crate) cursor: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) errors: Vec<SquareError>,
}

/// `Order` with the child lists the connector turns into tables.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: String,
    pub(crate) location_id: Option<String>,
    pub(crate) reference_id: Option<String>,
    pub(crate) source: Option<OrderSource>,
    pub(crate) customer_id: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) version: Option<i64>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) updated_at: Option<DateTime<Utc>>,
    pub(crate) closed_at: Option<DateTime<Utc>>,
    pub(crate) ticket_name: Option<String>,
    pub(crate) total_money: Option<Money>,
    pub(crate) total_tax_money: Option<Money>,
    pub(crate) total_discount_money: Option<Money>,
    pub(crate) total_tip_money: Option<Money>,
    pub(crate) total_service_charge_money: Option<Money>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) line_items: Vec<LineItem>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) fulfillments: Vec<Fulfillment>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) refunds: Vec<Refund>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) returns: Vec<OrderReturn>,
    #[serde(default, deserialize_with = "list")]
    pub(crate) tenders: Vec<Tender>,
}

/// `OrderSource`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OrderSource {
    pub(crate) name: Option<String>,
}

/// `OrderLineItem`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LineItem {
    pub(crate) uid: Option<String>,
    pub(crate) name: Option<String>,
    #[serde(default = "null", deserialize_with = "decimal")]
    pub(crate) quantity: Value,
    pub(crate) catalog_object_id: Option<String>,
    pub(crate) catalog_version: Option<i64>,
    pub(crate) variation_name: Option<String>,
    pub(crate) item_type: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) base_price_money: Option<Money>,
    pub(crate) gross_sales_money: Option<Money>,
    pub(crate) total_tax_money: Option<Money>,
    pub(crate) total_discount_money: Option<Money>,
    pub(crate) total_money: Option<Money>,
}

/// `Fulfillment`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Fulfillment {
    pub(crate) uid: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) line_item_application: Option<String>,
    pub(crate) pickup_details: Option<serde_json::Value>,
    pub(crate) shipment_details: Option<serde_json::Value>,
    pub(crate) delivery_details: Option<serde_json::Value>,
}

/// `Refund` (an order's refunds).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Refund {
    pub(crate) id: Option<String>,
    pub(crate) location_id: Option<String>,
    pub(crate) transaction_id: Option<String>,
    pub(crate) tender_id: Option<String>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) reason: Option<String>,
    pub(crate) amount_money: Option<Money>,
    pub(crate) status: Option<String>,
}

/// `OrderReturn`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OrderReturn {
    pub(crate) uid: Option<String>,
    pub(crate) source_order_id: Option<String>,
    pub(crate) return_line_items: Option<serde_json::Value>,
    pub(crate) return_amounts: Option<ReturnAmounts>,
}

/// `OrderMoneyAmounts` of a return.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ReturnAmounts {
    pub(crate) total_money: Option<Money>,
    pub(crate) tax_money: Option<Money>,
}

/// `Tender`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Tender {
    pub(crate) id: Option<String>,
    pub(crate) location_id: Option<String>,
    pub(crate) transaction_id: Option<String>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) note: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) amount_money: Option<Money>,
    pub(crate) tip_money: Option<Money>,
    pub(crate) processing_fee_money: Option<Money>,
    pub(crate) customer_id: Option<String>,
    pub(crate) payment_id: Option<String>,
}

/// A response whose `errors` the client checks: a 200 can carry them too.
pub(crate) trait WithErrors {
    /// The `errors` array (empty when absent).
    fn errors(&self) -> &[SquareError];
}

macro_rules! with_errors {
    ($($t:ty),*) => {$(
        impl WithErrors for $t {
            fn errors(&self) -> &[SquareError] {
                &self.errors
            }
        }
    )*};
}

with_errors!(
    ErrorsOnly,
    SearchCatalogResponse,
    ListLocationsResponse,
    InventoryCountsResponse,
    ListPaymentsResponse,
    SearchVendorsResponse,
    SearchOrdersResponse
);
