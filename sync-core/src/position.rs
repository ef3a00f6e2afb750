//! Positions in a source for every strategy, windows `(low, high]`, and checkpoint deltas
//! `(from, to]` that refuse to go backwards.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::record::Key;
use crate::value::Value;

/// A change-queue sequence number, 128 bits wide so SQS/SNS FIFO `SequenceNumber`s fit.
/// Serialized as a decimal string (JSON numbers cannot hold it faithfully).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SequenceNo(pub u128);

impl fmt::Display for SequenceNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for SequenceNo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        s.parse::<u128>().map(SequenceNo).map_err(|e| {
            Error::invalid_input(format!("invalid sequence number {s:?}")).with_source(e)
        })
    }
}

impl Serialize for SequenceNo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SequenceNo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A half-open window `(low, high]` of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Exclusive lower bound.
    pub low: SequenceNo,
    /// Inclusive upper bound.
    pub high: SequenceNo,
}

impl Window {
    /// A window; `low <= high` is required (an empty window has `low == high`).
    pub fn new(low: SequenceNo, high: SequenceNo) -> Result<Self> {
        if low > high {
            return Err(
                Error::new(ErrorKind::CheckpointDelta, "window low is above high")
                    .with_context("low", low)
                    .with_context("high", high),
            );
        }
        Ok(Window { low, high })
    }

    /// True when the window holds no sequence number.
    pub fn is_empty(&self) -> bool {
        self.low == self.high
    }

    /// True when `seq` lies in `(low, high]`.
    pub fn contains(&self, seq: SequenceNo) -> bool {
        seq > self.low && seq <= self.high
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {}]", self.low, self.high)
    }
}

/// A cursor value paired with the primary key of the last record read at that value, so
/// records that share the boundary value are neither lost nor read twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorKey {
    /// Cursor column values (one per cursor column).
    pub cursor: Vec<Value>,
    /// Primary key of the last record at `cursor`; `None` means every record at `cursor` is done.
    pub key: Option<Key>,
}

impl CursorKey {
    /// Compares (cursor, key) tuples; `key: None` sorts after every key at the same cursor.
    pub fn compare(&self, other: &CursorKey) -> Option<Ordering> {
        match compare_values(&self.cursor, &other.cursor)? {
            Ordering::Equal => match (&self.key, &other.key) {
                (None, None) => Some(Ordering::Equal),
                (None, Some(_)) => Some(Ordering::Greater),
                (Some(_), None) => Some(Ordering::Less),
                (Some(a), Some(b)) => Some(a.cmp(b)),
            },
            o => Some(o),
        }
    }
}

/// Compares two value tuples element by element; `None` when types differ.
pub fn compare_values(a: &[Value], b: &[Value]) -> Option<Ordering> {
    if a.len() != b.len() {
        return None;
    }
    crate::record::compare_in_order(a.iter(), b.iter())
}

/// Where a sync stands in its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// Nothing read yet.
    Start,
    /// Everything up to and including this instant.
    Timestamp(DateTime<Utc>),
    /// Everything up to and including this version number.
    Version(i64),
    /// Everything up to and including this (cursor, key).
    CursorKey(CursorKey),
    /// The number of records read from the start of an ordered result.
    Offset(u64),
    /// The last page number read.
    Page(u64),
    /// An opaque continuation token (comparable only for equality).
    Token(String),
    /// Everything up to and including this sequence number.
    Sequence(SequenceNo),
}

impl Position {
    /// A short name of the variant, for errors and ledger rows.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Position::Start => "start",
            Position::Timestamp(_) => "timestamp",
            Position::Version(_) => "version",
            Position::CursorKey(_) => "cursor_key",
            Position::Offset(_) => "offset",
            Position::Page(_) => "page",
            Position::Token(_) => "token",
            Position::Sequence(_) => "sequence",
        }
    }

    /// Orders two positions of the same kind. `Start` is before everything. Tokens compare
    /// equal only to themselves and are otherwise unordered (`None`), as are mixed kinds.
    pub fn compare(&self, other: &Position) -> Option<Ordering> {
        use Position::*;
        match (self, other) {
            (Start, Start) => Some(Ordering::Equal),
            (Start, _) => Some(Ordering::Less),
            (_, Start) => Some(Ordering::Greater),
            (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
            (Version(a), Version(b)) => Some(a.cmp(b)),
            (CursorKey(a), CursorKey(b)) => a.compare(b),
            (Offset(a), Offset(b)) | (Page(a), Page(b)) => Some(a.cmp(b)),
            (Sequence(a), Sequence(b)) => Some(a.cmp(b)),
            (Token(a), Token(b)) if a == b => Some(Ordering::Equal),
            _ => None,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Start => f.write_str("start"),
            Position::Timestamp(t) => write!(f, "{}", t.to_rfc3339()),
            Position::Version(v) => write!(f, "v{v}"),
            Position::CursorKey(ck) => {
                let c: Vec<String> = ck.cursor.iter().map(ToString::to_string).collect();
                match &ck.key {
                    Some(k) => write!(f, "({}, {k})", c.join(",")),
                    None => write!(f, "({}, *)", c.join(",")),
                }
            }
            Position::Offset(o) => write!(f, "offset {o}"),
            Position::Page(p) => write!(f, "page {p}"),
            Position::Token(_) => f.write_str("token"),
            Position::Sequence(s) => write!(f, "seq {s}"),
        }
    }
}

