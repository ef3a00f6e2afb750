//! Retry policy: exponential backoff with full jitter, max attempts, max elapsed time, and
//! `retry_after` honoured; plus per-run limits.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{Error, Result, RetryClass};

/// How to retry a transient failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff cap of the first retry.
    #[serde(with = "millis")]
    pub initial_backoff: Duration,
    /// Largest backoff cap.
    #[serde(with = "millis")]
    pub max_backoff: Duration,
    /// Give up once this much time has passed since the first attempt.
    #[serde(with = "millis")]
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the attempt count.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the first and largest backoff caps.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the elapsed-time budget.
    pub fn with_max_elapsed(mut self, max: Duration) -> Self {
        self.max_elapsed = max;
        self
    }

    /// The backoff cap before retry number `retry` (0-based): `initial * 2^retry`, capped.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The delay before retry number `retry`: the server's `retry_after` when given, else a
    /// uniformly random duration in `[0, backoff_cap(retry)]` (full jitter).
    pub fn delay(&self, retry: u32, error: &Error) -> Duration {
        match error.retry_after() {
            Some(after) => after,
            None => {
                let cap = self.backoff_cap(retry).as_millis() as u64;
                Duration::from_millis(fastrand::u64(0..=cap))
            }
        }
    }

    /// Runs `op` until it succeeds, fails permanently, or the policy is spent. `on_retry` is
    /// called before each wait with the attempt number, the delay and the error.
    ///
    /// A transient error that is not retried any more comes back as
    /// [`RetryClass::Exhausted`]; permanent errors come back at once, unchanged. A wait that
    /// would end past `max_elapsed` is not started.
    pub async fn run<T, F, Fut>(
        &self,
        mut op: F,
        mut on_retry: impl FnMut(u32, Duration, &Error),
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => e,
            };
            let delay = self.delay(attempt - 1, &err);
            if attempt >= self.max_attempts || start.elapsed() + delay > self.max_elapsed {
                return Err(err
                    .with_retry(RetryClass::Exhausted)
                    .with_context("attempts", attempt));
            }
            on_retry(attempt, delay, &err);
            tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// Limits per run, as the device sync's `MaxPagesToProcess` and retry failure count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunLimits {
    /// Stop (cleanly, resumable) after this many pages. Pages an incremental run re-reads on
    /// its way back into a run of records sharing one cursor value (a source without keyset
    /// paging is asked for the value again and served the records it has seen first) do not
    /// count, so every run gets past what the one before it read.
    pub max_pages: Option<u64>,
    /// Fail the run after this many transient errors in total, retried or not.
    pub max_errors: Option<u64>,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::ErrorKind;

    fn transient() -> Error {
        Error::new(ErrorKind::Remote, "503").transient()
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::default().with_max_attempts(4);
        let mut retries = vec![];
        let out = policy
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(transient())
                    } else {
                        Ok(7)
                    }
                },
                |attempt, _, _| retries.push(attempt),
            )
            .await
            .unwrap();
        assert_eq!(out, 7);
        assert_eq!(retries, vec![1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let err = RetryPolicy::default()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Error::invalid_input("bad"))
                },
                |_, _, _| {},
            )
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(err.retry_class(), RetryClass::Permanent);
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_after_max_attempts() {
        let err = RetryPolicy::default()
            .with_max_attempts(3)
            .run(|| async { Err::<(), _>(transient()) }, |_, _, _| {})
            .await
            .unwrap_err();
        assert_eq!(err.retry_class(), RetryClass::Exhausted);
        assert_eq!(err.context_value("attempts"), Some("3"));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_exactly() {
        let calls = AtomicU32::new(0);
        let mut delays = vec![];
        RetryPolicy::default()
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(Error::new(ErrorKind::RateLimited, "429")
                            .with_retry_after(Duration::from_secs(7)))
                    } else {
                        Ok(())
                    }
                },
                |_, d, _| delays.push(d),
            )
            .await
            .unwrap();
        assert_eq!(delays, vec![Duration::from_secs(7)]);
    }

    #[tokio::test(start_paused = true)]
    async fn max_elapsed_stops_before_a_long_wait() {
        let policy = RetryPolicy::default()
            .with_max_attempts(10)
            .with_max_elapsed(Duration::from_secs(5));
        let err = policy
            .run(
                || async { Err::<(), _>(transient().with_retry_after(Duration::from_secs(60))) },
                |_, _, _| panic!("must not wait past max_elapsed"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.retry_class(), RetryClass::Exhausted);
    }

    #[test]
    fn full_jitter_stays_within_the_exponential_cap() {
        let p =
            RetryPolicy::default().with_backoff(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(p.backoff_cap(0), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(3), Duration::from_millis(800));
        assert_eq!(p.backoff_cap(40), Duration::from_secs(1));
        for retry in 0..8 {
            assert!(p.delay(retry, &transient()) <= p.backoff_cap(retry));
        }
    }
}
