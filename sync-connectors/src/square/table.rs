//! A stream's schema and the function that fills each of its columns, declared side by side
//! so the two cannot drift apart.
//!
//! A [`Table<P, C>`] turns a parent `P` and a child `C` into a row (`C = ()` for top-level
//! objects): an order and one of its line items become one `order_line_items` row.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sync_core::{Column, Error, Key, Result, Row, StreamSchema, Value};

use super::model::Money;

/// Fills one column from a parent and a child.
pub(crate) type Cell<P, C> = fn(&P, &C) -> Value;

/// A stream schema and one [`Cell`] per column, in column order.
pub(crate) struct Table<P, C = ()> {
    schema: Arc<StreamSchema>,
    cells: Vec<Cell<P, C>>,
}

impl<P, C> std::fmt::Debug for Table<P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("stream", &self.schema.name())
            .field("columns", &self.cells.len())
            .finish()
    }
}

impl<P, C> Table<P, C> {
    /// Starts a table named `name`.
    pub(crate) fn builder(name: &str) -> TableBuilder<P, C> {
        TableBuilder {
            name: name.to_owned(),
            columns: Vec::new(),
            cells: Vec::new(),
            key: Vec::new(),
            cursor: None,
            version: None,
        }
    }

    /// The schema.
    pub(crate) fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// The row of `parent` and `child`.
    pub(crate) fn row(&self, parent: &P, child: &C) -> Row {
        Row::new(self.cells.iter().map(|cell| cell(parent, child)).collect())
    }
}

/// Builder of a [`Table`].
pub(crate) struct TableBuilder<P, C> {
    name: String,
    columns: Vec<Column>,
    cells: Vec<Cell<P, C>>,
    key: Vec<&'static str>,
    cursor: Option<&'static str>,
    version: Option<&'static str>,
}

impl<P, C> TableBuilder<P, C> {
    /// Appends a column and its cell.
    pub(crate) fn col(mut self, column: Column, cell: Cell<P, C>) -> Self {
        self.columns.push(column);
        self.cells.push(cell);
        self
    }

    /// Sets the primary key.
    pub(crate) fn key(mut self, key: &[&'static str]) -> Self {
        self.key = key.to_vec();
        self
    }

    /// Sets the cursor column.
    pub(crate) fn cursor(mut self, column: &'static str) -> Self {
        self.cursor = Some(column);
        self
    }

    /// Sets the version guard column.
    pub(crate) fn version(mut self, column: &'static str) -> Self {
        self.version = Some(column);
        self
    }

    /// Validates the schema.
    pub(crate) fn build(self) -> Result<Table<P, C>> {
        let mut b =
            StreamSchema::builder(self.name.clone()).with_primary_key(self.key.iter().copied());
        if let Some(c) = self.cursor {
            b = b.with_cursor([c]);
        }
        if let Some(v) = self.version {
            b = b.with_version(v);
        }
        for c in self.columns {
            b = b.with_column(c);
        }
        let schema = b.build().map_err(|e| {
            Error::internal("a square stream schema is invalid")
                .with_context("stream", &self.name)
                .with_source(e)
        })?;
        Ok(Table {
            schema: Arc::new(schema),
            cells: self.cells,
        })
    }
}

/// Keeps one row per key, the newest by the schema's guard (the later one on a tie): a page
/// must not hold a key twice.
pub(crate) fn dedupe(schema: &StreamSchema, rows: Vec<Row>) -> Vec<Row> {
    let mut index: BTreeMap<Key, usize> = BTreeMap::new();
    let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.key(schema)) {
            Some(&i) => {
                if row.compare_guard(&kept[i], schema).is_ge() {
                    kept[i] = row;
                }
            }
            None => {
                index.insert(row.key(schema), kept.len());
                kept.push(row);
            }
        }
    }
    kept
}

/// Keeps the rows whose cursor is within `[since, until]`; with no cursor column, all rows.
/// A row without a cursor value passes (the strategy quarantines it).
pub(crate) fn within(
    schema: &StreamSchema,
    rows: Vec<Row>,
    since: Option<&Value>,
    until: Option<&Value>,
) -> Vec<Row> {
    let Some(&c) = schema.cursor().first() else {
        return rows;
    };
    rows.into_iter()
        .filter(|r| {
            let v = r.get(c);
            v.is_null()
                || (since.map_or(true, |s| v.compare(s).is_some_and(|o| o.is_ge()))
                    && until.map_or(true, |u| v.compare(u).is_some_and(|o| o.is_le())))
        })
        .collect()
}

/// Text or NULL.
pub(crate) fn text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, Value::from)
}

/// A timestamp or NULL.
pub(crate) fn ts(value: Option<DateTime<Utc>>) -> Value {
    value.map_or(Value::Null, Value::Timestamp)
}

/// An integer or NULL.
pub(crate) fn int(value: Option<i64>) -> Value {
    value.map_or(Value::Null, Value::Integer)
}

/// A boolean or NULL.
pub(crate) fn flag(value: Option<bool>) -> Value {
    value.map_or(Value::Null, Value::Bool)
}

/// A JSON document or NULL.
pub(crate) fn json(value: Option<&serde_json::Value>) -> Value {
    match value {
        None | Some(serde_json::Value::Null) => Value::Null,
        Some(v) => Value::Json(v.to_string().into_boxed_str()),
    }
}

/// A list of ids as a JSON array (an empty list is `[]`).
pub(crate) fn id_list(ids: &[String]) -> Value {
    Value::Json(
        serde_json::to_string(ids)
            .unwrap_or_else(|_| "[]".into())
            .into_boxed_str(),
    )
}

/// The amount of a `Money`, in the currency's smallest unit.
pub(crate) fn amount(money: Option<&Money>) -> Value {
    int(money.and_then(|m| m.amount))
}

/// The currency of a `Money`.
pub(crate) fn currency(money: Option<&Money>) -> Value {
    text(money.and_then(|m| m.currency.as_deref()))
}
