//! Building one page's HTTP request: the URL, the query (fixed parameters with placeholders,
//! the paginator's and the cursor's), and the JSON body template of search-style APIs.

use sync_core::{Error, Result, Value};

use super::config::{CursorConfig, RestStreamConfig};
use super::paginate::{PageVars, PaginatorConfig};
use crate::http::{HttpRequest, RequestBody};

/// The placeholders a query value or body template may hold.
pub(crate) const PLACEHOLDERS: [&str; 8] = [
    "limit",
    "offset",
    "page",
    "cursor",
    "since",
    "until",
    "after_key",
    "after_cursor",
];

/// A bound value: numbers stay numbers in a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Number(u64),
    Text(String),
}

impl Bound {
    fn text(&self) -> String {
        match self {
            Bound::Number(n) => n.to_string(),
            Bound::Text(s) => s.clone(),
        }
    }
    fn json(&self) -> serde_json::Value {
        match self {
            Bound::Number(n) => serde_json::Value::from(*n),
            Bound::Text(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

/// Values of one request, by placeholder name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bindings {
    values: Vec<(&'static str, Bound)>,
}

impl Bindings {
    fn set(&mut self, name: &'static str, value: Option<Bound>) {
        if let Some(v) = value {
            self.values.push((name, v));
        }
    }

    fn get(&self, name: &str) -> Option<&Bound> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The bindings of a page: its paginator values, limit and cursor bounds (written already).
    pub(crate) fn of(
        vars: &PageVars,
        limit: u32,
        since: Option<String>,
        until: Option<String>,
        cursor: Option<&CursorConfig>,
    ) -> Result<Bindings> {
        let mut b = Bindings::default();
        b.set("limit", Some(Bound::Number(u64::from(limit))));
        b.set("offset", vars.offset.map(Bound::Number));
        b.set("page", vars.page.map(Bound::Number));
        b.set("cursor", vars.token.clone().map(Bound::Text));
        b.set("since", since.map(Bound::Text));
        b.set("until", until.map(Bound::Text));
        if let Some(after) = &vars.after {
            let key = after
                .key
                .as_ref()
                .and_then(|k| k.0.first())
                .ok_or_else(|| Error::invalid_input("a keyset selector without a key"))?;
            b.set("after_key", Some(Bound::Text(plain(key))));
            if let (Some(c), Some(v)) = (cursor, after.cursor.first()) {
                b.set(
                    "after_cursor",
                    Some(Bound::Text(c.format.write(v, 0, true)?)),
                );
            }
        }
        Ok(b)
    }

    /// `template` with its placeholders filled in; `None` when one of them has no value.
    fn fill(&self, template: &str) -> Option<String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            let name = rest[start + 2..start + 2 + len].trim();
            out.push_str(&rest[..start]);
            out.push_str(&self.get(name)?.text());
            rest = &rest[start + 2 + len + 2..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// A body template filled in: an exact placeholder string becomes its typed value and is
    /// removed (with its key) when it has none.
    fn fill_json(&self, template: &serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        match template {
            J::String(s) => match exact_placeholder(s) {
                Some(name) => self.get(name).map(Bound::json),
                None => self.fill(s).map(J::String),
            },
            J::Array(items) => Some(J::Array(
                items.iter().filter_map(|i| self.fill_json(i)).collect(),
            )),
            J::Object(map) => Some(J::Object(
                map.iter()
                    .filter_map(|(k, v)| self.fill_json(v).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }
}

/// The name in a string that is exactly one placeholder (`"{{ cursor }}"`).
fn exact_placeholder(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{")).then_some(inner.trim())
}

/// Checks that every placeholder in the config names a known value.
pub(crate) fn check_placeholders(config: &RestStreamConfig) -> Result<()> {
    let mut texts: Vec<&str> = config.query.values().map(String::as_str).collect();
    let mut stack: Vec<&serde_json::Value> = config.body.iter().collect();
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => texts.push(s),
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    for text in texts {
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            let name = rest[start + 2..start + 2 + len].trim();
            if !PLACEHOLDERS.contains(&name) {
                return Err(Error::config(format!(
                    "unknown placeholder {{{{{name}}}}}; known: {}",
                    PLACEHOLDERS.join(", ")
                ))
                .with_context("stream", &config.name));
            }
            rest = &rest[start + 2 + len + 2..];
        }
    }
    Ok(())
}

/// A key value as a parameter.
fn plain(v: &Value) -> String {
    v.to_string()
}

/// The request for one page. With a body template the paginator and cursor values go only
/// through its placeholders; otherwise each one is a query parameter under its configured
/// name. A next link replaces the URL and its query.
pub(crate) fn build(
    config: &RestStreamConfig,
    paginator: &PaginatorConfig,
    url: &str,
    vars: &PageVars,
    b: &Bindings,
) -> Result<HttpRequest> {
    let mut req = HttpRequest::get(vars.link.clone().unwrap_or_else(|| url.to_owned()));
    req.method = config.method;
    for (k, v) in &config.headers {
        req = req.with_header(k.clone(), v.clone());
    }
    if vars.link.is_some() {
        return Ok(req);
    }
    for (k, v) in &config.query {
        if let Some(v) = b.fill(v) {
            req = req.with_query(k.clone(), v);
        }
    }
    if let Some(template) = &config.body {
        let body = b.fill_json(template).unwrap_or(serde_json::Value::Null);
        req.body = Some(RequestBody::Json(serde_json::to_vec(&body)?.into()));
        return Ok(req);
    }
    let mut params: Vec<(&str, &str)> = Vec::new();
    match paginator {
        PaginatorConfig::Single | PaginatorConfig::TimeWindow(_) => {}
        PaginatorConfig::Offset {
            offset_param,
            limit_param,
            ..
        } => params.extend([(offset_param.as_str(), "offset"), (limit_param, "limit")]),
        PaginatorConfig::PageNumber {
            page_param,
            size_param,
            ..
        } => {
            params.push((page_param, "page"));
            params.extend(size_param.as_deref().map(|p| (p, "limit")));
        }
        PaginatorConfig::CursorToken {
            param, limit_param, ..
        } => {
            params.push((param, "cursor"));
            params.extend(limit_param.as_deref().map(|p| (p, "limit")));
        }
        PaginatorConfig::NextLink { limit_param, .. } => {
            params.extend(limit_param.as_deref().map(|p| (p, "limit")))
        }
        PaginatorConfig::Keyset {
            key_param,
            cursor_param,
            limit_param,
        } => {
            params.extend([(key_param.as_str(), "after_key"), (limit_param, "limit")]);
            params.extend(cursor_param.as_deref().map(|p| (p, "after_cursor")));
        }
    }
    if let Some(c) = &config.cursor {
        params.extend(c.param.as_deref().map(|p| (p, "since")));
        params.extend(c.until_param.as_deref().map(|p| (p, "until")));
    }
    for (name, var) in params {
        if let Some(v) = b.get(var) {
            req = req.with_query(name.to_owned(), v.text());
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bindings() -> Bindings {
        let vars = PageVars {
            offset: Some(40),
            ..PageVars::default()
        };
        Bindings::of(
            &vars,
            20,
            Some("2024-01-01T00:00:00.000Z".into()),
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn text_placeholders_fill_or_drop_the_parameter() {
        let b = bindings();
        assert_eq!(
            b.fill("LastUpdateDate>='{{since}}'").as_deref(),
            Some("LastUpdateDate>='2024-01-01T00:00:00.000Z'")
        );
        assert_eq!(b.fill("{{ offset }}/{{limit}}").as_deref(), Some("40/20"));
        assert_eq!(b.fill("before {{until}}"), None);
        assert_eq!(b.fill("no placeholder").as_deref(), Some("no placeholder"));
    }

    #[test]
    fn body_templates_keep_types_and_drop_unbound_keys() {
        let template = json!({
            "limit": "{{limit}}",
            "cursor": "{{cursor}}",
            "query": {"filter": {"updated_at": {"start_at": "{{since}}", "end_at": "{{until}}"}}},
            "note": "from {{offset}}",
            "types": ["ITEM", "{{cursor}}"],
        });
        let filled = bindings().fill_json(&template).unwrap();
        assert_eq!(
            filled,
            json!({
                "limit": 20,
                "query": {"filter": {"updated_at": {"start_at": "2024-01-01T00:00:00.000Z"}}},
                "note": "from 40",
                "types": ["ITEM"],
            })
        );
    }

    #[test]
    fn unknown_placeholders_are_config_errors() {
        let mut c = RestStreamConfig::new("s", "http://127.0.0.1:1", "/x");
        c.query.insert("q".into(), "{{sinse}}".into());
        let e = check_placeholders(&c).unwrap_err();
        assert_eq!(e.kind(), sync_core::ErrorKind::Config);
        assert!(e.message().contains("sinse"), "{e}");
    }
}
