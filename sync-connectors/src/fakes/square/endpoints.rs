//! The endpoints of the fake: authentication and version checks, injected faults, and one
//! handler per Square endpoint, each filtering and ordering record positions and
//! serializing the page it serves straight from the records (nothing is cloned).

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{json, Value as J};
use wiremock::{Request, ResponseTemplate};

use super::{bad_value, error_body, request_time, time_of, SquareState, TOKEN};

pub(super) fn handle(st: &mut SquareState, req: &Request) -> ResponseTemplate {
    let path = req.url.path().to_owned();
    if let Some(i) = st.faults.iter().position(|f| f.path == path) {
        let f = &mut st.faults[i];
        if f.after > 0 {
            f.after -= 1;
            return normal(st, req, &path);
        }
        let r = ResponseTemplate::new(f.status).set_body_raw(f.body.clone(), f.content_type);
        f.times = f.times.saturating_sub(1);
        if f.times == 0 {
            st.faults.remove(i);
        }
        return r;
    }
    normal(st, req, &path)
}

fn normal(st: &mut SquareState, req: &Request, path: &str) -> ResponseTemplate {
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return error_body(
            401,
            "AUTHENTICATION_ERROR",
            "UNAUTHORIZED",
            "This request could not be authorized.",
        );
    }
    if req.headers.get("square-version").is_none() {
        return bad_value("Square-Version is required");
    }
    let body: J = if req.body.is_empty() {
        J::Null
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(_) => {
                return error_body(
                    400,
                    "INVALID_REQUEST_ERROR",
                    "INVALID_REQUEST_BODY",
                    "bad json",
                )
            }
        }
    };
    let query: HashMap<String, String> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let result = match (req.method.as_str(), path) {
        ("POST", "/v2/catalog/search") => catalog_search(st, &body),
        ("GET", "/v2/locations") => Ok(answer("locations", st.locations.iter().collect(), None)),
        ("POST", "/v2/inventory/counts/batch-retrieve") => inventory(st, &body),
        ("POST", "/v2/orders/search") => orders(st, &body),
        ("GET", "/v2/payments") => payments(st, &query),
        ("POST", "/v2/vendors/search") => vendors(st, &body),
        _ => {
            return error_body(
                404,
                "INVALID_REQUEST_ERROR",
                "NOT_FOUND",
                "no such endpoint",
            )
        }
    };
    match result {
        Ok(page) => match serde_json::to_vec(&page) {
            Ok(body) => ResponseTemplate::new(200).set_body_raw(body, "application/json"),
            Err(e) => error_body(500, "API_ERROR", "INTERNAL_SERVER_ERROR", &e.to_string()),
        },
        Err(r) => r,
    }
}

/// The query of a request without its cursor, as the key cursors are tied to.
fn fingerprint(body: &J) -> String {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("cursor");
    }
    b.to_string()
}

fn limit_of(body: &J, default: usize, max: usize) -> Result<usize, ResponseTemplate> {
    match body.get("limit").and_then(J::as_i64) {
        None => Ok(default),
        Some(l) if l >= 1 && l as usize <= max => Ok(l as usize),
        Some(_) => Err(bad_value("limit is out of range")),
    }
}

/// The records of `list` at the positions `picked[range]`.
fn pick<'a>(list: &'a [J], picked: &[usize], range: Range<usize>) -> Vec<&'a J> {
    picked[range].iter().map(|&i| &list[i]).collect()
}

/// The positions in `list` of the records `keep` accepts, ordered by `key` (stable).
fn select<K: Ord>(list: &[J], keep: impl Fn(&J) -> bool, key: impl Fn(&J) -> K) -> Vec<usize> {
    let mut keyed: Vec<(K, usize)> = list
        .iter()
        .enumerate()
        .filter(|(_, o)| keep(o))
        .map(|(i, o)| (key(o), i))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// An answer's body, `{field: items, "cursor": next, ...extra}`, serialized from the records
/// it borrows: a page of large orders is never copied as JSON values.
struct Answer<'a> {
    field: &'static str,
    items: Vec<&'a J>,
    cursor: Option<String>,
    extra: Vec<(&'static str, J)>,
}

impl Answer<'_> {
    /// The answer with `key: value` added after the records and the cursor.
    fn with(mut self, key: &'static str, value: J) -> Self {
        self.extra.push((key, value));
        self
    }
}

