//! The `Link` header (RFC 8288), as used for next-page links.

use reqwest::header::{HeaderMap, LINK};

/// One link of a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target between `<` and `>`, as written (it may be relative).
    pub target: String,
    /// The relation types of the first `rel` parameter, lowercased (`rel="next last"` gives
    /// two).
    pub rels: Vec<String>,
    /// The other parameters in order, names lowercased, quoted values unquoted.
    pub params: Vec<(String, String)>,
}

impl Link {
    /// True when `rel` is one of the link's relation types (ignoring case).
    pub fn has_rel(&self, rel: &str) -> bool {
        self.rels.iter().any(|r| r.eq_ignore_ascii_case(rel))
    }

    /// The value of a parameter other than `rel`, by name (ignoring case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one `Link` header value: `<url>; rel="next"; title="x", <url2>; rel=last`.
///
/// Commas inside `<...>` or inside quoted strings do not split links. A malformed link is
/// skipped up to the next comma that separates links; the others are kept.
pub fn parse_link_header(value: &str) -> Vec<Link> {
    let mut parser = Parser {
        s: value,
        bytes: value.as_bytes(),
        pos: 0,
    };
    let mut links = Vec::new();
    loop {
        parser.skip(|b| b == b',' || b.is_ascii_whitespace());
        if parser.at_end() {
            return links;
        }
        match parser.link() {
            Some(link) => links.push(link),
            None => parser.skip_to_next_link(),
        }
    }
}

/// The target of the first link with `rel="next"` over all `Link` headers, as written.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_header)
        .find(|link| link.has_rel("next"))
        .map(|link| link.target)
}

struct Parser<'a> {
    s: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&what) {
            self.pos += 1;
        }
    }

    fn skip_ws(&mut self) {
        self.skip(|b| b == b' ' || b == b'\t');
    }

    /// `<target>` followed by `; param` pairs, up to the comma ending the link or the end.
    fn link(&mut self) -> Option<Link> {
        if self.peek() != Some(b'<') {
            return None;
        }
        let start = self.pos + 1;
        let end = start + self.s[start..].find('>')?;
        let target = self.s[start..end].trim().to_owned();
        self.pos = end + 1;
        let mut rels: Option<Vec<String>> = None;
        let mut params = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(b',') => {
                    self.pos += 1;
                    break;
                }
                Some(b';') => {
                    self.pos += 1;
                    let Some((name, value)) = self.param() else {
                        continue;
                    };
                    if name == "rel" {
                        // Only the first rel counts (RFC 8288 section 3.3).
                        if rels.is_none() {
                            rels = Some(
                                value
                                    .split_ascii_whitespace()
                                    .map(str::to_ascii_lowercase)
                                    .collect(),
                            );
                        }
                    } else {
                        params.push((name, value));
                    }
                }
                Some(_) => return None,
            }
        }
        Some(Link {
            target,
            rels: rels.unwrap_or_default(),
            params,
        })
    }

    /// `name [= (token | "quoted")]`; `None` for an empty name.
    fn param(&mut self) -> Option<(String, String)> {
        self.skip_ws();
        let start = self.pos;
        self.skip(|b| !matches!(b, b'=' | b';' | b',' | b' ' | b'\t'));
        let name = self.s[start..self.pos].to_ascii_lowercase();
        self.skip_ws();
        let mut value = String::new();
        if self.peek() == Some(b'=') {
            self.pos += 1;
            self.skip_ws();
            if self.peek() == Some(b'"') {
                value = self.quoted();
            } else {
                let start = self.pos;
                self.skip(|b| !matches!(b, b';' | b',' | b' ' | b'\t'));
                value = self.s[start..self.pos].to_owned();
            }
        }
        if name.is_empty() {
            return None;
        }
        Some((name, value))
    }

    /// A quoted string starting at `"`, with `\` escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.s[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return out;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                }
                c => out.push(c),
            }
        }
        self.pos = self.bytes.len();
        out
    }

    /// Skips a malformed link: to the next comma outside `<...>` and quotes.
    fn skip_to_next_link(&mut self) {
        let mut in_quotes = false;
        let mut in_angle = false;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'\\' if in_quotes => self.pos += 1,
                b'"' if !in_angle => in_quotes = !in_quotes,
                b'<' if !in_quotes => in_angle = true,
                b'>' if !in_quotes => in_angle = false,
                b',' if !in_quotes && !in_angle => return,
                _ => {}
            }
        }
    }
}
