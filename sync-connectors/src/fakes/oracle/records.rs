//! The records the Oracle fake serves: `accounts` (the connector tests' resource) and
//! `opportunities` (a deterministic, seeded data set of realistic size), and what the
//! collection code needs to know about each.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value as J};

use super::q::Literal;

/// What the collection code of the fake needs from a record type.
pub(crate) trait FakeRecord: Clone + Send + 'static {
    /// The resource name (`accounts`).
    const RESOURCE: &'static str;
    /// Attributes `fields` may name.
    const FIELDS: &'static [&'static str];
    /// Attributes `orderBy` may name (those [`FakeRecord::attribute`] knows).
    const ORDERABLE: &'static [&'static str];

    /// The value of an attribute usable in `q` and `orderBy`; `None` for an unknown one.
    fn attribute(&self, name: &str) -> Option<Literal>;
    /// Every attribute as Oracle writes it.
    fn attributes(&self) -> Map<String, J>;
    /// The primary key, for the item's `self` link.
    fn id(&self) -> String;
    /// The record's place in the order served without `orderBy` (undefined, so shuffled).
    fn shuffled_rank(&self) -> i64;
    /// Whether the record matches `finder=<name>;<binds>`; an unknown finder is an error
    /// (Oracle answers 400).
    fn finds(&self, name: &str, binds: &str) -> Result<bool, String>;

    /// The item as served, with only `fields` (all when `None`) and without `links` when
    /// `only_data`.
    fn json(&self, fields: Option<&[String]>, only_data: bool) -> J {
        let mut item = Map::new();
        for (k, v) in self.attributes() {
            if fields.map_or(true, |f| f.contains(&k)) {
                item.insert(k, v);
            }
        }
        if !only_data {
            item.insert(
                "links".into(),
                json!([{"rel": "self", "href": format!("https://fake/crmRestApi/resources/11.13.18.05/{}/{}", Self::RESOURCE, self.id()), "name": Self::RESOURCE, "kind": "item"}]),
            );
        }
        J::Object(item)
    }
}

/// Second precision with an offset, as Oracle writes timestamps.
fn oracle_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// One account as the fake keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// `PartyId`, the key.
    pub party_id: i64,
    /// `PartyNumber`.
    pub party_number: String,
    /// `OrganizationName`; an update appends ` (v<version>)`.
    pub name: String,
    /// `LastUpdateDate`.
    pub updated: DateTime<Utc>,
    /// Incremented by every update.
    pub version: i64,
}

/// The instant the fake's accounts start at.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_564_800, 0).expect("a valid instant") // 2024-05-01T12:00:00Z
}

/// `n` accounts, `PartyId` 1000.., updated one per second from [`t0`] with every third one
/// sharing its second with the next (ties on `LastUpdateDate`).
pub fn accounts(n: usize) -> Vec<Account> {
    (0..n)
        .map(|i| Account {
            party_id: 1000 + i as i64,
            party_number: format!("CDRM_{}", 1000 + i),
            name: format!("Org {i}"),
            updated: t0() + Duration::seconds((i - i / 3) as i64),
            version: 1,
        })
        .collect()
}

impl FakeRecord for Account {
    const RESOURCE: &'static str = "accounts";
    const FIELDS: &'static [&'static str] = &[
        "PartyId",
        "PartyNumber",
        "OrganizationName",
        "LastUpdateDate",
    ];
    const ORDERABLE: &'static [&'static str] = Self::FIELDS;

    fn attribute(&self, name: &str) -> Option<Literal> {
        Some(match name {
            "PartyId" => Literal::Number(self.party_id),
            "PartyNumber" => Literal::Text(self.party_number.clone()),
            "OrganizationName" => Literal::Text(self.name.clone()),
            "LastUpdateDate" => Literal::Time(self.updated),
            _ => return None,
        })
    }

    fn attributes(&self) -> Map<String, J> {
        let mut m = Map::new();
        m.insert("PartyId".into(), json!(self.party_id));
        m.insert("PartyNumber".into(), json!(self.party_number));
        m.insert("OrganizationName".into(), json!(self.name));
        m.insert("LastUpdateDate".into(), json!(oracle_time(self.updated)));
        m.insert("CreationDate".into(), json!("2020-01-01T00:00:00+00:00"));
        m
    }

    fn id(&self) -> String {
        self.party_id.to_string()
    }

    fn shuffled_rank(&self) -> i64 {
        (self.party_id * 7919) % 1009
    }

    fn finds(&self, name: &str, binds: &str) -> Result<bool, String> {
        if name != "PrimaryKey" {
            return Err(format!("finder {name} is not defined"));
        }
        Ok(binds.strip_prefix("PartyNumber=").unwrap_or_default() == self.party_number)
    }
}