impl serde::Serialize for Answer<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.field, &self.items)?;
        if let Some(c) = &self.cursor {
            map.serialize_entry("cursor", c)?;
        }
        for (k, v) in &self.extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `{field: items, "cursor": next}` (no cursor on the last page).
fn answer<'a>(field: &'static str, items: Vec<&'a J>, cursor: Option<String>) -> Answer<'a> {
    Answer {
        field,
        items,
        cursor,
        extra: Vec::new(),
    }
}

fn catalog_search<'a>(st: &'a mut SquareState, body: &J) -> Result<Answer<'a>, ResponseTemplate> {
    let types: Vec<String> = match body.get("object_types").and_then(J::as_array) {
        Some(t) => t
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        None => vec!["ITEM".into(), "CATEGORY".into()],
    };
    let deleted = body
        .get("include_deleted_objects")
        .and_then(J::as_bool)
        .unwrap_or(false);
    let begin = request_time(body.get("begin_time").and_then(J::as_str), "begin_time")?;
    // Advisory: values <= 0 or > 1000 are ignored.
    let limit = match body.get("limit").and_then(J::as_i64) {
        Some(l) if (1..=1000).contains(&l) => l as usize,
        _ => 100,
    };
    let picked = select(
        &st.catalog,
        |o| {
            types.iter().any(|ty| o["type"] == ty.as_str())
                && (deleted || !o["is_deleted"].as_bool().unwrap_or(false))
                // Exclusive: an object updated exactly at `begin_time` is not returned.
                && begin.map_or(true, |b| time_of(o, "updated_at").is_some_and(|u| u > b))
        },
        |o| {
            (
                time_of(o, "updated_at"),
                o["id"].as_str().unwrap_or("").to_owned(),
            )
        },
    );
    let cursor = body.get("cursor").and_then(J::as_str);
    let (range, next) = st.page(picked.len(), cursor, &fingerprint(body), limit)?;
    let latest = json!(st.latest_time());
    Ok(answer("objects", pick(&st.catalog, &picked, range), next).with("latest_time", latest))
}

fn inventory<'a>(st: &'a mut SquareState, body: &J) -> Result<Answer<'a>, ResponseTemplate> {
    let limit = limit_of(body, 1000, 1000)?;
    let after = request_time(
        body.get("updated_after").and_then(J::as_str),
        "updated_after",
    )?;
    let locations: Option<Vec<String>> = body.get("location_ids").and_then(J::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    });
    let picked = select(
        &st.counts,
        |c| {
            after.map_or(true, |a| time_of(c, "calculated_at").is_some_and(|x| x > a))
                && locations
                    .as_ref()
                    .map_or(true, |l| l.iter().any(|id| c["location_id"] == id.as_str()))
        },
        // Newest first.
        |c| std::cmp::Reverse(time_of(c, "calculated_at")),
    );
    let cursor = body.get("cursor").and_then(J::as_str);
    let (range, next) = st.page(picked.len(), cursor, &fingerprint(body), limit)?;
    Ok(answer("counts", pick(&st.counts, &picked, range), next).with("errors", json!([])))
}

