//! JSON pages decoded straight into rows, without a `serde_json::Value` tree per record.
//!
//! A [`RowDecoder`] is built once per stream. Its seeds write each cell into a `Vec<Value>` in
//! schema column order while serde_json parses, so the only allocations per record are the row
//! itself and the text of text, JSON and bytes cells; object keys are matched without allocating.
//!
//! Text, decimal and JSON cells borrow their exact source text (`&RawValue`), so the input must be
//! in memory: use the `decode_*` methods, or drive the seeds with
//! `serde_json::Deserializer::from_slice` or `from_str`; a reader-based deserializer fails there.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde_json::de::SliceRead;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::record::Row;
use crate::schema::{ColumnType, StreamSchema};
use crate::value::{parse_timestamp, Value};

/// Up to this many columns a field is found by a linear scan (a length compare rejects almost
/// every wrong name without reading bytes), which beats hashing the key; wider schemas use a map.
const LINEAR_LOOKUP_MAX: usize = 16;

/// Deepest nesting accepted in a JSON cell: what serde_json accepts when the cell text is later
/// parsed on its own. (Raw values are skipped iteratively, so this check is what bounds them.)
const MAX_JSON_DEPTH: usize = 127;

/// Decodes JSON records of one stream into [`Row`]s; built once per stream, cheap to share.
#[derive(Debug, Clone)]
pub struct RowDecoder {
    schema: Arc<StreamSchema>,
    fields: Box<[Box<str>]>,
    index: Option<HashMap<Box<str>, usize>>,
}

/// The rows of one page and the page's other fields (`has_more`, `next_offset`, `cursor`...).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedPage {
    /// Records in page order.
    pub rows: Vec<Row>,
    /// Every other field of the objects on the records path, keyed by its own name; on a name
    /// clash the field of the inner object wins.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl RowDecoder {
    /// A decoder for `schema`; JSON fields match columns by
    /// [`Column::field_name`](crate::schema::Column::field_name) (the first column wins a shared name).
    pub fn new(schema: Arc<StreamSchema>) -> Self {
        let fields: Box<[Box<str>]> = schema
            .columns()
            .iter()
            .map(|c| c.field_name().into())
            .collect();
        let index = (fields.len() > LINEAR_LOOKUP_MAX).then(|| {
            fields
                .iter()
                .enumerate()
                .rev()
                .map(|(i, f)| (f.clone(), i))
                .collect()
        });
        RowDecoder {
            schema,
            fields,
            index,
        }
    }

    /// The stream schema.
    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// A seed decoding one JSON object into a row. Its errors are the deserializer's own, with
    /// the column in the message; the `decode_*` methods return structured [`Error`]s instead.
    pub fn row_seed(&self) -> RowSeed<'_> {
        RowSeed {
            ctx: Ctx {
                decoder: self,
                stash: None,
            },
        }
    }

    /// A seed decoding a JSON array of objects into rows.
    pub fn rows_seed(&self) -> RowsSeed<'_> {
        RowsSeed {
            ctx: Ctx {
                decoder: self,
                stash: None,
            },
        }
    }

    /// Decodes one JSON object; anything but whitespace after it is an error.
    pub fn decode_row(&self, json: &[u8]) -> Result<Row> {
        self.run(json, |ctx, de| RowSeed { ctx }.deserialize(de))
    }

    /// Decodes a top-level JSON array of objects.
    pub fn decode_rows(&self, json: &[u8]) -> Result<Vec<Row>> {
        self.run(json, |ctx, de| RowsSeed { ctx }.deserialize(de))
    }

    /// Decodes a page object whose records array sits at `records_path` (`[]`: the body is the
    /// array). An absent or null records field is an empty page; any other non-array is an error.
    pub fn decode_page(&self, json: &[u8], records_path: &[&str]) -> Result<DecodedPage> {
        self.run(json, |ctx, de| {
            PageSeed {
                ctx,
                path: records_path,
                name: None,
            }
            .deserialize(de)
        })
    }

    /// Errors get kind `InvalidInput`, `column` for a cell, `row` (index in the array), `field` for
    /// a records path level, and `at` (line and column in the input).
    fn run<'j, T>(
        &self,
        json: &'j [u8],
        decode: impl FnOnce(
            Ctx<'_>,
            &mut serde_json::Deserializer<SliceRead<'j>>,
        ) -> serde_json::Result<T>,
    ) -> Result<T> {
        let stash = Stash::default();
        let mut de = serde_json::Deserializer::from_slice(json);
        let e = match decode(
            Ctx {
                decoder: self,
                stash: Some(&stash),
            },
            &mut de,
        )
        .and_then(|v| de.end().map(|()| v))
        {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let at = format!("line {} column {}", e.line(), e.column());
        let mut err = match stash.error.into_inner() {
            Some(err) => err,
            None if e.is_data() => {
                Error::invalid_input("json does not have the expected shape").with_source(e)
            }
            None => Error::from(e),
        };
        if let Some(row) = stash.row.get() {
            err = err.with_context("row", row);
        }
        if let Some(field) = stash
            .field
            .into_inner()
            .filter(|_| err.context_value("field").is_none())
        {
            err = err.with_context("field", field);
        }
        Err(err.with_context("at", at))
    }

    #[inline]
    fn lookup(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(map) => map.get(key).copied(),
            None => self
                .fields
                .iter()
                .position(|f| f.len() == key.len() && f.as_bytes() == key.as_bytes()),
        }
    }
}

