//! The user's own serde types converted into rows, and rows back into them.
//!
//! [`to_row`] runs the record's `Serialize` impl against a serializer that writes each field
//! straight into its column, coercing as the JSON decoder does (RFC 3339 text into timestamps,
//! decimal strings into exact decimals, and so on). [`row_to_json`] and [`from_row`] go back.

use std::fmt;

use base64::Engine as _;
use chrono::SecondsFormat;
use serde::de::DeserializeOwned;
use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};

use super::decode::{cell_from_literal, cell_from_str, mismatch};
use crate::error::{Error, Result};
use crate::record::Row;
use crate::schema::{ColumnType, StreamSchema};
use crate::value::Value;

/// Converts a struct or map into a row of `schema`: each field goes to the column whose
/// [`field_name`](crate::schema::Column::field_name) matches, unknown fields are ignored and
/// missing ones are NULL. A JSON column takes any value as its JSON text.
pub fn to_row<T: Serialize + ?Sized>(schema: &StreamSchema, record: &T) -> Result<Row> {
    let mut values = vec![Value::Null; schema.columns().len()];
    record
        .serialize(RowSerializer {
            schema,
            values: &mut values,
        })
        .map_err(|e| e.0)?;
    Ok(Row::new(values))
}

/// Converts records with [`to_row`]; an error names the index of the failing record (`row`).
pub fn to_rows<T: Serialize>(schema: &StreamSchema, records: &[T]) -> Result<Vec<Row>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| to_row(schema, r).map_err(|e| e.with_context("row", i)))
        .collect()
}

/// The row as a JSON object keyed by column name: decimals as exact strings, timestamps as
/// RFC 3339 with `Z`, dates as `YYYY-MM-DD`, bytes as standard base64, NaN floats as null, and
/// JSON columns parsed back (kept as a string if the text does not parse). Missing values are null.
pub fn row_to_json(schema: &StreamSchema, row: &Row) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value as J;
    let mut out = serde_json::Map::with_capacity(schema.columns().len());
    for (i, column) in schema.columns().iter().enumerate() {
        let json = match row.values().get(i).unwrap_or(&Value::Null) {
            Value::Null => J::Null,
            Value::Text(s) => J::String(s.to_string()),
            Value::Integer(n) => J::from(*n),
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::Decimal(d) => J::String(d.to_string()),
            Value::Bool(b) => J::Bool(*b),
            Value::Timestamp(t) => J::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Value::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
            Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.to_string())),
            Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        };
        out.insert(column.name.clone(), json);
    }
    out
}

/// Deserializes the user's type from a row through [`row_to_json`].
pub fn from_row<T: DeserializeOwned>(schema: &StreamSchema, row: &Row) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(row_to_json(schema, row)))
        .map_err(|e| Error::invalid_input("row does not match the target type").with_source(e))
}

/// Carries a structured [`Error`] through serde's serializer error type.
#[derive(Debug)]
struct SerError(Error);

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError(Error::invalid_input(msg.to_string()))
    }
}

type Res<T> = std::result::Result<T, SerError>;

/// The top level: a struct or a map whose fields become cells.
struct RowSerializer<'a> {
    schema: &'a StreamSchema,
    values: &'a mut Vec<Value>,
}

impl RowSerializer<'_> {
    fn set<T: Serialize + ?Sized>(&mut self, field: &str, value: &T) -> Res<()> {
        let columns = self.schema.columns();
        let Some(i) = columns.iter().position(|c| c.field_name() == field) else {
            return Ok(());
        };
        let column = &columns[i];
        let cell = match column.ty {
            ColumnType::Json => match serde_json::to_string(value) {
                Ok(text) if text == "null" => Ok(Value::Null),
                Ok(text) => Ok(Value::Json(text.into_boxed_str())),
                Err(e) => Err(SerError(
                    Error::invalid_input("value does not serialize as json").with_source(e),
                )),
            },
            ty => value.serialize(CellSerializer { ty }),
        };
        self.values[i] = cell.map_err(|SerError(e)| match e.context_value("column") {
            Some(_) => SerError(e),
            None => SerError(e.with_context("column", &column.name)),
        })?;
        Ok(())
    }

    fn reject(&self, found: &str) -> SerError {
        SerError(Error::invalid_input(format!(
            "a record must serialize as a struct or a map, found {found}"
        )))
    }
}

/// Generates `Serializer` methods that turn a value shape away with `self.reject(found)`.
macro_rules! reject {
    ($($method:ident($($arg:ty),*) => $found:literal;)*) => {
        $(fn $method(self $(, _: $arg)*) -> Res<Self::Ok> {
            Err(self.reject($found))
        })*
    };
}

