//! A loopback fake of Oracle Fusion Cloud REST collections (`accounts` and
//! `opportunities`), as api-semantics.md section 2 describes them: `limit` (default 25,
//! clamped silently at `max_limit` and echoed), `offset`, `count`, `hasMore`, `totalResults`
//! only on request, `onlyData`, `fields`, `finder`, `orderBy` (an undefined order without
//! it), a `q` subset (`= != > >= < <=`, `and`, `or`, parentheses, quoted ISO timestamps and
//! strings, numbers; 400 on anything else), second-precision `LastUpdateDate`, records
//! updated between two page requests, and errors as `o:errorDetails` JSON for
//! `REST-Framework-Version` 4 and later or plain text before.
//!
//! The `opportunities` resource holds a seeded data set ([`opportunities`]: the same seed
//! gives the same records in every process), so a run interrupted in one process and resumed
//! in another reads the same source; [`OracleFake::set_delay`] slows every answer down so a
//! run lasts long enough to be interrupted by hand.
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use sync_connectors::fakes::oracle::{opportunities, OracleFake, State};
//!
//! let fake = OracleFake::start_with(State {
//!     opportunities: opportunities(7, 120),
//!     ..State::default()
//! })
//! .await;
//! let url = format!("{}/opportunities?limit=50&offset=100&totalResults=true", fake.base_url());
//! assert!(url.starts_with("http://127.0.0.1:"));
//! assert_eq!(fake.opportunities(), opportunities(7, 120));
//! # });
//! ```

mod collection;
pub mod q;
mod records;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Duration as TimeDelta;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub use collection::error_response;
use collection::respond;
pub use records::{
    accounts, backdated_opportunities, opportunities, opportunities_t0, t0, Account, Opportunity,
    FIRST_OPTY_ID,
};

/// The path of the resources, up to the version segment.
pub const RESOURCES_PATH: &str = "/crmRestApi/resources/11.13.18.05";
/// The path of the `accounts` collection.
pub const RESOURCE_PATH: &str = "/crmRestApi/resources/11.13.18.05/accounts";
/// The path of the `opportunities` collection.
pub const OPPORTUNITIES_PATH: &str = "/crmRestApi/resources/11.13.18.05/opportunities";

/// One answer the fake gives instead of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with an Oracle error body (JSON or text by framework version).
    Status(u16, &'static str),
    /// A 200 with an HTML login page.
    Html,
    /// A 200 whose JSON stops half-way.
    Truncated,
    /// A collection without `hasMore`.
    NoHasMore,
    /// `count` says one more than the items.
    WrongCount,
    /// The page in reverse order (as if `orderBy` were ignored).
    Reversed,
}

/// What the fake holds and saw.
#[derive(Debug)]
pub struct State {
    /// The `accounts` collection.
    pub accounts: Vec<Account>,
    /// The `opportunities` collection.
    pub opportunities: Vec<Opportunity>,
    /// The largest page served, whatever `limit` asks (500 by default).
    pub max_limit: usize,
    /// Before serving request number `n` (0-based, both resources counted), account `id` is
    /// updated: it moves past every other record (one second after the newest).
    pub touch_at: Vec<(usize, i64)>,
    /// Answers given instead of the normal ones, one per request.
    pub faults: VecDeque<Fault>,
    /// The query of every request received, and its framework version header.
    pub requests: Vec<(BTreeMap<String, String>, Option<String>)>,
    /// How long every answer waits before it is sent.
    pub delay: Option<Duration>,
}

impl Default for State {
    fn default() -> Self {
        State {
            accounts: Vec::new(),
            opportunities: Vec::new(),
            max_limit: 500,
            touch_at: Vec::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            delay: None,
        }
    }
}

/// The fake and its state.
#[derive(Debug)]
pub struct OracleFake {
    /// The HTTP server on 127.0.0.1.
    pub server: MockServer,
    /// What it holds and saw; change it between requests.
    pub state: Arc<Mutex<State>>,
}

impl OracleFake {
    /// A fake holding `n` [`accounts`] and no opportunities.
    pub async fn start(n: usize) -> OracleFake {
        OracleFake::start_with(State {
            accounts: accounts(n),
            ..State::default()
        })
        .await
    }

