//! The fake's HTTP side: a small keep-alive HTTP/1.1 server for bodiless GETs, and the answer
//! to each request (rate check, auth, faults, Search Devices, Get Device Details).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{Device, Fault, Received, State};

const JSON: &str = "application/json";

/// One answer, before it is written.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    last_page: Option<bool>,
    retry_after: Option<u64>,
}

impl Answer {
    fn json(status: u16, body: String) -> Answer {
        Answer {
            status,
            content_type: JSON,
            body,
            last_page: None,
            retry_after: None,
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::json(
            status,
            json!({"errorMessage": message, "errorCode": code}).to_string(),
        )
    }
}

/// Serves one connection until the client closes it.
pub(super) async fn serve(mut socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
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
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
        buf.drain(..end + 4);
        let (answer, hold) = {
            let mut st = state.lock().expect("the fake's state");
            (handle(&mut st, &head), st.hold)
        };
        tokio::time::sleep(hold).await;
        state.lock().expect("the fake's state").in_flight -= 1;
        let reason = match answer.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let retry_after = answer
            .retry_after
            .map(|s| format!("retry-after: {s}\r\n"))
            .unwrap_or_default();
        let response = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\n{retry_after}content-length: {}\r\n\r\n{}",
            answer.status,
            answer.content_type,
            answer.body.len(),
            answer.body
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The answer to one request, recorded in the request log (the caller holds it, then
/// decrements `in_flight`).
fn handle(st: &mut State, head: &str) -> Answer {
    let now = Instant::now();
    st.in_flight += 1;
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let url = url::Url::parse(&format!("http://fake{target}"))
        .unwrap_or_else(|_| url::Url::parse("http://fake/").expect("a url"));
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
        status: 0,
        error_code: None,
        last_page: None,
    });
    let answer = answer(st, n, now, &url, &query, authorization);
    let code = serde_json::from_str::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| {
            v.get("errorCode")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        });
    if let Some(r) = st.requests.last_mut() {
        r.status = answer.status;
        r.error_code = code;
        r.last_page = answer.last_page;
    }
    answer
}

