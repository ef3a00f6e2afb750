//! Time-window slicing: the cursor range is read in slices, each paged by an inner paginator,
//! and a slice holding more records than the API pages through consistently is bisected
//! before its records are taken.
//!
//! The position inside a sliced read is a token holding the slice and the inner selector, so
//! a read stopped anywhere resumes in the same slice.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sync_core::{Error, ErrorKind, PageSelector, Result};

use super::paginate::PaginatorConfig;

/// Slicing options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowConfig {
    /// Length of a slice, in milliseconds.
    pub slice_ms: i64,
    /// A slice is never bisected below this length, in milliseconds.
    #[serde(default = "default_min_slice")]
    pub min_slice_ms: i64,
    /// Most records the API pages through consistently in one query; a slice whose total is
    /// larger is bisected (needs the stream's `total_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
    /// Where a read without a lower bound starts.
    pub start: DateTime<Utc>,
    /// How each slice pages.
    pub inner: Box<PaginatorConfig>,
}

fn default_min_slice() -> i64 {
    1000
}

impl TimeWindowConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.slice_ms <= 0 || self.min_slice_ms <= 0 || self.min_slice_ms > self.slice_ms {
            return Err(Error::config(
                "time windows need 0 < min_slice_ms <= slice_ms",
            ));
        }
        if self.max_records == Some(0) {
            return Err(Error::config("max_records must be at least 1"));
        }
        Ok(())
    }

    /// The slice state a read with these bounds starts in.
    pub(crate) fn first(&self, since: Option<DateTime<Utc>>, until: DateTime<Utc>) -> Slice {
        let lo = since.unwrap_or(self.start);
        Slice {
            lo,
            open_lo: false,
            hi: (lo + Duration::milliseconds(self.slice_ms)).min(until),
            end: until,
            inner: None,
            checked: false,
        }
    }

    /// The slice after `slice` (which is done), or `None` past the end. The next slice is
    /// `(hi, hi + slice]`: its lower bound is sent inclusive and the records at `hi` that it
    /// returns again are dropped, so no record between two bounds written in a coarser unit
    /// than the cursor's is lost.
    pub(crate) fn after(&self, slice: &Slice) -> Option<Slice> {
        let lo = slice.hi;
        (lo < slice.end).then(|| Slice {
            lo,
            open_lo: true,
            hi: (lo + Duration::milliseconds(self.slice_ms)).min(slice.end),
            end: slice.end,
            inner: None,
            checked: false,
        })
    }

    /// `slice` halved when its reported `total` is more than the API pages consistently;
    /// `None` when it fits (or cannot shrink further, which is logged by the caller).
    pub(crate) fn bisect(&self, slice: &Slice, total: Option<u64>) -> Option<Slice> {
        let (Some(max), Some(total)) = (self.max_records, total) else {
            return None;
        };
        let len = (slice.hi - slice.lo).num_milliseconds();
        if total <= max || len < 2 * self.min_slice_ms {
            return None;
        }
        Some(Slice {
            hi: slice.lo + Duration::milliseconds(len / 2),
            ..slice.clone()
        })
    }
}

/// One slice `[lo, hi]` (or `(lo, hi]` after the first) of a read up to `end`, and where its
/// inner paging is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Slice {
    pub(crate) lo: DateTime<Utc>,
    /// Records at `lo` belong to the slice before.
    #[serde(default)]
    pub(crate) open_lo: bool,
    pub(crate) hi: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    /// The inner selector; `None` for the slice's first page.
    pub(crate) inner: Option<PageSelector>,
    /// Whether the slice's size was checked against `max_records`.
    #[serde(default)]
    pub(crate) checked: bool,
}

impl Slice {
    /// The token form, as a page selector.
    pub(crate) fn to_selector(&self) -> PageSelector {
        PageSelector::Token(serde_json::to_string(self).expect("slices serialize"))
    }

    /// A slice from its token.
    pub(crate) fn from_token(token: &str) -> Result<Slice> {
        serde_json::from_str(token).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                "the time-window token is malformed",
            )
            .with_source(e)
        })
    }

    /// The inner selector to fetch.
    pub(crate) fn inner_selector(&self) -> PageSelector {
        self.inner.clone().unwrap_or(PageSelector::First)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: Option<u64>) -> TimeWindowConfig {
        TimeWindowConfig {
            slice_ms: 86_400_000,
            min_slice_ms: 1000,
            max_records: max,
            start: "2024-01-01T00:00:00Z".parse().unwrap(),
            inner: Box::new(PaginatorConfig::Single),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn slices_cover_the_range_without_overlap_and_stop_at_the_end() {
        let c = config(None);
        let end = t("2024-01-03T12:00:00Z");
        let mut s = c.first(None, end);
        let mut seen = vec![(s.lo, s.hi)];
        while let Some(next) = c.after(&s) {
            assert_eq!((next.lo, next.open_lo), (s.hi, true));
            s = next;
            seen.push((s.lo, s.hi));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen.last().unwrap().1, end);
    }

    #[test]
    fn a_slice_over_max_records_halves_down_to_the_minimum() {
        let c = config(Some(100));
        let s = c.first(Some(t("2024-01-01T00:00:00Z")), t("2024-01-05T00:00:00Z"));
        assert_eq!(c.bisect(&s, Some(100)), None);
        let half = c.bisect(&s, Some(101)).unwrap();
        assert_eq!(half.hi - half.lo, Duration::hours(12));
        let tiny = Slice {
            hi: s.lo + Duration::milliseconds(1500),
            ..s.clone()
        };
        assert_eq!(c.bisect(&tiny, Some(10_000)), None);
        assert_eq!(config(None).bisect(&s, Some(10_000)), None);
    }

    #[test]
    fn slice_tokens_round_trip_and_garbage_is_typed() {
        let c = config(None);
        let s = Slice {
            inner: Some(PageSelector::Offset(40)),
            ..c.first(None, t("2024-01-02T00:00:00Z"))
        };
        let PageSelector::Token(tok) = s.to_selector() else {
            panic!("a token")
        };
        assert_eq!(Slice::from_token(&tok).unwrap(), s);
        assert_eq!(
            Slice::from_token("{").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
