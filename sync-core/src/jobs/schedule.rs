//! When the workers enqueue an integration's streams by themselves: a fixed interval or a
//! cron expression, both in UTC.
//!
//! A schedule divides time into slots; a slot's start is its fire time. Every worker's sweep
//! enqueues the current slot's jobs with the idempotency key `schedule:<key>@<slot>`, so a
//! slot runs once however many workers sweep, with no coordinator.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// A schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Every `seconds` seconds, slots aligned to the Unix epoch.
    Interval {
        /// The interval, at least 1.
        seconds: u64,
    },
    /// A cron expression (five fields, or six with seconds first), in UTC.
    Cron {
        /// The expression, such as `*/15 * * * *`.
        expression: String,
    },
}

impl Schedule {
    /// Every `seconds` seconds.
    pub fn every(seconds: u64) -> Self {
        Schedule::Interval { seconds }
    }

    /// A cron expression (checked by [`Schedule::validate`]).
    pub fn cron(expression: impl Into<String>) -> Self {
        Schedule::Cron {
            expression: expression.into(),
        }
    }

    /// Checks the interval (1 second to 366 days) or parses the expression.
    pub fn validate(&self) -> Result<()> {
        match self {
            Schedule::Interval { seconds } if (1..=366 * 86_400).contains(seconds) => Ok(()),
            Schedule::Interval { .. } => Err(Error::new(
                ErrorKind::InvalidInput,
                "a schedule interval must be 1 second to 366 days",
            )),
            Schedule::Cron { expression } => parse_cron(expression).map(|_| ()),
        }
    }

    /// The start of the slot `now` is in: the latest fire time at or before `now`.
    pub fn current_slot(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        match self {
            Schedule::Interval { seconds } => {
                self.validate()?;
                let secs = *seconds as i64;
                let start = now.timestamp().div_euclid(secs) * secs;
                Utc.timestamp_opt(start, 0)
                    .single()
                    .ok_or_else(|| Error::internal("schedule slot out of range"))
            }
            Schedule::Cron { expression } => parse_cron(expression)?
                .find_previous_occurrence(&now, true)
                .map_err(|e| {
                    Error::new(ErrorKind::InvalidInput, "cron expression never fires")
                        .with_context("expression", expression)
                        .with_source(e)
                }),
        }
    }
}

fn parse_cron(expression: &str) -> Result<croner::Cron> {
    croner::Cron::from_str(expression).map_err(|e| {
        Error::new(ErrorKind::InvalidInput, "invalid cron expression")
            .with_context("expression", expression)
            .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn interval_slots_align_to_the_epoch() {
        let s = Schedule::every(900);
        assert_eq!(
            s.current_slot(at("2026-12-02T10:14:59Z")).unwrap(),
            at("2026-12-02T10:00:00Z")
        );
        assert_eq!(
            s.current_slot(at("2026-12-02T10:15:00Z")).unwrap(),
            at("2026-12-02T10:15:00Z")
        );
    }

    #[test]
    fn cron_slots_are_the_latest_fire_time() {
        let s = Schedule::cron("30 2 * * *");
        assert_eq!(
            s.current_slot(at("2026-12-02T10:00:00Z")).unwrap(),
            at("2026-12-02T02:30:00Z")
        );
        assert_eq!(
            s.current_slot(at("2026-12-02T01:00:00Z")).unwrap(),
            at("2026-12-01T02:30:00Z")
        );
    }

    #[test]
    fn bad_schedules_are_invalid_input() {
        for bad in [
            Schedule::every(0),
            Schedule::cron("every tuesday"),
            Schedule::cron("61 * * * *"),
        ] {
            assert_eq!(
                bad.validate().unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        assert!(Schedule::cron("*/5 * * * *").validate().is_ok());
    }
}
