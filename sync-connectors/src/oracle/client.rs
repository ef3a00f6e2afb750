//! Requests to an Oracle Fusion collection: the `q` expression built from the page request
//! (the configured filter, the cursor bounds, the keyset condition), `orderBy`, `fields`,
//! `onlyData`, `finder`, `limit`/`offset`, the pinned framework version; and sending it
//! through the shared [`HttpClient`] with Oracle's error body read into the error.

use sync_core::{ColumnType, CursorKey, Error, Result, StreamSchema, Value};

use super::config::OracleConfig;
use super::model::with_oracle_detail;
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::rest::CursorFormat;

/// `LastUpdateDate` literals: ISO 8601 with an offset, whole seconds (Oracle's precision).
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%:z";

/// What every request of one resource shares.
#[derive(Debug, Clone)]
pub(crate) struct Requests {
    url: String,
    cursor_attr: String,
    key_attr: String,
    key_type: ColumnType,
    fields: String,
    order_by: String,
    finder: Option<String>,
    filter: Option<String>,
    framework_version: String,
    total_results: bool,
    format: CursorFormat,
}

impl Requests {
    pub(crate) fn new(config: &OracleConfig, schema: &StreamSchema) -> Requests {
        let cols = schema.columns();
        let cursor = &cols[schema.cursor()[0]];
        let key = &cols[schema.primary_key()[0]];
        let fields: Vec<&str> = cols.iter().map(|c| c.field_name()).collect();
        Requests {
            url: config.url(),
            cursor_attr: cursor.field_name().to_owned(),
            key_attr: key.field_name().to_owned(),
            key_type: key.ty,
            fields: fields.join(","),
            order_by: format!("{}:asc,{}:asc", cursor.field_name(), key.field_name()),
            finder: config.finder.clone(),
            filter: config.filter.clone(),
            framework_version: config.framework_version.to_string(),
            total_results: config.total_results,
            format: CursorFormat::Strftime(TIME_FORMAT.into()),
        }
    }

    /// A quoted timestamp literal; `lower` rounds down to the second, else up, so the bound
    /// sent covers the inclusive range asked for (the source drops the extra records).
    fn time(&self, value: &Value, lower: bool) -> Result<String> {
        Ok(format!("'{}'", self.format.write(value, 0, lower)?))
    }

    /// A key literal: an integer as is, text quoted with `'` doubled.
    fn key(&self, value: &Value) -> Result<String> {
        match (self.key_type, value) {
            (ColumnType::Integer, Value::Integer(i)) => Ok(i.to_string()),
            (ColumnType::Text, Value::Text(s)) => Ok(format!("'{}'", s.replace('\'', "''"))),
            (_, other) => Err(Error::invalid_input(
                "a keyset key does not have the key column's type",
            )
            .with_context("key", other)),
        }
    }

    /// The `q` expression: the configured filter, `cursor >= since`, `cursor <= until` and,
    /// after a record, `(cursor > T or (cursor = T and key > K))`, joined with `and`.
    pub(crate) fn q(
        &self,
        since: Option<&Value>,
        until: Option<&Value>,
        after: Option<&CursorKey>,
    ) -> Result<Option<String>> {
        let c = &self.cursor_attr;
        let mut parts = Vec::new();
        if let Some(filter) = &self.filter {
            parts.push(format!("({filter})"));
        }
        if let Some(since) = since {
            parts.push(format!("{c} >= {}", self.time(since, true)?));
        }
        if let Some(until) = until {
            parts.push(format!("{c} <= {}", self.time(until, false)?));
        }
        if let Some(after) = after {
            let at = after
                .cursor
                .first()
                .ok_or_else(|| Error::invalid_input("a keyset selector without a cursor value"))?;
            let t = self.time(at, true)?;
            parts.push(match after.key.as_ref().and_then(|k| k.0.first()) {
                Some(k) => format!(
                    "({c} > {t} or ({c} = {t} and {} > {}))",
                    self.key_attr,
                    self.key(k)?
                ),
                None => format!("{c} > {t}"),
            });
        }
        Ok((!parts.is_empty()).then(|| parts.join(" and ")))
    }

