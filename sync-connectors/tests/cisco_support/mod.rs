//! Test-only helpers around the Cisco IoT Control Center fake, which lives in the library
//! (`sync_connectors::fakes::cisco`, feature `fakes`) so the runnable examples serve the
//! same contract: HTTP settings for a paused clock, the fake account's config, and reading an
//! ICCID from a row.
#![allow(dead_code, unreachable_pub)]

pub use sync_connectors::fakes::cisco::*;

use sync_connectors::cisco::CiscoConfig;
use sync_connectors::http::{HttpConfig, Secret};
use sync_core::{Row, Value};

/// HTTP settings for a paused clock: no timeouts, no pool timer.
pub fn paused_http() -> HttpConfig {
    HttpConfig {
        connect_timeout_ms: None,
        read_timeout_ms: None,
        total_timeout_ms: None,
        pool_idle_timeout_ms: None,
        ..HttpConfig::default()
    }
}

/// The config of the fake's account.
pub fn config(fake: &CiscoFake) -> sync_connectors::cisco::CiscoBuilder {
    CiscoConfig::builder(&fake.base_url, USER, Secret::new(API_KEY)).with_http(paused_http())
}

pub fn iccid(row: &Row) -> String {
    match row.get(0) {
        Value::Text(s) => s.to_string(),
        other => panic!("an iccid is text, not {other:?}"),
    }
}
