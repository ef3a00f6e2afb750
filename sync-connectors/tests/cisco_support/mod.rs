//! A loopback fake of Cisco IoT Control Center's REST API (api-semantics.md section 3), a
//! small keep-alive HTTP/1.1 server on the test's tokio runtime, so its rate check runs on the
//! same (paused) clock as the client:
//!
//! - `GET /rws/api/v1/devices`: `modifiedSince` required (400 `10000003`), ISO 8601 only, not
//!   in the future (400 `10002119`), not more than a year old (400 `10000045`); optional
//!   `modifiedTill`; `pageSize` (default 50, clamped at 50); `pageNumber` from 1; `status`;
//!   devices sorted ascending by a hidden modification time; `devices` with only `iccid`,
//!   `status`, `ratePlan`, `communicationPlan`, and `pageNumber`, `lastPage`;
//! - `GET /rws/api/v1/devices/{iccid}`: Get Device Details with `dateUpdated` in Cisco's
//!   format `2016-07-06 22:04:04.380+0000`; 404 for an unknown ICCID;
//! - HTTP Basic `user:apiKey` (401 `10000001` otherwise);
//! - more than one call in flight, or more than five in any second: 400 `40000029`;
//! - devices changed between two requests (they move to "now"), and injected faults.
//!
//! Error codes are strings, as Control Center writes them. Codes for cases the sources do not
//! name (an unparseable date, an unknown ICCID) are the fake's own.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sync_connectors::cisco::CiscoConfig;
use sync_connectors::http::{HttpConfig, Secret};
use sync_core::{Row, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub const USER: &str = "sync-user";
pub const API_KEY: &str = "c0ffee-api-key";

/// One device as the fake keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub iccid: String,
    pub status: String,
    pub rate_plan: String,
    pub modified: DateTime<Utc>,
    pub version: u32,
}

/// `n` devices, the `i`-th modified `age(i)` ago.
pub fn devices(n: usize, age: impl Fn(usize) -> Duration) -> Vec<Device> {
    let now = Utc::now();
    (0..n)
        .map(|i| Device {
            iccid: format!("89882167169700{i:05}"),
            status: "ACTIVATED".into(),
            rate_plan: "hphlr rp1 v1".into(),
            modified: now - age(i),
            version: 1,
        })
        .collect()
}

/// An answer the fake gives instead of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status and Cisco error envelope.
    Status(u16, &'static str, &'static str),
    /// A 200 with an HTML page.
    Html,
    /// A 200 whose JSON stops half-way.
    Truncated,
    /// A search answer without `lastPage`.
    NoLastPage,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The raw query, as sent (to see `+` encoded as `%2B`).
    pub raw_query: String,
    pub at: Instant,
    pub authorization: Option<String>,
    /// The error code answered, if any.
    pub error_code: Option<String>,
    /// For searches: whether the answer was the last page.
    pub last_page: Option<bool>,
}

#[derive(Debug)]
pub struct State {
    pub devices: Vec<Device>,
    /// Before answering request `n` (0-based), device `iccid` changes.
    pub touch_at: Vec<(usize, String)>,
    pub faults: VecDeque<Fault>,
    pub requests: Vec<Received>,
    /// How long each answer is held, so overlapping calls would be seen.
    pub hold: std::time::Duration,
    arrivals: VecDeque<Instant>,
    in_flight: usize,
}

/// The fake, listening on 127.0.0.1.
pub struct CiscoFake {
    pub base_url: String,
    pub state: Arc<Mutex<State>>,
}

impl CiscoFake {
    pub async fn start(devices: Vec<Device>) -> CiscoFake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            devices,
            touch_at: Vec::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            hold: std::time::Duration::from_millis(20),
            arrivals: VecDeque::new(),
            in_flight: 0,
        }));
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, s.clone()));
            }
        });
        CiscoFake {
            base_url: format!("http://{addr}/rws/api/v1"),
            state,
        }
    }

    pub fn fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    pub fn touch_at(&self, at: usize, iccid: &str) {
        self.state.lock().unwrap().touch_at.push((at, iccid.into()));
    }

    /// Changes device `iccid` now.
    pub fn touch(&self, iccid: &str) {
        touch(&mut self.state.lock().unwrap().devices, iccid);
    }

    pub fn add(&self, device: Device) {
        self.state.lock().unwrap().devices.push(device);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Answers with error code `40000029`.
    pub fn rate_rejections(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.error_code.as_deref() == Some("40000029"))
            .count()
    }

    /// (iccid, rate plan) of the devices modified at or after `since`, sorted.
    pub fn modified_since(&self, since: DateTime<Utc>) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .state
            .lock()
            .unwrap()
            .devices
            .iter()
            .filter(|d| d.modified >= since)
            .map(|d| (d.iccid.clone(), d.rate_plan.clone()))
            .collect();
        v.sort();
        v
    }
}

