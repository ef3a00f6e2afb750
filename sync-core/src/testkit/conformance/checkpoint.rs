//! Conformance clauses of the `Checkpoint` contract.

use chrono::Utc;

use crate::checkpoint::{CheckpointState, LogLevel, SyncLogEntry};
use crate::error::ErrorKind;
use crate::position::Position;
use crate::testkit::{commit, StoreHandles};

/// `load` returns `None` for a sync never committed.
pub async fn checkpoint_load_absent_is_none(h: StoreHandles) {
    assert!(h.checkpoints.load("never").await.unwrap().is_none());
}

/// Fencing tokens increase for each acquisition.
pub async fn checkpoint_fences_increase(h: StoreHandles) {
    let a = h.checkpoints.acquire_fence("s").await.unwrap();
    let b = h.checkpoints.acquire_fence("s").await.unwrap();
    assert!(b > a, "fence {b:?} must be greater than {a:?}");
}

/// The first commit stores version 1 and the state round-trips with extras and delivered.
pub async fn checkpoint_first_commit_round_trips(h: StoreHandles) {
    let f = h.checkpoints.acquire_fence("s").await.unwrap();
    let mut c = commit("s", None, f, Position::Start, Position::Offset(10));
    c.state = CheckpointState {
        position: Position::Offset(10),
        delivered: Some(Position::Offset(4)),
        extra: Default::default(),
    };
    c.state.extra.insert("total".into(), 99.into());
    assert_eq!(h.checkpoints.commit(&c).await.unwrap(), 1);
    let stored = h.checkpoints.load("s").await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.state, c.state);
}

/// A commit with a stale expected version conflicts and changes nothing.
pub async fn checkpoint_stale_version_conflicts(h: StoreHandles) {
    let f = h.checkpoints.acquire_fence("s").await.unwrap();
    h.checkpoints
        .commit(&commit("s", None, f, Position::Start, Position::Offset(1)))
        .await
        .unwrap();
    let err = h
        .checkpoints
        .commit(&commit("s", None, f, Position::Start, Position::Offset(2)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let stored = h.checkpoints.load("s").await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.state.position),
        (1, Position::Offset(1))
    );
    assert_eq!(h.checkpoints.ledger("s").await.unwrap().len(), 1);
}

/// A writer holding an older fencing token is rejected.
pub async fn checkpoint_stale_fence_is_rejected(h: StoreHandles) {
    let old = h.checkpoints.acquire_fence("s").await.unwrap();
    let _new = h.checkpoints.acquire_fence("s").await.unwrap();
    let err = h
        .checkpoints
        .commit(&commit(
            "s",
            None,
            old,
            Position::Start,
            Position::Offset(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced);
    assert!(h.checkpoints.load("s").await.unwrap().is_none());
}

/// Releasing a fence is idempotent, a stale token's release leaves the newer holder's
/// commits alone, and no release revives an older token or makes the next one smaller.
pub async fn checkpoint_release_fence_frees_only_its_own_hold(h: StoreHandles) {
    let old = h.checkpoints.acquire_fence("s").await.unwrap();
    h.checkpoints.release_fence("s", old).await.unwrap();
    let new = h.checkpoints.acquire_fence("s").await.unwrap();
    assert!(new > old, "fence {new:?} must be greater than {old:?}");
    h.checkpoints.release_fence("s", old).await.unwrap();
    let first = commit("s", None, new, Position::Start, Position::Offset(1));
    assert_eq!(h.checkpoints.commit(&first).await.unwrap(), 1);
    for _ in 0..2 {
        h.checkpoints.release_fence("s", new).await.unwrap();
    }
    let stale = commit("s", Some(1), old, Position::Offset(1), Position::Offset(2));
    assert_eq!(
        h.checkpoints.commit(&stale).await.unwrap_err().kind(),
        ErrorKind::Fenced
    );
    let next = h.checkpoints.acquire_fence("s").await.unwrap();
    assert!(next > new, "fence {next:?} must be greater than {new:?}");
    let second = commit("s", Some(1), next, Position::Offset(1), Position::Offset(2));
    assert_eq!(h.checkpoints.commit(&second).await.unwrap(), 2);
    // Another sync's release touches nothing of this one.
    h.checkpoints.release_fence("other", next).await.unwrap();
    let stored = h.checkpoints.load("s").await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.state.position),
        (2, Position::Offset(2))
    );
}

