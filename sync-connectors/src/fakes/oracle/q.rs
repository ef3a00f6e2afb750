//! The subset of Oracle's framework v2 `q` syntax the fake understands:
//! `expr := and ("or" and)*`, `and := atom ("and" atom)*`,
//! `atom := "(" expr ")" | Attr op literal`, `op := = | != | > | >= | < | <=`,
//! literals `'text'` (`''` inside) or integers. A quoted literal compared with a date
//! attribute must be an ISO 8601 timestamp.

use chrono::{DateTime, Utc};

/// A value of an attribute or a literal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Literal {
    /// An integer attribute (`PartyId`, `OptyId`).
    Number(i64),
    /// A text attribute (`PartyNumber`, `Name`).
    Text(String),
    /// A timestamp attribute (`LastUpdateDate`).
    Time(DateTime<Utc>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// True when any part is.
    Or(Vec<Expr>),
    /// True when every part is.
    And(Vec<Expr>),
    /// `Attribute op literal`.
    Cmp(String, Op, Lit),
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// An integer.
    Number(i64),
    /// A quoted string (a timestamp when compared with a date attribute).
    Quoted(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Op(Op),
    Quoted(String),
    Number(i64),
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            text.push(*c);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Quoted(text));
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let (op, len) = match two.as_str() {
                    ">=" => (Op::Ge, 2),
                    "<=" => (Op::Le, 2),
                    "!=" => (Op::Ne, 2),
                    _ => match c {
                        '=' => (Op::Eq, 1),
                        '>' => (Op::Gt, 1),
                        '<' => (Op::Lt, 1),
                        _ => return Err(format!("unknown operator at {i}")),
                    },
                };
                out.push(Tok::Op(op));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Tok::Number(text.parse().map_err(|_| "bad number")?));
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.and()?];
        while self.peek_word("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.atom()?];
        while self.peek_word("and") {
            self.at += 1;
            parts.push(self.atom()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Expr::And(parts)
        })
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let tok = self.toks.get(self.at).cloned();
        self.at += 1;
        match tok {
            Some(Tok::Open) => {
                let e = self.expr()?;
                match self.toks.get(self.at) {
                    Some(Tok::Close) => {
                        self.at += 1;
                        Ok(e)
                    }
                    _ => Err("missing )".into()),
                }
            }
            Some(Tok::Ident(attr)) => {
                let op = match self.toks.get(self.at) {
                    Some(Tok::Op(op)) => *op,
                    _ => return Err(format!("{attr} needs an operator")),
                };
                let lit = match self.toks.get(self.at + 1) {
                    Some(Tok::Quoted(s)) => Lit::Quoted(s.clone()),
                    Some(Tok::Number(n)) => Lit::Number(*n),
                    _ => return Err(format!("{attr} needs a literal")),
                };
                self.at += 2;
                Ok(Expr::Cmp(attr, op, lit))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

/// Parses a `q` value.
pub fn parse(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: lex(s)?,
        at: 0,
    };
    let e = p.expr()?;
    if p.at != p.toks.len() {
        return Err("trailing input".into());
    }
    Ok(e)
}

impl Expr {
    /// Evaluates against a record's attributes; an unknown attribute or a literal of the wrong
    /// type is an error (Oracle answers 400).
    pub fn eval(&self, attr: &dyn Fn(&str) -> Option<Literal>) -> Result<bool, String> {
        match self {
            Expr::Or(parts) => {
                for p in parts {
                    if p.eval(attr)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Expr::And(parts) => {
                for p in parts {
                    if !p.eval(attr)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Expr::Cmp(name, op, lit) => {
                let value = attr(name).ok_or_else(|| format!("attribute {name} is not defined"))?;
                let lit = match (&value, lit) {
                    (Literal::Number(_), Lit::Number(n)) => Literal::Number(*n),
                    (Literal::Text(_), Lit::Quoted(s)) => Literal::Text(s.clone()),
                    (Literal::Time(_), Lit::Quoted(s)) => Literal::Time(
                        DateTime::parse_from_rfc3339(s)
                            .map_err(|_| format!("{s} is not a valid date for {name}"))?
                            .with_timezone(&Utc),
                    ),
                    _ => return Err(format!("the literal for {name} has the wrong type")),
                };
                let o = value.cmp(&lit);
                Ok(match op {
                    Op::Eq => o.is_eq(),
                    Op::Ne => o.is_ne(),
                    Op::Gt => o.is_gt(),
                    Op::Ge => o.is_ge(),
                    Op::Lt => o.is_lt(),
                    Op::Le => o.is_le(),
                })
            }
        }
    }
}
