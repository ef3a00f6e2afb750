//! Tests of the JSON page decoder.

use super::*;
use crate::schema::Column;
use crate::value::parse_timestamp;
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
    let mut de = serde_json::Deserializer::from_str(r#"[{"id":"a"},{"id":"b","version":true}]"#);
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
    for (body, found) in [
        (r#"{"cursor":null}"#, false),
        (r#"{"objects":null,"cursor":null}"#, true),
    ] {
        let page = decoder()
            .decode_page(body.as_bytes(), &["objects"])
            .unwrap();
        assert_eq!(
            (
                page.rows.len(),
                page.records_found,
                serde_json::Value::Object(page.fields)
            ),
            (0, found, serde_json::json!({"cursor":null}))
        );
    }
    let page = decoder()
        .decode_page(br#"{"data":null}"#, &["data", "items"])
        .unwrap();
    assert!(
        !page.records_found,
        "a null level above the records is not the records"
    );
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
    assert!(page.records_found);
    let ids: Vec<&Value> = page.rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [&Value::from("a"), &Value::from("b")]);
    let want = serde_json::json!({"meta":2,"@odata.nextLink":"n2","tail":true});
    assert_eq!(serde_json::Value::Object(page.fields), want);
    let page = decoder().decode_page(br#" [{"id":"c"}] "#, &[]).unwrap();
    assert_eq!(
        (page.rows.len(), page.fields.len(), page.records_found),
        (1, 0, true)
    );
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
        let b = StreamSchema::builder("t").with_column(Column::required("k", ColumnType::Integer));
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

#[test]
fn invalid_utf8_is_a_typed_error_with_its_position() {
    let mut body = br#"{"items":[{"id":"ab"#.to_vec();
    body.extend_from_slice(&[0xff, b'"', b'}', b']', b'}']);
    let e = decoder().decode_page(&body, &["items"]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(e.context_value("at"), Some("byte 19"));
}
