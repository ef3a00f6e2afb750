//! How the fake answers one operation: the checks of the request headers, the alternate-key
//! rules, upsert / update-only / create-only, deletes, throttling and the injected failures.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json};
use wiremock::ResponseTemplate;

use super::{access_token, key_text, own, SeenOp, State};

pub(super) fn check_headers(h: &BTreeMap<String, String>, violations: &mut Vec<String>) {
    let want = [
        ("odata-version", "4.0"),
        ("odata-maxversion", "4.0"),
        ("accept", "application/json"),
        ("if-none-match", "null"),
    ];
    for (name, value) in want {
        if h.get(name).map(String::as_str) != Some(value) {
            violations.push(format!("header {name} is {:?}", h.get(name)));
        }
    }
    if h.get("authorization") != Some(&format!("Bearer {}", access_token())) {
        violations.push("no bearer token from the token endpoint".into());
    }
}

pub(super) fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json")
        .set_body_json(serde_json::json!({"error": {"code": code, "message": message}}))
}

pub(super) fn http_part(
    content_id: Option<&str>,
    status: u16,
    extra: &[(String, String)],
    body: &str,
) -> String {
    let reason = match status {
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        _ => "Status",
    };
    let mut s =
        String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        s.push_str(&format!("Content-ID: {id}\r\n"));
    }
    s.push_str(&format!(
        "\r\nHTTP/1.1 {status} {reason}\r\nOData-Version: 4.0\r\n"
    ));
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if body.is_empty() {
        s.push_str("\r\n\r\n");
    } else {
        s.push_str(&format!(
            "Content-Type: application/json; odata.metadata=minimal\r\n\r\n{body}\r\n"
        ));
    }
    s
}

/// Applies one operation; returns status, extra headers and body.
pub(super) fn apply(st: &mut State, op: &SeenOp) -> (u16, Vec<(String, String)>, String) {
    let key = key_text(&op.key);
    if let Some(v) = op
        .key
        .values()
        .find(|v| v.contains(['/', '<', '>', '*', '%', '&', ':', '\\', '?', '+', '#']))
    {
        return (
            400,
            vec![],
            format!(r#"{{"error":{{"code":"0x80060888","message":"Bad key value {v:?}"}}}}"#),
        );
    }
    if let Some(f) = st.fail.get(&key) {
        return (f.status, vec![], f.body.clone());
    }
    if let Some(n) = st.throttle_ops.get_mut(&key) {
        if *n > 0 {
            *n -= 1;
            return (
                429,
                vec![("Retry-After".into(), "3".into())],
                own("error_concurrency.json"),
            );
        }
    }
    if let Some(attrs) = st.key_attributes.get(&op.entity_set).cloned() {
        let got: BTreeSet<&String> = op.key.keys().collect();
        if got != attrs.iter().collect::<BTreeSet<_>>() {
            st.violations.push(format!(
                "key {:?} is not the alternate key {attrs:?}",
                op.key
            ));
        }
        if let Some(body) = &op.body {
            for a in &attrs {
                if body.contains_key(a) {
                    st.violations
                        .push(format!("key attribute {a} repeated in the body"));
                }
            }
        }
    }
    let raced = op.method == "PATCH" && op.if_match.is_none() && st.race_once.remove(&key);
    let exists = st
        .tables
        .get(&op.entity_set)
        .is_some_and(|t| t.contains_key(&key));
    if raced && !exists {
        let mut other = Map::new();
        other.insert("created_by".into(), "another writer".into());
        st.foreign.push((op.entity_set.clone(), key.clone(), other));
        return (412, vec![], own("error_duplicate.json"));
    }
    let table = st.tables.entry(op.entity_set.clone()).or_default();
    match op.method.as_str() {
        "DELETE" => match table.remove(&key) {
            Some(_) => (204, vec![], String::new()),
            None => (404, vec![], own("error_not_found.json")),
        },
        "PATCH" => {
            let exists = table.contains_key(&key);
            if op.if_match.as_deref() == Some("*") && !exists {
                return (404, vec![], own("error_not_found.json"));
            }
            if op.if_none_match.as_deref() == Some("*") && exists {
                return (412, vec![], own("error_duplicate.json"));
            }
            let record = table.entry(key.clone()).or_default();
            record.remove("created_by");
            for (k, v) in op.body.clone().unwrap_or_default() {
                record.insert(k, v);
            }
            for (k, v) in &op.key {
                record.insert(k.clone(), Json::String(v.clone()));
            }
            let id = format!("{}({})", op.entity_set, op.raw_key);
            (204, vec![("OData-EntityId".into(), id)], String::new())
        }
        other => (
            405,
            vec![],
            format!(r#"{{"error":{{"code":"","message":"method {other}"}}}}"#),
        ),
    }
}
