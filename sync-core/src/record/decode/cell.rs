//! Cell conversion rules shared by the JSON decoder and the serde row serializer.

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::schema::ColumnType;
use crate::value::{parse_timestamp, Value};

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
pub(super) fn nests_deeper_than(raw: &str, limit: usize) -> bool {
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
