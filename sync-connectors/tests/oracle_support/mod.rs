//! A loopback fake of an Oracle Fusion Cloud REST collection (`accounts`), as api-semantics.md
//! section 2 describes it: `limit` (default 25, clamped silently at `max_limit` and echoed),
//! `offset`, `count`, `hasMore`, `totalResults` only on request, `onlyData`, `fields`,
//! `finder`, `orderBy` (an undefined order without it), a `q` subset (`= != > >= < <=`, `and`,
//! `or`, parentheses, quoted ISO timestamps and strings, numbers; 400 on anything else),
//! second-precision `LastUpdateDate`, records updated between two page requests, and errors
//! as `o:errorDetails` JSON for `REST-Framework-Version` 4 and later or plain text before.
#![allow(dead_code, unreachable_pub)]

pub mod q;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value as J};
use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::oracle::{OracleBuilder, OracleConfig, OracleMode};
use sync_core::{Column, ColumnType, Row, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const RESOURCE_PATH: &str = "/crmRestApi/resources/11.13.18.05/accounts";

/// One account as the fake keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub party_id: i64,
    pub party_number: String,
    pub name: String,
    pub updated: DateTime<Utc>,
    pub version: i64,
}

/// The instant the fake's data starts at.
pub fn t0() -> DateTime<Utc> {
    "2024-05-01T12:00:00Z".parse().unwrap()
}

impl Account {
    fn attribute(&self, name: &str) -> Option<q::Literal> {
        Some(match name {
            "PartyId" => q::Literal::Number(self.party_id),
            "PartyNumber" => q::Literal::Text(self.party_number.clone()),
            "OrganizationName" => q::Literal::Text(self.name.clone()),
            "LastUpdateDate" => q::Literal::Time(self.updated),
            _ => return None,
        })
    }

    fn json(&self, fields: Option<&[String]>, only_data: bool) -> J {
        let all = json!({
            "PartyId": self.party_id,
            "PartyNumber": self.party_number,
            "OrganizationName": self.name,
            // Second precision with an offset, as Oracle writes it.
            "LastUpdateDate": self.updated.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            "CreationDate": "2020-01-01T00:00:00+00:00",
        });
        let mut item = serde_json::Map::new();
        for (k, v) in all.as_object().unwrap() {
            if fields.map_or(true, |f| f.iter().any(|x| x == k)) {
                item.insert(k.clone(), v.clone());
            }
        }
        if !only_data {
            item.insert(
                "links".into(),
                json!([{"rel": "self", "href": format!("https://fake{RESOURCE_PATH}/{}", self.party_id), "name": "accounts", "kind": "item"}]),
            );
        }
        J::Object(item)
    }
}

/// One answer the fake gives instead of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with an Oracle error body (JSON or text by framework version).
    Status(u16, &'static str),
    /// A 200 with an HTML login page.
    Html,
    /// A 200 whose JSON stops half-way.
    Truncated,
    /// A collection without `hasMore`.
    NoHasMore,
    /// `count` says one more than the items.
    WrongCount,
    /// The page in reverse order (as if `orderBy` were ignored).
    Reversed,
}

/// What the fake holds and saw.
#[derive(Debug, Default)]
pub struct State {
    pub accounts: Vec<Account>,
    /// The largest page served, whatever `limit` asks.
    pub max_limit: usize,
    /// Before serving request number `n` (0-based), account `id` is updated: it moves past
    /// every other record (one second after the newest).
    pub touch_at: Vec<(usize, i64)>,
    /// Answers given instead of the normal ones, one per request.
    pub faults: VecDeque<Fault>,
    /// The query of every request received, and its framework version header.
    pub requests: Vec<(BTreeMap<String, String>, Option<String>)>,
}

/// The fake and its state.
pub struct OracleFake {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
}

