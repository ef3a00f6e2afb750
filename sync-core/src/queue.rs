//! The `ChangeQueue` trait: producers append entity ids and get sequence numbers; the
//! sequence-window strategy reads windows up to a safe high-water mark.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::position::{SequenceNo, Window};
use crate::record::Key;

/// One queue row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Its sequence number.
    pub seq: SequenceNo,
    /// The entity that changed.
    pub entity: Key,
}

/// A change queue of (sequence number, entity id).
///
/// # Contract
/// - `append` MUST assign strictly increasing sequence numbers within a queue, in the order of
///   `entities`, and make them durable before returning.
/// - `read_window` MUST return every entry with `low < seq <= high`, ordered by `seq`.
/// - `safe_high_water_mark` MUST return a number `h` such that no entry with `seq <= h` can
///   become visible after the call, even when concurrent appends commit out of number order;
///   it MUST never decrease.
#[async_trait]
pub trait ChangeQueue: Debug + Send + Sync + 'static {
    /// Appends entities; returns their sequence numbers.
    async fn append(&self, queue: &str, entities: &[Key]) -> Result<Vec<SequenceNo>>;
    /// Reads the entries of a window: those with `window.low < seq <= window.high`, none when
    /// `low >= high`.
    async fn read_window(&self, queue: &str, window: Window) -> Result<Vec<QueueEntry>>;
    /// The highest sequence number below which nothing new can appear.
    async fn safe_high_water_mark(&self, queue: &str) -> Result<SequenceNo>;
}

#[async_trait]
impl<T: ChangeQueue + ?Sized> ChangeQueue for Arc<T> {
    async fn append(&self, queue: &str, entities: &[Key]) -> Result<Vec<SequenceNo>> {
        (**self).append(queue, entities).await
    }
    async fn read_window(&self, queue: &str, window: Window) -> Result<Vec<QueueEntry>> {
        (**self).read_window(queue, window).await
    }
    async fn safe_high_water_mark(&self, queue: &str) -> Result<SequenceNo> {
        (**self).safe_high_water_mark(queue).await
    }
}
