//! A loopback fake of Cisco IoT Control Center's REST API (api-semantics.md section 3), a
//! small keep-alive HTTP/1.1 server on the caller's tokio runtime, so its rate check runs on
//! the same clock as the client (a paused clock in tests):
//!
//! - `GET /rws/api/v1/devices` (Search Devices): `modifiedSince` required (400 `10000003`),
//!   ISO 8601 only, not in the future (400 `10002119`), not more than a year old (400
//!   `10000045`); optional `modifiedTill`; `pageSize` (default 50, clamped at 50); `pageNumber`
//!   from 1; `status`; devices sorted ascending by a hidden modification time; `devices` with
//!   only `iccid`, `status`, `ratePlan`, `communicationPlan`, and `pageNumber`, `lastPage`;
//! - `GET /rws/api/v1/devices/{iccid}` (Get Device Details): `dateUpdated` in Cisco's format
//!   `2016-07-06 22:04:04.380+0000`; 404 for an unknown ICCID;
//! - HTTP Basic [`USER`]`:`[`API_KEY`] (401 `10000001` otherwise);
//! - more than one call in flight, or more than five in any second: 400 `40000029`;
//! - devices changed between two requests, or now ([`CiscoFake::touch`],
//!   [`CiscoFake::modify_since`]), added ([`CiscoFake::add_since`]), and injected
//!   [`Fault`]s on the next requests or on a given one.
//!
//! Error codes are strings, as Control Center writes them. Codes for cases the sources do not
//! name (an unparseable date, an unknown ICCID, a 503) are the fake's own.
//!
//! ```
//! use sync_connectors::fakes::cisco::{CiscoFake, Fleet};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let fake = CiscoFake::start(Fleet::new(100, 45).with_seed(7).build()).await;
//! assert!(fake.base_url.starts_with("http://127.0.0.1:"));
//! assert_eq!(fake.device_count(), 100);
//! # });
//! ```

mod fleet;
mod server;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub use fleet::{devices, Device, Fleet, COMMUNICATION_PLANS, RATE_PLANS};

/// The Control Center user the fake accepts.
pub const USER: &str = "sync-user";
/// The API key the fake accepts (a fake's key, not a secret).
pub const API_KEY: &str = "c0ffee-api-key";

/// An answer the fake gives instead of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status and Cisco error envelope (`errorCode`, `errorMessage`): for instance
    /// `Status(400, "40000029", "Rate Limit Exceeded")` or `Status(401, "10000001", "Invalid
    /// credentials")`.
    Status(u16, &'static str, &'static str),
    /// A 503 from the front end, with `Retry-After` in seconds when given.
    Unavailable {
        /// The `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// A 200 with an HTML page.
    Html,
    /// A 200 whose JSON stops half-way.
    Truncated,
    /// A search answer without `lastPage`.
    NoLastPage,
}

/// One request the fake received (its `Debug` leaves the `Authorization` header out).
#[derive(Clone)]
pub struct Received {
    /// The path (`/rws/api/v1/devices`).
    pub path: String,
    /// The query, decoded.
    pub query: BTreeMap<String, String>,
    /// The raw query, as sent (to see `+` encoded as `%2B`).
    pub raw_query: String,
    /// When it arrived (tokio's clock).
    pub at: Instant,
    /// The `Authorization` header (the fake's own credentials; compare, never print).
    pub authorization: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code answered, if any.
    pub error_code: Option<String>,
    /// For searches: whether the answer was the last page.
    pub last_page: Option<bool>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("path", &self.path)
            .field("query", &self.query)
            .field("at", &self.at)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("status", &self.status)
            .field("error_code", &self.error_code)
            .field("last_page", &self.last_page)
            .finish()
    }
}

/// The fake's state, behind [`CiscoFake::state`].
#[derive(Debug)]
pub struct State {
    /// The device listings (an ICCID may be listed twice).
    pub devices: Vec<Device>,
    /// Before answering request `n` (0-based), device `iccid` changes.
    pub touch_at: Vec<(usize, String)>,
    /// Faults answered to the next requests, in order.
    pub faults: VecDeque<Fault>,
    /// Faults answered to request `n` (0-based), before the queued ones.
    pub fault_at: Vec<(usize, Fault)>,
    /// Every request received.
    pub requests: Vec<Received>,
    /// How long each answer is held, so overlapping calls would be seen.
    pub hold: std::time::Duration,
    /// Calls accepted in any second (Control Center: 5).
    pub calls_per_second: usize,
    arrivals: VecDeque<Instant>,
    in_flight: usize,
}

/// The fake, listening on 127.0.0.1 (a random port) until the runtime shuts down.
pub struct CiscoFake {
    /// The REST API root: `http://127.0.0.1:PORT/rws/api/v1`.
    pub base_url: String,
    /// The state, for tests that reach into it.
    pub state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for CiscoFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("CiscoFake")
            .field("base_url", &self.base_url)
            .field("listings", &st.devices.len())
            .field("requests", &st.requests.len())
            .field("calls_per_second", &st.calls_per_second)
            .finish_non_exhaustive()
    }
}

