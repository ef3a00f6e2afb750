//! Rows, keys and batches: the one internal representation between sources and stores.
//!
//! A [`Row`] is a boxed slice of typed [`Value`]s in schema column order. JSON pages decode
//! straight into rows ([`decode`]) and the user's own serde types convert into rows
//! ([`serialize`]) without a `serde_json::Value` tree per record.

pub mod decode;
pub mod serialize;

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::position::{CheckpointDelta, CursorKey};
use crate::schema::StreamSchema;
use crate::value::Value;

/// One record in schema column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row(Box<[Value]>);

impl Row {
    /// A row from values in column order.
    pub fn new(values: Vec<Value>) -> Self {
        Row(values.into_boxed_slice())
    }

    /// The values in column order.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// Mutable access for transformations.
    pub fn values_mut(&mut self) -> &mut [Value] {
        &mut self.0
    }

    /// True when both rows hold the same data column by column ([`Value::same_data`]:
    /// JSON compared as documents).
    pub fn same_data(&self, other: &Row) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|(a, b)| a.same_data(b))
    }

    /// The value at a column index.
    pub fn get(&self, index: usize) -> &Value {
        &self.0[index]
    }

    /// The primary key of this row under `schema`.
    pub fn key(&self, schema: &StreamSchema) -> Key {
        Key(schema
            .primary_key()
            .iter()
            .map(|&i| self.0[i].clone())
            .collect())
    }

    /// The cursor values of this row under `schema`.
    pub fn cursor_values(&self, schema: &StreamSchema) -> Vec<Value> {
        schema.cursor().iter().map(|&i| self.0[i].clone()).collect()
    }

    /// The (cursor, key) position of this row.
    pub fn cursor_key(&self, schema: &StreamSchema) -> CursorKey {
        CursorKey {
            cursor: self.cursor_values(schema),
            key: Some(self.key(schema)),
        }
    }

    /// Compares this row's cursor values with `other` (as [`crate::position::compare_values`]
    /// does) without copying them; `None` when the arity or a type differs.
    pub fn compare_cursor(&self, schema: &StreamSchema, other: &[Value]) -> Option<Ordering> {
        if schema.cursor().len() != other.len() {
            return None;
        }
        compare_in_order(schema.cursor().iter().map(|&i| &self.0[i]), other.iter())
    }

    /// Compares this row's (cursor, key) position with `other`, exactly as
    /// [`CursorKey::compare`] would compare [`Row::cursor_key`], without copying values.
    pub fn compare_cursor_key(&self, schema: &StreamSchema, other: &CursorKey) -> Option<Ordering> {
        match self.compare_cursor(schema, &other.cursor)? {
            Ordering::Equal => Some(match &other.key {
                None => Ordering::Less,
                Some(k) => cmp_keys(self.key_values(schema), k.0.iter()),
            }),
            o => Some(o),
        }
    }

    /// Compares the cursor values of two rows of one stream without copying them.
    pub fn compare_cursor_row(&self, other: &Row, schema: &StreamSchema) -> Option<Ordering> {
        let mine = schema.cursor().iter().map(|&i| &self.0[i]);
        let theirs = schema.cursor().iter().map(|&i| &other.0[i]);
        compare_in_order(mine, theirs)
    }

    /// Compares the (cursor, key) positions of two rows of one stream without copying values.
    pub fn compare_cursor_key_row(&self, other: &Row, schema: &StreamSchema) -> Option<Ordering> {
        match self.compare_cursor_row(other, schema)? {
            Ordering::Equal => Some(cmp_keys(self.key_values(schema), other.key_values(schema))),
            o => Some(o),
        }
    }

    fn key_values<'a>(&'a self, schema: &'a StreamSchema) -> impl Iterator<Item = &'a Value> {
        schema.primary_key().iter().map(|&i| &self.0[i])
    }

    /// Compares the guard columns (version or cursor) of two rows of one stream: `Greater`
    /// means `self` is newer. Rows without guard columns compare `Equal`.
    pub fn compare_guard(&self, other: &Row, schema: &StreamSchema) -> Ordering {
        for &i in schema.guard() {
            match self.0[i].compare(&other.0[i]) {
                Some(Ordering::Equal) | None => {}
                Some(o) => return o,
            }
        }
        Ordering::Equal
    }

    /// Checks the row against its schema: arity, types and required columns. Returns the
    /// first problem as a reason string suitable for the quarantine table.
    pub fn check(&self, schema: &StreamSchema) -> std::result::Result<(), String> {
        let cols = schema.columns();
        if self.0.len() != cols.len() {
            return Err(format!(
                "row has {} values, schema has {} columns",
                self.0.len(),
                cols.len()
            ));
        }
        for (v, c) in self.0.iter().zip(cols) {
            if v.is_null() && !c.nullable {
                return Err(format!("missing required field {:?}", c.name));
            }
            if !v.fits(c.ty) {
                return Err(format!("field {:?} does not fit type {:?}", c.name, c.ty));
            }
        }
        Ok(())
    }
}

