//! Rows as Dataverse operations: the alternate-key URL segment, the entity JSON body, the
//! error body, and the per-record results of a delivery.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use sync_core::{Error, ErrorKind, Key, Result, RetryClass, Row, StreamSchema, Value};

use super::config::{EntityMapping, LookupMapping};

/// What a delivery asked for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    /// Create or update by alternate key (`PATCH`).
    Upsert,
    /// Delete by alternate key (`DELETE`).
    Delete,
}

/// One record Dataverse did not accept, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFailure {
    /// The record's key in the stream.
    pub key: Key,
    /// Upsert or delete.
    pub action: RecordAction,
    /// The alternate key as sent in the URL (`accountnumber='A-1'`), when it could be built.
    pub alternate_key: Option<String>,
    /// The operation's HTTP status, `None` when it never got one (refused before sending,
    /// rolled back with its changeset, or no response part).
    pub status: Option<u16>,
    /// Dataverse's error code (`0x80044331`), often empty.
    pub code: Option<String>,
    /// Dataverse's error message, or why the operation was not sent.
    pub message: String,
    /// Whether sending it again may succeed.
    pub retry: RetryClass,
}

impl fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            RecordAction::Upsert => "upsert",
            RecordAction::Delete => "delete",
        };
        match &self.alternate_key {
            Some(k) => write!(f, "{action} ({k})")?,
            None => write!(f, "{action} {:?}", self.key)?,
        }
        if let Some(status) = self.status {
            write!(f, ": {status}")?;
        } else {
            f.write_str(":")?;
        }
        if let Some(code) = self.code.as_deref().filter(|c| !c.is_empty()) {
            write!(f, " {code}")?;
        }
        write!(f, " {}", self.message)
    }
}

/// What a delivery to Dataverse did, record by record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryOutcome {
    /// Records accepted (created, updated or deleted; a delete of a missing record counts).
    pub delivered: u64,
    /// Records not accepted.
    pub failures: Vec<RecordFailure>,
    /// `$batch` requests sent (retries of a whole request not counted).
    pub batches: u32,
    /// Upserts that lost the first-insert race ("matching key values already exists") and
    /// were sent again as updates.
    pub race_retries: u32,
}

/// The kind of request one operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `PATCH` without condition: create or update.
    Upsert,
    /// `PATCH` with `If-Match: *`: update only (after losing the insert race).
    Update,
    /// `DELETE`.
    Delete,
}

/// One operation of a batch.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// The record's key in the stream.
    pub(crate) key: Key,
    pub(crate) kind: OpKind,
    /// `accountnumber='A-1'` (what goes between the parentheses, percent-encoded).
    pub(crate) alternate_key: String,
    /// `accounts(accountnumber='A-1')`.
    pub(crate) path: String,
    /// The JSON body of an upsert or update.
    pub(crate) body: Option<String>,
    /// Send it in a changeset of its own (its changeset failed without naming the culprit).
    pub(crate) isolate: bool,
}

impl Operation {
    pub(crate) fn action(&self) -> RecordAction {
        match self.kind {
            OpKind::Delete => RecordAction::Delete,
            OpKind::Upsert | OpKind::Update => RecordAction::Upsert,
        }
    }

    /// The failure of this operation.
    pub(crate) fn failure(
        &self,
        status: Option<u16>,
        code: Option<String>,
        message: impl Into<String>,
        retry: RetryClass,
    ) -> RecordFailure {
        RecordFailure {
            key: self.key.clone(),
            action: self.action(),
            alternate_key: Some(self.alternate_key.clone()),
            status,
            code,
            message: message.into(),
            retry,
        }
    }
}

/// Column indexes of a mapping resolved against a schema.
#[derive(Debug)]
pub(crate) struct Resolved<'a> {
    mapping: &'a EntityMapping,
    keys: Vec<usize>,
    attributes: Vec<usize>,
    lookups: Vec<usize>,
}

impl<'a> Resolved<'a> {
    pub(crate) fn new(mapping: &'a EntityMapping, schema: &StreamSchema) -> Result<Self> {
        mapping.check_schema(schema)?;
        let index = |c: &str| schema.column_index(c).expect("checked by check_schema");
        Ok(Resolved {
            mapping,
            keys: mapping
                .alternate_key
                .iter()
                .map(|m| index(&m.column))
                .collect(),
            attributes: mapping
                .attributes
                .iter()
                .map(|m| index(&m.column))
                .collect(),
            lookups: mapping.lookups.iter().map(|l| index(&l.column)).collect(),
        })
    }

