//! Columns inferred from a sample page, for the one-endpoint quick form of the `sync`
//! command. This reads one page into a `serde_json::Value` tree: it is not the hot path.

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sync_core::{Column, ColumnType, Error, Result};

/// A JSON object's fields in document order (`serde_json::Map` sorts them).
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a record object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Ordered(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// What the values of one field looked like across the sample.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Null,
    Timestamp,
    Text,
    Integer,
    Number,
    Bool,
    Json,
}

fn kind(v: &serde_json::Value) -> Seen {
    use serde_json::Value as J;
    match v {
        J::Null => Seen::Null,
        J::Bool(_) => Seen::Bool,
        J::Number(n) if n.is_i64() || n.is_u64() => Seen::Integer,
        J::Number(_) => Seen::Number,
        J::String(s) if sync_core::value::parse_timestamp(s).is_ok() => Seen::Timestamp,
        J::String(_) => Seen::Text,
        J::Array(_) | J::Object(_) => Seen::Json,
    }
}

fn merge(a: Seen, b: Seen) -> Seen {
    use Seen::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Null, x) | (x, Null) => x,
        (Integer, Number) | (Number, Integer) => Number,
        (Timestamp, Text) | (Text, Timestamp) => Text,
        _ => Json,
    }
}

/// Columns for the records at the dotted `records_path` of a sample page, in the order
/// their fields first appear: strings that all read as instants become timestamps, other
/// strings text, whole numbers integers, other numbers exact decimals, objects and arrays
/// JSON, and a field whose kinds conflict JSON. Every column is nullable; the caller makes
/// the key required.
pub fn infer_columns(body: &[u8], records_path: &str) -> Result<Vec<Column>> {
    let no_records = || {
        Error::invalid_input("the sample page has no records array at the records path")
            .with_context("records_path", records_path)
    };
    let mut level: &RawValue = serde_json::from_slice(body)?;
    for part in records_path.split('.').filter(|p| !p.is_empty()) {
        let object: HashMap<&str, &RawValue> =
            serde_json::from_str(level.get()).map_err(|_| no_records())?;
        level = object.get(part).copied().ok_or_else(no_records)?;
    }
    let records: Vec<Ordered> = serde_json::from_str(level.get()).map_err(|e| {
        Error::invalid_input("the sample records are not an array of objects").with_source(e)
    })?;
    let mut fields: Vec<(String, Seen)> = Vec::new();
    for Ordered(obj) in &records {
        for (name, value) in obj {
            match fields.iter_mut().find(|(n, _)| n == name) {
                Some((_, seen)) => *seen = merge(*seen, kind(value)),
                None => fields.push((name.clone(), kind(value))),
            }
        }
    }
    if fields.is_empty() {
        return Err(Error::invalid_input(
            "the sample page has no records to infer columns from",
        ));
    }
    Ok(fields
        .into_iter()
        .map(|(name, seen)| {
            let ty = match seen {
                Seen::Null | Seen::Text => ColumnType::Text,
                Seen::Timestamp => ColumnType::Timestamp,
                Seen::Integer => ColumnType::Integer,
                Seen::Number => ColumnType::Decimal {
                    precision: None,
                    scale: None,
                },
                Seen::Bool => ColumnType::Bool,
                Seen::Json => ColumnType::Json,
            };
            Column::new(name, ty)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_merge_across_records() {
        let body = br#"{"data":{"items":[
            {"id":"a","at":"2024-01-01T00:00:00Z","n":1,"p":1,"ok":true,"o":{"x":1},"m":"x","z":null},
            {"id":"b","at":"2024-01-02T00:00:00.5Z","n":2,"p":2.5,"ok":false,"o":[1],"m":3,"z":"t"}
        ]}}"#;
        let cols = infer_columns(body, "data.items").unwrap();
        let got: Vec<(&str, ColumnType)> = cols.iter().map(|c| (c.name.as_str(), c.ty)).collect();
        let dec = ColumnType::Decimal {
            precision: None,
            scale: None,
        };
        assert_eq!(
            got,
            [
                ("id", ColumnType::Text),
                ("at", ColumnType::Timestamp),
                ("n", ColumnType::Integer),
                ("p", dec),
                ("ok", ColumnType::Bool),
                ("o", ColumnType::Json),
                ("m", ColumnType::Json),
                ("z", ColumnType::Text),
            ]
        );
    }

    #[test]
    fn a_wrong_path_or_an_empty_sample_is_a_typed_error() {
        for (body, path) in [
            (&br#"{"items":[]}"#[..], "items"),
            (br#"{"x":[]}"#, "items"),
        ] {
            assert_eq!(
                infer_columns(body, path).unwrap_err().kind(),
                sync_core::ErrorKind::InvalidInput
            );
        }
    }
}
