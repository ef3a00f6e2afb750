//! The `Sink` trait: delivery of promoted records to a destination outside the staging
//! database (an API such as Dynamics 365).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::position::CheckpointDelta;
use crate::record::{Key, Row};
use crate::schema::StreamSchema;

/// Records to deliver: the promoted state of a window.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sync.
    pub sync: String,
    /// The stream schema.
    pub schema: Arc<StreamSchema>,
    /// Rows to create or update at the destination.
    pub upserts: Vec<Row>,
    /// Keys to delete at the destination.
    pub deletes: Vec<Key>,
    /// The window this delivery covers.
    pub delta: CheckpointDelta,
}

/// What the destination confirmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// Records the destination accepted (created, updated or deleted).
    pub delivered: u64,
}

/// A destination for promoted records.
///
/// # Contract
/// - `deliver` MUST return `Ok` only after the destination durably accepted every upsert and
///   delete of the delivery; the caller advances the delivered position only then, in order.
/// - `deliver` MUST be idempotent per key: the same delivery may arrive again after a crash
///   (at-least-once), and applying it twice MUST leave the destination as applying it once.
/// - A failure MUST carry its retry class; a partial failure MUST be reported as an error
///   (the whole delivery is retried).
#[async_trait]
pub trait Sink: Debug + Send + Sync + 'static {
    /// Backend name.
    fn name(&self) -> &str;
    /// Delivers one window.
    async fn deliver(&self, delivery: &Delivery) -> Result<DeliveryReceipt>;
}

#[async_trait]
impl<T: Sink + ?Sized> Sink for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn deliver(&self, delivery: &Delivery) -> Result<DeliveryReceipt> {
        (**self).deliver(delivery).await
    }
}

#[async_trait]
impl<T: Sink + ?Sized> Sink for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn deliver(&self, delivery: &Delivery) -> Result<DeliveryReceipt> {
        (**self).deliver(delivery).await
    }
}
