//! The reference validation semantics: one row per key (newest by the version guard, the
//! last staged on ties), then quarantine of rows that break the schema or a rule.

use std::collections::BTreeMap;

use crate::record::{Key, Row};
use crate::schema::StreamSchema;
use crate::stager::{ValidationReport, ValidationRules};

/// Rows that passed, rows quarantined with their reasons, and the counts.
#[derive(Debug)]
pub(crate) struct Validated {
    pub(crate) valid: Vec<Row>,
    pub(crate) quarantined: Vec<(Row, String)>,
    pub(crate) report: ValidationReport,
}

/// Validates `rows` (in staging order) against `schema` and `rules`.
pub(crate) fn validate_rows(
    schema: &StreamSchema,
    rows: Vec<Row>,
    rules: &ValidationRules,
) -> Validated {
    let mut quarantined = Vec::new();
    let mut newest: BTreeMap<Key, Row> = BTreeMap::new();
    let mut duplicates = 0;
    for row in rows {
        if let Err(reason) = check_row(schema, &row, rules) {
            quarantined.push((row, reason));
            continue;
        }
        let key = row.key(schema);
        match newest.get(&key) {
            Some(kept) => {
                duplicates += 1;
                if !row.compare_guard(kept, schema).is_lt() {
                    newest.insert(key, row);
                }
            }
            None => {
                newest.insert(key, row);
            }
        }
    }
    let valid: Vec<Row> = newest.into_values().collect();
    let report = ValidationReport {
        valid: valid.len() as u64,
        duplicates_dropped: duplicates,
        quarantined: quarantined.len() as u64,
    };
    Validated {
        valid,
        quarantined,
        report,
    }
}

fn check_row(schema: &StreamSchema, row: &Row, rules: &ValidationRules) -> Result<(), String> {
    row.check(schema)?;
    if let Some(&col) = rules.require.iter().find(|&&c| row.get(c).is_null()) {
        return Err(rules.require_reason.clone().unwrap_or_else(|| {
            format!("missing required field {:?}", schema.columns()[col].name)
        }));
    }
    for rule in &rules.rules {
        rule.check(schema, row)
            .map_err(|reason| format!("{}: {reason}", rule.name()))?;
    }
    Ok(())
}
