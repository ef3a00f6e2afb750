//! Tests of the serde row conversion.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
use crate::schema::Column;
use crate::ErrorKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meta {
    sku: String,
    tags: Vec<String>,
    w: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: String,
    version: i64,
    updated_at: DateTime<Utc>,
    price: Decimal,
    active: bool,
    note: Option<String>,
    meta: Meta,
    day: NaiveDate,
}

fn schema() -> StreamSchema {
    StreamSchema::builder("items")
        .with_column(Column::required("id", ColumnType::Text))
        .with_column(Column::new("version", ColumnType::Integer))
        .with_column(Column::new("updated_at", ColumnType::Timestamp))
        .with_column(Column::new(
            "price",
            ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
        ))
        .with_column(Column::new("active", ColumnType::Bool))
        .with_column(Column::new("note", ColumnType::Text))
        .with_column(Column::new("meta", ColumnType::Json))
        .with_column(Column::new("day", ColumnType::Date))
        .with_primary_key(["id"])
        .build()
        .unwrap()
}

fn item() -> Item {
    Item {
        id: "itm-1".into(),
        version: 7,
        updated_at: "2024-01-01T00:00:00.123Z".parse().unwrap(),
        price: "48160.62".parse().unwrap(),
        active: true,
        note: None,
        meta: Meta {
            sku: "SKU-1".into(),
            tags: vec!["a".into(), "b".into()],
            w: 67.43,
        },
        day: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
    }
}

#[test]
fn struct_round_trips_through_a_row() {
    let s = schema();
    let row = to_row(&s, &item()).unwrap();
    assert_eq!(
        row.values()[..6],
        [
            Value::from("itm-1"),
            Value::Integer(7),
            Value::Timestamp("2024-01-01T00:00:00.123Z".parse().unwrap()),
            Value::Decimal("48160.62".parse().unwrap()),
            Value::Bool(true),
            Value::Null,
        ]
    );
    assert_eq!(
        row.get(6),
        &Value::Json(r#"{"sku":"SKU-1","tags":["a","b"],"w":67.43}"#.into())
    );
    assert_eq!(
        row.get(7),
        &Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
    );
    assert_eq!(row.check(&s), Ok(()));
    let json = row_to_json(&s, &row);
    assert_eq!(json["price"], json!("48160.62"));
    assert_eq!(json["updated_at"], json!("2024-01-01T00:00:00.123Z"));
    assert_eq!(
        (&json["meta"]["tags"], &json["day"], &json["note"]),
        (&json!(["a", "b"]), &json!("2024-02-29"), &json!(null))
    );
    assert_eq!(from_row::<Item>(&s, &row).unwrap(), item());
}

#[test]
fn from_row_reads_columns_by_name() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct View {
        id: String,
        price: Decimal,
        meta: Meta,
        day: NaiveDate,
        note: Option<String>,
    }
    let s = schema();
    let view: View = from_row(&s, &to_row(&s, &item()).unwrap()).unwrap();
    assert_eq!(
        (view.id.as_str(), view.price.to_string()),
        ("itm-1", "48160.62".to_owned())
    );
    assert_eq!(
        (view.meta, view.day, view.note),
        (item().meta, item().day, None)
    );
    let err = from_row::<Item>(&s, &Row::new(vec![Value::from("x")])).unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::InvalidInput,
            "row does not match the target type"
        )
    );
}

#[test]
fn maps_coerce_like_the_decoder() {
    let s = schema();
    let record = json!({"id": 42, "version": "9", "updated_at": 1704067200123i64, "price": 0.1,
        "active": "false", "note": 1.5, "meta": null, "day": "2024-02-29", "other": [1]});
    let row = to_row(&s, &record).unwrap();
    let want = [
        Value::from("42"),
        Value::Integer(9),
        Value::Timestamp("2024-01-01T00:00:00.123Z".parse().unwrap()),
    ];
    assert_eq!(row.values()[..3], want);
    let Value::Decimal(price) = row.get(3) else {
        panic!("{:?}", row.get(3))
    };
    assert_eq!(price.to_string(), "0.1");
    assert_eq!(
        row.values()[4..7],
        [Value::Bool(false), Value::from("1.5"), Value::Null]
    );
    let map: BTreeMap<&str, i32> = [("price", 12), ("version", 3)].into();
    let row = to_row(&s, &map).unwrap();
    assert_eq!(
        (row.get(1), row.get(3), row.get(0)),
        (&Value::Integer(3), &Value::Decimal(12.into()), &Value::Null)
    );
    let bytes = StreamSchema::builder("b")
        .with_column(Column::required("k", ColumnType::Integer))
        .with_column(Column::new("b", ColumnType::Bytes).with_source_field("blob"))
        .with_primary_key(["k"])
        .build()
        .unwrap();
    let row = to_row(&bytes, &json!({"k": 1u8, "blob": "aGk=", "b": "ignored"})).unwrap();
    assert_eq!(row.get(1), &Value::Bytes(b"hi"[..].into()));
    assert_eq!(
        row_to_json(&bytes, &row),
        json!({"k": 1, "b": "aGk="}).as_object().unwrap().clone()
    );
}

