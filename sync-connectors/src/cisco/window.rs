//! Adaptive `modifiedSince`..`modifiedTill` windows over Search Devices.
//!
//! Search Devices pages by number over devices sorted by modification time. A device in an
//! already read window that changes during a read leaves the window (its new time is later),
//! and every device after it shifts one place forward: the first device of the next page is
//! never returned. A read of a single page cannot shift, so a window whose first page is not
//! its last is bisected before any of its devices are taken, until it fits in one page. The
//! next window starts where the last ended, twice as long (up to the longest window).
//!
//! A window of the shortest length that still holds more than a page (many devices changed
//! within one second) cannot be bisected: it is paged through in passes, each reading every
//! page, until two passes in a row return the same devices (same count and the same
//! order-independent digest of their ICCIDs), so a pass that lost a device to a shift is
//! followed by one that did not. Its devices are taken from every pass (re-reads are absorbed
//! by the keyed upsert).
//!
//! The window state is the page token, so a read stopped anywhere resumes in the same window.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sync_core::{Error, ErrorKind, PageSelector, Result};

/// Passes over one dense window before the read gives up with [`ErrorKind::Drift`].
pub(crate) const MAX_PASSES: u32 = 5;

/// The passes over a window too dense to bisect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Passes {
    /// The pass being read (1-based).
    pub(crate) pass: u32,
    /// Devices read in this pass so far, and the digest of their ICCIDs.
    pub(crate) count: u64,
    pub(crate) digest: u64,
    /// The last finished pass's (count, digest).
    pub(crate) previous: Option<(u64, u64)>,
}

impl Passes {
    /// Adds the devices of a page to the pass.
    pub(crate) fn add<'a>(&mut self, iccids: impl Iterator<Item = &'a str>) {
        for iccid in iccids {
            self.count += 1;
            self.digest = self.digest.wrapping_add(fnv1a(iccid.as_bytes()));
        }
    }

    /// Ends the pass: true when it agrees with the one before, else it becomes "the one
    /// before" of a new pass.
    pub(crate) fn finish(&mut self) -> bool {
        let this = (self.count, self.digest);
        if self.previous == Some(this) {
            return true;
        }
        *self = Passes {
            pass: self.pass + 1,
            count: 0,
            digest: 0,
            previous: Some(this),
        };
        false
    }
}

/// FNV-1a: a digest that stays the same across builds (tokens outlive a process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One window `[lo, hi]` of a read up to `end`, and where its paging is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Window {
    pub(crate) lo: DateTime<Utc>,
    pub(crate) hi: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    /// The page to read (1-based).
    pub(crate) page: u64,
    /// Set once the window proved too dense to bisect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) passes: Option<Passes>,
}

/// Window lengths, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lengths {
    pub(crate) longest: i64,
    pub(crate) shortest: i64,
}

impl Window {
    /// The first window of a read of `[lo, end]`.
    pub(crate) fn first(lo: DateTime<Utc>, end: DateTime<Utc>, lengths: Lengths) -> Window {
        Window {
            lo,
            hi: (lo + Duration::milliseconds(lengths.longest)).min(end),
            end,
            page: 1,
            passes: None,
        }
    }

    /// The first half of this window, its bound on the `shortest` grid; `None` when the
    /// window is shorter than two `shortest`.
    pub(crate) fn bisect(&self, lengths: Lengths) -> Option<Window> {
        let (lo, hi) = (self.lo.timestamp_millis(), self.hi.timestamp_millis());
        if hi - lo < 2 * lengths.shortest {
            return None;
        }
        let mid = lo + (hi - lo) / 2;
        let snapped = mid - mid.rem_euclid(lengths.shortest);
        let mid = if snapped > lo {
            snapped
        } else {
            lo + lengths.shortest
        };
        Some(Window {
            hi: DateTime::from_timestamp_millis(mid)?,
            ..self.clone()
        })
    }

    /// The window after this one (twice as long, up to `longest`), or `None` at the end.
    pub(crate) fn after(&self, lengths: Lengths) -> Option<Window> {
        if self.hi >= self.end {
            return None;
        }
        let len =
            ((self.hi - self.lo).num_milliseconds() * 2).clamp(lengths.shortest, lengths.longest);
        Some(Window {
            lo: self.hi,
            hi: (self.hi + Duration::milliseconds(len)).min(self.end),
            end: self.end,
            page: 1,
            passes: None,
        })
    }

    /// The token form.
    pub(crate) fn to_selector(&self) -> PageSelector {
        PageSelector::Token(serde_json::to_string(self).expect("windows serialize"))
    }

    /// A window from its token.
    pub(crate) fn from_token(token: &str) -> Result<Window> {
        let w: Window = serde_json::from_str(token).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                "the cisco window token is malformed",
            )
            .with_source(e)
        })?;
        if w.lo >= w.hi || w.hi > w.end || w.page == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the cisco window token is not a window",
            ));
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Lengths = Lengths {
        longest: 86_400_000,
        shortest: 1000,
    };

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn windows_cover_the_read_and_grow_after_a_bisection() {
        let end = t("2024-01-03T00:00:00Z");
        let w = Window::first(t("2024-01-01T00:00:00.250Z"), end, L);
        let half = w.bisect(L).unwrap();
        // Halved onto whole seconds.
        assert_eq!(half.hi, t("2024-01-01T12:00:00Z"));
        let quarter = half.bisect(L).unwrap();
        assert_eq!(quarter.hi, t("2024-01-01T06:00:00Z"));
        let next = quarter.after(L).unwrap();
        assert_eq!((next.lo, next.page), (quarter.hi, 1));
        assert_eq!((next.hi - next.lo).num_hours(), 11, "about twice as long");
        let mut w = next;
        let mut n = 0;
        while let Some(after) = w.after(L) {
            assert_eq!(after.lo, w.hi);
            w = after;
            n += 1;
        }
        assert_eq!((w.hi, n), (end, 2));
    }

    #[test]
    fn the_shortest_window_is_not_bisected() {
        let lo = t("2024-01-01T00:00:00Z");
        let w = Window {
            hi: lo + Duration::milliseconds(1999),
            ..Window::first(lo, lo + Duration::days(1), L)
        };
        assert_eq!(w.bisect(L), None);
        let two = Window {
            hi: lo + Duration::seconds(2),
            ..w
        };
        assert_eq!(two.bisect(L).unwrap().hi, lo + Duration::seconds(1));
    }

    #[test]
    fn two_agreeing_passes_end_a_dense_window() {
        let mut p = Passes {
            pass: 1,
            ..Passes::default()
        };
        p.add(["a", "b", "c"].into_iter());
        assert!(!p.finish(), "the first pass has nothing to agree with");
        p.add(["a", "c"].into_iter());
        assert!(!p.finish(), "b was lost to a shift");
        p.add(["c", "a"].into_iter());
        assert!(p.finish(), "same devices in another order");
        assert_eq!(p.pass, 3);
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_typed() {
        let w = Window::first(t("2024-01-01T00:00:00Z"), t("2024-01-02T00:00:00Z"), L);
        let PageSelector::Token(tok) = w.to_selector() else {
            panic!("a token")
        };
        assert_eq!(Window::from_token(&tok).unwrap(), w);
        assert_eq!(
            Window::from_token("{").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let inverted = tok.replace("2024-01-02", "2023-01-02");
        assert!(Window::from_token(&inverted).is_err());
    }
}
