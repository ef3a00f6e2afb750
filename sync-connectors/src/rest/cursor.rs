//! Writing cursor values into requests: the formats, and the one-unit step that turns an
//! exclusive API bound into the inclusive bound a strategy asks for.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sync_core::{Error, Result, Value};

use super::config::CursorFormat;

/// Checks a strftime pattern once, at config time (chrono panics on a bad pattern when it
/// formats, so a bad pattern must never reach a request).
pub(crate) fn check_pattern(pattern: &str) -> Result<()> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
        return Err(Error::config(format!(
            "the cursor format {pattern:?} is not a valid strftime pattern"
        )));
    }
    Ok(())
}

impl CursorFormat {
    /// The smallest step of this format, in milliseconds (for timestamps) or 1 (integers).
    fn unit_millis(&self) -> i64 {
        match self {
            CursorFormat::Rfc3339Millis | CursorFormat::EpochMillis => 1,
            CursorFormat::Rfc3339Seconds | CursorFormat::EpochSeconds => 1000,
            CursorFormat::Plain => 1,
            CursorFormat::Strftime(p) if p.contains("%.") || p.contains("%3f") => 1,
            CursorFormat::Strftime(_) => 1000,
        }
    }

    /// Writes `value`; `step` moves it by that many units of the format first (negative:
    /// earlier). A timestamp written with a coarser unit is rounded toward the side that keeps
    /// the bound inclusive: down for a lower bound (`step <= 0`), up for an upper bound.
    pub fn write(&self, value: &Value, step: i64, lower: bool) -> Result<String> {
        match value {
            Value::Timestamp(t) => {
                let unit = self.unit_millis();
                let t = round_to(*t, unit, lower) + Duration::milliseconds(step * unit);
                Ok(self.write_time(t))
            }
            Value::Integer(i) => match self {
                CursorFormat::Plain => Ok(i.saturating_add(step).to_string()),
                _ => Err(Error::config(
                    "an integer cursor is sent with format \"plain\"",
                )),
            },
            other => Err(Error::invalid_input(format!(
                "a cursor bound must be a timestamp or an integer, not {other:?}"
            ))),
        }
    }

    fn write_time(&self, t: DateTime<Utc>) -> String {
        match self {
            CursorFormat::Rfc3339Millis => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            CursorFormat::Rfc3339Seconds => t.to_rfc3339_opts(SecondsFormat::Secs, true),
            CursorFormat::EpochMillis => t.timestamp_millis().to_string(),
            CursorFormat::EpochSeconds => t.timestamp().to_string(),
            CursorFormat::Plain => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            CursorFormat::Strftime(p) => t.format(p).to_string(),
        }
    }
}

/// `t` rounded to a multiple of `unit_ms`: down when `down`, else up.
fn round_to(t: DateTime<Utc>, unit_ms: i64, down: bool) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    let unit = unit_ms * 1000;
    let floor = micros.div_euclid(unit) * unit;
    let rounded = if down || floor == micros {
        floor
    } else {
        floor + unit
    };
    DateTime::from_timestamp_micros(rounded).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Value {
        Value::Timestamp(s.parse().unwrap())
    }

    #[test]
    fn formats_write_timestamps_and_integers() {
        let t = at("2016-07-06T22:04:04.380Z");
        let cases = [
            (CursorFormat::Rfc3339Millis, "2016-07-06T22:04:04.380Z"),
            (CursorFormat::Rfc3339Seconds, "2016-07-06T22:04:04Z"),
            (CursorFormat::EpochMillis, "1467842644380"),
            (CursorFormat::EpochSeconds, "1467842644"),
            (
                CursorFormat::Strftime("%Y-%m-%d %H:%M:%S%.3f%z".into()),
                "2016-07-06 22:04:04.380+0000",
            ),
        ];
        for (format, want) in cases {
            assert_eq!(format.write(&t, 0, true).unwrap(), want, "{format:?}");
        }
        assert_eq!(
            CursorFormat::Plain
                .write(&Value::Integer(41), -1, true)
                .unwrap(),
            "40"
        );
        assert!(CursorFormat::EpochMillis
            .write(&Value::Integer(1), 0, true)
            .is_err());
        assert!(CursorFormat::Plain
            .write(&Value::from("x"), 0, true)
            .is_err());
    }

    #[test]
    fn exclusive_bounds_step_one_unit_and_coarse_units_round_outward() {
        let t = at("2024-01-01T00:00:05.250Z");
        // An exclusive lower bound one unit earlier: `> 5.249` still returns the record at 5.250.
        assert_eq!(
            CursorFormat::Rfc3339Millis.write(&t, -1, true).unwrap(),
            "2024-01-01T00:00:05.249Z"
        );
        // Seconds: the lower bound rounds down (5 s) then steps (4 s): `> 4` keeps 5.250.
        assert_eq!(
            CursorFormat::EpochSeconds.write(&t, -1, true).unwrap(),
            "1704067204"
        );
        // An upper bound rounds up, so `<= 6` keeps the record at 5.250.
        assert_eq!(
            CursorFormat::Rfc3339Seconds.write(&t, 0, false).unwrap(),
            "2024-01-01T00:00:06Z"
        );
    }

    #[test]
    fn bad_strftime_patterns_are_rejected_at_config_time() {
        assert!(check_pattern("%Y-%m-%d").is_ok());
        assert_eq!(
            check_pattern("%Y-%Q").unwrap_err().kind(),
            sync_core::ErrorKind::Config
        );
    }
}