fn touch(devices: &mut [Device], iccid: &str) {
    let d = devices
        .iter_mut()
        .find(|d| d.iccid == iccid)
        .expect("a known device");
    d.version += 1;
    d.rate_plan = format!("hphlr rp1 v{}", d.version);
    d.modified = Utc::now();
}

async fn serve(mut socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Requests are bodiless GETs: a request ends at the blank line.
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let (status, content_type, body, hold) = {
            let mut st = state.lock().unwrap();
            let (status, content_type, body) = handle(&mut st, &head);
            (status, content_type, body, st.hold)
        };
        tokio::time::sleep(hold).await;
        state.lock().unwrap().in_flight -= 1;
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            _ => "Error",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn error(code: &str, message: &str) -> String {
    json!({"errorMessage": message, "errorCode": code}).to_string()
}

/// The answer to one request (the caller holds it, then decrements `in_flight`).
fn handle(st: &mut State, head: &str) -> (u16, &'static str, String) {
    let now = Instant::now();
    st.in_flight += 1;
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let url = url::Url::parse(&format!("http://fake{target}")).unwrap();
    let query: BTreeMap<String, String> = url
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let authorization = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("authorization: ")
                .or_else(|| l.strip_prefix("Authorization: "))
        })
        .map(str::to_owned);
    let n = st.requests.len();
    st.requests.push(Received {
        path: url.path().to_owned(),
        query: query.clone(),
        raw_query: url.query().unwrap_or_default().to_owned(),
        at: now,
        authorization: authorization.clone(),
        error_code: None,
        last_page: None,
    });
    let (status, content_type, body, last_page) = answer(st, n, now, &url, &query, authorization);
    let code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("errorCode")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        });
    let r = st.requests.last_mut().unwrap();
    r.error_code = code;
    r.last_page = last_page;
    (status, content_type, body)
}

