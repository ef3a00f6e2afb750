//! Fault points that tests arm to simulate crashes at the places that matter for the commit
//! protocol. Always compiled (the in-memory store uses them); unarmed points cost one
//! uncontended lock.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};

/// A place where a crash can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// After a batch was staged durably, before `stage` returns.
    AfterStage,
    /// At the start of `promote`, before anything is applied.
    BeforePromote,
    /// Inside the promote transaction, before it commits: nothing is applied.
    DuringCommit,
    /// After the promote transaction committed, before `promote` returns: the caller sees an
    /// outcome-unknown error although everything was applied.
    AfterCommit,
    /// While a source is producing a page.
    MidPage,
    /// After the store promoted a window, before the sink is called.
    BeforeDeliver,
}

impl FaultPoint {
    /// Every fault point.
    pub const ALL: [FaultPoint; 6] = [
        FaultPoint::AfterStage,
        FaultPoint::BeforePromote,
        FaultPoint::DuringCommit,
        FaultPoint::AfterCommit,
        FaultPoint::MidPage,
        FaultPoint::BeforeDeliver,
    ];

    /// Snake-case name (`after_stage`), used in `SYNC_FAULT`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultPoint::AfterStage => "after_stage",
            FaultPoint::BeforePromote => "before_promote",
            FaultPoint::DuringCommit => "during_commit",
            FaultPoint::AfterCommit => "after_commit",
            FaultPoint::MidPage => "mid_page",
            FaultPoint::BeforeDeliver => "before_deliver",
        }
    }
}

impl fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultPoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        FaultPoint::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::config(format!("unknown fault point {s:?}")))
    }
}

/// What an armed fault does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Return an [`ErrorKind::InjectedFault`] error (outcome unknown at `AfterCommit`).
    Error,
    /// Abort the process at once (SIGABRT).
    Abort,
    /// Kill the process with SIGKILL, sent by `kill -KILL` to itself: no destructor, no
    /// flush, no unwinding, exactly as an operator's `kill -9` or the OOM killer.
    Kill,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    action: FaultAction,
    /// Passes left before the fault fires.
    skip: u32,
}

/// A shared set of armed fault points. Cloning shares the set.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    armed: Arc<Mutex<HashMap<FaultPoint, Armed>>>,
}

impl Faults {
    /// No fault armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `SYNC_FAULT=point[:action[:skip]]` (action `error`, `abort` or `kill`, default
    /// `abort`),
    /// as crash tests set it for a child process. An unset variable arms nothing.
    pub fn from_env() -> Result<Self> {
        let faults = Faults::new();
        if let Ok(spec) = std::env::var("SYNC_FAULT") {
            let mut parts = spec.split(':');
            let point: FaultPoint = parts.next().unwrap_or_default().parse()?;
            let action = match parts.next() {
                None | Some("abort") => FaultAction::Abort,
                Some("kill") => FaultAction::Kill,
                Some("error") => FaultAction::Error,
                Some(other) => {
                    return Err(Error::config(format!("unknown fault action {other:?}")))
                }
            };
            let skip = match parts.next() {
                None => 0,
                Some(n) => n
                    .parse()
                    .map_err(|_| Error::config(format!("bad fault skip count {n:?}")))?,
            };
            faults.arm_after(point, action, skip);
        }
        Ok(faults)
    }

    /// Arms `point` to fire on its next pass.
    pub fn arm(&self, point: FaultPoint, action: FaultAction) {
        self.arm_after(point, action, 0);
    }

    /// Arms `point` to fire after `skip` passes.
    pub fn arm_after(&self, point: FaultPoint, action: FaultAction, skip: u32) {
        self.armed
            .lock()
            .expect("faults lock")
            .insert(point, Armed { action, skip });
    }

    /// Disarms every point.
    pub fn clear(&self) {
        self.armed.lock().expect("faults lock").clear();
    }

    /// True when `point` is armed.
    pub fn is_armed(&self, point: FaultPoint) -> bool {
        self.armed.lock().expect("faults lock").contains_key(&point)
    }

    /// Called by stores and sources at `point`: fires (once) if armed.
    pub fn check(&self, point: FaultPoint) -> Result<()> {
        let fired = {
            let mut armed = self.armed.lock().expect("faults lock");
            match armed.get_mut(&point) {
                Some(a) if a.skip > 0 => {
                    a.skip -= 1;
                    None
                }
                Some(_) => armed.remove(&point).map(|a| a.action),
                None => None,
            }
        };
        match fired {
            None => Ok(()),
            Some(FaultAction::Abort) => {
                eprintln!("sync fault point {point} fired: aborting");
                std::process::abort()
            }
            Some(FaultAction::Kill) => {
                eprintln!("sync fault point {point} fired: killing the process");
                let pid = std::process::id().to_string();
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid])
                    .status();
                // The signal is on its way; wait for it (abort only if `kill` could not run).
                for _ in 0..500 {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                std::process::abort()
            }
            Some(FaultAction::Error) => {
                let e = Error::new(ErrorKind::InjectedFault, "injected fault")
                    .with_context("point", point);
                Err(if point == FaultPoint::AfterCommit {
                    e.with_outcome_unknown()
                } else {
                    e
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_point_fires_once_after_its_skips() {
        let f = Faults::new();
        f.arm_after(FaultPoint::AfterStage, FaultAction::Error, 1);
        assert!(f.check(FaultPoint::AfterStage).is_ok());
        assert_eq!(
            f.check(FaultPoint::AfterStage).unwrap_err().kind(),
            ErrorKind::InjectedFault
        );
        assert!(f.check(FaultPoint::AfterStage).is_ok());
        assert!(f.check(FaultPoint::BeforePromote).is_ok());
    }

    #[test]
    fn after_commit_faults_are_outcome_unknown() {
        let f = Faults::new();
        f.arm(FaultPoint::AfterCommit, FaultAction::Error);
        assert!(f
            .check(FaultPoint::AfterCommit)
            .unwrap_err()
            .is_outcome_unknown());
    }

    #[test]
    fn names_parse_back() {
        for p in FaultPoint::ALL {
            assert_eq!(p.as_str().parse::<FaultPoint>().unwrap(), p);
        }
        assert!("nope".parse::<FaultPoint>().is_err());
    }
}
