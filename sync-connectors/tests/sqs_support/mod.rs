//! The SQS fake of the library (`sync_connectors::fakes::sqs`) and the helpers only the
//! tests need.
#![allow(dead_code, unreachable_pub)]

pub use sync_connectors::fakes::sqs::*;

/// A recorded response by file name; a name the fake does not hold fails the test.
pub fn fixture(name: &str) -> String {
    sync_connectors::fakes::sqs::fixture(name)
        .unwrap_or_else(|| panic!("no sqs fixture {name}"))
        .to_owned()
}
