//! Rows of one table read whole, by column name: from the target (a store's
//! `read_target`) or from the source (every page of a stream, as the API serves it now),
//! with a checksum of their values that does not depend on the database's spelling of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use sync_core::{Key, PageRequest, PageSelector, Result, Row, Source, Stager, StreamSchema, Value};

/// The rows of one table with their schema, ordered by key.
#[derive(Debug, Clone)]
pub struct NamedRows {
    /// The table's schema.
    pub schema: Arc<StreamSchema>,
    /// The rows, ordered by key.
    pub rows: Vec<Row>,
}

impl NamedRows {
    /// `rows` ordered by key.
    pub fn new(schema: Arc<StreamSchema>, mut rows: Vec<Row>) -> Self {
        rows.sort_by_key(|a| a.key(&schema));
        NamedRows { schema, rows }
    }

    /// Every target row of `schema`'s table.
    pub async fn of_target(stager: &dyn Stager, schema: Arc<StreamSchema>) -> Result<Self> {
        let rows = stager.read_target(schema.name()).await?;
        Ok(Self::new(schema, rows))
    }

    /// Every record of `stream` the source serves now: all pages, no bounds.
    pub async fn of_source(source: &dyn Source, stream: &str) -> Result<Self> {
        let schema = source.schema(stream)?;
        let mut rows = Vec::new();
        let mut selector = Some(PageSelector::First);
        while let Some(s) = selector {
            let page = source
                .fetch_page(&PageRequest {
                    stream: stream.to_owned(),
                    selector: s,
                    since: None,
                    until: None,
                    limit: 1000,
                })
                .await?;
            rows.extend(page.rows);
            selector = page.next;
        }
        Ok(Self::new(schema, rows))
    }

    /// The value of `column` in `row` (NULL when the table has no such column).
    pub fn get<'a>(&self, row: &'a Row, column: &str) -> &'a Value {
        const NULL: &Value = &Value::Null;
        self.schema
            .column_index(column)
            .map_or(NULL, |i| row.get(i))
    }

    /// The text of `column` in `row`, if any.
    pub fn text<'a>(&self, row: &'a Row, column: &str) -> Option<&'a str> {
        match self.get(row, column) {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The rows by key.
    pub fn by_key(&self) -> BTreeMap<Key, &Row> {
        self.rows.iter().map(|r| (r.key(&self.schema), r)).collect()
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<Key> {
        self.rows.iter().map(|r| r.key(&self.schema)).collect()
    }

    /// A checksum (FNV-1a, 64 bits) of every value of every row in key order, each value in
    /// a canonical spelling: decimals normalized, JSON documents parsed and re-serialized
    /// with sorted keys (PostgreSQL's jsonb reorders them), so equal data give equal sums
    /// whichever database holds them.
    pub fn checksum(&self) -> u64 {
        let mut hash = Fnv::new();
        for row in &self.rows {
            for value in row.values() {
                hash.write(canonical(value).as_bytes());
                hash.write(&[0x1f]);
            }
            hash.write(&[0x1e]);
        }
        hash.0
    }
}

/// The canonical spelling of a value for [`NamedRows::checksum`].
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Decimal(d) => d.normalize().to_string(),
        Value::Json(text) => serde_json::from_str::<serde_json::Value>(text)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| text.to_string()),
        Value::Null => "\u{0}".to_owned(),
        other => other.to_string(),
    }
}

/// True when two rows hold the same data ([`canonical`] spellings equal).
pub fn same_values(a: &Row, b: &Row) -> bool {
    a.values().len() == b.values().len()
        && a.values()
            .iter()
            .zip(b.values())
            .all(|(x, y)| canonical(x) == canonical(y))
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