/// Where a decode call keeps what serde's string errors cannot carry: the structured error a
/// visitor raised, the index of the failing record and the records path level it was in.
#[derive(Debug, Default)]
struct Stash {
    error: RefCell<Option<Error>>,
    row: Cell<Option<usize>>,
    field: RefCell<Option<String>>,
}

#[derive(Debug, Clone, Copy)]
struct Ctx<'a> {
    decoder: &'a RowDecoder,
    stash: Option<&'a Stash>,
}

impl Ctx<'_> {
    /// Keeps `err` for [`RowDecoder::run`] and returns the string form serde can carry.
    #[cold]
    fn fail<E: de::Error>(self, err: Error) -> E {
        let context: String = err
            .context()
            .iter()
            .map(|(k, v)| format!(", {k}={v}"))
            .collect();
        let e = E::custom(format_args!("{}{context}", err.message()));
        if let Some(stash) = self.stash {
            *stash.error.borrow_mut() = Some(err);
        }
        e
    }

    #[cold]
    fn fail_column<E: de::Error>(self, index: usize, err: Error) -> E {
        self.fail(err.with_context("column", &self.decoder.schema.columns()[index].name))
    }
}

/// Seed for one JSON object into a [`Row`]; see [`RowDecoder::row_seed`].
#[derive(Debug, Clone, Copy)]
pub struct RowSeed<'a> {
    ctx: Ctx<'a>,
}

/// Seed for a JSON array of objects into rows; see [`RowDecoder::rows_seed`].
#[derive(Debug, Clone, Copy)]
pub struct RowsSeed<'a> {
    ctx: Ctx<'a>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let decoder = self.ctx.decoder;
        let mut values = vec![Value::Null; decoder.fields.len()];
        // Columns already set, to catch duplicate fields: a bit set, allocated only past 128 columns.
        let (mut seen, mut seen_wide) = (
            0u128,
            vec![false; if values.len() > 128 { values.len() } else { 0 }],
        );
        while let Some(slot) = map.next_key_seed(KeySeed(decoder))? {
            let Some(i) = slot else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let duplicate = match seen_wide.get_mut(i) {
                Some(flag) => std::mem::replace(flag, true),
                None => {
                    let bit = 1u128 << i;
                    let was = seen;
                    seen |= bit;
                    was & bit != 0
                }
            };
            if duplicate {
                let err = Error::invalid_input("duplicate field")
                    .with_context("field", &decoder.fields[i]);
                return Err(self.ctx.fail_column(i, err));
            }
            values[i] = map.next_value_seed(CellSeed {
                ctx: self.ctx,
                index: i,
            })?;
        }
        Ok(Row::new(values))
    }
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Vec<Row>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Row>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Vec<Row>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of record objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Row>, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            match seq.next_element_seed(RowSeed { ctx: self.ctx }) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => return Ok(rows),
                Err(e) => {
                    if let Some(stash) = self.ctx.stash {
                        stash.row.set(Some(rows.len()));
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// Resolves an object key to a column index inside the visitor: no key is allocated, not even
/// an escaped one (serde_json unescapes into its scratch buffer and lends it to `visit_str`).
struct KeySeed<'a>(&'a RowDecoder);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.lookup(key))
    }
}