    /// The alternate key segment of `row`: `attr='value',attr2=2`.
    fn key_segment(&self, row: &Row) -> Result<String> {
        let mut out = String::new();
        for (m, &i) in self.mapping.alternate_key.iter().zip(&self.keys) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&m.attribute);
            out.push('=');
            out.push_str(
                &key_literal(row.get(i)).map_err(|e| e.with_context("column", &m.column))?,
            );
        }
        Ok(out)
    }

    /// The upsert of `row`: key segment in the URL, the other attributes in the body.
    pub(crate) fn upsert(&self, key: Key, row: &Row) -> std::result::Result<Operation, String> {
        let segment = self.key_segment(row).map_err(|e| describe(&e))?;
        let mut body = String::from("{");
        let mut first = true;
        let mut field = |name: &str, raw: &str| {
            if !first {
                body.push(',');
            }
            first = false;
            body.push_str(&serde_json::to_string(name).expect("string serializes"));
            body.push(':');
            body.push_str(raw);
        };
        for (m, &i) in self.mapping.attributes.iter().zip(&self.attributes) {
            let raw = json_literal(row.get(i))
                .map_err(|e| describe(&e.with_context("column", &m.column)))?;
            field(&m.attribute, &raw);
        }
        for (l, &i) in self.mapping.lookups.iter().zip(&self.lookups) {
            if let Some(bind) = lookup_bind(l, row.get(i))
                .map_err(|e| describe(&e.with_context("column", &l.column)))?
            {
                let name = format!("{}@odata.bind", l.navigation_property);
                field(
                    &name,
                    &serde_json::to_string(&bind).expect("string serializes"),
                );
            }
        }
        body.push('}');
        Ok(self.operation(key, OpKind::Upsert, segment, Some(body)))
    }

    /// The delete of the record with stream key `key` (its values in key-column order).
    pub(crate) fn delete(
        &self,
        key: Key,
        schema: &StreamSchema,
    ) -> std::result::Result<Operation, String> {
        // A delete carries only the stream key: build a row holding it in place.
        let mut values = vec![Value::Null; schema.columns().len()];
        for (&i, v) in schema.primary_key().iter().zip(&key.0) {
            values[i] = v.clone();
        }
        if self.keys.iter().any(|i| !schema.primary_key().contains(i)) {
            return Err(
                "a delete needs the alternate key columns to be primary key columns of the stream"
                    .into(),
            );
        }
        let segment = self
            .key_segment(&Row::new(values))
            .map_err(|e| describe(&e))?;
        Ok(self.operation(key, OpKind::Delete, segment, None))
    }

    fn operation(
        &self,
        key: Key,
        kind: OpKind,
        segment: String,
        body: Option<String>,
    ) -> Operation {
        Operation {
            key,
            kind,
            path: format!("{}({segment})", self.mapping.entity_set),
            alternate_key: segment,
            body,
            isolate: false,
        }
    }
}

fn describe(e: &Error) -> String {
    match e.context_value("column") {
        Some(column) => format!("{} (column {column})", e.message()),
        None => e.message().to_owned(),
    }
}

/// Characters Dataverse cannot address by alternate key, even percent-encoded.
const RESERVED_IN_KEYS: &[char] = &['/', '<', '>', '*', '%', '&', ':', '\\', '?', '+', '#'];

