//! The fake's seeded fleet and what the device sync makes of it, into `MemoryStore` on a
//! paused clock: the same seed gives the same fleet; a full sync with required plans keeps the
//! newest listing of an ICCID listed twice and quarantines the incomplete devices with their
//! reasons; changes spread since the checkpoint are read by the next incremental sync; a
//! 503's `Retry-After` and the next-N faults are retried.

mod cisco_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use cisco_support::*;
use sync_connectors::cisco::{CiscoConfig, CiscoSource};
use sync_core::memory::MemoryStore;
use sync_core::{RetryPolicy, RunReport, Stager, SyncContext};

const SYNC: &str = "jasper/devices";

struct Account {
    fake: CiscoFake,
    store: Arc<MemoryStore>,
    config: CiscoConfig,
    source: Arc<CiscoSource>,
}

impl Account {
    async fn start(fleet: &Fleet) -> Account {
        let fake = CiscoFake::start(fleet.build()).await;
        let config = config(&fake)
            .with_required(["status", "rate_plan", "communication_plan"])
            .with_incremental(0, 1000)
            .build()
            .unwrap();
        let source = Arc::new(CiscoSource::new(config.clone()).unwrap());
        Account {
            fake,
            store: Arc::new(MemoryStore::new()),
            config,
            source,
        }
    }

    async fn run(&self, full: bool) -> RunReport {
        let strategy = if full {
            self.config.full_strategy().unwrap()
        } else {
            self.config.incremental_strategy().unwrap()
        };
        let ctx = SyncContext::new(
            SYNC,
            self.source.clone(),
            self.store.clone(),
            self.store.clone(),
        )
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(5)
                .with_backoff(StdDuration::from_millis(250), StdDuration::from_secs(2)),
        );
        strategy.run(&ctx).await.unwrap()
    }

    /// iccid -> (status, rate plan, communication plan) in the target.
    fn target(&self) -> BTreeMap<String, (String, String, String)> {
        let text = |r: &sync_core::Row, i: usize| r.get(i).as_str().unwrap().to_owned();
        self.store
            .target_rows("devices")
            .iter()
            .map(|r| (iccid(r), (text(r, 1), text(r, 2), text(r, 3))))
            .collect()
    }

    /// What the target must hold: the newest complete listing per ICCID changed since the
    /// full sync's window began (the first search's `modifiedSince`).
    fn expected(&self) -> BTreeMap<String, (String, String, String)> {
        let first = &self.fake.requests()[0].query["modifiedSince"];
        let since = chrono::DateTime::parse_from_rfc3339(first)
            .unwrap()
            .with_timezone(&Utc);
        self.fake
            .latest_since(since)
            .into_iter()
            .filter(|d| d.null_fields.is_empty())
            .map(|d| (d.iccid, (d.status, d.rate_plan, d.communication_plan)))
            .collect()
    }
}

fn fleet() -> Fleet {
    Fleet::new(400, 45)
        .with_seed(5)
        .with_duplicates(2)
        .with_incomplete(3)
}

#[test]
fn the_same_seed_gives_the_same_fleet() {
    let shape = |f: &Fleet| -> Vec<(String, String, String, Vec<&'static str>)> {
        f.build()
            .into_iter()
            .map(|d| (d.iccid, d.status, d.rate_plan, d.null_fields))
            .collect()
    };
    assert_eq!(shape(&fleet()), shape(&fleet()));
    assert_ne!(shape(&fleet()), shape(&fleet().with_seed(6)));
    let devices = fleet().build();
    assert_eq!(devices.len(), 402);
    let oldest = devices.iter().map(|d| d.modified).min().unwrap();
    assert!(Utc::now() - oldest <= Duration::days(45));
    assert!(
        Utc::now() - oldest > Duration::days(40),
        "spread over 45 days"
    );
}

#[tokio::test(start_paused = true)]
async fn duplicates_keep_the_newest_and_incomplete_devices_are_quarantined() {
    let a = Account::start(&fleet()).await;
    let report = a.run(true).await;
    assert!(report.complete);
    assert_eq!(a.target(), a.expected());
    assert_eq!(report.rows_rejected, 3);
    let mut quarantined: Vec<(String, String)> = a
        .store
        .quarantined(SYNC)
        .await
        .unwrap()
        .into_iter()
        .map(|q| (iccid(&q.row), q.reason))
        .collect();
    quarantined.sort();
    let mut incomplete: Vec<(String, String)> = a
        .fake
        .devices()
        .into_iter()
        .filter(|d| !d.null_fields.is_empty())
        .map(|d| {
            let column = if d.is_null("ratePlan") {
                "rate_plan"
            } else {
                "communication_plan"
            };
            (d.iccid, format!("missing required field \"{column}\""))
        })
        .collect();
    incomplete.sort();
    assert_eq!(quarantined, incomplete);
    let ledger = sync_core::Checkpoint::ledger(&*a.store, SYNC)
        .await
        .unwrap();
    assert_eq!(ledger.last().unwrap().rows_rejected, 3);
}

#[tokio::test(start_paused = true)]
async fn changes_spread_since_the_checkpoint_are_read_through_faults() {
    let a = Account::start(&fleet()).await;
    let full = a.run(true).await;
    // The changes come after the checkpoint (the end of the full sync's window).
    let Some(sync_core::Position::CursorKey(ck)) = full.position else {
        panic!("{:?}", full.position)
    };
    let sync_core::Value::Timestamp(after) = ck.cursor[0] else {
        panic!("{ck:?}")
    };
    let iccids: Vec<String> = (0..40).map(|i| Fleet::iccid(i * 9)).collect();
    assert_eq!(a.fake.modify_since(&iccids, after), 40);
    let mut new = devices(5, |_| Duration::zero());
    for d in &mut new {
        d.iccid = format!("7{}", d.iccid);
    }
    a.fake.add_since(new, after);
    let before = a.fake.request_count();
    a.fake
        .fault_next(2, Fault::Status(400, "40000029", "Rate Limit Exceeded"));
    a.fake.fault(Fault::Unavailable {
        retry_after: Some(2),
    });
    let report = a.run(false).await;
    assert!(report.complete);
    assert_eq!(a.target(), a.expected());
    let requests = a.fake.requests();
    let statuses: Vec<u16> = requests[before..before + 4]
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [400, 400, 503, 200]);
    let waited = requests[before + 3].at - requests[before + 2].at;
    assert!(
        waited >= StdDuration::from_secs(2),
        "Retry-After: 2, waited {waited:?}"
    );
}
