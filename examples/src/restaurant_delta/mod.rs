//! Seed 000, "TR Delta Sync": restaurants from a core API into a `restaurants` table and on
//! to Dynamics 365 (Dataverse), in windows of a change queue.
//!
//! ```text
//!  producers ──► change queue (_sync_queue: seq, restaurant id)      SynchronizationQueue
//!   SNS → SQS fake → SqsChangeFeed          direct ChangeQueue::append
//!                          │
//!  SequenceWindowStrategy  │ window (last promoted, safe high-water mark]
//!   distinct ids ──► RestSource::fetch_latest ──► GET /restaurants/{id} (core API)
//!                          │ 404 = closed: deleted
//!   stage, validate, promote + checkpoint + history row, ONE transaction
//!                          │                                          Restaurants,
//!                          ▼                                          SynchronizationHistory
//!   DataverseSink ──► $batch upserts by alternate key tr_restaurantid (Dataverse fake)
//!   then `delivered` advances (a second commit, a "delivered" history row)
//! ```
//!
//! The seed's tables map onto the library's: `Restaurants` is the target table
//! `restaurants`, one row per restaurant with its latest state (the seed's log of
//! `(SequenceNo, Id)` pairs is the queue itself); `SynchronizationQueue` is the change queue
//! (`_sync_queue`); `SynchronizationHistory` is the window ledger (`_sync_ledger`), whose
//! committed rows are the seed's `(StartSequenceNo, EndSequenceNo)`.
//!
//! [`RestaurantDelta::run`] plays the seed: the initial snapshot (a full sync of the
//! restaurant list), queue entries 1..4 (828, 834, 383, 674) from both producers, run 1 over
//! `(0, 4]`, entries 5..9 (896, 235, 856, 591, 859), run 2 over `(4, 9]` whose delivery
//! Dataverse throttles (promoted 9, delivered 4), run 3 that redelivers `(4, 9]`, a replay of
//! window 1 that repairs a change whose notification never came, and the late-commit race
//! on the reference queue (see [`high_water`]). It ends with [`Integrity`]: the target equals
//! the core API, Dataverse holds one record per queued restaurant with its latest values,
//! the history is `(1, 4), (5, 9)` with the replay marked as such, `delivered == promoted`.

mod core_api;
mod database;
mod flow;
pub mod high_water;
mod producers;
mod race;
mod report;
mod restaurant;

pub use core_api::CoreApi;
pub use database::{open_fresh, POSTGRES_SCHEMA};
pub use flow::{restaurant_mapping, RestaurantDelta};
pub use high_water::Backend;
pub use producers::Producers;
pub use report::{
    dataverse_key, Change, Enqueued, HighWaterMarkStep, HistoryRow, Integrity, Producer, RaceStep,
    Report, RunStep, Step,
};
pub use restaurant::{columns, snapshot, Restaurant, OPENED_LATER, SNAPSHOT_IDS, SNAPSHOT_SIZE};

/// The sequence-window sync (its checkpoint and history).
pub const SYNC: &str = "tr/restaurants";
/// The full sync of the initial snapshot (another position kind, so another sync name).
pub const SNAPSHOT_SYNC: &str = "tr/restaurants-snapshot";
/// The change queue.
pub const QUEUE: &str = "restaurant_changes";
/// The sync and the change queue of the racing producers.
pub const RACE_SYNC: &str = "tr/restaurants-race";
/// The change queue the racing producers append to.
pub const RACE_QUEUE: &str = "restaurant_changes_race";
/// The stream and target table.
pub const STREAM: &str = "restaurants";
/// The Dataverse entity set.
pub const ENTITY_SET: &str = "tr_restaurants";
