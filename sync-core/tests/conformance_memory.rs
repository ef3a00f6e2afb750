//! The conformance suite on the in-memory reference store.

sync_core::conformance_suite!(sync_core::testkit::memory_store);