/// A delta that goes backwards, or does not continue from the stored position, is rejected.
pub async fn checkpoint_bad_delta_is_rejected(h: StoreHandles) {
    let f = h.checkpoints.acquire_fence("s").await.unwrap();
    h.checkpoints
        .commit(&commit("s", None, f, Position::Start, Position::Offset(5)))
        .await
        .unwrap();
    let back = h
        .checkpoints
        .commit(&commit(
            "s",
            Some(1),
            f,
            Position::Offset(5),
            Position::Offset(4),
        ))
        .await
        .unwrap_err();
    assert_eq!(back.kind(), ErrorKind::CheckpointDelta);
    let gap = h
        .checkpoints
        .commit(&commit(
            "s",
            Some(1),
            f,
            Position::Offset(6),
            Position::Offset(7),
        ))
        .await
        .unwrap_err();
    assert_eq!(gap.kind(), ErrorKind::CheckpointDelta);
    let kind = h
        .checkpoints
        .commit(&commit(
            "s",
            Some(1),
            f,
            Position::Offset(5),
            Position::Page(7),
        ))
        .await
        .unwrap_err();
    assert_eq!(kind.kind(), ErrorKind::CheckpointDelta);
    assert_eq!(
        h.checkpoints
            .load("s")
            .await
            .unwrap()
            .unwrap()
            .state
            .position,
        Position::Offset(5)
    );
}

/// Ledger rows come back in commit order, with the commit's counts.
pub async fn checkpoint_ledger_in_commit_order(h: StoreHandles) {
    let f = h.checkpoints.acquire_fence("s").await.unwrap();
    h.checkpoints
        .commit(&commit("s", None, f, Position::Start, Position::Offset(3)))
        .await
        .unwrap();
    h.checkpoints
        .commit(&commit(
            "s",
            Some(1),
            f,
            Position::Offset(3),
            Position::Offset(8),
        ))
        .await
        .unwrap();
    let ledger = h.checkpoints.ledger("s").await.unwrap();
    let windows: Vec<_> = ledger
        .iter()
        .map(|e| (e.low.clone(), e.high.clone()))
        .collect();
    assert_eq!(
        windows,
        vec![
            (Position::Start, Position::Offset(3)),
            (Position::Offset(3), Position::Offset(8))
        ]
    );
    assert!(h.checkpoints.ledger("other").await.unwrap().is_empty());
}

/// `sync_log` returns the newest `limit` entries, oldest first, per sync.
pub async fn checkpoint_sync_log_newest_first_limit(h: StoreHandles) {
    for i in 0..5 {
        let e = SyncLogEntry {
            sync: "s".into(),
            run_id: "r".into(),
            at: Utc::now(),
            level: LogLevel::Info,
            event: format!("e{i}"),
            message: "m".into(),
        };
        h.checkpoints.append_log(&e).await.unwrap();
    }
    let log = h.checkpoints.sync_log("s", 3).await.unwrap();
    let events: Vec<_> = log.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["e2", "e3", "e4"]);
    assert!(h.checkpoints.sync_log("other", 3).await.unwrap().is_empty());
}

/// `reset` removes the checkpoint (fenced) and keeps the ledger.
pub async fn checkpoint_reset_keeps_ledger(h: StoreHandles) {
    let f = h.checkpoints.acquire_fence("s").await.unwrap();
    h.checkpoints
        .commit(&commit("s", None, f, Position::Start, Position::Offset(3)))
        .await
        .unwrap();
    let newer = h.checkpoints.acquire_fence("s").await.unwrap();
    assert_eq!(
        h.checkpoints.reset("s", f).await.unwrap_err().kind(),
        ErrorKind::Fenced
    );
    h.checkpoints.reset("s", newer).await.unwrap();
    assert!(h.checkpoints.load("s").await.unwrap().is_none());
    assert_eq!(h.checkpoints.ledger("s").await.unwrap().len(), 1);
    h.checkpoints
        .commit(&commit(
            "s",
            None,
            newer,
            Position::Start,
            Position::Offset(1),
        ))
        .await
        .unwrap();
}

/// `sync_log` accepts any limit, `usize::MAX` included.
pub async fn checkpoint_sync_log_unbounded_limit(h: StoreHandles) {
    let e = SyncLogEntry {
        sync: "s".into(),
        run_id: "r".into(),
        at: Utc::now(),
        level: LogLevel::Info,
        event: "e".into(),
        message: "m".into(),
    };
    h.checkpoints.append_log(&e).await.unwrap();
    assert_eq!(
        h.checkpoints.sync_log("s", usize::MAX).await.unwrap().len(),
        1
    );
}
