//! The restaurants of the "core" system: a deterministic seeded set, their JSON and row
//! forms, and the stream schema they are synced under.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::{Column, ColumnType, Row, Value};

/// The ids of the seed's initial snapshot (sequence number 0).
pub const SNAPSHOT_IDS: [&str; 4] = ["456", "945", "674", "125"];

/// The ids of restaurants that open after the snapshot, in the seed's queue order (674, an
/// update of a restaurant of the snapshot, is not among them).
pub const OPENED_LATER: [&str; 8] = ["828", "834", "383", "896", "235", "856", "591", "859"];

/// Restaurants in the core system at the snapshot: the seed's four and others.
pub const SNAPSHOT_SIZE: usize = 120;

/// The first `updated_at` of the data set: 2024-01-01T00:00:00Z.
const T0_MS: i64 = 1_704_067_200_000;

const NAMES: [&str; 8] = [
    "Trattoria",
    "Bistro",
    "Noodle Bar",
    "Brasserie",
    "Taqueria",
    "Grill",
    "Curry House",
    "Dumpling Hall",
];
const STREETS: [&str; 6] = ["Harbour", "Market", "Station", "Mill", "Castle", "Garden"];
const CITIES: [&str; 5] = ["Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast"];

/// One restaurant as the core API serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restaurant {
    /// The restaurant id (text, as the change notifications carry it).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its city.
    pub city: String,
    /// Covers.
    pub seats: i64,
    /// Increases with every change (the version guard of the target).
    pub version: i64,
    /// Time of the last change, RFC 3339 with milliseconds.
    pub updated_at: String,
}

impl Restaurant {
    /// The deterministic restaurant `id` at version 1, changed at `clock_ms`.
    pub fn generate(id: &str, clock_ms: i64) -> Restaurant {
        let n: u64 = id
            .bytes()
            .fold(17, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Restaurant {
            id: id.to_owned(),
            name: format!(
                "{} {} {}",
                STREETS[(n % 6) as usize],
                NAMES[(n / 7 % 8) as usize],
                id
            ),
            city: CITIES[(n / 11 % 5) as usize].to_owned(),
            seats: 20 + (n % 160) as i64,
            version: 1,
            updated_at: timestamp(clock_ms),
        }
    }

    /// The restaurant as a row of [`columns`].
    pub fn row(&self) -> Row {
        let updated = DateTime::parse_from_rfc3339(&self.updated_at)
            .map(|t| Value::Timestamp(t.with_timezone(&Utc)))
            .unwrap_or(Value::Null);
        Row::new(vec![
            Value::from(self.id.as_str()),
            Value::from(self.name.as_str()),
            Value::from(self.city.as_str()),
            Value::from(self.seats),
            Value::from(self.version),
            updated,
        ])
    }
}

/// `T0 + ms` in RFC 3339 with milliseconds.
pub(crate) fn timestamp(ms: i64) -> String {
    DateTime::from_timestamp_millis(T0_MS + ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The columns of the `restaurants` stream, in table order.
pub fn columns() -> Vec<Column> {
    vec![
        Column::required("id", ColumnType::Text),
        Column::required("name", ColumnType::Text),
        Column::required("city", ColumnType::Text),
        Column::required("seats", ColumnType::Integer),
        Column::required("version", ColumnType::Integer),
        Column::required("updated_at", ColumnType::Timestamp),
    ]
}

/// The core system's restaurants at the snapshot: the seed's four and
/// `SNAPSHOT_SIZE - 4` more with three-digit ids that none of the later openings reuse.
pub fn snapshot() -> BTreeMap<String, Restaurant> {
    let mut ids: Vec<String> = SNAPSHOT_IDS.iter().map(|s| s.to_string()).collect();
    // k * 337 mod 900 visits every residue once (337 and 900 are coprime).
    for k in 1..900u64 {
        if ids.len() == SNAPSHOT_SIZE {
            break;
        }
        let id = (100 + k * 337 % 900).to_string();
        if !ids.contains(&id) && !OPENED_LATER.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let r = Restaurant::generate(&id, i as i64);
            (id, r)
        })
        .collect()
}
