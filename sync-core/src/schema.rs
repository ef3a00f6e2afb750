//! Stream (table) schemas: typed columns, nullability, primary key, cursor columns and the
//! version guard that keeps an older row from replacing a newer one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest identifier accepted, in bytes (PostgreSQL's `NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The type of a column, as stores map it to their SQL types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ColumnType {
    /// UTF-8 text.
    Text,
    /// 64-bit signed integer.
    Integer,
    /// 64-bit float.
    Float,
    /// Exact decimal (up to 28 significant digits) with an optional declared scale.
    Decimal {
        /// Total digits, if declared (`numeric(precision, scale)`).
        precision: Option<u8>,
        /// Digits after the point, if declared.
        scale: Option<u8>,
    },
    /// Boolean.
    Bool,
    /// Instant in UTC (`timestamptz`).
    Timestamp,
    /// Calendar date.
    Date,
    /// A JSON document kept as text (`jsonb` in PostgreSQL); never parsed on the hot path.
    Json,
    /// Raw bytes.
    Bytes,
}

/// One column of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Column name, used verbatim (quoted) by stores.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Whether NULL is allowed. Primary-key columns are never nullable.
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// The JSON field this column is read from, when it differs from `name`.
    /// A dotted path (`a.b`) is not supported here; connectors flatten before decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_field: Option<String>,
}

fn default_true() -> bool {
    true
}

impl Column {
    /// A nullable column.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Column {
            name: name.into(),
            ty,
            nullable: true,
            source_field: None,
        }
    }

    /// A column that must not be NULL.
    pub fn required(name: impl Into<String>, ty: ColumnType) -> Self {
        Column {
            nullable: false,
            ..Column::new(name, ty)
        }
    }

    /// Reads the column from a differently named JSON field.
    pub fn with_source_field(mut self, field: impl Into<String>) -> Self {
        self.source_field = Some(field.into());
        self
    }

    /// The JSON field name the decoder reads.
    pub fn field_name(&self) -> &str {
        self.source_field.as_deref().unwrap_or(&self.name)
    }
}

/// A validated stream schema. Build it with [`StreamSchema::builder`].
///
/// Column indexes of the primary key, cursor and version guard are resolved once, so hot paths
/// never look names up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StreamSchemaSpec", into = "StreamSchemaSpec")]
pub struct StreamSchema {
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<usize>,
    cursor: Vec<usize>,
    version: Option<usize>,
}

/// The serde form of a [`StreamSchema`], validated on conversion.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSchemaSpec {
    /// Stream (target table) name.
    pub name: String,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Primary-key column names (one or more).
    pub primary_key: Vec<String>,
    /// Cursor column names for incremental strategies (may be empty).
    #[serde(default)]
    pub cursor: Vec<String>,
    /// Column whose larger value means a newer row (defaults to the cursor columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl TryFrom<StreamSchemaSpec> for StreamSchema {
    type Error = Error;
    fn try_from(spec: StreamSchemaSpec) -> Result<Self> {
        let mut b = StreamSchema::builder(spec.name);
        b.columns = spec.columns;
        b.primary_key = spec.primary_key;
        b.cursor = spec.cursor;
        b.version = spec.version;
        b.build()
    }
}

impl From<StreamSchema> for StreamSchemaSpec {
    fn from(s: StreamSchema) -> Self {
        let names = |idx: &[usize]| idx.iter().map(|&i| s.columns[i].name.clone()).collect();
        StreamSchemaSpec {
            primary_key: names(&s.primary_key),
            cursor: names(&s.cursor),
            version: s.version.map(|i| s.columns[i].name.clone()),
            name: s.name,
            columns: s.columns,
        }
    }
}

/// Builder for [`StreamSchema`]; `build` validates and does no I/O.
#[derive(Debug, Clone)]
pub struct StreamSchemaBuilder {
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<String>,
    cursor: Vec<String>,
    version: Option<String>,
}

impl StreamSchemaBuilder {
    /// Appends a column.
    pub fn with_column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Sets the primary key (one or more column names).
    pub fn with_primary_key<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.primary_key = cols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the cursor columns.
    pub fn with_cursor<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.cursor = cols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the version guard column.
    pub fn with_version(mut self, col: impl Into<String>) -> Self {
        self.version = Some(col.into());
        self
    }

