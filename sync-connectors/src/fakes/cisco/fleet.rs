//! The devices a [`CiscoFake`](super::CiscoFake) serves: [`Device`], a simple numbered set
//! ([`devices`]) and a deterministic seeded fleet of realistic size ([`Fleet`]).

use chrono::{DateTime, Duration, Utc};

/// One device listing as the fake keeps it.
///
/// Search Devices returns `iccid`, `status`, `ratePlan` and `communicationPlan`; the
/// modification time is hidden there (it orders the results) and shown only by Get Device
/// Details as `dateUpdated`.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// The SIM's ICCID, the device's identity.
    pub iccid: String,
    /// SIM status (`ACTIVATED`, `DEACTIVATED`, `INVENTORY`, ...).
    pub status: String,
    /// The rate plan.
    pub rate_plan: String,
    /// The communication plan.
    pub communication_plan: String,
    /// When the device last changed (Control Center's clock, here this process's).
    pub modified: DateTime<Utc>,
    /// Changes made to the device so far (1 for a device never changed since it was seeded).
    pub version: u32,
    /// API field names (`status`, `ratePlan`, `communicationPlan`) answered as `null`: an
    /// incomplete record.
    pub null_fields: Vec<&'static str>,
}

impl Device {
    /// True when the field with API name `field` is answered as `null`.
    pub fn is_null(&self, field: &str) -> bool {
        self.null_fields.contains(&field)
    }
}

/// `n` devices, the `i`-th modified `age(i)` ago, with ICCIDs `89882167169700{i:05}`, rate
/// plan `hphlr rp1 v1` (the version follows every [`CiscoFake::touch`](super::CiscoFake::touch))
/// and communication plan `CP_Basic_ON`.
pub fn devices(n: usize, age: impl Fn(usize) -> Duration) -> Vec<Device> {
    let now = Utc::now();
    (0..n)
        .map(|i| Device {
            iccid: format!("89882167169700{i:05}"),
            status: "ACTIVATED".into(),
            rate_plan: "hphlr rp1 v1".into(),
            communication_plan: "CP_Basic_ON".into(),
            modified: now - age(i),
            version: 1,
            null_fields: Vec::new(),
        })
        .collect()
}

/// Rate plans of the seeded fleet.
pub const RATE_PLANS: [&str; 4] = ["IoT 10MB", "IoT 100MB", "IoT 1GB Pooled", "Fleet 5GB"];
/// Communication plans of the seeded fleet.
pub const COMMUNICATION_PLANS: [&str; 3] = ["CP_Basic_ON", "CP_Data_Only", "CP_LTE_M"];
const STATUSES: [&str; 5] = [
    "ACTIVATED",
    "ACTIVATED",
    "ACTIVATED",
    "DEACTIVATED",
    "INVENTORY",
];

/// A deterministic seeded fleet: the same seed gives the same devices, modification ages,
/// plans, duplicates and incomplete records (ages are relative to when it is built).
///
/// ```
/// use sync_connectors::fakes::cisco::Fleet;
///
/// let fleet = Fleet::new(3000, 45).with_seed(2).with_duplicates(3).with_incomplete(4);
/// let devices = fleet.build();
/// assert_eq!(devices.len(), 3000 + 3);
/// assert_eq!(fleet.build().len(), devices.len());
/// assert_eq!(devices.iter().filter(|d| !d.null_fields.is_empty()).count(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// Distinct devices.
    pub devices: usize,
    /// Their modification times spread over this many days before now.
    pub days: u32,
    /// The seed.
    pub seed: u64,
    /// Devices listed twice, both listings changed within the last 25 days and at least two
    /// days apart, the second with another rate plan.
    pub duplicates: usize,
    /// Devices within the last 25 days answered with a `null` rate plan or communication
    /// plan (alternately).
    pub incomplete: usize,
}

impl Fleet {
    /// `devices` devices changed over the last `days` days, seed 0, no duplicates and no
    /// incomplete records.
    pub fn new(devices: usize, days: u32) -> Fleet {
        Fleet {
            devices,
            days: days.max(1),
            seed: 0,
            duplicates: 0,
            incomplete: 0,
        }
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Fleet {
        self.seed = seed;
        self
    }

    /// Lists `n` devices twice.
    pub fn with_duplicates(mut self, n: usize) -> Fleet {
        self.duplicates = n;
        self
    }

    /// Makes `n` devices incomplete.
    pub fn with_incomplete(mut self, n: usize) -> Fleet {
        self.incomplete = n;
        self
    }

    /// The ICCID of device `i`.
    pub fn iccid(i: usize) -> String {
        format!("8901260{i:012}")
    }

    /// The device listings, oldest change first; the second listings of the duplicated
    /// devices come last.
    pub fn build(&self) -> Vec<Device> {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let now = Utc::now();
        let span_ms = i64::from(self.days) * 86_400_000;
        let mut ages: Vec<i64> = (0..self.devices)
            .map(|_| rng.i64(60_000..span_ms.max(60_001)))
            .collect();
        ages.sort_unstable_by(|a, b| b.cmp(a));
        let mut devices: Vec<Device> = ages
            .iter()
            .enumerate()
            .map(|(i, age)| Device {
                iccid: Self::iccid(i),
                status: STATUSES[rng.usize(..STATUSES.len())].into(),
                rate_plan: RATE_PLANS[rng.usize(..RATE_PLANS.len())].into(),
                communication_plan: COMMUNICATION_PLANS[rng.usize(..COMMUNICATION_PLANS.len())]
                    .into(),
                modified: now - Duration::milliseconds(*age),
                version: 1,
                null_fields: Vec::new(),
            })
            .collect();
        // Special devices are taken among those changed 5 to 25 days ago, evenly spaced.
        let recent: Vec<usize> = (0..devices.len())
            .filter(|&i| (5 * 86_400_000..25 * 86_400_000).contains(&ages[i]))
            .collect();
        let wanted = self.duplicates + self.incomplete;
        let step = (recent.len() / wanted.max(1)).max(1);
        let mut picked = recent.iter().step_by(step).copied();
        for n in 0..self.incomplete {
            let Some(i) = picked.next() else { break };
            devices[i].null_fields = vec![if n % 2 == 0 {
                "ratePlan"
            } else {
                "communicationPlan"
            }];
        }
        for _ in 0..self.duplicates {
            let Some(i) = picked.next() else { break };
            let first = &devices[i];
            let plan = RATE_PLANS
                .iter()
                .find(|p| **p != first.rate_plan)
                .expect("more than one rate plan");
            let second = Device {
                rate_plan: (*plan).into(),
                modified: first.modified + Duration::days(2) + Duration::hours(3),
                version: 2,
                ..first.clone()
            };
            devices.push(second);
        }
        devices
    }
}
