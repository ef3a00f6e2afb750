//! A graceful-stop request shared by the owner of a run and the run itself.
//!
//! The strategies check it where they check the page limit: after the page in flight is
//! staged and promoted with its checkpoint, they stop and report `complete: false` with
//! `stopped: true`. Nothing half-done is left behind; the next run resumes from the
//! checkpoint.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A cloneable stop flag with a waiter: every clone sees [`StopSignal::stop`].
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    /// A signal that has not been raised.
    pub fn new() -> Self {
        StopSignal::default()
    }

    /// Raises the signal; idempotent.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// True once [`StopSignal::stop`] was called on any clone.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Completes once the signal is raised (at once if it already is).
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a stop between the check and the await is seen.
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

impl fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopSignal")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl PartialEq for StopSignal {
    /// Two signals are equal when they are clones of one another.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_stop_and_waiters_wake() {
        let signal = StopSignal::new();
        let clone = signal.clone();
        assert!(!clone.is_stopped());
        let waiter = tokio::spawn({
            let clone = clone.clone();
            async move { clone.stopped().await }
        });
        signal.stop();
        waiter.await.unwrap();
        assert!(clone.is_stopped());
        // Already raised: returns at once.
        clone.stopped().await;
        assert_eq!(signal, clone);
        assert_ne!(signal, StopSignal::new());
    }
}
