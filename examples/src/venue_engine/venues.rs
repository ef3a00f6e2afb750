//! The venues and their point-of-sale APIs.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

use serde_json::{json, Value};

use crate::demo_api::DemoApi;

/// One venue and its point-of-sale API.
#[derive(Debug)]
pub struct Venue {
    /// The venue id (the integration's tenant).
    pub name: &'static str,
    /// How many items its API serves.
    pub records: usize,
    /// Its API; `None` while its point of sale is offline.
    pub api: Option<DemoApi>,
    /// Where its integration points while offline: a port nothing listens on.
    offline_url: String,
}

impl Venue {
    fn online(name: &'static str, records: usize) -> io::Result<Venue> {
        Ok(Venue {
            name,
            records,
            api: Some(DemoApi::start(records)?),
            offline_url: String::new(),
        })
    }

    fn offline(name: &'static str, records: usize) -> io::Result<Venue> {
        // Bind and drop a listener: the port is then free and refuses connections.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        Ok(Venue {
            name,
            records,
            api: None,
            offline_url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The URL its integration should use now.
    pub fn url(&self) -> &str {
        self.api.as_ref().map_or(&self.offline_url, DemoApi::url)
    }

    /// Brings an offline point of sale online.
    pub fn bring_online(&mut self) -> io::Result<()> {
        if self.api.is_none() {
            self.api = Some(DemoApi::start(self.records)?);
        }
        Ok(())
    }

    /// The body of `PUT /pos/integrations/{venue}`: incremental syncs of `items` from the
    /// venue's own endpoint, `max_attempts` attempts before a job fails.
    pub fn integration(&self, max_attempts: u32) -> Value {
        json!({
            "strategy": "incremental",
            "streams": [super::STREAM],
            "max_attempts": max_attempts,
            "settings": { "base_url": self.url() },
        })
    }
}

/// The venues of the walkthrough.
#[derive(Debug)]
pub struct VenueSet {
    /// A small café.
    pub harbor: Venue,
    /// Another small venue.
    pub bistro: Venue,
    /// The largest venue: its sync is the one stopped mid-run.
    pub market: Venue,
    /// A venue whose point of sale is offline at first.
    pub grill: Venue,
}

impl VenueSet {
    /// Starts the online venues' APIs; `scale` multiplies every venue's item count (1 = the
    /// walkthrough's 3,000 / 1,500 / 20,000 / 2,000).
    pub fn start(scale: f64) -> io::Result<VenueSet> {
        let n = |base: f64| ((base * scale).round() as usize).max(1);
        Ok(VenueSet {
            harbor: Venue::online("harbor-cafe", n(3_000.0))?,
            bistro: Venue::online("north-bistro", n(1_500.0))?,
            market: Venue::online("market-hall", n(20_000.0))?,
            grill: Venue::offline("old-town-grill", n(2_000.0))?,
        })
    }

    /// Every venue, in a fixed order.
    pub fn all(&self) -> [&Venue; 4] {
        [&self.harbor, &self.bistro, &self.market, &self.grill]
    }
}