#[test]
fn enums_f32_and_nan_take_their_natural_cells() {
    #[derive(Serialize)]
    enum Status {
        Active,
    }
    #[derive(Serialize)]
    struct Misc {
        status: Status,
        ratio: f32,
        nan: f64,
    }
    let s = StreamSchema::builder("m")
        .with_column(Column::required("status", ColumnType::Text))
        .with_column(Column::new(
            "ratio",
            ColumnType::Decimal {
                precision: None,
                scale: None,
            },
        ))
        .with_column(Column::new("nan", ColumnType::Float))
        .with_primary_key(["status"])
        .build()
        .unwrap();
    let row = to_row(
        &s,
        &Misc {
            status: Status::Active,
            ratio: 0.1,
            nan: f64::NAN,
        },
    )
    .unwrap();
    assert_eq!(
        row.values()[..2],
        [
            Value::from("Active"),
            Value::Decimal("0.1".parse().unwrap())
        ]
    );
    assert!(
        matches!(row.get(2), Value::Float(x) if x.is_nan()),
        "{:?}",
        row.get(2)
    );
}

#[test]
fn bad_shapes_are_invalid_input_with_column_and_row() {
    let s = schema();
    for (record, column) in [
        (json!({"id": "a", "version": [1]}), "version"),
        (json!({"id": "a", "version": u64::MAX}), "version"),
        (json!({"id": "a", "version": 1.5}), "version"),
        (json!({"id": "a", "price": "1.234"}), "price"),
        (json!({"id": "a", "active": {"x": 1}}), "active"),
        (json!({"id": "a", "updated_at": "soon"}), "updated_at"),
    ] {
        let err = to_row(&s, &record).unwrap_err();
        assert_eq!(
            (err.kind(), err.context_value("column")),
            (ErrorKind::InvalidInput, Some(column)),
            "{record}"
        );
    }
    let err = to_row(&s, &5).unwrap_err();
    assert_eq!(
        err.message(),
        "a record must serialize as a struct or a map, found a number"
    );
    let err = to_rows(
        &s,
        &[json!({"id": "a"}), json!({"id": "b", "version": "x"})],
    )
    .unwrap_err();
    assert_eq!(
        (err.context_value("column"), err.context_value("row")),
        (Some("version"), Some("1"))
    );
}

#[test]
fn row_to_json_formats_every_type() {
    let s = StreamSchema::builder("t")
        .with_column(Column::required("k", ColumnType::Integer))
        .with_column(Column::new("f", ColumnType::Float))
        .with_column(Column::new("j", ColumnType::Json))
        .with_column(Column::new("ts", ColumnType::Timestamp))
        .with_column(Column::new(
            "d",
            ColumnType::Decimal {
                precision: None,
                scale: None,
            },
        ))
        .with_column(Column::new("missing", ColumnType::Text))
        .with_primary_key(["k"])
        .build()
        .unwrap();
    let row = Row::new(vec![
        Value::Integer(1),
        Value::Float(f64::NAN),
        Value::Json("{not json".into()),
        Value::Timestamp("2024-01-01T00:00:00Z".parse().unwrap()),
        Value::Decimal("1.50".parse().unwrap()),
    ]);
    let want = json!({"k": 1, "f": null, "j": "{not json", "ts": "2024-01-01T00:00:00Z", "d": "1.50", "missing": null});
    assert_eq!(serde_json::Value::Object(row_to_json(&s, &row)), want);
}
