//! Shared fixtures for the benchmarks: pages shaped like the shared bench's fake API.

use std::fmt::Write as _;
use std::sync::Arc;

use sync_core::StreamSchema;

/// The schema of the bench record (`id text pk, updated_at timestamptz, version bigint,
/// name text, price numeric(12,2), payload jsonb`; cursor `updated_at`, version guard
/// `version`): the demo API's `items` stream.
pub fn item_schema() -> Arc<StreamSchema> {
    Arc::new(
        sync_examples::demo_api::items_stream("http://127.0.0.1")
            .schema()
            .expect("the bench schema is valid"),
    )
}

/// A page of `n` records in the fake API's wire format (~423 bytes per record).
pub fn items_page(n: usize) -> String {
    let mut s = String::with_capacity(n * 430 + 128);
    s.push_str("{\"items\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"id":"itm-{i:010}","updated_at":"2024-01-01T00:00:{:02}.{:03}Z","version":1,"name":"Zulu Alpha {i}","price":{}.{:02},"payload":{{"sku":"SKU-{i:08X}","category":"cat-{:02}","tags":["quebec","harbor","zulu"],"dims":{{"w":67.43,"h":104.78,"d":268}},"stock":71051,"active":false,"rating":4.4,"description":"frost alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber cobalt ember frost granite harbor"}}}}"#,
            (i / 1000) % 60,
            i % 1000,
            i % 100_000,
            i % 100,
            i % 40
        );
    }
    let _ = write!(s, "],\"total\":{n},\"offset\":0,\"limit\":{n},\"count\":{n},\"has_more\":false,\"next_offset\":null}}");
    s
}