#[allow(clippy::type_complexity)]
fn answer(
    st: &mut State,
    n: usize,
    now: Instant,
    url: &url::Url,
    query: &BTreeMap<String, String>,
    authorization: Option<String>,
) -> (u16, &'static str, String, Option<bool>) {
    const JSON: &str = "application/json";
    // One call at a time, at most five in any second (every call counts, refused ones too).
    st.arrivals.push_back(now);
    while st
        .arrivals
        .front()
        .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1))
    {
        st.arrivals.pop_front();
    }
    if st.in_flight > 1 || st.arrivals.len() > 5 {
        return (400, JSON, error("40000029", "Rate Limit Exceeded"), None);
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{API_KEY}"))
    );
    if authorization.as_deref() != Some(expected.as_str()) {
        return (401, JSON, error("10000001", "Invalid credentials"), None);
    }
    let touches: Vec<String> = st
        .touch_at
        .iter()
        .filter(|(at, _)| *at == n)
        .map(|(_, i)| i.clone())
        .collect();
    for iccid in touches {
        touch(&mut st.devices, &iccid);
    }
    match st.faults.pop_front() {
        Some(Fault::Status(status, code, message)) => {
            return (status, JSON, error(code, message), None)
        }
        Some(Fault::Html) => {
            return (
                200,
                "text/html",
                "<html><body>Control Center maintenance</body></html>".into(),
                None,
            )
        }
        Some(Fault::Truncated) => return (200, JSON, r#"{"devices":[{"iccid":"89"#.into(), None),
        Some(Fault::NoLastPage) => {
            return (200, JSON, r#"{"devices":[],"pageNumber":1}"#.into(), None)
        }
        None => {}
    }
    let path = url.path();
    if let Some(iccid) = path.strip_prefix("/rws/api/v1/devices/") {
        return match st.devices.iter().find(|d| d.iccid == iccid) {
            Some(d) => (200, JSON, details(d).to_string(), None),
            None => (
                404,
                JSON,
                error("10000016", "Resource not found - Invalid ICCID"),
                None,
            ),
        };
    }
    if path != "/rws/api/v1/devices" {
        return (404, JSON, error("10000016", "Resource not found"), None);
    }
    let wall = Utc::now();
    let parse = |name: &str| {
        query
            .get(name)
            .map(|s| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)))
    };
    let since = match parse("modifiedSince") {
        None => {
            return (
                400,
                JSON,
                error("10000003", "ModifiedSince is required"),
                None,
            )
        }
        Some(Err(_)) => {
            return (
                400,
                JSON,
                error("10000003", "ModifiedSince is invalid"),
                None,
            )
        }
        Some(Ok(t)) => t,
    };
    if since > wall {
        return (
            400,
            JSON,
            error("10002119", "ModifiedSince cannot be a future date"),
            None,
        );
    }
    if since < wall - Duration::days(365) {
        return (
            400,
            JSON,
            error("10000045", "ModifiedSince cannot be more than one year old"),
            None,
        );
    }
    let till = match parse("modifiedTill") {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return (
                400,
                JSON,
                error("10000003", "ModifiedTill is invalid"),
                None,
            )
        }
    };
    let number = |name: &str, default: usize| query.get(name).map_or(Ok(default), |v| v.parse());
    let (Ok(size), Ok(page)) = (number("pageSize", 50), number("pageNumber", 1)) else {
        return (
            400,
            JSON,
            error("10000003", "pageSize and pageNumber are numbers"),
            None,
        );
    };
    if page == 0 || size == 0 {
        return (400, JSON, error("10000003", "pageNumber starts at 1"), None);
    }
    let size = size.min(50);
    let mut matching: Vec<&Device> = st
        .devices
        .iter()
        .filter(|d| d.modified >= since && till.map_or(true, |t| d.modified <= t))
        .filter(|d| query.get("status").map_or(true, |s| &d.status == s))
        .collect();
    matching.sort_by(|a, b| (a.modified, &a.iccid).cmp(&(b.modified, &b.iccid)));
    let devices: Vec<serde_json::Value> = matching
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|d| {
            json!({
                "iccid": d.iccid,
                "status": d.status,
                "ratePlan": d.rate_plan,
                "communicationPlan": "CP_Basic_ON",
            })
        })
        .collect();
    let last = page * size >= matching.len();
    let body = json!({"devices": devices, "pageNumber": page, "lastPage": last});
    (200, JSON, body.to_string(), Some(last))
}

/// Get Device Details, with Cisco's timestamp format.
fn details(d: &Device) -> serde_json::Value {
    let cisco = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.3f%z").to_string();
    json!({
        "iccid": d.iccid,
        "imsi": "901311000000001",
        "msisdn": "882350000000001",
        "imei": "3577700000000001",
        "status": d.status,
        "ratePlan": d.rate_plan,
        "communicationPlan": "CP_Basic_ON",
        "customer": null,
        "endConsumerId": null,
        "dateActivated": "2016-06-29 21:02:26.990+0000",
        "dateAdded": "2016-06-23 22:24:39.535+0000",
        "dateUpdated": cisco(d.modified),
        "dateShipped": "2016-06-27 07:00:00.000+0000",
        "accountId": "100020620",
        "fixedIPAddress": null,
        "accountCustom1": "",
        "operatorCustom1": "",
        "customerCustom1": "",
        "simNotes": null,
        "deviceID": null,
        "modemID": null,
        "globalSimType": ""
    })
}

/// HTTP settings for a paused clock: no timeouts, no pool timer.
pub fn paused_http() -> HttpConfig {
    HttpConfig {
        connect_timeout_ms: None,
        read_timeout_ms: None,
        total_timeout_ms: None,
        pool_idle_timeout_ms: None,
        ..HttpConfig::default()
    }
}

/// The config of the fake's account.
pub fn config(fake: &CiscoFake) -> sync_connectors::cisco::CiscoBuilder {
    CiscoConfig::builder(&fake.base_url, USER, Secret::new(API_KEY)).with_http(paused_http())
}

pub fn iccid(row: &Row) -> String {
    match row.get(0) {
        Value::Text(s) => s.to_string(),
        other => panic!("an iccid is text, not {other:?}"),
    }
}
