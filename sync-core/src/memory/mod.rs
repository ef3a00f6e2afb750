//! In-memory reference implementations, always compiled: [`MemorySource`] (scripted data,
//! errors, mutations between pages, fault points) and [`MemoryStore`] (Stager, Checkpoint,
//! ChangeQueue and Sink) and [`MemoryJobQueue`]. They define the reference behaviour the database stores must match
//! in the conformance suite.

mod jobs;
mod source;
mod store;
mod validate;

pub use jobs::MemoryJobQueue;
pub use source::{MemoryData, MemoryPaging, MemorySource, Mutation};
pub use store::MemoryStore;