/// A primary key (one value per key column). Ordered so stores and models can keep keys
/// in ordered maps; key columns are never float or JSON, so the order is total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key(pub Vec<Value>);

impl Key {
    /// A single-column text key.
    pub fn text(s: impl Into<String>) -> Self {
        Key(vec![Value::Text(s.into().into_boxed_str())])
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(self.0.iter(), other.0.iter())
    }
}

/// The order of [`Key`] over key values given in column order: element by element (values
/// of different types by type), then the shorter first.
fn cmp_keys<'a>(
    mut a: impl Iterator<Item = &'a Value>,
    mut b: impl Iterator<Item = &'a Value>,
) -> Ordering {
    loop {
        let (x, y) = match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => (x, y),
        };
        let o = x
            .compare(y)
            .unwrap_or_else(|| type_rank(x).cmp(&type_rank(y)));
        if o != Ordering::Equal {
            return o;
        }
    }
}

/// Element-by-element comparison of two value sequences of one length; `None` at the first
/// pair of values that do not compare.
pub(crate) fn compare_in_order<'a>(
    a: impl Iterator<Item = &'a Value>,
    b: impl Iterator<Item = &'a Value>,
) -> Option<Ordering> {
    for (x, y) in a.zip(b) {
        match x.compare(y)? {
            Ordering::Equal => {}
            o => return Some(o),
        }
    }
    Some(Ordering::Equal)
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Integer(_) => 2,
        Value::Float(_) => 3,
        Value::Decimal(_) => 4,
        Value::Date(_) => 5,
        Value::Timestamp(_) => 6,
        Value::Text(_) => 7,
        Value::Json(_) => 8,
        Value::Bytes(_) => 9,
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The first key that appears twice in `rows`, found without cloning keys: rows are sorted
/// by a hash of their key and only equal hashes are compared.
fn duplicate_key<'a>(schema: &StreamSchema, rows: impl Iterator<Item = &'a Row>) -> Option<Key> {
    use std::hash::{Hash, Hasher};
    let pk = schema.primary_key();
    let rows: Vec<&Row> = rows.collect();
    let mut hashed: Vec<(u64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for &k in pk {
                hash_value(r.get(k), &mut h);
            }
            (h.finish(), i)
        })
        .collect();
    hashed.sort_unstable();
    for w in hashed.windows(2) {
        let (a, b) = (rows[w[0].1], rows[w[1].1]);
        if w[0].0 == w[1].0
            && pk
                .iter()
                .all(|&k| a.get(k).compare(b.get(k)) == Some(Ordering::Equal))
        {
            return Some(a.key(schema));
        }
    }
    fn hash_value(v: &Value, h: &mut impl Hasher) {
        match v {
            Value::Text(s) | Value::Json(s) => s.hash(h),
            Value::Integer(i) => i.hash(h),
            Value::Bool(b) => b.hash(h),
            Value::Bytes(b) => b.hash(h),
            other => other.to_string().hash(h),
        }
    }
    None
}

/// Rows of one stream plus the checkpoint delta they advance and keys to delete.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    schema: Arc<StreamSchema>,
    rows: Vec<Row>,
    deletes: Vec<Key>,
    delta: CheckpointDelta,
}

impl RecordBatch {
    /// A batch of `rows` advancing `delta`. Checks every row's arity; type and nullability
    /// problems are left to validation, which quarantines them.
    pub fn new(schema: Arc<StreamSchema>, rows: Vec<Row>, delta: CheckpointDelta) -> Result<Self> {
        let width = schema.columns().len();
        if let Some((i, r)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.values().len() != width)
        {
            return Err(Error::invalid_input("row width does not match the schema")
                .with_context("stream", schema.name())
                .with_context("row", i)
                .with_context("values", r.values().len()));
        }
        for (i, r) in rows.iter().enumerate() {
            if schema.primary_key().iter().any(|&k| r.get(k).is_null()) {
                return Err(Error::invalid_input("record has no primary key")
                    .with_context("stream", schema.name())
                    .with_context("row", i));
            }
            if let Some((v, c)) = r
                .values()
                .iter()
                .zip(schema.columns())
                .find(|(v, c)| !v.fits(c.ty))
            {
                return Err(Error::invalid_input("value does not fit its column type")
                    .with_context("stream", schema.name())
                    .with_context("row", i)
                    .with_context("column", &c.name)
                    .with_context("type", format!("{:?}", c.ty))
                    .with_context(
                        "value_type",
                        v.column_type()
                            .map_or("null".to_string(), |t| format!("{t:?}")),
                    ));
            }
        }
        if let Some(dup) = duplicate_key(&schema, rows.iter()) {
            return Err(Error::invalid_input("duplicate key in batch")
                .with_context("stream", schema.name())
                .with_context("key", dup));
        }
        Ok(RecordBatch {
            schema,
            rows,
            deletes: Vec::new(),
            delta,
        })
    }