fn answer(
    st: &mut State,
    n: usize,
    now: Instant,
    url: &url::Url,
    query: &BTreeMap<String, String>,
    authorization: Option<String>,
) -> Answer {
    // One call at a time, at most `calls_per_second` in any second (every call counts,
    // refused ones too).
    st.arrivals.push_back(now);
    while st
        .arrivals
        .front()
        .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1))
    {
        st.arrivals.pop_front();
    }
    if st.in_flight > 1 || st.arrivals.len() > st.calls_per_second {
        return Answer::error(400, "40000029", "Rate Limit Exceeded");
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            super::USER,
            super::API_KEY
        ))
    );
    if authorization.as_deref() != Some(expected.as_str()) {
        return Answer::error(401, "10000001", "Invalid credentials");
    }
    let touches: Vec<String> = st
        .touch_at
        .iter()
        .filter(|(at, _)| *at == n)
        .map(|(_, i)| i.clone())
        .collect();
    for iccid in touches {
        super::touch(&mut st.devices, &iccid);
    }
    let scheduled = st
        .fault_at
        .iter()
        .position(|(at, _)| *at == n)
        .map(|i| st.fault_at.remove(i).1);
    match scheduled.or_else(|| st.faults.pop_front()) {
        Some(Fault::Status(status, code, message)) => return Answer::error(status, code, message),
        Some(Fault::Unavailable { retry_after }) => {
            return Answer {
                retry_after,
                ..Answer::error(503, "50000001", "Service Unavailable")
            }
        }
        Some(Fault::Html) => {
            return Answer {
                content_type: "text/html",
                ..Answer::json(
                    200,
                    "<html><body>Control Center maintenance</body></html>".into(),
                )
            }
        }
        Some(Fault::Truncated) => return Answer::json(200, r#"{"devices":[{"iccid":"89"#.into()),
        Some(Fault::NoLastPage) => {
            return Answer::json(200, r#"{"devices":[],"pageNumber":1}"#.into())
        }
        None => {}
    }
    let path = url.path();
    if let Some(iccid) = path.strip_prefix("/rws/api/v1/devices/") {
        // The newest listing of the device.
        return match st
            .devices
            .iter()
            .filter(|d| d.iccid == iccid)
            .max_by_key(|d| d.modified)
        {
            Some(d) => Answer::json(200, details(d).to_string()),
            None => Answer::error(404, "10000016", "Resource not found - Invalid ICCID"),
        };
    }
    if path != "/rws/api/v1/devices" {
        return Answer::error(404, "10000016", "Resource not found");
    }
    search(st, query)
}

/// Search Devices.
fn search(st: &State, query: &BTreeMap<String, String>) -> Answer {
    let wall = Utc::now();
    let parse = |name: &str| {
        query
            .get(name)
            .map(|s| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)))
    };
    let since = match parse("modifiedSince") {
        None => return Answer::error(400, "10000003", "ModifiedSince is required"),
        Some(Err(_)) => return Answer::error(400, "10000003", "ModifiedSince is invalid"),
        Some(Ok(t)) => t,
    };
    if since > wall {
        return Answer::error(400, "10002119", "ModifiedSince cannot be a future date");
    }
    if since < wall - Duration::days(365) {
        return Answer::error(
            400,
            "10000045",
            "ModifiedSince cannot be more than one year old",
        );
    }
    let till = match parse("modifiedTill") {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return Answer::error(400, "10000003", "ModifiedTill is invalid"),
    };
    let number = |name: &str, default: usize| query.get(name).map_or(Ok(default), |v| v.parse());
    let (Ok(size), Ok(page)) = (number("pageSize", 50), number("pageNumber", 1)) else {
        return Answer::error(400, "10000003", "pageSize and pageNumber are numbers");
    };
    if page == 0 || size == 0 {
        return Answer::error(400, "10000003", "pageNumber starts at 1");
    }
    let size = size.min(50);
    let mut matching: Vec<&Device> = st
        .devices
        .iter()
        .filter(|d| d.modified >= since && till.map_or(true, |t| d.modified <= t))
        .filter(|d| query.get("status").map_or(true, |s| &d.status == s))
        .collect();
    matching.sort_by(|a, b| (a.modified, &a.iccid).cmp(&(b.modified, &b.iccid)));
    let field = |d: &Device, name: &str, value: &str| {
        if d.is_null(name) {
            serde_json::Value::Null
        } else {
            serde_json::Value::from(value)
        }
    };
    let devices: Vec<serde_json::Value> = matching
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|d| {
            json!({
                "iccid": d.iccid,
                "status": field(d, "status", &d.status),
                "ratePlan": field(d, "ratePlan", &d.rate_plan),
                "communicationPlan": field(d, "communicationPlan", &d.communication_plan),
            })
        })
        .collect();
    let last = page * size >= matching.len();
    let body = json!({"devices": devices, "pageNumber": page, "lastPage": last});
    Answer {
        last_page: Some(last),
        ..Answer::json(200, body.to_string())
    }
}

/// Get Device Details, with Cisco's timestamp format.
fn details(d: &Device) -> serde_json::Value {
    let cisco = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.3f%z").to_string();
    let field = |name: &str, value: &str| {
        if d.is_null(name) {
            serde_json::Value::Null
        } else {
            serde_json::Value::from(value)
        }
    };
    json!({
        "iccid": d.iccid,
        "imsi": "901311000000001",
        "msisdn": "882350000000001",
        "imei": "3577700000000001",
        "status": field("status", &d.status),
        "ratePlan": field("ratePlan", &d.rate_plan),
        "communicationPlan": field("communicationPlan", &d.communication_plan),
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