/// An OData key literal: strings quoted with `'` doubled, then percent-encoded.
pub(crate) fn key_literal(value: &Value) -> Result<String> {
    let invalid = |m: &str| Error::invalid_input(m.to_owned()).permanent();
    Ok(match value {
        Value::Null => return Err(invalid("alternate key value is null")),
        Value::Text(s) => {
            if s.is_empty() {
                return Err(invalid("alternate key value is empty"));
            }
            if let Some(c) = s
                .chars()
                .find(|c| RESERVED_IN_KEYS.contains(c) || c.is_control())
            {
                return Err(invalid(&format!(
                    "alternate key value contains {c:?}, which dataverse cannot address by key"
                )));
            }
            let quoted = format!("'{}'", s.replace('\'', "''"));
            percent_encode(&quoted)
        }
        Value::Integer(i) => i.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(f) if f.is_finite() => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Timestamp(t) => {
            percent_encode(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        _ => {
            return Err(invalid(
                "alternate key value has a type dataverse keys cannot hold",
            ))
        }
    })
}

/// Percent-encodes everything but unreserved characters and `'` (the OData string quote).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'\'') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The JSON text of a value in an entity body.
pub(crate) fn json_literal(value: &Value) -> Result<String> {
    let quote = |s: &str| serde_json::to_string(s).expect("string serializes");
    Ok(match value {
        Value::Null => "null".into(),
        Value::Text(s) => quote(s),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => serde_json::to_string(f).expect("finite float"),
        Value::Float(_) => {
            return Err(Error::invalid_input(
                "a float that is not finite has no json form",
            ))
        }
        Value::Decimal(d) => d.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Timestamp(t) => quote(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        Value::Date(d) => quote(&d.format("%Y-%m-%d").to_string()),
        Value::Json(text) => text.to_string(),
        Value::Bytes(b) => quote(&base64::engine::general_purpose::STANDARD.encode(b)),
    })
}

/// `/<entity_set>(<key>)` for a lookup value; `None` for NULL (the lookup is left as is).
fn lookup_bind(lookup: &LookupMapping, value: &Value) -> Result<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    let key = match &lookup.key_attribute {
        Some(attr) => format!("{attr}={}", key_literal(value)?),
        None => match value {
            Value::Text(guid) if is_guid(guid) => guid.to_string(),
            _ => return Err(Error::invalid_input("lookup value is not a guid")),
        },
    };
    Ok(Some(format!("/{}({key})", lookup.entity_set)))
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `{"error":{"code":..,"message":..}}`; a body that is not that gives its start as message.
pub(crate) fn parse_error_body(body: &str) -> (Option<String>, String) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(Envelope { error }) => (
            error.code.filter(|c| !c.is_empty()),
            error.message.unwrap_or_default(),
        ),
        Err(_) => {
            let text: String = body.trim().chars().take(200).collect();
            (
                None,
                if text.is_empty() {
                    "no error body".into()
                } else {
                    text
                },
            )
        }
    }
}

/// The error code of a duplicate key (`DuplicateRecord`, -2147220937).
pub(crate) const DUPLICATE_RECORD: &str = "0x80040237";

/// True when a failed upsert lost the race against a concurrent first insert of the same key.
pub(crate) fn is_insert_race(status: u16, code: Option<&str>, message: &str) -> bool {
    matches!(status, 409 | 412)
        && (code.is_some_and(|c| c.eq_ignore_ascii_case(DUPLICATE_RECORD))
            || message
                .to_ascii_lowercase()
                .contains("matching key values already exists"))
}

/// An error for a response Dataverse should not have sent.
pub(crate) fn bad_response(message: &str) -> Error {
    Error::new(ErrorKind::InvalidInput, message.to_owned())
        .permanent()
        .with_context("connector", "dataverse")
        .with_context("endpoint", "$batch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_keys_double_quotes_and_percent_encode() {
        assert_eq!(key_literal(&Value::from("A'B")).unwrap(), "'A''B'");
        assert_eq!(
            key_literal(&Value::from("Men's shoes")).unwrap(),
            "'Men''s%20shoes'"
        );
        assert_eq!(key_literal(&Value::from("é")).unwrap(), "'%C3%A9'");
        assert_eq!(key_literal(&Value::from(42)).unwrap(), "42");
        for bad in ["a/b", "50%", "x:y", "a#b", "a+b", ""] {
            assert!(key_literal(&Value::from(bad)).is_err(), "{bad}");
        }
        assert!(key_literal(&Value::Null).is_err());
    }

    #[test]
    fn json_values_keep_their_types() {
        assert_eq!(json_literal(&Value::from("a\"b")).unwrap(), r#""a\"b""#);
        assert_eq!(json_literal(&Value::Null).unwrap(), "null");
        let ty = sync_core::ColumnType::Decimal {
            precision: None,
            scale: None,
        };
        let d = Value::parse(ty, "12.50").unwrap();
        assert_eq!(json_literal(&d).unwrap(), "12.50");
        assert!(json_literal(&Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn the_insert_race_is_recognised_by_code_or_message() {
        assert!(is_insert_race(
            412,
            None,
            "A record with matching key values already exists."
        ));
        assert!(is_insert_race(409, Some("0x80040237"), ""));
        assert!(!is_insert_race(400, Some("0x80040237"), ""));
        assert!(!is_insert_race(
            412,
            None,
            "The version of the existing record doesn't match"
        ));
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let (code, msg) = parse_error_body(r#"{"error":{"code":"","message":"nope"}}"#);
        assert_eq!((code, msg.as_str()), (None, "nope"));
        let (code, msg) = parse_error_body("<html>oops</html>");
        assert_eq!((code, msg.as_str()), (None, "<html>oops</html>"));
    }
}
