//! Square: locations, the catalog, inventory counts, orders with their child tables,
//! payments and vendors, as one sync-core [`Source`](sync_core::Source).
//!
//! ```
//! use sync_connectors::square::{SquareConfig, SquareSource};
//! use sync_core::{IncrementalConfig, Source};
//!
//! let config = SquareConfig::builder("EAAA-token")
//!     .with_location_ids(["L1", "L2"])
//!     .build()?;
//! // Validated and built without I/O.
//! let square = SquareSource::new(config)?;
//! assert!(square.schema("order_line_items")?.primary_key().len() == 2);
//! // One strategy per stream over the same source; catalog streams use the server's
//! // `latest_time` as their high watermark, so no settle lag is needed there.
//! let _items = IncrementalConfig::new("catalog_items");
//! # Ok::<_, sync_core::Error>(())
//! ```
//!
//! # Streams
//!
//! | stream | endpoint | key | cursor (guard) | strategy |
//! |---|---|---|---|---|
//! | `locations` | `GET /v2/locations` | `id` | none | full |
//! | `catalog_categories` | `POST /v2/catalog/search` (`CATEGORY`) | `id` | `updated_at` (`version`) | incremental |
//! | `catalog_items` | same (`ITEM`) | `id` | `updated_at` (`version`) | incremental |
//! | `catalog_item_variations` | same (`ITEM_VARIATION`) | `id` | `updated_at` (`version`) | incremental |
//! | `catalog_item_location_availability` | same (`ITEM_VARIATION`) | `(variation_id, location_id)` | variation `updated_at` (`version`) | incremental |
//! | `catalog_vendor_info` | same (`ITEM_VARIATION_VENDOR_INFO`) | `id` | `updated_at` (`version`) | incremental |
//! | `inventory_counts` | `POST /v2/inventory/counts/batch-retrieve` | `(catalog_object_id, location_id, state)` | `calculated_at` | incremental |
//! | `orders` | `POST /v2/orders/search` | `id` | `updated_at` (`version`) | incremental |
//! | `order_line_items`, `order_fulfillments`, `order_returns` | same | `(order_id, uid)` | `order_updated_at` (`order_version`) | incremental |
//! | `order_refunds`, `order_tenders` | same | `(order_id, id)` | `order_updated_at` (`order_version`) | incremental |
//! | `payments` | `GET /v2/payments` | `id` | `updated_at` | incremental |
//! | `vendors` | `POST /v2/vendors/search` | `id` | none (`version`) | full |
//!
//! # How each API is read
//!
//! - **Paging.** Square's cursors are opaque; the last page is the one without a cursor
//!   (an empty string counts as none). A page can be empty and still have a cursor: it is
//!   not the end. A cursor handed back unchanged is an error rather than an endless read.
//!   The strategies keep the continuation as a token (Square's cursor, plus the location
//!   group for orders and payments), so a read stopped by a limit resumes with the same
//!   query, which Square requires.
//! - **One source, all streams.** The streams share one capability set (full and
//!   incremental, unordered, cursor tokens), so one `SquareSource` serves them all. Pages are
//!   declared unordered: Square sorts orders and payments by `updated_at` only (ties in no
//!   promised order) and the catalog not at all, so an incremental run is one window up to
//!   the high watermark, promoted at its end.
//! - **Catalog.** SearchCatalogObjects with `object_types`, `include_deleted_objects: true`
//!   and `begin_time` one millisecond before the checkpoint (`begin_time` is exclusive). The
//!   high watermark is the server's `latest_time` from a `limit: 1` search, never the local
//!   clock; rows past it are left for the next run. Deletions arrive as tombstones and are
//!   kept as rows with `is_deleted = true` (a soft delete: the strategies do not pass source
//!   deletes through). Versions compare through the `version` guard, so an older object never
//!   replaces a newer one. Child streams (`catalog_item_location_availability`) are read by
//!   fetching their parent objects; a variation's tombstone carries no locations, so its
//!   availability rows are not marked: join them with `catalog_item_variations.is_deleted`.
//! - **Orders.** SearchOrders over the configured locations (or every location, in groups of
//!   10), filtered and sorted on `updated_at` (`ASC`), `start_at` the checkpoint and `end_at`
//!   the run's upper bound, both inclusive. The rows at the checkpoint are read again and
//!   dropped by the strategy (or absorbed by the keyed upsert with a lookback), so the overlap
//!   makes no duplicates; `(id, version)` decides which copy wins. Child tables are read by
//!   fetching the orders and emitting their children with the order's id, `updated_at` and
//!   `version`; when an order changes, its children follow with the new `order_version`.
//! - **Inventory counts** (newest first), **payments** (per location, `sort_field=UPDATED_AT`,
//!   `updated_at_begin_time`/`updated_at_end_time` widened by a millisecond since their
//!   inclusivity is not documented, `begin_time` set so the one-year default does not apply)
//!   and **orders** take their high watermark from the server's `Date` header (or the newest
//!   record of a `limit: 1` request, when later): the server's clock, not ours. Payments are
//!   eventually consistent: give them a settle lag.
//! - **Vendors and locations** have no change filter: a full scan every run, compared on
//!   `version` (vendors) by the store's guarded upsert, rows gone from Square removed by the
//!   full strategy's replace.
//!
//! # Errors
//!
//! | answer | kind | class |
//! |---|---|---|
//! | 429, or any status whose `errors` hold `RATE_LIMITED` | `RateLimited` | transient |
//! | 5xx (JSON or an HTML page), or a 200 whose `errors` are `API_ERROR` | `Remote` | transient |
//! | other 4xx (`INVALID_CURSOR` among them), or a 200 with other `errors` | `Remote` | permanent |
//! | a 200 whose body ends early | `InvalidInput` | transient |
//! | a 200 that is not JSON, or not the documented shape | `InvalidInput` | permanent |
//!
//! Square promises no `Retry-After`: a 429 is retried by the strategy's retry policy with
//! exponential backoff and full jitter (a `Retry-After`, when sent, is honoured). Square's
//! `code: detail` pairs are in the message, the first `code` and `category` in context, with
//! the connector, stream, endpoint and page (`first`, `next`, `watermark`, `locations`);
//! never the token. A failed page changes nothing: the checkpoint only moves when a window is
//! promoted. An interrupted read that resumes with a cursor Square has meanwhile expired fails
//! with `INVALID_CURSOR`: abort the staging run (reset the stream) to read the window again.

mod catalog;
mod client;
mod config;
mod model;
mod orders;
mod request;
mod source;
mod streams;
mod table;

pub use config::{
    SquareConfig, SquareConfigBuilder, DEFAULT_SQUARE_VERSION, PRODUCTION_URL, SANDBOX_URL,
};
pub use source::SquareSource;
pub use streams::STREAMS;
