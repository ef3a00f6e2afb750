//! A declarative REST source for any JSON API.
//!
//! Describe a stream as data ([`RestStreamConfig`]: URL, method and body template, records
//! path, key, cursor and how it is sent, paginator, columns, strategy) and get a
//! [`RestSource`] that any sync-core strategy runs resumably and incrementally. A
//! [`PipelineConfig`] file (TOML or JSON) describes many streams into one database and a
//! [`Pipeline`] runs them concurrently.
//!
//! Pages are decoded straight into rows by the stream's schema
//! ([`sync_core::record::decode::RowDecoder`]): no `serde_json::Value` tree is built per record.

mod config;
mod cursor;
mod infer;
mod paginate;
mod pipeline;
mod request;
mod source;
mod window;

pub use config::{CursorConfig, CursorFormat, RestStreamConfig, StrategySpec};
pub use infer::infer_columns;
pub use paginate::{LinkSource, OffsetStop, PageStop, PaginatorConfig, TokenSource};
pub use pipeline::{Pipeline, PipelineConfig, PipelineReport, StreamOutcome};
pub use source::RestSource;
pub use window::TimeWindowConfig;