    /// A fake holding `state`, on a random port of 127.0.0.1.
    pub async fn start_with(state: State) -> OracleFake {
        let state = Arc::new(Mutex::new(state));
        let server = MockServer::start().await;
        let s = state.clone();
        Mock::given(method("GET"))
            .and(path(RESOURCE_PATH))
            .respond_with(move |req: &Request| {
                let mut st = lock(&s);
                let (query, version) = received(&mut st, req);
                let answer = respond(&mut st, &query, version, |st| &st.accounts);
                delayed(&st, answer)
            })
            .mount(&server)
            .await;
        let s = state.clone();
        Mock::given(method("GET"))
            .and(path(OPPORTUNITIES_PATH))
            .respond_with(move |req: &Request| {
                let mut st = lock(&s);
                let (query, version) = received(&mut st, req);
                let answer = respond(&mut st, &query, version, |st| &st.opportunities);
                delayed(&st, answer)
            })
            .mount(&server)
            .await;
        OracleFake { server, state }
    }

    /// The resources URL up to the version segment (`http://127.0.0.1:<port>/crmRestApi/...`).
    pub fn base_url(&self) -> String {
        format!("{}{RESOURCES_PATH}", self.server.uri())
    }

    /// Sets the largest page served.
    pub fn set_max_limit(&self, max: usize) {
        lock(&self.state).max_limit = max;
    }

    /// Makes every answer wait `delay` (`None`: answer at once).
    pub fn set_delay(&self, delay: Option<Duration>) {
        lock(&self.state).delay = delay;
    }

    /// Queues an answer given instead of the next normal one.
    pub fn fault(&self, fault: Fault) {
        lock(&self.state).faults.push_back(fault);
    }

    /// Updates account `id` before serving request number `at` (counted from the start).
    pub fn touch_at(&self, at: usize, id: i64) {
        lock(&self.state).touch_at.push((at, id));
    }

    /// Updates account `id` now: it moves past every other account.
    pub fn touch(&self, id: i64) {
        touch(&mut lock(&self.state).accounts, id);
    }

    /// The query of every request received, and its framework version header.
    pub fn requests(&self) -> Vec<(BTreeMap<String, String>, Option<String>)> {
        lock(&self.state).requests.clone()
    }

    /// The accounts as (PartyId, version), sorted.
    pub fn snapshot(&self) -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = lock(&self.state)
            .accounts
            .iter()
            .map(|a| (a.party_id, a.version))
            .collect();
        v.sort();
        v
    }

    /// The opportunities as the fake holds them now.
    pub fn opportunities(&self) -> Vec<Opportunity> {
        lock(&self.state).opportunities.clone()
    }

    /// Adds opportunities (for example [`backdated_opportunities`]); an `OptyId` already
    /// held is replaced.
    pub fn insert_opportunities(&self, new: Vec<Opportunity>) {
        let mut st = lock(&self.state);
        for o in new {
            st.opportunities.retain(|held| held.opty_id != o.opty_id);
            st.opportunities.push(o);
        }
    }

    /// Updates opportunity `id` now, as a user editing it would: its revenue grows by 10%,
    /// its status becomes `WON` and its `LastUpdateDate` moves one second past the newest
    /// record, so in `LastUpdateDate` order it leaves its place for the end. Returns false
    /// for an unknown id.
    pub fn update_opportunity(&self, id: i64) -> bool {
        let mut st = lock(&self.state);
        let newest = st.opportunities.iter().map(|o| o.updated).max();
        let Some(o) = st.opportunities.iter_mut().find(|o| o.opty_id == id) else {
            return false;
        };
        o.updated = newest.unwrap_or_else(opportunities_t0) + TimeDelta::seconds(1);
        o.revenue_cents += o.revenue_cents / 10;
        o.status = "WON".into();
        true
    }
}

/// The state, even if a panicking test left the lock poisoned.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn touch(accounts: &mut [Account], id: i64) {
    let newest = accounts.iter().map(|a| a.updated).max().unwrap_or_else(t0);
    let a = accounts
        .iter_mut()
        .find(|a| a.party_id == id)
        .expect("a known account");
    a.updated = newest + TimeDelta::seconds(1);
    a.version += 1;
    a.name = format!(
        "{} (v{})",
        a.name.split(" (v").next().unwrap_or(""),
        a.version
    );
}

fn delayed(st: &State, answer: ResponseTemplate) -> ResponseTemplate {
    match st.delay {
        Some(delay) => answer.set_delay(delay),
        None => answer,
    }
}

/// Records the request and applies the account updates due before it; returns its query
/// and framework version.
fn received(st: &mut State, req: &Request) -> (BTreeMap<String, String>, u32) {
    let query: BTreeMap<String, String> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let version_header = req
        .headers
        .get("REST-Framework-Version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let version: u32 = version_header
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let n = st.requests.len();
    st.requests.push((query.clone(), version_header));
    let touches: Vec<i64> = st
        .touch_at
        .iter()
        .filter(|(at, _)| *at == n)
        .map(|(_, id)| *id)
        .collect();
    for id in touches {
        touch(&mut st.accounts, id);
    }
    (query, version)
}