    /// Joins consecutive batches of one stream into one: the rows in order, the delta from
    /// the first batch's `from` to the last one's `to`.
    ///
    /// The batches come back as they were when they cannot be one batch: a key is in two of
    /// them (a batch holds each key once, so each must be staged alone, in order, for the
    /// store to keep the newest), one of them deletes keys, their schemas differ, or their
    /// deltas do not chain (`to` of each is `from` of the next).
    pub fn concat(mut batches: Vec<RecordBatch>) -> std::result::Result<Self, Vec<Self>> {
        let Some(first) = batches.first() else {
            return Err(batches);
        };
        let joinable = batches.iter().all(|b| {
            b.deletes.is_empty()
                && (Arc::ptr_eq(&b.schema, &first.schema) || b.schema == first.schema)
        }) && batches.windows(2).all(|w| w[0].delta.to == w[1].delta.from);
        if !joinable {
            return Err(batches);
        }
        if batches.len() == 1 {
            return Ok(batches.remove(0));
        }
        if duplicate_key(&first.schema, batches.iter().flat_map(|b| b.rows.iter())).is_some() {
            return Err(batches);
        }
        let (schema, from) = (first.schema.clone(), first.delta.from.clone());
        let mut rows = Vec::with_capacity(batches.iter().map(|b| b.rows.len()).sum());
        let mut to = from.clone();
        for b in batches {
            rows.extend(b.rows);
            to = b.delta.to;
        }
        Ok(RecordBatch {
            schema,
            rows,
            deletes: Vec::new(),
            delta: CheckpointDelta { from, to },
        })
    }

    /// Adds keys the batch deletes from the target (tombstones).
    pub fn with_deletes(mut self, deletes: Vec<Key>) -> Self {
        self.deletes = deletes;
        self
    }

    /// The stream schema.
    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Takes the rows out.
    pub fn into_rows(self) -> Vec<Row> {
        self.rows
    }

    /// Takes the batch apart: rows, delete keys, delta.
    pub fn into_parts(self) -> (Vec<Row>, Vec<Key>, CheckpointDelta) {
        (self.rows, self.deletes, self.delta)
    }

    /// Keys to delete.
    pub fn deletes(&self) -> &[Key] {
        &self.deletes
    }