/// `n` accounts, `PartyId` 1000.., updated one per second from [`t0`] with every third one
/// sharing its second with the next (ties on `LastUpdateDate`).
pub fn accounts(n: usize) -> Vec<Account> {
    (0..n)
        .map(|i| Account {
            party_id: 1000 + i as i64,
            party_number: format!("CDRM_{}", 1000 + i),
            name: format!("Org {i}"),
            updated: t0() + Duration::seconds((i - i / 3) as i64),
            version: 1,
        })
        .collect()
}

impl OracleFake {
    pub async fn start(n: usize) -> OracleFake {
        let state = Arc::new(Mutex::new(State {
            accounts: accounts(n),
            max_limit: 500,
            ..State::default()
        }));
        let server = MockServer::start().await;
        let s = state.clone();
        Mock::given(method("GET"))
            .and(path(RESOURCE_PATH))
            .respond_with(move |req: &Request| respond(&mut s.lock().unwrap(), req))
            .mount(&server)
            .await;
        OracleFake { server, state }
    }

    pub fn base_url(&self) -> String {
        format!("{}/crmRestApi/resources/11.13.18.05", self.server.uri())
    }

    pub fn set_max_limit(&self, max: usize) {
        self.state.lock().unwrap().max_limit = max;
    }

    pub fn fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// Updates account `id` before serving request number `at` (counted from the start).
    pub fn touch_at(&self, at: usize, id: i64) {
        self.state.lock().unwrap().touch_at.push((at, id));
    }

    /// Updates account `id` now.
    pub fn touch(&self, id: i64) {
        touch(&mut self.state.lock().unwrap().accounts, id);
    }

    pub fn requests(&self) -> Vec<(BTreeMap<String, String>, Option<String>)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The accounts as (PartyId, version), sorted.
    pub fn snapshot(&self) -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = self
            .state
            .lock()
            .unwrap()
            .accounts
            .iter()
            .map(|a| (a.party_id, a.version))
            .collect();
        v.sort();
        v
    }
}

fn touch(accounts: &mut [Account], id: i64) {
    let newest = accounts.iter().map(|a| a.updated).max().unwrap_or_else(t0);
    let a = accounts
        .iter_mut()
        .find(|a| a.party_id == id)
        .expect("a known account");
    a.updated = newest + Duration::seconds(1);
    a.version += 1;
    a.name = format!("{} (v{})", a.name.split(" (v").next().unwrap(), a.version);
}

/// An Oracle error response in the format the framework version gives.
pub fn error_response(status: u16, detail: &str, code: &str, version: u32) -> ResponseTemplate {
    if version >= 4 {
        let title = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Error",
        };
        ResponseTemplate::new(status).set_body_raw(
            json!({
                "title": title,
                "status": status.to_string(),
                "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
            })
            .to_string(),
            "application/vnd.oracle.adf.error+json",
        )
    } else {
        ResponseTemplate::new(status).set_body_raw(detail.to_owned(), "text/plain")
    }
}

fn bad_request(detail: String, version: u32) -> ResponseTemplate {
    error_response(400, &detail, "27024", version)
}