/// One opportunity as the fake keeps it (the Sales `opportunities` resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opportunity {
    /// `OptyId`, the key.
    pub opty_id: i64,
    /// `OptyNumber`, the number users see.
    pub opty_number: String,
    /// `Name`.
    pub name: String,
    /// `Revenue` in cents (served as a number with two decimals at most).
    pub revenue_cents: i64,
    /// `CurrencyCode`.
    pub currency: String,
    /// `StatusCode`: `OPEN`, `WON` or `LOST`.
    pub status: String,
    /// `LastUpdateDate`, whole seconds.
    pub updated: DateTime<Utc>,
}

impl Opportunity {
    /// `Revenue` as Oracle writes it: a decimal number with two places at most.
    pub fn revenue(&self) -> String {
        format!(
            "{}.{:02}",
            self.revenue_cents / 100,
            self.revenue_cents % 100
        )
    }
}

/// The instant the seeded opportunities start at.
pub fn opportunities_t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200, 0).expect("a valid instant") // 2024-01-01T00:00:00Z
}

/// SplitMix64: a tiny deterministic generator, so a seed gives the same data set in every
/// process and on every machine.
#[derive(Debug, Clone)]
pub(crate) struct SeededRng(u64);

impl SeededRng {
    pub(crate) fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const COMPANIES: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
];
const DEALS: &[&str] = &[
    "renewal",
    "expansion",
    "pilot",
    "migration",
    "support plan",
    "licences",
];
const CURRENCIES: &[&str] = &["USD", "EUR", "GBP"];
const STATUSES: &[&str] = &["OPEN", "OPEN", "WON", "LOST"];

/// The first `OptyId` of the seeded data set; ids are spaced by up to 10.
pub const FIRST_OPTY_ID: i64 = 300_000_001_000_000;

/// `n` opportunities generated from `seed`: the same seed always gives the same records.
///
/// `OptyId`s are unique (from [`FIRST_OPTY_ID`], shuffled so they do not follow the update
/// order), `OptyNumber`s are unique, and `LastUpdateDate` advances by 0 to 2 seconds from
/// [`opportunities_t0`], so about a third of the records share their second with the one
/// before (ties that only the `(LastUpdateDate, OptyId)` order breaks).
pub fn opportunities(seed: u64, n: usize) -> Vec<Opportunity> {
    let mut rng = SeededRng::new(seed);
    let mut ids: Vec<i64> = (0..n as i64)
        .map(|i| FIRST_OPTY_ID + i * 10 + rng.below(10) as i64)
        .collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut at = opportunities_t0();
    ids.into_iter()
        .enumerate()
        .map(|(i, opty_id)| {
            at += Duration::seconds(rng.below(3) as i64);
            generated(&mut rng, opty_id, format!("{}", 1_650_000 + i), at)
        })
        .collect()
}

/// `n` new opportunities generated from `seed`, last updated before every record of
/// [`opportunities`] (one second apart, in the second half of 2023) with `OptyId`s above
/// any of a data set of up to `after` records: records a data import back-dates, which land
/// *before* the offset an offset reader reached.
pub fn backdated_opportunities(seed: u64, n: usize, after: usize) -> Vec<Opportunity> {
    let mut rng = SeededRng::new(seed ^ 0x00BA_CDA7_ED00);
    let first_id = FIRST_OPTY_ID + after as i64 * 10 + 10;
    let start = opportunities_t0() - Duration::days(180);
    (0..n)
        .map(|i| {
            let at = start + Duration::seconds(i as i64 * 3600);
            let number = format!("IMP-{:05}", i + 1);
            generated(&mut rng, first_id + i as i64, number, at)
        })
        .collect()
}