fn orders<'a>(st: &'a mut SquareState, body: &J) -> Result<Answer<'a>, ResponseTemplate> {
    let limit = limit_of(body, 500, 1000)?;
    let locations: Vec<String> = body
        .get("location_ids")
        .and_then(J::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if locations.is_empty() || locations.len() > 10 {
        return Err(bad_value("location_ids must hold 1 to 10 ids"));
    }
    let query = &body["query"];
    let range = &query["filter"]["date_time_filter"]["updated_at"];
    let sort_field = query["sort"]["sort_field"].as_str().unwrap_or("CREATED_AT");
    if !range.is_null() && sort_field != "UPDATED_AT" {
        return Err(error_body(
            400,
            "INVALID_REQUEST_ERROR",
            "INVALID_SORT_FIELD",
            "sort_field must match the date_time_filter field",
        ));
    }
    let start = request_time(range.get("start_at").and_then(J::as_str), "start_at")?;
    // An absent end defaults to the time of the first request for the cursor.
    let end = request_time(range.get("end_at").and_then(J::as_str), "end_at")?.unwrap_or(st.now);
    let field = if sort_field == "UPDATED_AT" {
        "updated_at"
    } else {
        "created_at"
    };
    let mut picked = select(
        &st.orders,
        |o| {
            let u = time_of(o, "updated_at");
            locations.iter().any(|l| o["location_id"] == l.as_str())
                // Inclusive at both ends.
                && (range.is_null()
                    || u.is_some_and(|u| start.map_or(true, |s| u >= s) && u <= end))
        },
        |o| time_of(o, field),
    );
    if query["sort"]["sort_order"].as_str().unwrap_or("DESC") == "DESC" {
        picked.reverse();
    }
    let cursor = body.get("cursor").and_then(J::as_str);
    let (range, next) = st.page(picked.len(), cursor, &fingerprint(body), limit)?;
    Ok(answer("orders", pick(&st.orders, &picked, range), next))
}

fn payments<'a>(
    st: &'a mut SquareState,
    q: &HashMap<String, String>,
) -> Result<Answer<'a>, ResponseTemplate> {
    let time = |name: &str| request_time(q.get(name).map(String::as_str), name);
    let location = match q.get("location_id") {
        Some(l) => l.clone(),
        None => st
            .locations
            .first()
            .and_then(|l| l["id"].as_str())
            .unwrap_or_default()
            .to_owned(),
    };
    let begin = time("begin_time")?.unwrap_or(st.now - chrono::Duration::days(365));
    let end = time("end_time")?.unwrap_or(st.now);
    let ubegin = time("updated_at_begin_time")?;
    let uend = time("updated_at_end_time")?;
    // A larger limit is ignored and the default (100) used.
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| (1..=100).contains(l))
        .unwrap_or(100);
    let field = match q.get("sort_field").map(String::as_str) {
        Some("UPDATED_AT") => "updated_at",
        _ => "created_at",
    };
    let mut picked = select(
        &st.payments,
        |p| {
            let u = time_of(p, "updated_at");
            p["location_id"] == location.as_str()
                && time_of(p, "created_at").is_some_and(|c| c >= begin && c <= end)
                && u.is_some_and(|u| {
                    ubegin.map_or(true, |b| u >= b) && uend.map_or(true, |e| u <= e)
                })
        },
        |p| time_of(p, field),
    );
    if q.get("sort_order").map_or("DESC", String::as_str) == "DESC" {
        picked.reverse();
    }
    let mut key: Vec<(&String, &String)> = q.iter().filter(|(k, _)| *k != "cursor").collect();
    key.sort();
    let cursor = q.get("cursor").map(String::as_str);
    let (range, next) = st.page(picked.len(), cursor, &format!("{key:?}"), limit)?;
    Ok(answer("payments", pick(&st.payments, &picked, range), next))
}

fn vendors<'a>(st: &'a mut SquareState, body: &J) -> Result<Answer<'a>, ResponseTemplate> {
    let picked = select(&st.vendors, |_| true, |v| time_of(v, "created_at"));
    let clamp = st.page_clamp;
    let cursor = body.get("cursor").and_then(J::as_str);
    let (range, next) = st.page(picked.len(), cursor, &fingerprint(body), clamp)?;
    Ok(answer("vendors", pick(&st.vendors, &picked, range), next))
}
