//! The demo API's records, with the shape of the shared bench's records: `id`, `updated_at`,
//! `version`, `name`, `price` (two decimals) and a `payload` JSON object of about 300 bytes.
//!
//! Record `i` at version `v` is a pure function of (seed, i, v); only `updated_at` depends on
//! the mutation history, so it is passed in.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use sync_core::{Row, Value};

/// 2024-01-01T00:00:00Z in milliseconds since the Unix epoch: `updated_at` of record 0.
pub(crate) const T0_MS: i64 = 1_704_067_200_000;
/// One day in milliseconds: mutation generation `g` moves records to `T0 + g days`.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Vocabulary of names, tags and descriptions.
const WORDS: [&str; 32] = [
    "anchor", "birch", "canyon", "dune", "ember", "fjord", "glacier", "harbor", "island", "jade",
    "kelp", "lagoon", "meadow", "nebula", "orchid", "prairie", "quartz", "reef", "summit",
    "tundra", "upland", "valley", "willow", "xenon", "yarrow", "zephyr", "amber", "basalt",
    "cobalt", "delta", "estuary", "frost",
];

/// The payload's description grows by words until the payload reaches this length.
const PAYLOAD_BYTES: usize = 290;

/// A splitmix64 stream seeded by (seed, index, version).
struct Mix(u64);

impl Mix {
    fn new(seed: u64, index: u64, version: i64) -> Mix {
        Mix(seed.wrapping_mul(0xD6E8_FEB8_6659_FD93)
            ^ index.wrapping_mul(0x0000_0100_0000_01B3)
            ^ (version as u64).rotate_left(40))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len() as u64) as usize]
    }
}

/// One record of the demo API.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(crate) index: u64,
    pub(crate) version: i64,
    pub(crate) updated_ms: i64,
    pub(crate) name: String,
    pub(crate) price_cents: i64,
    /// JSON object text.
    pub(crate) payload: String,
}

impl Record {
    /// Record `index` at `version`, last updated at `updated_ms` (epoch milliseconds).
    pub(crate) fn generate(seed: u64, index: u64, version: i64, updated_ms: i64) -> Record {
        let mut r = Mix::new(seed, index, version);
        let name = format!(
            "{} {} {}",
            title(r.word()),
            title(r.word()),
            r.below(10_000)
        );
        let price_cents = r.below(10_000_000) as i64;
        let mut payload = String::with_capacity(PAYLOAD_BYTES + 16);
        let tags = [r.word(), r.word(), r.word()];
        let _ = write!(
            payload,
            r#"{{"sku":"SKU-{:08X}","category":"cat-{:02}","tags":["{}","{}","{}"],"dims":{{"w":{}.{:02},"h":{}.{:02},"d":{}}},"stock":{},"active":{},"rating":{}.{},"description":""#,
            r.next() as u32,
            r.below(40),
            tags[0],
            tags[1],
            tags[2],
            r.below(200),
            r.below(100),
            r.below(200),
            r.below(100),
            r.below(500),
            r.below(100_000),
            r.below(2) == 1,
            r.below(5),
            r.below(10),
        );
        let mut first = true;
        while payload.len() < PAYLOAD_BYTES {
            if !first {
                payload.push(' ');
            }
            first = false;
            payload.push_str(r.word());
        }
        payload.push_str("\"}");
        Record {
            index,
            version,
            updated_ms,
            name,
            price_cents,
            payload,
        }
    }

    /// `itm-` and ten digits: text order is index order.
    pub(crate) fn id(&self) -> String {
        format!("itm-{:010}", self.index)
    }

    fn updated_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.updated_ms).expect("a representable instant")
    }

    /// The wire form: one JSON object, as `/items` serves it.
    pub(crate) fn json(&self) -> Box<str> {
        let mut s = String::with_capacity(self.payload.len() + 128);
        let _ = write!(
            s,
            r#"{{"id":"{}","updated_at":"{}","version":{},"name":{},"price":{}.{:02},"payload":{}}}"#,
            self.id(),
            self.updated_at()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
            self.version,
            serde_json::Value::from(self.name.as_str()),
            self.price_cents / 100,
            self.price_cents % 100,
            self.payload,
        );
        s.into_boxed_str()
    }

    /// The row a sync of [`items_stream`](super::items_stream) writes for this record.
    pub(crate) fn row(&self) -> Row {
        Row::new(vec![
            Value::from(self.id()),
            Value::Timestamp(self.updated_at()),
            Value::from(self.version),
            Value::from(self.name.as_str()),
            Value::Decimal(Decimal::new(self.price_cents, 2)),
            Value::Json(self.payload.as_str().into()),
        ])
    }
}

fn title(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic_valid_json_of_the_bench_shape() {
        let a = Record::generate(42, 7, 1, T0_MS + 7);
        assert_eq!(a, Record::generate(42, 7, 1, T0_MS + 7));
        assert_ne!(a.payload, Record::generate(42, 7, 2, T0_MS + 7).payload);
        let v: serde_json::Value = serde_json::from_str(&a.json()).unwrap();
        assert_eq!(v["id"], "itm-0000000007");
        assert_eq!(v["updated_at"], "2024-01-01T00:00:00.007Z");
        assert_eq!(v["version"], 1);
        assert!(v["price"].is_number());
        for field in [
            "sku", "category", "tags", "dims", "stock", "active", "rating",
        ] {
            assert!(v["payload"].get(field).is_some(), "payload.{field}");
        }
        assert!((280..330).contains(&a.payload.len()), "{}", a.payload.len());
    }
}
