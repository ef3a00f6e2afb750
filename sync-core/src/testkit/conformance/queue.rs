//! Conformance clauses of the `ChangeQueue` contract.

use crate::position::{SequenceNo, Window};
use crate::testkit::{key, StoreHandles};

/// `append` assigns strictly increasing numbers in input order, per queue.
pub async fn queue_append_increases(h: StoreHandles) {
    let a = h.queue.append("q", &[key("x"), key("y")]).await.unwrap();
    let b = h.queue.append("q", &[key("x")]).await.unwrap();
    assert_eq!(a.len(), 2);
    assert!(a[0] < a[1] && a[1] < b[0], "{a:?} {b:?}");
    let other = h.queue.append("other", &[key("z")]).await.unwrap();
    assert_eq!(other.len(), 1);
}

/// `read_window` returns exactly the entries with `low < seq <= high`, ordered, and none
/// (no error, no panic) for a window whose bounds are the wrong way round.
pub async fn queue_read_window_is_half_open(h: StoreHandles) {
    let seqs = h
        .queue
        .append("q", &[key("a"), key("b"), key("c"), key("d")])
        .await
        .unwrap();
    let w = Window::new(seqs[0], seqs[2]).unwrap();
    let entries = h.queue.read_window("q", w).await.unwrap();
    let got: Vec<_> = entries.iter().map(|e| (e.seq, e.entity.clone())).collect();
    assert_eq!(got, vec![(seqs[1], key("b")), (seqs[2], key("c"))]);
    assert!(h
        .queue
        .read_window("q", Window::new(seqs[3], seqs[3]).unwrap())
        .await
        .unwrap()
        .is_empty());
    // The fields are public, so such a window can be built.
    let backwards = Window {
        low: seqs[3],
        high: seqs[0],
    };
    assert!(h
        .queue
        .read_window("q", backwards)
        .await
        .unwrap()
        .is_empty());
}

/// The safe high-water mark covers every committed append and never decreases.
pub async fn queue_high_water_mark_covers_appends(h: StoreHandles) {
    assert_eq!(
        h.queue.safe_high_water_mark("q").await.unwrap(),
        SequenceNo(0)
    );
    let seqs = h.queue.append("q", &[key("a"), key("b")]).await.unwrap();
    let first = h.queue.safe_high_water_mark("q").await.unwrap();
    assert!(first >= seqs[1]);
    let more = h.queue.append("q", &[key("c")]).await.unwrap();
    let second = h.queue.safe_high_water_mark("q").await.unwrap();
    assert!(second >= more[0] && second >= first);
    let all = h
        .queue
        .read_window("q", Window::new(SequenceNo(0), second).unwrap())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
}
