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

use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde_json::de::StrRead;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::record::Row;
use crate::schema::{ColumnType, StreamSchema};
use crate::value::Value;

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
    /// Whether the records field was there (as an array or `null`); false when the page lacked
    /// it or a level of the path above it, which some APIs do for an empty page and which
    /// otherwise means a wrong records path.
    pub records_found: bool,
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
            &mut serde_json::Deserializer<StrRead<'j>>,
        ) -> serde_json::Result<T>,
    ) -> Result<T> {
        // One UTF-8 check of the whole input up front, then a `&str` reader: serde_json then
        // neither validates each string nor the raw text of every cell a second time.
        let json = std::str::from_utf8(json).map_err(|e| {
            Error::invalid_input("json is not valid utf-8")
                .with_context("at", format_args!("byte {}", e.valid_up_to()))
                .with_source(e)
        })?;
        let stash = Stash::default();
        let mut de = serde_json::Deserializer::from_str(json);
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
        Ok(DecodedPage {
            records_found: self.path.is_empty(),
            ..DecodedPage::default()
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DecodedPage, A::Error> {
        if !self.path.is_empty() {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        Ok(DecodedPage {
            rows: RowsSeed { ctx: self.ctx }.visit_seq(seq)?,
            fields: serde_json::Map::new(),
            records_found: true,
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

mod cell;
#[cfg(test)]
mod tests;

use cell::nests_deeper_than;
pub(crate) use cell::{cell_from_literal, cell_from_str, mismatch};
