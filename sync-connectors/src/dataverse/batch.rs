//! The `$batch` wire format: a `multipart/mixed` request of changesets (CRLF line endings, a
//! `Content-ID` per operation) and the parser of the `multipart/mixed` response.

use std::fmt::Write as _;

use sync_core::Result;

use super::model::{bad_response, OpKind, Operation};

/// A `$batch` body and which operations each of its top-level parts holds.
#[derive(Debug)]
pub(crate) struct BatchBody {
    /// `batch_<id>`.
    pub(crate) boundary: String,
    /// The multipart body.
    pub(crate) body: String,
    /// Per top-level part (a changeset): indexes into the operations, in order. The
    /// operation at index `i` of the whole batch has `Content-ID: i + 1`.
    pub(crate) parts: Vec<Vec<usize>>,
}

/// Builds the body of one `$batch` of `ops` (absolute URLs under `base_url`), grouped in
/// changesets of at most `changeset_size` (an isolated operation gets one of its own).
pub(crate) fn build(base_url: &str, ops: &[Operation], changeset_size: usize) -> BatchBody {
    let id = fastrand::u64(..);
    let boundary = format!("batch_{id:016x}");
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match parts.last_mut() {
            Some(last) if !op.isolate && last.len() < changeset_size && !ops[last[0]].isolate => {
                last.push(i)
            }
            _ => parts.push(vec![i]),
        }
    }
    let mut body = String::new();
    for (n, part) in parts.iter().enumerate() {
        let changeset = format!("changeset_{id:016x}_{n}");
        let _ = write!(
            body,
            "--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        );
        for &i in part {
            let op = &ops[i];
            let _ = write!(
                body,
                "--{changeset}\r\nContent-Type: application/http\r\n\
                 Content-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n",
                i + 1
            );
            let method = if op.kind == OpKind::Delete {
                "DELETE"
            } else {
                "PATCH"
            };
            let _ = write!(body, "{method} {base_url}{} HTTP/1.1\r\n", op.path);
            if op.kind == OpKind::Update {
                body.push_str("If-Match: *\r\n");
            }
            match &op.body {
                Some(json) => {
                    let _ = write!(
                        body,
                        "Content-Type: application/json; type=entry\r\n\r\n{json}\r\n"
                    );
                }
                None => body.push_str("\r\n"),
            }
        }
        let _ = write!(body, "--{changeset}--\r\n");
    }
    let _ = write!(body, "--{boundary}--\r\n");
    BatchBody {
        boundary,
        body,
        parts,
    }
}

/// The response to one operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpResponse {
    /// `Content-ID` of the MIME part, when given.
    pub(crate) content_id: Option<String>,
    /// The HTTP status.
    pub(crate) status: u16,
    /// The HTTP headers (names lower case).
    pub(crate) headers: Vec<(String, String)>,
    /// The HTTP body.
    pub(crate) body: String,
}

impl OpResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The response to one top-level part: one response (a request outside a changeset, or a
/// changeset that failed as a whole) or the responses of a changeset's operations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PartResponse {
    /// One `application/http` part.
    Single(OpResponse),
    /// A `multipart/mixed` changeset response.
    Changeset(Vec<OpResponse>),
}

/// Parses a `$batch` response whose `Content-Type` is `content_type`.
pub(crate) fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Vec<PartResponse>> {
    let boundary = content_type
        .filter(|ct| media_type(ct) == "multipart/mixed")
        .and_then(boundary_of)
        .ok_or_else(|| {
            bad_response("dataverse $batch response is not multipart/mixed")
                .with_context("content_type", content_type.unwrap_or("none"))
        })?;
    let text = std::str::from_utf8(body)
        .map_err(|_| bad_response("dataverse $batch response is not utf-8"))?;
    split(text, &boundary)?
        .into_iter()
        .map(|part| {
            let (headers, content) = headers_and_rest(part)?;
            let ct = header(&headers, "content-type").unwrap_or("");
            if media_type(ct) == "multipart/mixed" {
                let inner = boundary_of(ct)
                    .ok_or_else(|| bad_response("dataverse changeset response has no boundary"))?;
                let ops = split(content, &inner)?
                    .into_iter()
                    .map(parse_http_part)
                    .collect::<Result<Vec<_>>>()?;
                Ok(PartResponse::Changeset(ops))
            } else {
                parse_http_part(part).map(PartResponse::Single)
            }
        })
        .collect()
}

