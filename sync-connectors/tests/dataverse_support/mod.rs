//! The Dataverse fake of the library (`sync_connectors::fakes::dataverse`) and the helpers
//! only the tests need.
#![allow(dead_code, unreachable_pub)]

pub use sync_connectors::fakes::dataverse::*;

/// A recorded response by file name; a name the fake does not hold fails the test.
pub fn fixture(name: &str) -> String {
    sync_connectors::fakes::dataverse::fixture(name)
        .unwrap_or_else(|| panic!("no dataverse fixture {name}"))
        .to_owned()
}
