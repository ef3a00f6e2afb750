//! The fake's own multipart parser of `$batch` request bodies (strict CRLF, nested
//! changesets, OData alternate keys in the URL), independent of the connector's writer.

use std::collections::BTreeMap;

use super::SeenOp;

fn boundary(ct: &str) -> Option<String> {
    ct.split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
        .next()
}

/// Splits a multipart body strictly on CRLF delimiters.
fn split(body: &str, boundary: &str) -> Result<Vec<String>, String> {
    let open = format!("--{boundary}\r\n");
    let close = format!("--{boundary}--");
    let end = body.find(&close).ok_or("no closing delimiter")?;
    let inner = &body[..end];
    let inner = inner
        .strip_prefix(&open)
        .ok_or("does not start with a delimiter")?;
    Ok(inner
        .split(&format!("\r\n{open}"))
        .map(|p| p.strip_suffix("\r\n").unwrap_or(p).to_owned())
        .collect())
}

fn head(part: &str) -> Result<(BTreeMap<String, String>, String), String> {
    let (h, rest) = part
        .split_once("\r\n\r\n")
        .ok_or("part without blank line")?;
    let mut headers = BTreeMap::new();
    for line in h.split("\r\n") {
        let (k, v) = line
            .split_once(':')
            .ok_or(format!("bad header line {line:?}"))?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    Ok((headers, rest.to_owned()))
}

pub(super) fn parse_batch(
    headers: &BTreeMap<String, String>,
    body: &str,
    base: &str,
) -> Result<Vec<Vec<SeenOp>>, String> {
    let ct = headers.get("content-type").ok_or("no content type")?;
    if !ct.starts_with("multipart/mixed") {
        return Err(format!("content type {ct}"));
    }
    let b = boundary(ct).ok_or("no boundary")?;
    let mut out = Vec::new();
    for part in split(body, &b)? {
        let (mime, rest) = head(&part)?;
        let pct = mime.get("content-type").cloned().unwrap_or_default();
        if pct.starts_with("multipart/mixed") {
            let inner = boundary(&pct).ok_or("changeset without boundary")?;
            let mut ops = Vec::new();
            for p in split(&rest, &inner)? {
                ops.push(parse_op(&p, base)?);
            }
            out.push(ops);
        } else {
            out.push(vec![parse_op(&part, base)?]);
        }
    }
    Ok(out)
}

fn parse_op(part: &str, base: &str) -> Result<SeenOp, String> {
    let (mime, rest) = head(part)?;
    if mime.get("content-type").map(String::as_str) != Some("application/http")
        || mime.get("content-transfer-encoding").map(String::as_str) != Some("binary")
    {
        return Err(format!("operation part headers {mime:?}"));
    }
    let (line, rest) = rest.split_once("\r\n").ok_or("no request line")?;
    let mut words = line.split(' ');
    let method = words.next().unwrap_or("").to_owned();
    let url = words.next().ok_or("no url")?;
    if words.next() != Some("HTTP/1.1") {
        return Err(format!("request line {line:?}"));
    }
    let rel = url
        .strip_prefix(base)
        .ok_or(format!("url {url} not under {base}"))?;
    let (set, raw_key) = rel
        .strip_suffix(')')
        .and_then(|r| r.split_once('('))
        .ok_or(format!("url {rel} has no key"))?;
    let (headers, body) = match rest.split_once("\r\n\r\n") {
        Some((h, b)) => (h.to_owned(), b.to_owned()),
        None => (rest.trim_end_matches("\r\n").to_owned(), String::new()),
    };
    let mut hs = BTreeMap::new();
    for l in headers.split("\r\n").filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once(':').ok_or(format!("bad header {l:?}"))?;
        hs.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let body = if body.trim().is_empty() {
        None
    } else {
        if !hs
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return Err("body without json content type".into());
        }
        Some(serde_json::from_str(body.trim()).map_err(|e| format!("body: {e}"))?)
    };
    Ok(SeenOp {
        method,
        entity_set: set.to_owned(),
        key: parse_key(raw_key)?,
        raw_key: raw_key.to_owned(),
        content_id: mime.get("content-id").cloned(),
        if_match: hs.get("if-match").cloned(),
        if_none_match: hs.get("if-none-match").cloned(),
        body,
    })
}

/// `a='x''y',b=2` (percent-encoded) -> {a: "x'y", b: "2"}.
fn parse_key(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let decoded = percent_decode(raw)?;
    let mut out = BTreeMap::new();
    let mut rest = decoded.as_str();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or(format!("key {decoded:?}"))?;
        let (value, next) = if let Some(q) = after.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = q.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if chars.peek().map(|(_, c)| *c) == Some('\'') {
                        chars.next();
                        value.push('\'');
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    value.push(c);
                }
            }
            let end = end.ok_or("unterminated string key")?;
            (value, &q[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        out.insert(name.to_owned(), value);
        rest = next.strip_prefix(',').unwrap_or(next);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("short escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad escape")?);
            i += 3;
        } else {
            if !(bytes[i].is_ascii_alphanumeric() || b"-._~'=,".contains(&bytes[i])) {
                return Err(format!("unencoded byte {:?} in key", bytes[i] as char));
            }
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "key is not utf-8".into())
}