/// Decodes one cell for the column at `index`.
#[derive(Clone, Copy)]
struct CellSeed<'a> {
    ctx: Ctx<'a>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Value;
    /// Every cell is read as its raw source text and converted from that: `48160.62` never goes
    /// through f64, a numeric ID wider than 64 bits stays digit for digit, JSON is kept verbatim.
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let raw = <&'de RawValue as de::Deserialize<'de>>::deserialize(d)?.get();
        let ty = self.ctx.decoder.schema.columns()[self.index].ty;
        let cell = match raw.as_bytes()[0] {
            b'n' => Ok(Value::Null),
            _ if ty == ColumnType::Json && nests_deeper_than(raw, MAX_JSON_DEPTH) => {
                Err(Error::invalid_input(format!(
                    "json value nests deeper than {MAX_JSON_DEPTH} levels"
                )))
            }
            _ if ty == ColumnType::Json => Ok(Value::Json(raw.into())),
            b'{' => Err(mismatch(ty, "an object")),
            b'[' => Err(mismatch(ty, "an array")),
            b'"' if !raw.contains('\\') => cell_from_str(ty, &raw[1..raw.len() - 1]),
            b'"' => cell_from_str(
                ty,
                &serde_json::from_str::<String>(raw).map_err(de::Error::custom)?,
            ),
            _ => cell_from_literal(ty, raw),
        };
        cell.map_err(|e| self.ctx.fail_column(self.index, e))
    }
}

/// The error for a value whose JSON kind a column of type `ty` does not take.
#[cold]
pub(crate) fn mismatch(ty: ColumnType, found: &str) -> Error {
    let name = match ty {
        ColumnType::Text => "text",
        ColumnType::Integer => "integer",
        ColumnType::Float => "float",
        ColumnType::Decimal { .. } => "decimal",
        ColumnType::Bool => "bool",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Date => "date",
        ColumnType::Json => "json",
        ColumnType::Bytes => "bytes",
    };
    Error::invalid_input(format!("expected a value of type {name}, found {found}"))
}

/// A cell of type `ty` from the content of a JSON string (the serializer shares these rules):
/// numbers, decimals and dates as [`Value::parse`] reads them, timestamps by [`parse_timestamp`],
/// bools from `true`/`false` only, bytes from standard base64.
pub(crate) fn cell_from_str(ty: ColumnType, s: &str) -> Result<Value> {
    match ty {
        ColumnType::Text => Ok(Value::Text(s.into())),
        ColumnType::Bool if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
        ColumnType::Bool | ColumnType::Json => Err(mismatch(ty, "a string")),
        ColumnType::Timestamp => parse_timestamp(s).map(Value::Timestamp).map_err(|e| {
            Error::invalid_input(format!("cannot parse {s:?} as a timestamp")).with_source(e)
        }),
        ColumnType::Bytes => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| Value::Bytes(b.into()))
            .map_err(|e| Error::invalid_input("bytes are not standard base64").with_source(e)),
        _ => Value::parse(ty, s),
    }
}

/// A cell of type `ty` from a JSON number, `true` or `false`, given as its source text. Text
/// keeps the text; an integer column takes integral numbers up to 2^53 written as floats (`3.0`);
/// a timestamp column takes integer epoch milliseconds.
pub(crate) fn cell_from_literal(ty: ColumnType, raw: &str) -> Result<Value> {
    let is_bool = raw == "true" || raw == "false";
    match ty {
        ColumnType::Text => Ok(Value::Text(raw.into())),
        ColumnType::Bool if is_bool => Ok(Value::Bool(raw == "true")),
        _ if is_bool => Err(mismatch(ty, "a boolean")),
        ColumnType::Integer => match raw.parse::<i64>() {
            Ok(i) => Ok(Value::Integer(i)),
            Err(_) => match raw.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => {
                    Ok(Value::Integer(f as i64))
                }
                _ => Err(mismatch(ty, &format!("the number {raw}"))),
            },
        },
        ColumnType::Float => match raw.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(Error::invalid_input(format!(
                "the number {raw} is out of range for a float"
            ))),
        },
        ColumnType::Decimal { .. } => Value::parse(ty, raw),
        ColumnType::Timestamp => raw
            .parse()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(Value::Timestamp)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "cannot read the number {raw} as epoch milliseconds"
                ))
            }),
        _ => Err(mismatch(ty, "a number")),
    }
}