/// Generates the compound `Serializer` methods (sequences, tuples, variants with data), which
/// neither serializer accepts.
macro_rules! reject_compound {
    () => {
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Res<Self::Ok> {
            Err(self.reject("an enum variant with data"))
        }
        fn serialize_seq(self, _: Option<usize>) -> Res<Self::SerializeSeq> {
            Err(self.reject("a sequence"))
        }
        fn serialize_tuple(self, _: usize) -> Res<Self::SerializeTuple> {
            Err(self.reject("a tuple"))
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Res<Self::SerializeTupleStruct> {
            Err(self.reject("a tuple struct"))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Res<Self::SerializeTupleVariant> {
            Err(self.reject("an enum variant with data"))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Res<Self::SerializeStructVariant> {
            Err(self.reject("an enum variant with data"))
        }
    };
}

impl<'a> Serializer for RowSerializer<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = MapFields<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), SerError>;

    reject! {
        serialize_bool(bool) => "a boolean"; serialize_i8(i8) => "a number"; serialize_i16(i16) => "a number";
        serialize_i32(i32) => "a number"; serialize_i64(i64) => "a number"; serialize_u8(u8) => "a number";
        serialize_u16(u16) => "a number"; serialize_u32(u32) => "a number"; serialize_u64(u64) => "a number";
        serialize_f32(f32) => "a number"; serialize_f64(f64) => "a number"; serialize_char(char) => "a string";
        serialize_str(&str) => "a string"; serialize_bytes(&[u8]) => "bytes"; serialize_none() => "none";
        serialize_unit() => "a unit"; serialize_unit_struct(&'static str) => "a unit struct";
        serialize_unit_variant(&'static str, u32, &'static str) => "an enum variant";
    }
    reject_compound!();

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res<()> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Res<()> {
        value.serialize(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Res<MapFields<'a>> {
        Ok(MapFields {
            row: self,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Res<Self> {
        Ok(self)
    }
}

impl SerializeStruct for RowSerializer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res<()> {
        self.set(key, value)
    }
    fn end(self) -> Res<()> {
        Ok(())
    }
}

/// A map record: keys are strings (numbers and booleans as their text).
struct MapFields<'a> {
    row: RowSerializer<'a>,
    key: Option<Box<str>>,
}

impl SerializeMap for MapFields<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res<()> {
        match key.serialize(CellSerializer {
            ty: ColumnType::Text,
        })? {
            Value::Text(k) => self.key = Some(k),
            _ => {
                return Err(SerError(Error::invalid_input(
                    "a record map key must be a string",
                )))
            }
        }
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res<()> {
        let key = self
            .key
            .take()
            .ok_or_else(|| SerError(Error::internal("map value without a key")))?;
        self.row.set(&key, value)
    }
    fn end(self) -> Res<()> {
        Ok(())
    }
}

/// One cell of a non-JSON column: scalars go through the JSON decoder's own coercions, numbers
/// as their shortest round-trip text (so `0.1f64` becomes exactly the decimal 0.1).
struct CellSerializer {
    ty: ColumnType,
}

impl CellSerializer {
    fn reject(&self, found: &str) -> SerError {
        SerError(mismatch(self.ty, found))
    }

    fn literal(self, text: &str) -> Res<Value> {
        cell_from_literal(self.ty, text).map_err(SerError)
    }
}

/// Generates `Serializer` methods that pass a number on as its text.
macro_rules! numbers {
    ($($method:ident($ty:ty);)*) => {
        $(fn $method(self, v: $ty) -> Res<Value> {
            self.literal(&v.to_string())
        })*
    };
}

impl Serializer for CellSerializer {
    type Ok = Value;
    type Error = SerError;
    type SerializeSeq = Impossible<Value, SerError>;
    type SerializeTuple = Impossible<Value, SerError>;
    type SerializeTupleStruct = Impossible<Value, SerError>;
    type SerializeTupleVariant = Impossible<Value, SerError>;
    type SerializeMap = Impossible<Value, SerError>;
    type SerializeStruct = Impossible<Value, SerError>;
    type SerializeStructVariant = Impossible<Value, SerError>;

    reject_compound!();
    numbers! {
        serialize_i8(i8); serialize_i16(i16); serialize_i32(i32); serialize_i64(i64); serialize_i128(i128);
        serialize_u8(u8); serialize_u16(u16); serialize_u32(u32); serialize_u64(u64); serialize_u128(u128);
    }

    fn serialize_f32(self, v: f32) -> Res<Value> {
        match self.ty {
            ColumnType::Float if !v.is_finite() => Ok(Value::Float(v.into())),
            _ => self.literal(&v.to_string()),
        }
    }
    /// NaN and infinities are kept in float columns (JSON cannot carry them, so only here).
    fn serialize_f64(self, v: f64) -> Res<Value> {
        match self.ty {
            ColumnType::Float if !v.is_finite() => Ok(Value::Float(v)),
            _ => self.literal(&v.to_string()),
        }
    }

    fn serialize_map(self, _: Option<usize>) -> Res<Self::SerializeMap> {
        Err(self.reject("a map"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Res<Self::SerializeStruct> {
        Err(self.reject("a struct"))
    }
    fn serialize_bool(self, v: bool) -> Res<Value> {
        self.literal(if v { "true" } else { "false" })
    }
    fn serialize_char(self, v: char) -> Res<Value> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Res<Value> {
        cell_from_str(self.ty, v).map_err(SerError)
    }
    fn serialize_bytes(self, v: &[u8]) -> Res<Value> {
        match self.ty {
            ColumnType::Bytes => Ok(Value::Bytes(v.into())),
            _ => Err(self.reject("bytes")),
        }
    }
    fn serialize_none(self) -> Res<Value> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res<Value> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res<Value> {
        Ok(Value::Null)
    }
    /// A fieldless enum variant is its name, as serde_json writes it.
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Res<Value> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Res<Value> {
        value.serialize(self)
    }
}

#[cfg(test)]
mod tests;
