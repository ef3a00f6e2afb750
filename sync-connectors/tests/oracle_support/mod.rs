//! Test-only helpers for the Oracle connector tests; the fake itself (an `accounts` and an
//! `opportunities` collection with Oracle's paging, `q`, `orderBy`, faults and error bodies)
//! lives in the library as `sync_connectors::fakes::oracle` and is re-exported here.
#![allow(dead_code, unreachable_pub)]

pub use sync_connectors::fakes::oracle::*;

use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::oracle::{OracleBuilder, OracleConfig, OracleMode};
use sync_core::{Column, ColumnType, Row, Value};

/// The test stream's columns.
pub fn columns() -> Vec<Column> {
    vec![
        Column::required("party_id", ColumnType::Integer).with_source_field("PartyId"),
        Column::new("party_number", ColumnType::Text).with_source_field("PartyNumber"),
        Column::new("name", ColumnType::Text).with_source_field("OrganizationName"),
        Column::required("updated_at", ColumnType::Timestamp).with_source_field("LastUpdateDate"),
    ]
}

/// A builder for the fake's accounts in `mode`.
pub fn builder(base_url: &str, mode: OracleMode) -> OracleBuilder {
    let mut b = OracleConfig::builder(base_url, "accounts", "party_id")
        .with_cursor("updated_at")
        .with_mode(mode);
    for c in columns() {
        b = b.with_column(c);
    }
    b
}

/// A client for tests (short total timeout).
pub fn client() -> HttpClient {
    HttpClient::new(HttpConfig {
        total_timeout_ms: Some(10_000),
        error_body_excerpt_bytes: 4096,
        ..HttpConfig::default()
    })
    .unwrap()
}

pub fn party_id(row: &Row) -> i64 {
    match row.get(0) {
        Value::Integer(i) => *i,
        other => panic!("PartyId is an integer, not {other:?}"),
    }
}
