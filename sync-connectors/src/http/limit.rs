//! Proactive rate limiting per credential: a token bucket for requests per second (with a
//! burst) and a semaphore for requests in flight.
//!
//! The bucket is kept as a theoretical arrival time (GCRA): each request reserves the next
//! slot under a short lock and then sleeps until its slot outside the lock, so waiting
//! requests start in the order they asked, one every `1 / requests_per_second`, after the
//! first `burst` ones. Time is `tokio::time`, so a paused test clock drives it.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sync_core::{Error, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Duration, Instant};

/// How fast and how many at once requests may go out; every field unset means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second; must be positive and finite.
    pub requests_per_second: Option<f64>,
    /// Requests that may start at once before the pace applies (default 1); needs
    /// `requests_per_second`.
    pub burst: Option<u32>,
    /// Requests in flight at once, counted until the response body has been read; at least 1.
    pub max_concurrent: Option<u32>,
}

impl RateLimit {
    /// No limit.
    pub fn none() -> Self {
        Self::default()
    }

    /// At most `requests_per_second` requests per second, burst 1.
    pub fn per_second(requests_per_second: f64) -> Self {
        RateLimit {
            requests_per_second: Some(requests_per_second),
            ..Self::default()
        }
    }

    /// Sets the burst.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Sets the number of requests in flight at once.
    pub fn with_max_concurrent(mut self, max_concurrent: u32) -> Self {
        self.max_concurrent = Some(max_concurrent);
        self
    }

    /// Checks the values: a positive finite rate, a burst of at least 1 only with a rate, at
    /// least one request in flight.
    pub fn validate(&self) -> Result<()> {
        self.interval().map(|_| ())?;
        if let Some(burst) = self.burst {
            if burst == 0 {
                return Err(Error::config("rate limit burst must be at least 1"));
            }
            if self.requests_per_second.is_none() {
                return Err(Error::config("rate limit burst needs requests_per_second"));
            }
        }
        if self.max_concurrent == Some(0) {
            return Err(Error::config(
                "rate limit max_concurrent must be at least 1",
            ));
        }
        Ok(())
    }

    /// The time between two requests at the sustained rate.
    fn interval(&self) -> Result<Option<Duration>> {
        let Some(rps) = self.requests_per_second else {
            return Ok(None);
        };
        if !(rps.is_finite() && rps > 0.0) {
            return Err(Error::config(
                "rate limit requests_per_second must be positive and finite",
            ));
        }
        Duration::try_from_secs_f64(1.0 / rps)
            .map(Some)
            .map_err(|_| Error::config("rate limit requests_per_second is too small"))
    }
}

/// The limiter of one client and its clones.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: RateLimit,
    pace: Option<Mutex<Pace>>,
    concurrency: Option<Arc<Semaphore>>,
}

#[derive(Debug)]
struct Pace {
    interval: Duration,
    /// `(burst - 1) * interval`: how far ahead of its slot a request may start.
    tolerance: Duration,
    /// When the next request would start if requests came at exactly the sustained rate.
    theoretical_arrival: Option<Instant>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Result<Self> {
        limit.validate()?;
        let pace = limit.interval()?.map(|interval| {
            let burst = limit.burst.unwrap_or(1);
            Mutex::new(Pace {
                interval,
                tolerance: interval.saturating_mul(burst - 1),
                theoretical_arrival: None,
            })
        });
        let concurrency = limit
            .max_concurrent
            .map(|n| Arc::new(Semaphore::new(n as usize)));
        Ok(Limiter {
            limit,
            pace,
            concurrency,
        })
    }

    pub(crate) fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// Waits for a place among the requests in flight; hold the permit until the body has
    /// been read. `None` when there is no concurrency limit.
    pub(crate) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        let semaphore = self.concurrency.as_ref()?;
        // The semaphore is never closed, so acquiring only fails if it were.
        semaphore.clone().acquire_owned().await.ok()
    }

    /// Waits until this request may start at the configured rate.
    pub(crate) async fn pace(&self) {
        let Some(pace) = &self.pace else {
            return;
        };
        let start = {
            let mut pace = pace.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let arrival = pace.theoretical_arrival.map_or(now, |t| t.max(now));
            let start = arrival
                .checked_sub(pace.tolerance)
                .map_or(now, |t| t.max(now));
            pace.theoretical_arrival = Some(arrival + pace.interval);
            start
        };
        if start > Instant::now() {
            tokio::time::sleep_until(start).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_nonsense() {
        assert!(RateLimit::none().validate().is_ok());
        assert!(RateLimit::per_second(5.0).with_burst(3).validate().is_ok());
        assert!(RateLimit::per_second(0.0).validate().is_err());
        assert!(RateLimit::per_second(f64::NAN).validate().is_err());
        assert!(RateLimit::per_second(-1.0).validate().is_err());
        assert!(RateLimit::per_second(1e-300).validate().is_err());
        assert!(RateLimit::per_second(1.0).with_burst(0).validate().is_err());
        assert!(RateLimit::none().with_max_concurrent(0).validate().is_err());
        assert!(RateLimit::none().with_burst(2).validate().is_err());
        assert!(serde_json::from_str::<RateLimit>(r#"{"rps": 1}"#).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn burst_starts_at_once_then_one_per_interval() {
        let limiter = Limiter::new(RateLimit::per_second(10.0).with_burst(3)).unwrap();
        let t0 = Instant::now();
        let mut starts = vec![];
        for _ in 0..6 {
            limiter.pace().await;
            starts.push(t0.elapsed().as_millis());
        }
        assert_eq!(starts, vec![0, 0, 0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_up_to_the_burst_only() {
        let limiter = Limiter::new(RateLimit::per_second(10.0).with_burst(2)).unwrap();
        limiter.pace().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.pace().await;
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
    }
}
