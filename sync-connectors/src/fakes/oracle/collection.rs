//! One collection request (`GET /<resource>`) answered as Oracle's ADF REST framework
//! does: faults first, then `q`, `finder`, `orderBy`, `fields`, `onlyData`, `limit` (clamped)
//! and `offset`, and the collection envelope; errors in the framework version's format.

use std::collections::BTreeMap;

use serde_json::json;
use wiremock::ResponseTemplate;

use super::records::FakeRecord;
use super::{q, Fault, State, RESOURCES_PATH};

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

/// One collection request over the records `collection` picks from the state.
pub(super) fn respond<R: FakeRecord>(
    st: &mut State,
    query: &BTreeMap<String, String>,
    version: u32,
    collection: impl Fn(&State) -> &Vec<R>,
) -> ResponseTemplate {
    let fault = st.faults.pop_front();
    match fault {
        Some(Fault::Status(status, detail)) => {
            return error_response(status, detail, "FND-999", version)
        }
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
    let mut rows: Vec<&R> = Vec::new();
    for r in collection(st) {
        let keep = match &expr {
            None => true,
            Some(e) => match e.eval(&|name| r.attribute(name)) {
                Ok(b) => b,
                Err(why) => return bad_request(why, version),
            },
        };
        if keep {
            rows.push(r);
        }
    }
    if let Some(finder) = query.get("finder") {
        let (name, binds) = finder.split_once(';').unwrap_or((finder.as_str(), ""));
        let mut kept = Vec::with_capacity(rows.len());
        for r in rows {
            match r.finds(name, binds) {
                Ok(true) => kept.push(r),
                Ok(false) => {}
                Err(why) => return bad_request(why, version),
            }
        }
        rows = kept;
    }
    // orderBy, or an order that cannot be determined.
    match query.get("orderBy") {
        Some(order) => {
            let mut keys = Vec::new();
            for part in order.split(',') {
                let (attr, dir) = part.split_once(':').unwrap_or((part, "asc"));
                if !R::ORDERABLE.contains(&attr) || !matches!(dir, "asc" | "desc") {
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
        None => rows.sort_by_key(|r| r.shuffled_rank()),
    }
    let fields: Option<Vec<String>> = query
        .get("fields")
        .map(|f| f.split(',').map(str::to_owned).collect());
    if let Some(bad) = fields
        .iter()
        .flatten()
        .find(|f| !R::FIELDS.contains(&f.as_str()))
    {
        return bad_request(format!("attribute {bad} is not defined"), version);
    }
    let only_data = query.get("onlyData").is_some_and(|v| v == "true");
    let number = |name: &str, default: usize| query.get(name).map_or(Ok(default), |v| v.parse());
    let (Ok(limit), Ok(offset)) = (number("limit", 25), number("offset", 0)) else {
        return bad_request("limit and offset must be integers".into(), version);
    };
    let limit = limit.min(st.max_limit);
    let total = rows.len();
    let mut page: Vec<serde_json::Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| r.json(fields.as_deref(), only_data))
        .collect();
    let count = page.len();
    if fault == Some(Fault::Reversed) {
        page.reverse();
    }
    let href = format!("https://fake{RESOURCES_PATH}/{}", R::RESOURCE);
    let mut body = json!({
        "items": page,
        "count": if fault == Some(Fault::WrongCount) { count + 1 } else { count },
        "hasMore": offset + count < total,
        "limit": limit,
        "offset": offset,
        "links": [{"rel": "self", "href": href, "name": R::RESOURCE, "kind": "collection"}],
    });
    if query.get("totalResults").is_some_and(|v| v == "true") {
        body["totalResults"] = json!(total);
    }
    if fault == Some(Fault::NoHasMore) {
        if let Some(map) = body.as_object_mut() {
            map.remove("hasMore");
        }
    }
    ResponseTemplate::new(200).set_body_raw(
        body.to_string(),
        "application/vnd.oracle.adf.resourcecollection+json",
    )
}