fn generated(
    rng: &mut SeededRng,
    opty_id: i64,
    opty_number: String,
    updated: DateTime<Utc>,
) -> Opportunity {
    fn pick(rng: &mut SeededRng, list: &[&'static str]) -> &'static str {
        list[rng.below(list.len() as u64) as usize]
    }
    let company = pick(rng, COMPANIES);
    let deal = pick(rng, DEALS);
    Opportunity {
        opty_id,
        name: format!("{company} {deal} {opty_number}"),
        opty_number,
        // 500.00 to 2,500,000.00, a third of them whole amounts.
        revenue_cents: match rng.below(3) {
            0 => (5 + rng.below(25_000) as i64) * 10_000,
            _ => 50_000 + rng.below(249_950_000) as i64,
        },
        currency: pick(rng, CURRENCIES).to_owned(),
        status: pick(rng, STATUSES).to_owned(),
        updated,
    }
}

impl FakeRecord for Opportunity {
    const RESOURCE: &'static str = "opportunities";
    const FIELDS: &'static [&'static str] = &[
        "OptyId",
        "OptyNumber",
        "Name",
        "Revenue",
        "CurrencyCode",
        "StatusCode",
        "LastUpdateDate",
    ];
    const ORDERABLE: &'static [&'static str] = &[
        "OptyId",
        "OptyNumber",
        "Name",
        "CurrencyCode",
        "StatusCode",
        "LastUpdateDate",
    ];

    fn attribute(&self, name: &str) -> Option<Literal> {
        Some(match name {
            "OptyId" => Literal::Number(self.opty_id),
            "OptyNumber" => Literal::Text(self.opty_number.clone()),
            "Name" => Literal::Text(self.name.clone()),
            "CurrencyCode" => Literal::Text(self.currency.clone()),
            "StatusCode" => Literal::Text(self.status.clone()),
            "LastUpdateDate" => Literal::Time(self.updated),
            _ => return None,
        })
    }

    fn attributes(&self) -> Map<String, J> {
        let revenue: serde_json::Number = self
            .revenue()
            .parse()
            .expect("two-decimal amounts are JSON numbers");
        let mut m = Map::new();
        m.insert("OptyId".into(), json!(self.opty_id));
        m.insert("OptyNumber".into(), json!(self.opty_number));
        m.insert("Name".into(), json!(self.name));
        m.insert("Revenue".into(), J::Number(revenue));
        m.insert("CurrencyCode".into(), json!(self.currency));
        m.insert("StatusCode".into(), json!(self.status));
        m.insert("LastUpdateDate".into(), json!(oracle_time(self.updated)));
        m.insert("CreationDate".into(), json!("2023-06-01T00:00:00+00:00"));
        m
    }

    fn id(&self) -> String {
        self.opty_id.to_string()
    }

    fn shuffled_rank(&self) -> i64 {
        (self.opty_id % 1_000_003 * 7919) % 1009
    }

    fn finds(&self, name: &str, binds: &str) -> Result<bool, String> {
        match name {
            "PrimaryKey" => {
                Ok(binds.strip_prefix("OptyNumber=").unwrap_or_default() == self.opty_number)
            }
            "MyOpportunitiesFinder" => match binds {
                "RecordSet='ALLOPTIES'" | "" => Ok(true),
                other => Err(format!("finder variables {other} are not supported")),
            },
            other => Err(format!("finder {other} is not defined")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_unique_opportunities_with_ties_on_the_second() {
        let a = opportunities(4, 2_000);
        assert_eq!(a, opportunities(4, 2_000));
        assert_ne!(a, opportunities(5, 2_000));
        let mut ids: Vec<i64> = a.iter().map(|o| o.opty_id).collect();
        let mut numbers: Vec<&str> = a.iter().map(|o| o.opty_number.as_str()).collect();
        ids.sort();
        ids.dedup();
        numbers.sort();
        numbers.dedup();
        assert_eq!((ids.len(), numbers.len()), (2_000, 2_000));
        let ties = a
            .windows(2)
            .filter(|w| w[0].updated == w[1].updated)
            .count();
        assert!(ties > 400 && ties < 1_000, "{ties} ties");
        assert!(a.windows(2).all(|w| w[0].updated <= w[1].updated));
        assert!(a.iter().all(|o| o.revenue_cents >= 50_000));
    }

    #[test]
    fn backdated_opportunities_come_before_the_seeded_ones_with_new_ids() {
        let seeded = opportunities(4, 100);
        let imported = backdated_opportunities(4, 10, 100);
        let first = seeded.iter().map(|o| o.updated).min().unwrap();
        assert!(imported.iter().all(|o| o.updated < first));
        assert!(imported
            .iter()
            .all(|o| seeded.iter().all(|s| s.opty_id != o.opty_id)));
        assert_eq!(imported, backdated_opportunities(4, 10, 100));
    }

    #[test]
    fn revenue_is_written_with_two_decimals() {
        let mut o = opportunities(1, 1).remove(0);
        o.revenue_cents = 1_500_000;
        assert_eq!(o.revenue(), "15000.00");
        o.revenue_cents = 1_234_507;
        assert_eq!(o.revenue(), "12345.07");
    }
}
