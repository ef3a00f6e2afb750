//! Cell values: the internal representation every store bulk-loads without re-parsing.
//!
//! Each variant is already in its final typed form (an `i64`, a UTC instant, a decimal, the
//! JSON text of a document), so a store encodes it straight into COPY binary or a bound
//! parameter.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::ColumnType;

/// One typed cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Text.
    Text(Box<str>),
    /// 64-bit integer.
    Integer(i64),
    /// 64-bit float.
    Float(f64),
    /// Exact decimal.
    Decimal(Decimal),
    /// Boolean.
    Bool(bool),
    /// Instant in UTC.
    Timestamp(DateTime<Utc>),
    /// Calendar date.
    Date(NaiveDate),
    /// JSON document text (valid JSON, not re-parsed).
    Json(Box<str>),
    /// Raw bytes.
    Bytes(Box<[u8]>),
}

impl Value {
    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The column type this value belongs to, or `None` for NULL.
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Text(_) => ColumnType::Text,
            Value::Integer(_) => ColumnType::Integer,
            Value::Float(_) => ColumnType::Float,
            Value::Decimal(_) => ColumnType::Decimal {
                precision: None,
                scale: None,
            },
            Value::Bool(_) => ColumnType::Bool,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::Date(_) => ColumnType::Date,
            Value::Json(_) => ColumnType::Json,
            Value::Bytes(_) => ColumnType::Bytes,
        })
    }

    /// True when the value may be stored in a column of type `ty` (NULL fits every type;
    /// nullability is checked separately).
    pub fn fits(&self, ty: ColumnType) -> bool {
        match (self, ty) {
            (Value::Null, _) => true,
            (Value::Decimal(d), ColumnType::Decimal { precision, scale }) => {
                decimal_fits(d, precision, scale)
            }
            (v, ty) => v.column_type() == Some(ty),
        }
    }

    /// Text content, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// Integer content, if this is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// True when both hold the same data, JSON compared as documents rather than as text:
    /// a store may keep JSON in a normalized form (PostgreSQL's `jsonb` reorders keys and
    /// drops whitespace), so `{"b":1,"a":2}` read back as `{"a": 2, "b": 1}` is the same
    /// data. Every other type compares as `==` does.
    pub fn same_data(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Json(a), Value::Json(b)) => {
                a == b
                    || matches!(
                        (
                            serde_json::from_str::<serde_json::Value>(a),
                            serde_json::from_str::<serde_json::Value>(b),
                        ),
                        (Ok(x), Ok(y)) if x == y
                    )
            }
            (a, b) => a == b,
        }
    }

    /// Orders two values of the same type; NULL sorts first. Values of different types do
    /// not compare (`None`), and neither do NaN floats.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, Null) => Some(Ordering::Equal),
            (Null, _) => Some(Ordering::Less),
            (_, Null) => Some(Ordering::Greater),
            (Text(a), Text(b)) | (Json(a), Json(b)) => Some(a.cmp(b)),
            (Integer(a), Integer(b)) => Some(a.cmp(b)),
            (Float(a), Float(b)) => a.partial_cmp(b),
            (Decimal(a), Decimal(b)) => Some(a.cmp(b)),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Parses text into a value of type `ty` (used for query parameters, CSV, config).
    pub fn parse(ty: ColumnType, text: &str) -> Result<Value> {
        let bad = |e: &dyn fmt::Display| {
            Error::invalid_input(format!("cannot parse {text:?} as {ty:?}: {e}"))
        };
        Ok(match ty {
            ColumnType::Text => Value::Text(text.into()),
            ColumnType::Integer => Value::Integer(text.trim().parse().map_err(|e| bad(&e))?),
            ColumnType::Float => Value::Float(text.trim().parse().map_err(|e| bad(&e))?),
            ColumnType::Decimal { precision, scale } => {
                let d = parse_decimal(text).map_err(|e| bad(&e))?;
                if !decimal_fits(&d, precision, scale) {
                    return Err(bad(&"out of range for the declared precision"));
                }
                Value::Decimal(d)
            }
            ColumnType::Bool => Value::Bool(match text.trim() {
                "true" | "t" | "1" => true,
                "false" | "f" | "0" => false,
                _ => return Err(bad(&"expected true or false")),
            }),
            ColumnType::Timestamp => Value::Timestamp(parse_timestamp(text).map_err(|e| bad(&e))?),
            ColumnType::Date => Value::Date(
                NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|e| bad(&e))?,
            ),
            ColumnType::Json => {
                serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| bad(&e))?;
                Value::Json(text.into())
            }
            ColumnType::Bytes => Value::Bytes(text.as_bytes().into()),
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Text(s) | Value::Json(s) => f.write_str(s),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Timestamp(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
            Value::Date(d) => write!(f, "{d}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s.into_boxed_str())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Self {
        Value::Timestamp(t)
    }
}
impl From<Decimal> for Value {
    fn from(d: Decimal) -> Self {
        Value::Decimal(d)
    }
}

/// Parses a decimal in plain or scientific notation.
pub fn parse_decimal(text: &str) -> std::result::Result<Decimal, rust_decimal::Error> {
    let t = text.trim();
    if t.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        // Exact: more significant digits than a Decimal holds is an error, not a rounding.
        Decimal::from_str_exact(t)
    }
}

