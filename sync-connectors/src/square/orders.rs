//! Order streams: `orders` and its child tables `order_line_items`, `order_fulfillments`,
//! `order_refunds`, `order_returns` and `order_tenders`, all read from SearchOrders.
//!
//! A child row is keyed `(order_id, uid)` (refunds and tenders: `(order_id, id)`) and
//! carries its order's `updated_at` as `order_updated_at` (the cursor) and its order's
//! `version` as `order_version` (the guard): when an order changes, its new version's child
//! rows replace the old ones. A child the new version no longer has stays in the target with
//! the old `order_version`; join on `order_version = orders.version` to see only current
//! children.

use sync_core::{Column, ColumnType, Result, Row, Value};

use super::model::{Fulfillment, LineItem, Order, OrderReturn, Refund, Tender};
use super::table::{amount, currency, int, json, text, ts, Table, TableBuilder};

/// The order tables.
#[derive(Debug)]
pub(crate) struct OrderTables {
    pub(crate) orders: Table<Order>,
    pub(crate) line_items: Table<Order, LineItem>,
    pub(crate) fulfillments: Table<Order, Fulfillment>,
    pub(crate) refunds: Table<Order, Refund>,
    pub(crate) returns: Table<Order, OrderReturn>,
    pub(crate) tenders: Table<Order, Tender>,
}

/// `order_id`, the child's own id column, `order_updated_at`, `order_version`.
fn child<C>(name: &str, id: &'static str, get: fn(&Order, &C) -> Value) -> TableBuilder<Order, C> {
    Table::<Order, C>::builder(name)
        .col(Column::required("order_id", ColumnType::Text), |o, _| {
            Value::from(o.id.as_str())
        })
        .col(Column::required(id, ColumnType::Text), get)
        .col(
            Column::required("order_updated_at", ColumnType::Timestamp),
            |o, _| ts(o.updated_at),
        )
        .col(Column::new("order_version", ColumnType::Integer), |o, _| {
            int(o.version)
        })
        .key(&["order_id", id])
        .cursor("order_updated_at")
        .version("order_version")
}

