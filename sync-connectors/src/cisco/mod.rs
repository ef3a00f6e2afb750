//! Cisco IoT Control Center (Jasper) devices as a source.
//!
//! [`CiscoConfig`] describes one account's devices (serde data, or
//! [`CiscoConfig::builder`]); [`CiscoSource`] reads them for the device sync: a full sync of
//! the last 30 days plus one ([`CiscoConfig::full_strategy`]), then incremental syncs from
//! where it stopped ([`CiscoConfig::incremental_strategy`]).
//!
//! | Control Center | here |
//! |---|---|
//! | `GET devices?modifiedSince&pageNumber&pageSize`, `lastPage` | windows `[modifiedSince, modifiedTill]`, page numbers from 1, `pageSize` at most 50 |
//! | sorted by modification time: a device changed during a read shifts the pages after it | a window is read in one page; one whose first page is not its last is bisected first (a one-second window denser than a page is read in passes until two agree) |
//! | no modification time in the search results | each device's cursor is its window's end ([`MODIFIED_UNTIL`]); incremental runs are one window up to the local clock minus a settle lag, with a lookback |
//! | `modifiedSince` within the last year, not in the future | a checkpoint older than a year (less an hour) or a read without a lower bound is an `Unsupported` error asking for the full sync, before any call; a future bound reads nothing |
//! | one call at a time, at most 5 per second, no 429 | the client's [`RateLimit`](crate::http::RateLimit): 5 per second, 1 in flight, per account |
//! | `40000029 Rate Limit Exceeded` over HTTP 400 | [`classify`]: a transient `RateLimited` error, retried with backoff |
//! | HTTP Basic `user:apiKey` | [`Auth::Basic`](crate::http::Auth::Basic) from `username` and `api_key` |
//! | `dateUpdated: 2016-07-06 22:04:04.380+0000` (Get Device Details) | `fetch_latest`, parsed into `date_updated` |
//! | devices whose plans are missing (`"ratePlan": null`) | [`CiscoBuilder::with_required`]: those columns become required, and validation in the store quarantines such a device with its reason |
//!
//! The full sync upserts its window and deletes nothing: Control Center keeps devices (they
//! change status), and a window's end is not a modification time, so deleting "missing"
//! devices of the window could remove devices listed just before it.
//!
//! ```
//! use sync_connectors::cisco::{CiscoConfig, CiscoSource};
//! use sync_connectors::http::Secret;
//! use sync_core::Source;
//!
//! let config = CiscoConfig::builder(
//!     "https://restapi1.jasper.com/rws/api/v1",
//!     "sync-user",
//!     Secret::new("api-key-123"),
//! )
//! .with_filter("status", "ACTIVATED")
//! .build()?;
//! let source = CiscoSource::new(config.clone())?; // no I/O yet
//! assert_eq!(source.client().rate_limit().max_concurrent, Some(1));
//! assert!(!format!("{config:?}").contains("api-key-123"));
//! let _full = config.full_strategy()?; // the last 30 days plus one
//! let _then = config.incremental_strategy()?;
//! # Ok::<_, sync_core::Error>(())
//! ```

mod client;
mod config;
mod model;
mod source;
mod window;

pub use config::{CiscoBuilder, CiscoConfig, MODIFIED_UNTIL};
pub use model::{classify, RATE_LIMIT_EXCEEDED};
pub use source::CiscoSource;