impl CiscoFake {
    /// Starts the fake serving `devices`.
    ///
    /// # Panics
    /// When no port on 127.0.0.1 can be bound.
    pub async fn start(devices: Vec<Device>) -> CiscoFake {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port on 127.0.0.1");
        let addr = listener.local_addr().expect("a bound address");
        let state = Arc::new(Mutex::new(State {
            devices,
            touch_at: Vec::new(),
            faults: VecDeque::new(),
            fault_at: Vec::new(),
            requests: Vec::new(),
            hold: std::time::Duration::from_millis(20),
            calls_per_second: 5,
            arrivals: VecDeque::new(),
            in_flight: 0,
        }));
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(server::serve(socket, s.clone()));
            }
        });
        CiscoFake {
            base_url: format!("http://{addr}/rws/api/v1"),
            state,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the fake's state")
    }

    /// Answers the next request with `fault`.
    pub fn fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Answers each of the next `n` requests with `fault`.
    pub fn fault_next(&self, n: usize, fault: Fault) {
        let mut st = self.lock();
        st.faults.extend(std::iter::repeat(fault).take(n));
    }

    /// Answers request number `at` (0-based, counting every request received) with `fault`.
    pub fn fault_at(&self, at: usize, fault: Fault) {
        self.lock().fault_at.push((at, fault));
    }

    /// Changes device `iccid` just before answering request number `at` (0-based).
    pub fn touch_at(&self, at: usize, iccid: &str) {
        self.lock().touch_at.push((at, iccid.into()));
    }

    /// Changes device `iccid` now: the next version, rate plan `hphlr rp1 v<version>`.
    ///
    /// # Panics
    /// When the fake has no such device.
    pub fn touch(&self, iccid: &str) {
        touch(&mut self.lock().devices, iccid);
    }

    /// Changes each of `iccids` (its newest listing): the next version and another rate plan
    /// from [`RATE_PLANS`], at times spread evenly over `(after, now]` in this order, as if
    /// they changed one after the other since `after`. Returns how many it changed (unknown
    /// ICCIDs are skipped).
    pub fn modify_since(&self, iccids: &[String], after: DateTime<Utc>) -> usize {
        let times = spread(after, iccids.len());
        let mut st = self.lock();
        let mut changed = 0;
        for (iccid, at) in iccids.iter().zip(times) {
            let newest = st
                .devices
                .iter_mut()
                .filter(|d| &d.iccid == iccid)
                .max_by_key(|d| d.modified);
            if let Some(d) = newest {
                d.version += 1;
                let next = RATE_PLANS
                    .iter()
                    .position(|p| *p == d.rate_plan)
                    .map_or(0, |i| i + 1);
                d.rate_plan = RATE_PLANS[next % RATE_PLANS.len()].into();
                d.modified = at;
                changed += 1;
            }
        }
        changed
    }

    /// Adds `devices` as new listings changed at times spread evenly over `(after, now]`.
    pub fn add_since(&self, devices: Vec<Device>, after: DateTime<Utc>) {
        let times = spread(after, devices.len());
        let mut st = self.lock();
        for (mut d, at) in devices.into_iter().zip(times) {
            d.modified = at;
            st.devices.push(d);
        }
    }

    /// Adds a device listing as it is.
    pub fn add(&self, device: Device) {
        self.lock().devices.push(device);
    }

    /// Sets how many calls the fake accepts in any second (Control Center: 5).
    pub fn set_calls_per_second(&self, calls: usize) {
        self.lock().calls_per_second = calls.max(1);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.lock().requests.clone()
    }

    /// Requests received so far.
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Answers with error code `40000029` so far.
    pub fn rate_rejections(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.error_code.as_deref() == Some("40000029"))
            .count()
    }

    /// The device listings.
    pub fn devices(&self) -> Vec<Device> {
        self.lock().devices.clone()
    }

    /// Distinct ICCIDs.
    pub fn device_count(&self) -> usize {
        let st = self.lock();
        let ids: std::collections::BTreeSet<&str> =
            st.devices.iter().map(|d| d.iccid.as_str()).collect();
        ids.len()
    }

    /// (iccid, rate plan) of the listings modified at or after `since`, sorted.
    pub fn modified_since(&self, since: DateTime<Utc>) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .lock()
            .devices
            .iter()
            .filter(|d| d.modified >= since)
            .map(|d| (d.iccid.clone(), d.rate_plan.clone()))
            .collect();
        v.sort();
        v
    }

    /// The newest listing of each ICCID whose newest listing changed at or after `since`,
    /// by ICCID: what a sync since then must hold.
    pub fn latest_since(&self, since: DateTime<Utc>) -> Vec<Device> {
        let mut newest: BTreeMap<String, Device> = BTreeMap::new();
        for d in self.lock().devices.iter() {
            match newest.get(&d.iccid) {
                Some(n) if n.modified >= d.modified => {}
                _ => {
                    newest.insert(d.iccid.clone(), d.clone());
                }
            }
        }
        newest
            .into_values()
            .filter(|d| d.modified >= since)
            .collect()
    }
}

/// `n` instants spread evenly over `(after, now]`, ascending.
fn spread(after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let now = Utc::now();
    let span = (now - after).num_milliseconds().max(n as i64);
    (1..=n as i64)
        .map(|k| after + chrono::Duration::milliseconds(span * k / n as i64))
        .map(|t| t.min(now))
        .collect()
}

fn touch(devices: &mut [Device], iccid: &str) {
    let d = devices
        .iter_mut()
        .find(|d| d.iccid == iccid)
        .expect("a known device");
    d.version += 1;
    d.rate_plan = format!("hphlr rp1 v{}", d.version);
    d.modified = Utc::now();
}