    /// The request for `limit` records from `offset` matching `q`.
    pub(crate) fn request(&self, offset: u64, limit: u32, q: Option<&str>) -> HttpRequest {
        let mut req = HttpRequest::get(&self.url)
            .with_header("REST-Framework-Version", &self.framework_version)
            .with_header(
                "Accept",
                "application/json, application/vnd.oracle.adf.error+json",
            )
            .with_query("onlyData", "true")
            .with_query("fields", &self.fields)
            .with_query("orderBy", &self.order_by)
            .with_query("limit", limit.to_string())
            .with_query("offset", offset.to_string());
        if let Some(q) = q {
            req = req.with_query("q", q);
        }
        if let Some(finder) = &self.finder {
            req = req.with_query("finder", finder);
        }
        if self.total_results {
            req = req.with_query("totalResults", "true");
        }
        req
    }
}

/// Sends `request`; a failure keeps its HTTP classification and gains Oracle's `detail`,
/// `error_code` and `error_path`.
pub(crate) async fn send(client: &HttpClient, request: &HttpRequest) -> Result<HttpResponse> {
    client.execute(request).await.map_err(with_oracle_detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::{Column, Key};

    fn requests(key_type: ColumnType, filter: Option<&str>) -> Requests {
        let mut b = OracleConfig::builder(
            "https://pod.fa.em2.oraclecloud.com/crmRestApi/resources/latest",
            "accounts",
            "id",
        )
        .with_column(Column::required("id", key_type).with_source_field("PartyId"))
        .with_column(
            Column::required("updated", ColumnType::Timestamp).with_source_field("LastUpdateDate"),
        )
        .with_cursor("updated");
        if let Some(f) = filter {
            b = b.with_filter(f);
        }
        let config = b.build().unwrap();
        Requests::new(&config, &config.schema().unwrap())
    }

    fn at(s: &str) -> Value {
        Value::Timestamp(s.parse().unwrap())
    }

    #[test]
    fn q_combines_filter_bounds_and_keyset() {
        let r = requests(ColumnType::Integer, Some("StatusCode = 'A'"));
        let after = CursorKey {
            cursor: vec![at("2024-05-01T12:00:01Z")],
            key: Some(Key(vec![Value::Integer(300)])),
        };
        let q = r
            .q(
                Some(&at("2024-05-01T00:00:00.700Z")),
                Some(&at("2024-05-02T00:00:00.200Z")),
                Some(&after),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            q,
            "(StatusCode = 'A') and LastUpdateDate >= '2024-05-01T00:00:00+00:00' \
             and LastUpdateDate <= '2024-05-02T00:00:01+00:00' \
             and (LastUpdateDate > '2024-05-01T12:00:01+00:00' or \
             (LastUpdateDate = '2024-05-01T12:00:01+00:00' and PartyId > 300))"
        );
        assert_eq!(
            requests(ColumnType::Integer, None)
                .q(None, None, None)
                .unwrap(),
            None
        );
    }

    #[test]
    fn text_keys_are_quoted_and_mistyped_keys_rejected() {
        let r = requests(ColumnType::Text, None);
        let after = |k: Value| CursorKey {
            cursor: vec![at("2024-05-01T12:00:01Z")],
            key: Some(Key(vec![k])),
        };
        let q = r
            .q(None, None, Some(&after(Value::from("O'Neil"))))
            .unwrap()
            .unwrap();
        assert!(q.ends_with("PartyId > 'O''Neil'))"), "{q}");
        assert!(r.q(None, None, Some(&after(Value::Integer(1)))).is_err());
    }

    #[test]
    fn the_request_pins_the_version_and_asks_for_data_only() {
        let r = requests(ColumnType::Integer, None);
        let req = r.request(50, 500, Some("x > 1"));
        let query: Vec<(&str, &str)> = req
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            query,
            [
                ("onlyData", "true"),
                ("fields", "PartyId,LastUpdateDate"),
                ("orderBy", "LastUpdateDate:asc,PartyId:asc"),
                ("limit", "500"),
                ("offset", "50"),
                ("q", "x > 1"),
            ]
        );
        assert!(req
            .headers
            .contains(&("REST-Framework-Version".into(), "4".into())));
    }
}