impl OrderTables {
    pub(crate) fn new() -> Result<Self> {
        let orders = Table::<Order>::builder("orders")
            .col(Column::required("id", ColumnType::Text), |o, _| {
                Value::from(o.id.as_str())
            })
            .col(Column::new("location_id", ColumnType::Text), |o, _| {
                text(o.location_id.as_deref())
            })
            .col(Column::new("state", ColumnType::Text), |o, _| {
                text(o.state.as_deref())
            })
            .col(Column::new("version", ColumnType::Integer), |o, _| {
                int(o.version)
            })
            .col(Column::new("created_at", ColumnType::Timestamp), |o, _| {
                ts(o.created_at)
            })
            .col(
                Column::required("updated_at", ColumnType::Timestamp),
                |o, _| ts(o.updated_at),
            )
            .col(Column::new("closed_at", ColumnType::Timestamp), |o, _| {
                ts(o.closed_at)
            })
            .col(Column::new("customer_id", ColumnType::Text), |o, _| {
                text(o.customer_id.as_deref())
            })
            .col(Column::new("reference_id", ColumnType::Text), |o, _| {
                text(o.reference_id.as_deref())
            })
            .col(Column::new("source_name", ColumnType::Text), |o, _| {
                text(o.source.as_ref().and_then(|s| s.name.as_deref()))
            })
            .col(Column::new("ticket_name", ColumnType::Text), |o, _| {
                text(o.ticket_name.as_deref())
            })
            .col(Column::new("currency", ColumnType::Text), |o, _| {
                currency(o.total_money.as_ref())
            })
            .col(Column::new("total_amount", ColumnType::Integer), |o, _| {
                amount(o.total_money.as_ref())
            })
            .col(
                Column::new("total_tax_amount", ColumnType::Integer),
                |o, _| amount(o.total_tax_money.as_ref()),
            )
            .col(
                Column::new("total_discount_amount", ColumnType::Integer),
                |o, _| amount(o.total_discount_money.as_ref()),
            )
            .col(
                Column::new("total_tip_amount", ColumnType::Integer),
                |o, _| amount(o.total_tip_money.as_ref()),
            )
            .col(
                Column::new("total_service_charge_amount", ColumnType::Integer),
                |o, _| amount(o.total_service_charge_money.as_ref()),
            )
            .key(&["id"])
            .cursor("updated_at")
            .version("version")
            .build()?;
        let line_items = child("order_line_items", "uid", |_, l: &LineItem| {
            text(l.uid.as_deref())
        })
        .col(Column::new("name", ColumnType::Text), |_, l| {
            text(l.name.as_deref())
        })
        .col(Column::new("variation_name", ColumnType::Text), |_, l| {
            text(l.variation_name.as_deref())
        })
        .col(
            Column::new(
                "quantity",
                ColumnType::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            |_, l| l.quantity.clone(),
        )
        .col(
            Column::new("catalog_object_id", ColumnType::Text),
            |_, l| text(l.catalog_object_id.as_deref()),
        )
        .col(
            Column::new("catalog_version", ColumnType::Integer),
            |_, l| int(l.catalog_version),
        )
        .col(Column::new("item_type", ColumnType::Text), |_, l| {
            text(l.item_type.as_deref())
        })
        .col(Column::new("note", ColumnType::Text), |_, l| {
            text(l.note.as_deref())
        })
        .col(Column::new("currency", ColumnType::Text), |_, l| {
            currency(l.total_money.as_ref().or(l.base_price_money.as_ref()))
        })
        .col(
            Column::new("base_price_amount", ColumnType::Integer),
            |_, l| amount(l.base_price_money.as_ref()),
        )
        .col(
            Column::new("gross_sales_amount", ColumnType::Integer),
            |_, l| amount(l.gross_sales_money.as_ref()),
        )
        .col(
            Column::new("total_tax_amount", ColumnType::Integer),
            |_, l| amount(l.total_tax_money.as_ref()),
        )
        .col(
            Column::new("total_discount_amount", ColumnType::Integer),
            |_, l| amount(l.total_discount_money.as_ref()),
        )
        .col(Column::new("total_amount", ColumnType::Integer), |_, l| {
            amount(l.total_money.as_ref())
        })
        .build()?;
        let fulfillments = child("order_fulfillments", "uid", |_, f: &Fulfillment| {
            text(f.uid.as_deref())
        })
        .col(Column::new("type", ColumnType::Text), |_, f| {
            text(f.kind.as_deref())
        })
        .col(Column::new("state", ColumnType::Text), |_, f| {
            text(f.state.as_deref())
        })
        .col(
            Column::new("line_item_application", ColumnType::Text),
            |_, f| text(f.line_item_application.as_deref()),
        )
        .col(Column::new("details", ColumnType::Json), |_, f| {
            json(
                f.pickup_details
                    .as_ref()
                    .or(f.shipment_details.as_ref())
                    .or(f.delivery_details.as_ref()),
            )
        })
        .build()?;
        let refunds = child("order_refunds", "id", |_, r: &Refund| text(r.id.as_deref()))
            .col(Column::new("location_id", ColumnType::Text), |_, r| {
                text(r.location_id.as_deref())
            })
            .col(Column::new("transaction_id", ColumnType::Text), |_, r| {
                text(r.transaction_id.as_deref())
            })
            .col(Column::new("tender_id", ColumnType::Text), |_, r| {
                text(r.tender_id.as_deref())
            })
            .col(Column::new("created_at", ColumnType::Timestamp), |_, r| {
                ts(r.created_at)
            })
            .col(Column::new("reason", ColumnType::Text), |_, r| {
                text(r.reason.as_deref())
            })
            .col(Column::new("status", ColumnType::Text), |_, r| {
                text(r.status.as_deref())
            })
            .col(Column::new("amount", ColumnType::Integer), |_, r| {
                amount(r.amount_money.as_ref())
            })
            .col(Column::new("currency", ColumnType::Text), |_, r| {
                currency(r.amount_money.as_ref())
            })
            .build()?;
        let returns = child("order_returns", "uid", |_, r: &OrderReturn| {
            text(r.uid.as_deref())
        })
        .col(Column::new("source_order_id", ColumnType::Text), |_, r| {
            text(r.source_order_id.as_deref())
        })
        .col(
            Column::new("return_line_items", ColumnType::Json),
            |_, r| json(r.return_line_items.as_ref()),
        )
        .col(Column::new("tax_amount", ColumnType::Integer), |_, r| {
            amount(r.return_amounts.as_ref().and_then(|a| a.tax_money.as_ref()))
        })
        .col(Column::new("total_amount", ColumnType::Integer), |_, r| {
            amount(
                r.return_amounts
                    .as_ref()
                    .and_then(|a| a.total_money.as_ref()),
            )
        })
        .col(Column::new("currency", ColumnType::Text), |_, r| {
            currency(
                r.return_amounts
                    .as_ref()
                    .and_then(|a| a.total_money.as_ref()),
            )
        })
        .build()?;
        let tenders = child("order_tenders", "id", |_, t: &Tender| text(t.id.as_deref()))
            .col(Column::new("type", ColumnType::Text), |_, t| {
                text(t.kind.as_deref())
            })
            .col(Column::new("location_id", ColumnType::Text), |_, t| {
                text(t.location_id.as_deref())
            })
            .col(Column::new("transaction_id", ColumnType::Text), |_, t| {
                text(t.transaction_id.as_deref())
            })
            .col(Column::new("created_at", ColumnType::Timestamp), |_, t| {
                ts(t.created_at)
            })
            .col(Column::new("payment_id", ColumnType::Text), |_, t| {
                text(t.payment_id.as_deref())
            })
            .col(Column::new("customer_id", ColumnType::Text), |_, t| {
                text(t.customer_id.as_deref())
            })
            .col(Column::new("note", ColumnType::Text), |_, t| {
                text(t.note.as_deref())
            })
            .col(Column::new("tip_amount", ColumnType::Integer), |_, t| {
                amount(t.tip_money.as_ref())
            })
            .col(
                Column::new("processing_fee_amount", ColumnType::Integer),
                |_, t| amount(t.processing_fee_money.as_ref()),
            )
            .col(Column::new("amount", ColumnType::Integer), |_, t| {
                amount(t.amount_money.as_ref())
            })
            .col(Column::new("currency", ColumnType::Text), |_, t| {
                currency(t.amount_money.as_ref())
            })
            .build()?;
        Ok(OrderTables {
            orders,
            line_items,
            fulfillments,
            refunds,
            returns,
            tenders,
        })
    }
}

/// A child list whose entries lack their id within the order get a positional one (`#0`,
/// `#1`, ...), so they still have a key. Square sets `uid` on stored orders; this is a
/// fallback for the rare entry without one.
pub(crate) fn fill_missing_ids(order: &mut Order) {
    fn fill<T>(items: &mut [T], id: fn(&mut T) -> &mut Option<String>) {
        for (i, item) in items.iter_mut().enumerate() {
            id(item).get_or_insert_with(|| format!("#{i}"));
        }
    }
    fill(&mut order.line_items, |l| &mut l.uid);
    fill(&mut order.fulfillments, |f| &mut f.uid);
    fill(&mut order.refunds, |r| &mut r.id);
    fill(&mut order.returns, |r| &mut r.uid);
    fill(&mut order.tenders, |t| &mut t.id);
}

/// The rows of one child table of `order`.
pub(crate) fn child_rows<C>(table: &Table<Order, C>, order: &Order, children: &[C]) -> Vec<Row> {
    children.iter().map(|c| table.row(order, c)).collect()
}