    /// The checkpoint delta `(from, to]`.
    pub fn delta(&self) -> &CheckpointDelta {
        &self.delta
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows and no deletes.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.deletes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::Position;
    use crate::schema::{Column, ColumnType};

    /// Consecutive pages join into one batch; a key on two pages, deletes or deltas that do
    /// not chain keep them apart, unchanged and in order.
    #[test]
    fn concat_joins_chained_pages_with_distinct_keys_only() {
        let schema = crate::testkit::items_schema("t");
        let at = |t: &str| Position::Token(t.to_string());
        let page = |ids: &[&str], from: &str, to: &str| {
            let rows = ids
                .iter()
                .map(|id| crate::testkit::item(id, 1, Some(1)))
                .collect();
            let delta = CheckpointDelta {
                from: at(from),
                to: at(to),
            };
            RecordBatch::new(schema.clone(), rows, delta).unwrap()
        };
        let joined =
            RecordBatch::concat(vec![page(&["a", "b"], "0", "1"), page(&["c"], "1", "2")]).unwrap();
        let ids: Vec<String> = joined.rows().iter().map(|r| r.get(0).to_string()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(
            joined.delta(),
            &CheckpointDelta {
                from: at("0"),
                to: at("2")
            }
        );

        let twice = RecordBatch::concat(vec![page(&["a", "b"], "0", "1"), page(&["b"], "1", "2")])
            .unwrap_err();
        assert_eq!(twice.len(), 2, "a key on two pages keeps the pages apart");
        assert_eq!(twice[1].delta().from, at("1"));

        let gap = RecordBatch::concat(vec![page(&["a"], "0", "1"), page(&["b"], "5", "6")]);
        assert_eq!(
            gap.unwrap_err().len(),
            2,
            "deltas that do not chain stay apart"
        );

        let deleting = page(&["b"], "1", "2").with_deletes(vec![Key::text("z")]);
        let deletes = RecordBatch::concat(vec![page(&["a"], "0", "1"), deleting]);
        assert_eq!(
            deletes.unwrap_err().len(),
            2,
            "a batch with deletes is not joined"
        );
        assert!(RecordBatch::concat(Vec::new()).unwrap_err().is_empty());
    }

    #[test]
    fn borrowed_cursor_comparisons_agree_with_the_copied_ones() {
        let schema = crate::testkit::items_schema("t");
        let rows: Vec<Row> = ["a", "b"]
            .iter()
            .flat_map(|id| {
                [None, Some(1), Some(2)]
                    .map(|u| crate::testkit::item(id, 1, u))
                    .into_iter()
            })
            .collect();
        let mut positions: Vec<CursorKey> = rows.iter().map(|r| r.cursor_key(&schema)).collect();
        for cursor in [
            vec![Value::from(1)],
            vec![Value::Null],
            vec![Value::from("x")],
            vec![],
        ] {
            positions.push(CursorKey { cursor, key: None });
        }
        for row in &rows {
            for p in &positions {
                assert_eq!(
                    row.compare_cursor_key(&schema, p),
                    row.cursor_key(&schema).compare(p),
                    "{row:?} vs {p:?}"
                );
                assert_eq!(
                    row.compare_cursor(&schema, &p.cursor),
                    crate::position::compare_values(&row.cursor_values(&schema), &p.cursor)
                );
            }
            for other in &rows {
                assert_eq!(
                    row.compare_cursor_key_row(other, &schema),
                    row.cursor_key(&schema).compare(&other.cursor_key(&schema))
                );
            }
        }
    }

    fn schema() -> Arc<StreamSchema> {
        Arc::new(
            StreamSchema::builder("t")
                .with_column(Column::required("id", ColumnType::Text))
                .with_column(Column::required("v", ColumnType::Integer))
                .with_column(Column::new("note", ColumnType::Text))
                .with_primary_key(["id"])
                .with_version("v")
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn a_batch_rejects_rows_without_primary_key_or_with_wrong_width() {
        let d = CheckpointDelta::stay(Position::Start);
        let no_key = Row::new(vec![Value::Null, Value::from(1), Value::Null]);
        let err = RecordBatch::new(schema(), vec![no_key], d.clone()).unwrap_err();
        assert!(err.message().contains("primary key"));
        let narrow = Row::new(vec![Value::from("a")]);
        assert!(RecordBatch::new(schema(), vec![narrow], d).is_err());
    }

    #[test]
    fn a_batch_rejects_type_mismatches_and_duplicate_keys() {
        let d = CheckpointDelta::stay(Position::Start);
        let wrong = Row::new(vec![Value::from("a"), Value::from("x"), Value::Null]);
        let err = RecordBatch::new(schema(), vec![wrong], d.clone()).unwrap_err();
        assert_eq!(err.context_value("column"), Some("v"));
        let a1 = Row::new(vec![Value::from("a"), Value::from(1), Value::Null]);
        let b1 = Row::new(vec![Value::from("b"), Value::from(1), Value::Null]);
        let a2 = Row::new(vec![Value::from("a"), Value::from(2), Value::Null]);
        let err =
            RecordBatch::new(schema(), vec![a1.clone(), b1.clone(), a2], d.clone()).unwrap_err();
        assert_eq!(
            (err.message(), err.context_value("key")),
            ("duplicate key in batch", Some("a"))
        );
        assert_eq!(
            RecordBatch::new(schema(), vec![a1, b1], d).unwrap().len(),
            2
        );
    }

    #[test]
    fn check_reports_missing_required_and_type_mismatch() {
        let s = schema();
        let missing = Row::new(vec![Value::from("a"), Value::Null, Value::Null]);
        assert!(missing
            .check(&s)
            .unwrap_err()
            .contains("missing required field \"v\""));
        let wrong = Row::new(vec![Value::from("a"), Value::from("x"), Value::Null]);
        assert!(wrong.check(&s).unwrap_err().contains("does not fit"));
        let ok = Row::new(vec![Value::from("a"), Value::from(1), Value::Null]);
        assert!(ok.check(&s).is_ok());
    }

    #[test]
    fn guard_compares_the_version_column() {
        let s = schema();
        let old = Row::new(vec![Value::from("a"), Value::from(1), Value::Null]);
        let new = Row::new(vec![Value::from("a"), Value::from(2), Value::Null]);
        assert_eq!(new.compare_guard(&old, &s), Ordering::Greater);
        assert_eq!(old.compare_guard(&new, &s), Ordering::Less);
    }

    #[test]
    fn keys_order_totally() {
        let mut keys = [Key::text("b"), Key::text("a"), Key(vec![Value::from(3)])];
        keys.sort();
        assert_eq!(keys[0], Key(vec![Value::from(3)]));
        assert_eq!(keys[1], Key::text("a"));
    }
}