    /// Validates names, types and keys.
    ///
    /// Identifiers may contain any character except NUL and must be 1 to
    /// [`MAX_IDENTIFIER_BYTES`] bytes: stores quote them, so `select`, `Order` or `a"b`
    /// round-trip exactly; longer names are rejected here rather than truncated by a database.
    pub fn build(self) -> Result<StreamSchema> {
        validate_identifier("stream", &self.name)?;
        if self.columns.is_empty() {
            return Err(Error::config("a stream needs at least one column")
                .with_context("stream", &self.name));
        }
        let mut index = HashMap::new();
        for (i, c) in self.columns.iter().enumerate() {
            validate_identifier("column", &c.name)?;
            if index.insert(c.name.as_str(), i).is_some() {
                return Err(Error::config("duplicate column name")
                    .with_context("stream", &self.name)
                    .with_context("column", &c.name));
            }
        }
        let resolve = |what: &str, names: &[String]| -> Result<Vec<usize>> {
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                let i = *index.get(n.as_str()).ok_or_else(|| {
                    Error::config(format!("{what} names an unknown column"))
                        .with_context("stream", &self.name)
                        .with_context("column", n)
                })?;
                if out.contains(&i) {
                    return Err(
                        Error::config(format!("{what} repeats a column")).with_context("column", n)
                    );
                }
                out.push(i);
            }
            Ok(out)
        };
        let primary_key = resolve("primary key", &self.primary_key)?;
        if primary_key.is_empty() {
            return Err(
                Error::config("a stream needs a primary key").with_context("stream", &self.name)
            );
        }
        let cursor = resolve("cursor", &self.cursor)?;
        let version = match &self.version {
            Some(v) => Some(resolve("version", std::slice::from_ref(v))?[0]),
            None => None,
        };
        let mut columns = self.columns;
        for &i in &primary_key {
            if matches!(columns[i].ty, ColumnType::Json | ColumnType::Float) {
                return Err(
                    Error::config("a primary-key column cannot be json or float")
                        .with_context("column", &columns[i].name),
                );
            }
            columns[i].nullable = false;
        }
        Ok(StreamSchema {
            name: self.name,
            columns,
            primary_key,
            cursor,
            version,
        })
    }
}

/// Rejects identifiers a store could not quote faithfully.
pub fn validate_identifier(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::config(format!("{what} name is empty")));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(Error::config(format!(
            "{what} name is longer than {MAX_IDENTIFIER_BYTES} bytes"
        ))
        .with_context(what, name.escape_debug()));
    }
    if name.contains('\0') {
        return Err(Error::config(format!("{what} name contains NUL"))
            .with_context(what, name.escape_debug()));
    }
    Ok(())
}

impl StreamSchema {
    /// Starts a builder for a stream named `name`.
    pub fn builder(name: impl Into<String>) -> StreamSchemaBuilder {
        StreamSchemaBuilder {
            name: name.into(),
            columns: Vec::new(),
            primary_key: Vec::new(),
            cursor: Vec::new(),
            version: None,
        }
    }

    /// Stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Columns in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Primary-key column indexes.
    pub fn primary_key(&self) -> &[usize] {
        &self.primary_key
    }

    /// Cursor column indexes (empty when the stream has no cursor).
    pub fn cursor(&self) -> &[usize] {
        &self.cursor
    }

    /// The version column index, if one was declared.
    pub fn version(&self) -> Option<usize> {
        self.version
    }

    /// Column indexes compared to decide which of two rows with one key is newer:
    /// the version column if set, else the cursor columns, else none (last write wins).
    pub fn guard(&self) -> &[usize] {
        match &self.version {
            Some(v) => std::slice::from_ref(v),
            None => &self.cursor,
        }
    }

