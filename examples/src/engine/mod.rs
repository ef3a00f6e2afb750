//! A job runner for REST streams: the glue a service writes once to put its API streams
//! behind the job queue. A [`Catalog`] names the streams of each provider and turns an
//! integration's per-tenant settings (its own endpoint, its venue or location id) into the
//! tenant's source and target table; the [`RestJobRunner`] runs a job's stream with the
//! strategy its integration (or the trigger) asks for, into one store, stopping gracefully
//! when the worker says so.

mod catalog;
mod runner;

pub use catalog::{Catalog, TenantSettings, TenantTables};
pub use runner::RestJobRunner;