/// The lower-case media type of a `Content-Type` value.
fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The `boundary` parameter of a `Content-Type` value, unquoted.
fn boundary_of(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// The parts between `--boundary` delimiter lines; the closing `--boundary--` is required
/// (a body cut short is an error). CRLF or bare LF line endings.
fn split<'a>(text: &'a str, boundary: &str) -> Result<Vec<&'a str>> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    // Offsets of delimiter lines: at the start or right after a line break.
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(&delimiter) {
        let at = from + at;
        if at == 0 || text[..at].ends_with('\n') {
            starts.push(at);
        }
        from = at + delimiter.len();
    }
    let mut closed = false;
    for (n, &at) in starts.iter().enumerate() {
        let after = &text[at + delimiter.len()..];
        if after.starts_with("--") {
            closed = true;
            break;
        }
        let line_end = after
            .find('\n')
            .ok_or_else(|| bad_response("dataverse $batch response is cut short in a delimiter"))?;
        let begin = at + delimiter.len() + line_end + 1;
        let end = starts
            .get(n + 1)
            .copied()
            .ok_or_else(|| bad_response("dataverse $batch response is cut short"))?;
        let content = &text[begin..end.max(begin)];
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        parts.push(content);
    }
    if !closed {
        return Err(bad_response(
            "dataverse $batch response has no closing delimiter (cut short)",
        ));
    }
    Ok(parts)
}

/// Header lines up to the first empty line, and the rest.
fn headers_and_rest(text: &str) -> Result<(Vec<(String, String)>, &str)> {
    let mut headers = Vec::new();
    let mut rest = text;
    loop {
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        rest = next;
        if line.is_empty() {
            return Ok((headers, rest));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad_response("dataverse $batch response has a malformed header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        if next.is_empty() {
            return Ok((headers, ""));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// An `application/http` MIME part: its headers, then `HTTP/1.1 <status> <reason>`, the
/// response headers and the body.
fn parse_http_part(part: &str) -> Result<OpResponse> {
    let (mime, content) = headers_and_rest(part)?;
    let content_id = header(&mime, "content-id").map(str::to_owned);
    let (status_line, rest) = content.split_once('\n').unwrap_or((content, ""));
    let status = status_line
        .trim()
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| bad_response("dataverse $batch response part has no http status line"))?;
    let (headers, body) = headers_and_rest(rest)?;
    Ok(OpResponse {
        content_id,
        status,
        headers,
        body: body.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_with_a_changeset_and_a_single_part_parses() {
        let body = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n\
            --changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
            HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n\
            --changesetresponse_2--\r\n\
            --batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"x\",\"message\":\"m\"}}\r\n\
            --batchresponse_1--\r\n";
        let parts = parse(
            Some("multipart/mixed; boundary=batchresponse_1"),
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(parts.len(), 2);
        match &parts[0] {
            PartResponse::Changeset(ops) => {
                assert_eq!(ops[0].status, 204);
                assert_eq!(ops[0].content_id.as_deref(), Some("1"));
            }
            other => panic!("{other:?}"),
        }
        match &parts[1] {
            PartResponse::Single(op) => {
                assert_eq!(op.status, 400);
                assert!(op.body.contains("\"m\""));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cut_response_is_an_error() {
        let body = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert!(parse(Some("multipart/mixed; boundary=b"), body.as_bytes()).is_err());
        assert!(parse(Some("text/html"), b"<html/>").is_err());
    }
}