/// True when `raw` (valid JSON) nests arrays and objects deeper than `limit`. Counting brackets
/// first keeps the common shallow case to one vectorizable pass.
fn nests_deeper_than(raw: &str, limit: usize) -> bool {
    let bytes = raw.as_bytes();
    if bytes.iter().filter(|&&b| b == b'[' || b == b'{').count() <= limit {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'[' | b'{') => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// One level of a records path: an object holding the next level, or (path used up) the array.
#[derive(Clone, Copy)]
struct PageSeed<'a, 'p> {
    ctx: Ctx<'a>,
    path: &'p [&'p str],
    name: Option<&'p str>,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_, '_> {
    type Value = DecodedPage;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DecodedPage, D::Error> {
        d.deserialize_any(self).inspect_err(|_| {
            if let (Some(stash), Some(name)) = (self.ctx.stash, self.name) {
                stash
                    .field
                    .borrow_mut()
                    .get_or_insert_with(|| name.to_owned());
            }
        })
    }
}

impl<'de> Visitor<'de> for PageSeed<'_, '_> {
    type Value = DecodedPage;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.path.is_empty() {
            "an array of record objects"
        } else {
            "a page object"
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<DecodedPage, E> {
        Ok(DecodedPage::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DecodedPage, A::Error> {
        if !self.path.is_empty() {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        Ok(DecodedPage {
            rows: RowsSeed { ctx: self.ctx }.visit_seq(seq)?,
            fields: serde_json::Map::new(),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DecodedPage, A::Error> {
        let Some((&records, rest)) = self.path.split_first() else {
            return Err(de::Error::invalid_type(Unexpected::Map, &self));
        };
        let mut fields = serde_json::Map::new();
        let mut inner: Option<DecodedPage> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != records {
                fields.insert(key, map.next_value()?);
            } else if inner.is_some() {
                return Err(self
                    .ctx
                    .fail(Error::invalid_input("duplicate field").with_context("field", records)));
            } else {
                inner = Some(map.next_value_seed(PageSeed {
                    ctx: self.ctx,
                    path: rest,
                    name: Some(records),
                })?);
            }
        }
        let mut page = inner.unwrap_or_default();
        fields.append(&mut page.fields);
        page.fields = fields;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;
    use crate::ErrorKind;

    const PAGE: &str = r#"{"items":[{"id":"itm-0000000000","updated_at":"2024-01-01T00:00:00.000Z","version":1,"name":"Zulu Alpha 2120","price":48160.62,"payload":{"sku":"SKU-0905807A","tags":["a","b"],"dims":{"w":67.43}}}],"total":1,"offset":0,"limit":1000,"count":1,"has_more":false,"next_offset":null}"#;

    fn decoder() -> RowDecoder {
        let schema = StreamSchema::builder("items")
            .with_column(Column::required("id", ColumnType::Text))
            .with_column(Column::new("updated_at", ColumnType::Timestamp))
            .with_column(Column::new("version", ColumnType::Integer))
            .with_column(Column::new("name", ColumnType::Text))
            .with_column(Column::new(
                "price",
                ColumnType::Decimal {
                    precision: Some(12),
                    scale: Some(2),
                },
            ))
            .with_column(Column::new("payload", ColumnType::Json))
            .with_primary_key(["id"]);
        RowDecoder::new(Arc::new(schema.build().unwrap()))
    }

    fn err_of(json: &str, path: Option<&[&str]>) -> (ErrorKind, String, [Option<String>; 3]) {
        let d = decoder();
        let e = match path {
            Some(path) => d.decode_page(json.as_bytes(), path).unwrap_err(),
            None => d.decode_rows(json.as_bytes()).unwrap_err(),
        };
        let ctx = ["column", "row", "field"].map(|k| e.context_value(k).map(str::to_owned));
        (e.kind(), e.message().to_owned(), ctx)
    }

    fn ctx(column: Option<&str>, row: Option<&str>, field: Option<&str>) -> [Option<String>; 3] {
        [column, row, field].map(|v| v.map(str::to_owned))
    }

    #[test]
    fn benchmark_page_decodes_exactly() {
        let page = decoder().decode_page(PAGE.as_bytes(), &["items"]).unwrap();
        let payload = r#"{"sku":"SKU-0905807A","tags":["a","b"],"dims":{"w":67.43}}"#;
        let row = Row::new(vec![
            Value::from("itm-0000000000"),
            Value::Timestamp(parse_timestamp("2024-01-01T00:00:00Z").unwrap()),
            Value::Integer(1),
            Value::from("Zulu Alpha 2120"),
            Value::Decimal(rust_decimal::Decimal::new(4816062, 2)),
            Value::Json(payload.into()),
        ]);
        assert_eq!(page.rows, [row]);
        let Value::Json(text) = page.rows[0].get(5) else {
            unreachable!()
        };
        let start = PAGE.find(payload).unwrap();
        assert_eq!(
            text.as_bytes(),
            &PAGE.as_bytes()[start..start + payload.len()]
        );
        let want = serde_json::json!({"total":1,"offset":0,"limit":1000,"count":1,"has_more":false,"next_offset":null});
        assert_eq!(serde_json::Value::Object(page.fields), want);
    }

    #[test]
    fn duplicate_fields_are_errors_naming_the_field() {
        let dup = (ErrorKind::InvalidInput, "duplicate field".to_owned());
        let (kind, msg, c) = err_of(r#"[{"id":"a","id":"b"}]"#, None);
        assert_eq!(
            ((kind, msg), c),
            (dup.clone(), ctx(Some("id"), Some("0"), Some("id")))
        );
        let (kind, msg, c) = err_of(
            r#"{"data":{"items":[],"items":[]}}"#,
            Some(&["data", "items"]),
        );
        assert_eq!(((kind, msg), c), (dup, ctx(None, None, Some("items"))));
    }

    #[test]
    fn type_errors_carry_column_and_row() {
        let (kind, msg, c) = err_of(
            r#"[{"id":"a","version":"42"},{"id":"b","version":"x1"}]"#,
            None,
        );
        assert_eq!(
            (kind, c),
            (
                ErrorKind::InvalidInput,
                ctx(Some("version"), Some("1"), None)
            )
        );
        assert!(msg.starts_with(r#"cannot parse "x1" as Integer"#), "{msg}");
        let (_, msg, c) = err_of(
            r#"{"items":[{"id":"a","version":{"n":1}}]}"#,
            Some(&["items"]),
        );
        assert_eq!(
            (msg.as_str(), c),
            (
                "expected a value of type integer, found an object",
                ctx(Some("version"), Some("0"), Some("items"))
            )
        );
        let (_, msg, c) = err_of(r#"[{"id":"a","price":"1.234"}]"#, None);
        assert_eq!(
            (msg.contains("declared precision"), c),
            (true, ctx(Some("price"), Some("0"), None))
        );
        let (_, msg, c) = err_of(r#"[{"id":"a"},"b"]"#, None);
        assert_eq!(
            (msg.as_str(), c),
            (
                "json does not have the expected shape",
                ctx(None, Some("1"), None)
            )
        );
    }

    #[test]
    fn public_seeds_put_the_column_in_the_serde_error() {
        let d = decoder();
        let mut de =
            serde_json::Deserializer::from_str(r#"[{"id":"a"},{"id":"b","version":true}]"#);
        let err = d.rows_seed().deserialize(&mut de).unwrap_err().to_string();
        assert_eq!(
            err,
            "expected a value of type integer, found a boolean, column=version at line 1 column 37"
        );
        let mut de = serde_json::Deserializer::from_str(r#"{"id":7}"#);
        assert_eq!(
            d.row_seed().deserialize(&mut de).unwrap().get(0),
            &Value::from("7")
        );
    }

    #[test]
    fn malformed_json_and_trailing_garbage_are_invalid_input() {
        for bad in [
            r#"[{"id":"a"}"#,
            r#"[{"id":"a"}] x"#,
            r#"[{"id":"a",}]"#,
            "",
            r#"[{"id":"a"}]]"#,
        ] {
            assert_eq!(err_of(bad, None).0, ErrorKind::InvalidInput, "{bad}");
            assert_eq!(err_of(bad, None).1, "malformed json", "{bad}");
        }
        assert_eq!(
            decoder()
                .decode_row(br#"{"id":"a"} {}"#)
                .unwrap_err()
                .message(),
            "malformed json"
        );
        assert_eq!(
            err_of(r#"{"id":"a"}"#, None).1,
            "json does not have the expected shape"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let too_deep = format!("json value nests deeper than {MAX_JSON_DEPTH} levels");
        let (kind, msg, c) = err_of(&format!(r#"[{{"id":"a","payload":{deep}}}]"#), None);
        assert_eq!(
            (kind, msg, c),
            (
                ErrorKind::InvalidInput,
                too_deep,
                ctx(Some("payload"), Some("0"), None)
            )
        );
        let unclosed = format!(r#"[{{"id":"a","payload":{}}}]"#, "[".repeat(100_000));
        assert_eq!(err_of(&unclosed, None).1, "malformed json");
        let (_, msg, _) = err_of(&format!(r#"[{{"id":"a","name":{deep}}}]"#), None);
        assert_eq!(msg, "expected a value of type text, found an array");
        assert_eq!(
            err_of(
                &format!(r#"{{"items":[],"meta":{deep}}}"#),
                Some(&["items"])
            )
            .1,
            "malformed json"
        );
        let limit = "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH);
        let row = decoder()
            .decode_row(format!(r#"{{"id":"a","payload":{limit},"x":{deep}}}"#).as_bytes())
            .unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(row.get(5).as_str().unwrap()).is_ok());
        let quoted = format!(r#"{{"s":"\\{}"}}"#, "[".repeat(300));
        let row = decoder()
            .decode_row(format!(r#"{{"id":"a","payload":{quoted}}}"#).as_bytes())
            .unwrap();
        assert_eq!(row.get(5), &Value::Json(quoted.into()));
    }

    #[test]
    fn escaped_keys_match_and_unknown_or_missing_fields_are_skipped_or_null() {
        let row = decoder()
            .decode_row(br#"{"na\u006de":"x","extra":{"deep":[1,2]},"id":"a\"b"}"#)
            .unwrap();
        let null = Value::Null;
        assert_eq!(
            row.values(),
            [
                Value::from("a\"b"),
                null.clone(),
                null.clone(),
                Value::from("x"),
                null.clone(),
                null
            ]
        );
    }

    #[test]
    fn records_paths_absent_null_nested_and_empty() {
        for body in [r#"{"cursor":null}"#, r#"{"objects":null,"cursor":null}"#] {
            let page = decoder()
                .decode_page(body.as_bytes(), &["objects"])
                .unwrap();
            assert_eq!(
                (page.rows.len(), serde_json::Value::Object(page.fields)),
                (0, serde_json::json!({"cursor":null}))
            );
        }
        let (kind, msg, c) = err_of(r#"{"objects":{"id":"a"}}"#, Some(&["objects"]));
        let shape = "json does not have the expected shape".to_owned();
        assert_eq!(
            (kind, msg, c),
            (
                ErrorKind::InvalidInput,
                shape.clone(),
                ctx(None, None, Some("objects"))
            )
        );
        assert_eq!(err_of(r#"{"data":[]}"#, Some(&["data", "items"])).1, shape);
        assert_eq!(
            err_of(r#"{"data":[]}"#, Some(&["data", "items"])).2,
            ctx(None, None, Some("data"))
        );
        let body =
            br#"{"meta":1,"data":{"items":[{"id":"a"},{"id":"b"}],"@odata.nextLink":"n2","meta":2},"tail":true}"#;
        let page = decoder().decode_page(body, &["data", "items"]).unwrap();
        let ids: Vec<&Value> = page.rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ids, [&Value::from("a"), &Value::from("b")]);
        let want = serde_json::json!({"meta":2,"@odata.nextLink":"n2","tail":true});
        assert_eq!(serde_json::Value::Object(page.fields), want);
        let page = decoder().decode_page(br#" [{"id":"c"}] "#, &[]).unwrap();
        assert_eq!((page.rows.len(), page.fields.len()), (1, 0));
    }

    #[test]
    fn scalars_coerce_per_column_type() {
        let dec = ColumnType::Decimal {
            precision: None,
            scale: None,
        };
        let ts = Value::Timestamp(parse_timestamp("2024-01-01T00:00:00.123Z").unwrap());
        let d = |s: &str| Value::Decimal(s.parse().unwrap());
        let ok: [(ColumnType, &str, Value); 21] = [
            (
                ColumnType::Text,
                "123456789012345678901234567890",
                Value::from("123456789012345678901234567890"),
            ),
            (ColumnType::Text, "1.10", Value::from("1.10")),
            (ColumnType::Text, "true", Value::from("true")),
            (ColumnType::Text, r#""tab\tq\"""#, Value::from("tab\tq\"")),
            (ColumnType::Text, "null", Value::Null),
            (ColumnType::Integer, r#""-42""#, Value::Integer(-42)),
            (ColumnType::Integer, "3.0", Value::Integer(3)),
            (ColumnType::Float, r#""2.5""#, Value::Float(2.5)),
            (ColumnType::Float, "7", Value::Float(7.0)),
            (dec, r#""1.10""#, d("1.10")),
            (
                dec,
                "-0.000000000000000000000000001",
                d("-0.000000000000000000000000001"),
            ),
            (dec, "1e2", d("100")),
            (dec, r#""\u0031.5""#, d("1.5")),
            (ColumnType::Bool, r#""false""#, Value::Bool(false)),
            (ColumnType::Timestamp, "1704067200123", ts.clone()),
            (
                ColumnType::Timestamp,
                r#""2024-01-01 00:00:00.123+0000""#,
                ts,
            ),
            (
                ColumnType::Date,
                r#""2024-02-29""#,
                Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            ),
            (
                ColumnType::Bytes,
                r#""aGk=""#,
                Value::Bytes(b"hi"[..].into()),
            ),
            (
                ColumnType::Json,
                "[1, 2.50]",
                Value::Json("[1, 2.50]".into()),
            ),
            (ColumnType::Json, r#""s""#, Value::Json(r#""s""#.into())),
            (ColumnType::Json, "null", Value::Null),
        ];
        let bad = [
            (ColumnType::Integer, "1.5"),
            (ColumnType::Integer, "9223372036854775808"),
            (ColumnType::Bool, r#""yes""#),
            (ColumnType::Bool, "1"),
            (ColumnType::Date, "20240101"),
            (ColumnType::Bytes, r#""not base64!""#),
            (ColumnType::Timestamp, "1.5"),
            (ColumnType::Float, "1e400"),
            (dec, "[1]"),
            (dec, "true"),
            (ColumnType::Text, "{}"),
        ];
        let schema = |ty| {
            let b =
                StreamSchema::builder("t").with_column(Column::required("k", ColumnType::Integer));
            let b = b
                .with_column(Column::new("c", ty).with_source_field("src"))
                .with_primary_key(["k"]);
            RowDecoder::new(Arc::new(b.build().unwrap()))
        };
        let one =
            |ty, json: &str| schema(ty).decode_row(format!(r#"{{"k":1,"src":{json}}}"#).as_bytes());
        for (ty, json, want) in ok {
            assert_eq!(one(ty, json).unwrap().get(1), &want, "{ty:?} {json}");
        }
        for (ty, json) in bad {
            let err = one(ty, json).unwrap_err();
            assert_eq!(
                (err.kind(), err.context_value("column")),
                (ErrorKind::InvalidInput, Some("c")),
                "{ty:?} {json}"
            );
        }
    }

    #[test]
    fn wide_schemas_use_the_index() {
        let mut b = StreamSchema::builder("wide");
        for i in 0..140 {
            b = b.with_column(Column::new(format!("c{i}"), ColumnType::Integer));
        }
        let d = RowDecoder::new(Arc::new(b.with_primary_key(["c0"]).build().unwrap()));
        assert!(d.index.is_some());
        fn shareable<T: Send + Sync>(_: &T) {}
        shareable(&d);
        let row = d.decode_row(br#"{"c139":139,"c0":0,"zz":1}"#).unwrap();
        assert_eq!(
            (row.get(0), row.get(139), row.get(20)),
            (&Value::Integer(0), &Value::Integer(139), &Value::Null)
        );
        for (dup, field) in [
            (r#"{"c30":1,"c30":2}"#, "c30"),
            (r#"{"c130":1,"c130":2}"#, "c130"),
        ] {
            assert_eq!(
                d.decode_row(dup.as_bytes())
                    .unwrap_err()
                    .context_value("field"),
                Some(field)
            );
        }
    }
}