    /// Indexes of columns that must not be NULL.
    pub fn required(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.nullable)
            .map(|(i, _)| i)
    }

    /// True when `newer` may add columns to `self` without dropping or retyping any: the
    /// schema-evolution rule stores apply (added columns are nullable, old rows keep NULL).
    pub fn check_evolution(&self, newer: &StreamSchema) -> Result<Vec<Column>> {
        let mut added = Vec::new();
        for c in &newer.columns {
            match self.columns.iter().find(|o| o.name == c.name) {
                Some(old) if old.ty != c.ty => {
                    return Err(Error::config("a column cannot change type")
                        .with_context("stream", &self.name)
                        .with_context("column", &c.name));
                }
                Some(_) => {}
                None => added.push(Column {
                    nullable: true,
                    ..c.clone()
                }),
            }
        }
        if newer.primary_key_names() != self.primary_key_names() {
            return Err(
                Error::config("the primary key cannot change").with_context("stream", &self.name)
            );
        }
        Ok(added)
    }

    /// This schema with `added` columns appended (nullable), keeping key, cursor and version:
    /// what a store records after [`StreamSchema::check_evolution`].
    pub fn with_added_columns(&self, added: &[Column]) -> Result<StreamSchema> {
        let name = |i: &usize| self.columns[*i].name.clone();
        let mut b = StreamSchema::builder(self.name.clone())
            .with_primary_key(self.primary_key.iter().map(name))
            .with_cursor(self.cursor.iter().map(name));
        if let Some(v) = &self.version {
            b = b.with_version(name(v));
        }
        for c in self.columns.iter().chain(added) {
            b = b.with_column(c.clone());
        }
        b.build()
    }

    fn primary_key_names(&self) -> Vec<&str> {
        self.primary_key
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> StreamSchemaBuilder {
        StreamSchema::builder("orders")
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::new("updated_at", ColumnType::Timestamp))
            .with_primary_key(["id"])
            .with_cursor(["updated_at"])
    }

    #[test]
    fn hostile_identifiers_round_trip_and_long_ones_are_rejected() {
        for name in [
            "select",
            "Order",
            "a\"b",
            "x\"; DROP TABLE canary;--",
            &"n".repeat(63),
        ] {
            let s = StreamSchema::builder(name)
                .with_column(Column::required(name, ColumnType::Text))
                .with_primary_key([name])
                .build()
                .unwrap();
            assert_eq!(s.name(), name);
            assert_eq!(s.columns()[0].name, name);
        }
        let long = "n".repeat(64);
        let err = StreamSchema::builder(long.clone())
            .with_column(Column::required("id", ColumnType::Text))
            .with_primary_key(["id"])
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }

    #[test]
    fn primary_key_is_required_and_resolved() {
        let err = StreamSchema::builder("t")
            .with_column(Column::new("a", ColumnType::Text))
            .build()
            .unwrap_err();
        assert!(err.message().contains("primary key"));
        let s = schema().build().unwrap();
        assert_eq!(s.primary_key(), &[0]);
        assert_eq!(s.guard(), &[1]);
        assert!(!s.columns()[0].nullable);
    }

    #[test]
    fn duplicate_and_unknown_columns_are_rejected() {
        let dup = schema()
            .with_column(Column::new("id", ColumnType::Text))
            .build()
            .unwrap_err();
        assert!(dup.message().contains("duplicate"));
        let unknown = schema().with_cursor(["nope"]).build().unwrap_err();
        assert_eq!(unknown.context_value("column"), Some("nope"));
    }

    #[test]
    fn serde_round_trip_validates() {
        let s = schema().build().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: StreamSchema = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let bad = json.replace("\"primary_key\":[\"id\"]", "\"primary_key\":[]");
        assert!(serde_json::from_str::<StreamSchema>(&bad).is_err());
    }

    #[test]
    fn evolution_adds_nullable_columns_and_rejects_retyping() {
        let old = schema().build().unwrap();
        let newer = schema()
            .with_column(Column::required("note", ColumnType::Text))
            .build()
            .unwrap();
        let added = old.check_evolution(&newer).unwrap();
        assert_eq!(added.len(), 1);
        assert!(added[0].nullable);
        let merged = old.with_added_columns(&added).unwrap();
        assert_eq!(
            (merged.columns().len(), merged.guard(), merged.primary_key()),
            (3, old.guard(), old.primary_key())
        );
        let retyped = StreamSchema::builder("orders")
            .with_column(Column::required("id", ColumnType::Integer))
            .with_primary_key(["id"])
            .build()
            .unwrap();
        assert_eq!(
            old.check_evolution(&retyped).unwrap_err().kind(),
            crate::ErrorKind::Config
        );
    }
}