fn decimal_fits(d: &Decimal, precision: Option<u8>, scale: Option<u8>) -> bool {
    let d = match scale {
        Some(s) if d.scale() > u32::from(s) => return false,
        Some(s) => {
            let mut d = *d;
            d.rescale(u32::from(s));
            d
        }
        None => *d,
    };
    match precision {
        Some(p) => {
            let digits = d
                .mantissa()
                .unsigned_abs()
                .checked_ilog10()
                .map_or(1, |l| l + 1);
            digits <= u32::from(p)
        }
        None => true,
    }
}

/// Parses an instant: RFC 3339 (`T` or space separator, `Z` or offset with or without a
/// colon, e.g. `2016-07-06 22:04:04.380+0000`) or a naive timestamp taken as UTC.
pub fn parse_timestamp(text: &str) -> std::result::Result<DateTime<Utc>, chrono::ParseError> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    let formats = [
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ];
    let mut last = None;
    for f in formats {
        match DateTime::parse_from_str(t, f) {
            Ok(dt) => return Ok(dt.with_timezone(&Utc)),
            Err(e) => last = Some(e),
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(n.and_utc());
        }
    }
    Err(last.expect("at least one format was tried"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_data_compares_json_as_documents() {
        use crate::record::Row;
        let wire = Value::Json(r#"{"b":1,"a":[2,{"c":null}]}"#.into());
        let normalized = Value::Json(r#"{"a": [2, {"c": null}], "b": 1}"#.into());
        assert!(wire.same_data(&normalized));
        assert_ne!(wire, normalized, "the text differs");
        assert!(!wire.same_data(&Value::Json(r#"{"a":[2],"b":1}"#.into())));
        assert!(!Value::Json("{".into()).same_data(&Value::Json("{ ".into())));
        assert!(Value::from(3).same_data(&Value::from(3)));
        assert!(!Value::Text("{}".into()).same_data(&Value::Json("{}".into())));
        let row = |v: &Value| Row::new(vec![Value::from("k"), v.clone()]);
        assert!(row(&wire).same_data(&row(&normalized)));
        assert!(!row(&wire).same_data(&Row::new(vec![Value::from("k")])));
    }

    #[test]
    fn timestamps_in_vendor_formats_parse_to_the_same_instant() {
        let a = parse_timestamp("2016-07-06T22:04:04.380Z").unwrap();
        for s in [
            "2016-07-06 22:04:04.380+0000",
            "2016-07-06T22:04:04.38+00:00",
            "2016-07-06 22:04:04.380",
        ] {
            assert_eq!(parse_timestamp(s).unwrap(), a, "{s}");
        }
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn decimals_respect_declared_precision_and_scale() {
        let ty = ColumnType::Decimal {
            precision: Some(12),
            scale: Some(2),
        };
        assert_eq!(
            Value::parse(ty, "48160.62").unwrap(),
            Value::Decimal("48160.62".parse().unwrap())
        );
        assert!(Value::parse(ty, "1.234").is_err());
        assert!(Value::parse(ty, "12345678901.5").is_err());
        assert_eq!(
            Value::parse(ty, "1e2").unwrap(),
            Value::Decimal(Decimal::from(100))
        );
        let too_precise = ColumnType::Decimal {
            precision: None,
            scale: None,
        };
        assert!(Value::parse(too_precise, "0.123456789012345678901234567891234").is_err());
    }

    #[test]
    fn compare_orders_same_types_only() {
        assert_eq!(
            Value::from(1).compare(&Value::from(2)),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Null.compare(&Value::from("a")), Some(Ordering::Less));
        assert_eq!(Value::from(1).compare(&Value::from("1")), None);
        assert_eq!(Value::Float(f64::NAN).compare(&Value::Float(1.0)), None);
    }

    #[test]
    fn parse_rejects_bad_json_and_bools() {
        assert!(Value::parse(ColumnType::Json, "{\"a\":").is_err());
        assert!(Value::parse(ColumnType::Bool, "yes").is_err());
        assert_eq!(
            Value::parse(ColumnType::Bool, "t").unwrap(),
            Value::Bool(true)
        );
    }
}
