//! Seed 003's venue sync engine, end to end: a queue-managed engine with the admin HTTP API,
//! workers, per-venue integration configs and the queue statuses, driven over HTTP the way
//! an operator would drive it.
//!
//! Four venues each have their own point-of-sale API (an in-process
//! [`DemoApi`](crate::demo_api::DemoApi) on 127.0.0.1; they reuse the same item ids, so each
//! venue's rows land in a table of its own). The walkthrough ([`run`]):
//!
//! 1. registers an integration per venue (`PUT /pos/integrations/{venue}`, the venue's
//!    endpoint in its settings) and shows that a bad config is refused with a typed error;
//! 2. triggers a sync of every venue (`POST /pos/sync`), with two workers claiming the jobs;
//! 3. stops the largest venue's sync in the middle of its run (`POST /pos/sync/stop`): its API
//!    holds a request so the run is provably mid-way; the page in flight is promoted with its
//!    checkpoint and the job ends `cancelled`;
//! 4. lets the venue whose point of sale is offline fail (`failed` after its attempts, with
//!    backoff between them), brings it back, updates its integration and retries it
//!    (`POST /pos/sync/retry`);
//! 5. triggers the stopped venue again: it resumes from its checkpoint and completes;
//! 6. changes 1% of a venue's items and syncs it incrementally;
//! 7. shows the queue (`GET /pos/sync/status`) after each step and one venue's history
//!    (`GET /pos/sync/history`), and checks every venue's table against its API.

mod report;
mod venues;
mod walkthrough;

pub use report::{QueueSnapshot, VenueOutcome, WalkthroughOptions, WalkthroughReport};
pub use venues::{Venue, VenueSet};
pub use walkthrough::run;

/// The provider name the venues' point-of-sale integrations use.
pub const PROVIDER: &str = "pos";
/// The stream each venue syncs.
pub const STREAM: &str = "items";
