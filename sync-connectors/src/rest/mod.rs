//! A declarative REST source for any JSON API.
//!
//! Describe a stream as data ([`RestStreamConfig`]: URL, method and body template, records
//! path, key, cursor and how it is sent, paginator, columns, strategy) and get a
//! [`RestSource`] that any sync-core strategy runs resumably and incrementally. A
//! [`PipelineConfig`] file (TOML or JSON) describes many streams into one database and a
//! [`Pipeline`] runs them concurrently.
//!
//! A stream's optional `lookup` ([`LookupConfig`]: one GET per id, or per batch of ids)
//! serves `fetch_latest`, what the sequence-window strategy reads the changed ids with.
//!
//! Pages are decoded straight into rows by the stream's schema
//! ([`sync_core::record::decode::RowDecoder`]): no `serde_json::Value` tree is built per record.
//!
//! ```
//! use sync_connectors::rest::{Pipeline, PipelineConfig};
//! use sync_core::{Source, StrategyKind};
//!
//! let config = PipelineConfig::from_toml(r#"
//!     name = "shop"
//!     [[streams]]
//!     name = "orders"
//!     base_url = "https://api.example.com"
//!     path = "/v2/orders"
//!     records_path = "data.items"
//!     primary_key = ["id"]
//!     ordering = "by_cursor_then_key"
//!     cursor = { field = "updated_at", param = "updated_since" }
//!     paginator = { type = "cursor_token", from = { body = "data.next" } }
//!     columns = [
//!         { name = "id", type = "text", nullable = false },
//!         { name = "updated_at", type = "timestamp" },
//!     ]
//! "#)?;
//! // Validated and built without I/O: connections open on the first request.
//! let pipeline = Pipeline::new(config)?;
//! let orders = pipeline.source("orders").expect("the stream exists");
//! assert!(orders.capabilities().strategies.contains(&StrategyKind::Incremental));
//! assert_eq!(pipeline.sync_name("orders"), "shop/orders");
//! # Ok::<_, sync_core::Error>(())
//! ```

mod config;
mod cursor;
mod infer;
mod lookup;
mod paginate;
mod pipeline;
mod request;
mod source;
mod window;

pub use config::{CursorConfig, CursorFormat, RestStreamConfig, StrategySpec};
pub use infer::infer_columns;
pub use lookup::{LookupConfig, MAX_LOOKUP_CONCURRENCY};
pub use paginate::{LinkSource, OffsetStop, PageStop, PaginatorConfig, TokenSource};
pub use pipeline::{Pipeline, PipelineConfig, PipelineReport, StreamOutcome};
pub use source::RestSource;
pub use window::TimeWindowConfig;