fn respond(st: &mut State, req: &Request) -> ResponseTemplate {
    let query: BTreeMap<String, String> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let version_header = req
        .headers
        .get("REST-Framework-Version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let version: u32 = version_header
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let n = st.requests.len();
    st.requests.push((query.clone(), version_header));
    let touches: Vec<i64> = st
        .touch_at
        .iter()
        .filter(|(at, _)| *at == n)
        .map(|(_, id)| *id)
        .collect();
    for id in touches {
        touch(&mut st.accounts, id);
    }
    let fault = st.faults.pop_front();
    if let Some(Fault::Status(status, detail)) = fault {
        return error_response(status, detail, "FND-999", version);
    }
    match fault {
        Some(Fault::Html) => {
            return ResponseTemplate::new(200).set_body_raw(
                "<!DOCTYPE html><html><body>Oracle Cloud sign in</body></html>",
                "text/html",
            )
        }
        Some(Fault::Truncated) => {
            return ResponseTemplate::new(200)
                .set_body_raw(r#"{"items":[{"PartyId":1000,"#, "application/json")
        }
        _ => {}
    }

    // q: the framework v2 expression syntax.
    let expr = match query.get("q").map(|s| q::parse(s)).transpose() {
        Ok(e) => e,
        Err(why) => {
            return bad_request(
                format!(
                    "URL request parameter q with value {} is not valid: {why}",
                    query["q"]
                ),
                version,
            )
        }
    };
    if expr.is_some() && version < 2 {
        return bad_request("q expressions need framework version 2".into(), version);
    }
    let mut rows: Vec<&Account> = Vec::new();
    for a in &st.accounts {
        let keep = match &expr {
            None => true,
            Some(e) => match e.eval(&|name| a.attribute(name)) {
                Ok(b) => b,
                Err(why) => return bad_request(why, version),
            },
        };
        if keep {
            rows.push(a);
        }
    }
    // finder: only `PrimaryKey;PartyNumber=<n>` is known.
    if let Some(finder) = query.get("finder") {
        let (name, binds) = finder.split_once(';').unwrap_or((finder.as_str(), ""));
        if name != "PrimaryKey" {
            return bad_request(format!("finder {name} is not defined"), version);
        }
        let number = binds.strip_prefix("PartyNumber=").unwrap_or_default();
        rows.retain(|a| a.party_number == number);
    }
    // orderBy, or an order that cannot be determined.
    match query.get("orderBy") {
        Some(order) => {
            let mut keys = Vec::new();
            for part in order.split(',') {
                let (attr, dir) = part.split_once(':').unwrap_or((part, "asc"));
                if accounts(1)[0].attribute(attr).is_none() || !matches!(dir, "asc" | "desc") {
                    return bad_request(format!("orderBy {part} is not valid"), version);
                }
                keys.push((attr.to_owned(), dir == "desc"));
            }
            rows.sort_by(|a, b| {
                for (attr, desc) in &keys {
                    let o = a.attribute(attr).cmp(&b.attribute(attr));
                    let o = if *desc { o.reverse() } else { o };
                    if o.is_ne() {
                        return o;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        None => rows.sort_by_key(|a| (a.party_id * 7919) % 1009),
    }
    let fields: Option<Vec<String>> = query
        .get("fields")
        .map(|f| f.split(',').map(str::to_owned).collect());
    if let Some(f) = &fields {
        if let Some(bad) = f.iter().find(|f| accounts(1)[0].attribute(f).is_none()) {
            return bad_request(format!("attribute {bad} is not defined"), version);
        }
    }
    let only_data = query.get("onlyData").is_some_and(|v| v == "true");
    let number = |name: &str, default: usize| query.get(name).map_or(Ok(default), |v| v.parse());
    let (Ok(limit), Ok(offset)) = (number("limit", 25), number("offset", 0)) else {
        return bad_request("limit and offset must be integers".into(), version);
    };
    let limit = limit.min(st.max_limit);
    let total = rows.len();
    let mut page: Vec<J> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|a| a.json(fields.as_deref(), only_data))
        .collect();
    let count = page.len();
    if fault == Some(Fault::Reversed) {
        page.reverse();
    }
    let mut body = json!({
        "items": page,
        "count": if fault == Some(Fault::WrongCount) { count + 1 } else { count },
        "hasMore": offset + count < total,
        "limit": limit,
        "offset": offset,
        "links": [{"rel": "self", "href": format!("https://fake{RESOURCE_PATH}"), "name": "accounts", "kind": "collection"}],
    });
    if query.get("totalResults").is_some_and(|v| v == "true") {
        body["totalResults"] = json!(total);
    }
    if fault == Some(Fault::NoHasMore) {
        body.as_object_mut().unwrap().remove("hasMore");
    }
    ResponseTemplate::new(200).set_body_raw(
        body.to_string(),
        "application/vnd.oracle.adf.resourcecollection+json",
    )
}

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