/// The checkpoint delta a batch advances: `(from, to]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointDelta {
    /// Where the checkpoint must stand before the batch is applied.
    pub from: Position,
    /// Where it stands after.
    pub to: Position,
}

impl CheckpointDelta {
    /// A delta; fails when `to` is before `from` or the two cannot be compared.
    pub fn new(from: Position, to: Position) -> Result<Self> {
        check_forward(&from, &to)?;
        Ok(CheckpointDelta { from, to })
    }

    /// A delta that does not move (a batch of deletes or a retry).
    pub fn stay(at: Position) -> Self {
        CheckpointDelta {
            from: at.clone(),
            to: at,
        }
    }

    /// Applies the delta to `current`: it must continue exactly from `current`. Returns the new
    /// position, or a [`ErrorKind::CheckpointDelta`] error and leaves `current` alone.
    pub fn try_apply(&self, current: &Position) -> Result<Position> {
        if &self.from != current {
            return Err(Error::new(
                ErrorKind::CheckpointDelta,
                "delta does not continue from the checkpoint",
            )
            .with_context("checkpoint", current)
            .with_context("from", &self.from));
        }
        check_forward(&self.from, &self.to)?;
        Ok(self.to.clone())
    }

    /// Joins `self` with a following delta `(self.to, next.to]`.
    pub fn extend(&self, next: &CheckpointDelta) -> Result<CheckpointDelta> {
        let to = next.try_apply(&self.to)?;
        Ok(CheckpointDelta {
            from: self.from.clone(),
            to,
        })
    }
}

/// Fails unless `to >= from` (an opaque token may replace any token or `Start`).
pub fn check_forward(from: &Position, to: &Position) -> Result<()> {
    let ok = match (from, to) {
        (Position::Token(_) | Position::Start, Position::Token(_)) => true,
        _ => matches!(from.compare(to), Some(Ordering::Less | Ordering::Equal)),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::CheckpointDelta,
            "checkpoint delta goes backwards or changes kind",
        )
        .with_context("from", from)
        .with_context("to", to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_hold_sqs_values_beyond_u64() {
        let s: SequenceNo = "18849496460467696128".parse().unwrap();
        assert!(s.0 > u128::from(u64::MAX));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"18849496460467696128\"");
        assert_eq!(serde_json::from_str::<SequenceNo>(&json).unwrap(), s);
        assert!("-1".parse::<SequenceNo>().is_err());
    }

    #[test]
    fn a_backwards_delta_is_rejected_and_state_is_unchanged() {
        let cur = Position::Version(10);
        let back = CheckpointDelta {
            from: Position::Version(10),
            to: Position::Version(9),
        };
        assert_eq!(
            back.try_apply(&cur).unwrap_err().kind(),
            ErrorKind::CheckpointDelta
        );
        assert_eq!(
            CheckpointDelta::new(Position::Offset(5), Position::Offset(4))
                .unwrap_err()
                .kind(),
            ErrorKind::CheckpointDelta
        );
        let gap = CheckpointDelta::new(Position::Version(11), Position::Version(12)).unwrap();
        assert!(gap.try_apply(&cur).is_err());
        let ok = CheckpointDelta::new(Position::Version(10), Position::Version(12)).unwrap();
        assert_eq!(ok.try_apply(&cur).unwrap(), Position::Version(12));
    }

    #[test]
    fn mixed_kinds_do_not_compare() {
        assert!(CheckpointDelta::new(Position::Offset(1), Position::Page(2)).is_err());
        assert!(CheckpointDelta::new(Position::Start, Position::Page(2)).is_ok());
        assert!(
            CheckpointDelta::new(Position::Token("a".into()), Position::Token("b".into())).is_ok()
        );
    }

    #[test]
    fn cursor_key_ties_break_on_the_key() {
        let at = |c: i64, k: Option<&str>| CursorKey {
            cursor: vec![Value::from(c)],
            key: k.map(|k| Key(vec![Value::from(k)])),
        };
        assert_eq!(
            at(1, Some("b")).compare(&at(1, Some("a"))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            at(1, None).compare(&at(1, Some("z"))),
            Some(Ordering::Greater)
        );
        assert_eq!(at(1, None).compare(&at(2, Some("a"))), Some(Ordering::Less));
    }

    #[test]
    fn windows_are_half_open() {
        let w = Window::new(SequenceNo(4), SequenceNo(9)).unwrap();
        assert!(
            !w.contains(SequenceNo(4)) && w.contains(SequenceNo(5)) && w.contains(SequenceNo(9))
        );
        assert!(Window::new(SequenceNo(5), SequenceNo(4)).is_err());
        assert_eq!(w.to_string(), "(4, 9]");
    }
}
