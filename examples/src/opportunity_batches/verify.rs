//! The target against the source: every `OptyId` once, every value equal.

use std::collections::BTreeMap;

use sync_core::{Result, Row, Value};

use super::{BatchPipeline, STREAM};

/// How the target compares with what the source holds now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetCheck {
    /// Opportunities in the source.
    pub source_rows: usize,
    /// Rows in the target.
    pub target_rows: usize,
    /// `OptyId`s the source has and the target lacks (records lost).
    pub missing: Vec<i64>,
    /// `OptyId`s the target holds more than once (records duplicated).
    pub duplicated: Vec<i64>,
    /// `OptyId`s the target has and the source does not.
    pub unexpected: Vec<i64>,
    /// `OptyId`s whose values differ from the source's.
    pub differing: Vec<i64>,
}

impl TargetCheck {
    /// Compares target rows with source rows (both in the target's column order).
    pub fn compare(source: &[Row], target: &[Row]) -> TargetCheck {
        let id = |r: &Row| match r.get(0) {
            Value::Integer(i) => *i,
            _ => i64::MIN,
        };
        let mut held: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
        for r in target {
            held.entry(id(r)).or_default().push(r);
        }
        let mut check = TargetCheck {
            source_rows: source.len(),
            target_rows: target.len(),
            ..TargetCheck::default()
        };
        for s in source {
            let key = id(s);
            match held.remove(&key) {
                None => check.missing.push(key),
                Some(rows) => {
                    if rows.len() > 1 {
                        check.duplicated.push(key);
                    }
                    if rows.iter().any(|t| *t != s) {
                        check.differing.push(key);
                    }
                }
            }
        }
        check.unexpected = held.into_keys().collect();
        check
    }

    /// True when the target equals the source: same keys, each once, same values.
    pub fn is_equal(&self) -> bool {
        self.source_rows == self.target_rows
            && self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.unexpected.is_empty()
            && self.differing.is_empty()
    }

    /// One line saying how it compares.
    pub fn summary(&self) -> String {
        if self.is_equal() {
            return format!(
                "{} rows, every OptyId once, every value equal to the source's",
                self.target_rows
            );
        }
        let first = |v: &[i64]| {
            v.first()
                .map_or(String::new(), |id| format!(" (first {id})"))
        };
        format!(
            "{} rows for {} in the source: {} missing{}, {} duplicated{}, {} not in the source{}, {} differing{}",
            self.target_rows,
            self.source_rows,
            self.missing.len(),
            first(&self.missing),
            self.duplicated.len(),
            first(&self.duplicated),
            self.unexpected.len(),
            first(&self.unexpected),
            self.differing.len(),
            first(&self.differing),
        )
    }
}

impl BatchPipeline {
    /// Reads the target (through the store's read API) and compares it with the source.
    pub async fn verify(&self) -> Result<TargetCheck> {
        let target = self.database().stager.read_target(STREAM).await?;
        let source = self.source().rows()?;
        Ok(TargetCheck::compare(&source, &target))
    }
}
