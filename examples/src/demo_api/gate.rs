//! Holding `/items` requests at a chosen point, so a test or a demo can act (stop a job,
//! kill a worker) while a sync is provably in the middle of its run, without guessing at
//! timings.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default)]
struct GateState {
    /// Requests numbered this or later wait (`None`: the gate is open).
    hold_from: Option<u64>,
    /// Requests waiting now.
    held: u64,
}

/// The gate in front of `/items`.
#[derive(Debug)]
pub(super) struct Gate {
    state: watch::Sender<GateState>,
}

impl Gate {
    pub(super) fn new() -> Gate {
        Gate {
            state: watch::Sender::new(GateState::default()),
        }
    }

    /// Waits while request number `n` (0-based) is held.
    pub(super) async fn pass(&self, n: u64) {
        let holds = |s: &GateState| s.hold_from.is_some_and(|from| n >= from);
        let mut rx = self.state.subscribe();
        if !holds(&rx.borrow_and_update()) {
            return;
        }
        self.state.send_modify(|s| s.held += 1);
        // The sender lives as long as the server, so the wait ends only on a release.
        let _ = rx.wait_for(|s| !holds(s)).await;
        self.state.send_modify(|s| s.held -= 1);
    }

    pub(super) fn hold_from(&self, n: u64) {
        self.state.send_modify(|s| s.hold_from = Some(n));
    }

    pub(super) fn release(&self) {
        self.state.send_modify(|s| s.hold_from = None);
    }

    pub(super) async fn wait_held(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| s.held > 0).await;
    }
}
