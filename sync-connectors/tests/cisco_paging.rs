//! The Cisco source against the fake Control Center, on a paused clock: what every request
//! sends, windows bisected before their devices are taken, devices changed mid-read, a dense
//! second read in passes, `modifiedSince` kept within the year and never in the future, the
//! account's call rate, and `40000029` as a rate limit.

mod cisco_support;

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use cisco_support::*;
use sync_connectors::cisco::{CiscoSource, MODIFIED_UNTIL};
use sync_connectors::http::{Auth, HttpClient, HttpRequest, RateLimit, Secret};
use sync_core::{ErrorKind, Page, PageRequest, PageSelector, RetryClass, Source, Value};

fn request(selector: PageSelector, since: Option<chrono::DateTime<Utc>>) -> PageRequest {
    PageRequest {
        stream: "devices".into(),
        selector,
        since: since.map(|t| vec![Value::Timestamp(t)]),
        until: None,
        limit: 50,
    }
}

/// Follows `next` from the first page to the last.
async fn read_all(source: &CiscoSource, since: chrono::DateTime<Utc>) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut selector = Some(PageSelector::First);
    while let Some(s) = selector.take() {
        assert!(pages.len() < 500, "a read that never ends");
        let page = source.fetch_page(&request(s, Some(since))).await.unwrap();
        selector = page.next.clone();
        pages.push(page);
    }
    pages
}

fn iccids(pages: &[Page]) -> BTreeSet<String> {
    pages
        .iter()
        .flat_map(|p| p.rows.iter())
        .map(iccid)
        .collect()
}

fn searches(fake: &CiscoFake) -> Vec<Received> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == "/rws/api/v1/devices")
        .collect()
}

#[tokio::test(start_paused = true)]
async fn requests_carry_basic_auth_and_the_window_in_iso_8601() {
    let fake = CiscoFake::start(devices(10, |i| Duration::minutes(i as i64 + 1))).await;
    let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
    let since = Utc::now() - Duration::hours(1);
    let page = source
        .fetch_page(&request(PageSelector::First, Some(since)))
        .await
        .unwrap();
    assert_eq!((page.rows.len(), page.next.clone()), (10, None));
    let r = &fake.requests()[0];
    assert_eq!(
        r.authorization.as_deref(),
        Some("Basic c3luYy11c2VyOmMwZmZlZS1hcGkta2V5"),
        "base64(user:apiKey)"
    );
    let sent = &r.query["modifiedSince"];
    assert_eq!(sent, &since.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
    assert!(r.raw_query.contains("%2B00%3A00"), "{}", r.raw_query);
    assert_eq!(
        (r.query["pageSize"].as_str(), r.query["pageNumber"].as_str()),
        ("50", "1")
    );
    // Every device of the window carries the window's end as its cursor.
    let schema = source.schema("devices").unwrap();
    let cursor = schema.column_index(MODIFIED_UNTIL).unwrap();
    let till = chrono::DateTime::parse_from_rfc3339(&r.query["modifiedTill"]).unwrap();
    for row in &page.rows {
        let Value::Timestamp(t) = row.get(cursor) else {
            panic!("a timestamp")
        };
        assert!(
            *t > since && (till.timestamp() - t.timestamp()).abs() <= 1,
            "{t}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_window_over_a_page_is_bisected_before_its_devices_are_taken() {
    // 130 devices over the last ten hours: one day's window holds three pages.
    let fake = CiscoFake::start(devices(130, |i| Duration::seconds(60 + 275 * i as i64))).await;
    let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
    let all: BTreeSet<String> = fake
        .modified_since(Utc::now() - Duration::days(1))
        .into_iter()
        .map(|d| d.0)
        .collect();
    let pages = read_all(&source, Utc::now() - Duration::hours(11)).await;
    assert_eq!(iccids(&pages), all);
    let searches = searches(&fake);
    assert!(searches.iter().all(|r| r.query["pageNumber"] == "1"));
    let halved = searches
        .iter()
        .filter(|r| r.last_page == Some(false))
        .count();
    assert!(halved >= 2, "{halved}");
    // A page that was not the last was never taken: the next request halves its window.
    for pair in searches.windows(2) {
        if pair[0].last_page == Some(false) {
            assert_eq!(
                pair[1].query["modifiedSince"],
                pair[0].query["modifiedSince"]
            );
            assert!(pair[1].query["modifiedTill"] < pair[0].query["modifiedTill"]);
        }
    }
    assert_eq!(fake.rate_rejections(), 0);
}

#[tokio::test(start_paused = true)]
async fn page_numbers_skip_a_device_changed_mid_read_and_windows_do_not() {
    let fleet = || devices(120, |i| Duration::seconds(3600 - 20 * i as i64));
    let since = Utc::now() - Duration::hours(2);
    // Page numbers over one window, as a plain client would read it: device 10 changes after
    // page 1 and everything after it shifts: device 50 is never returned.
    let fake = CiscoFake::start(fleet()).await;
    fake.touch_at(1, "8988216716970000010");
    let client = HttpClient::new(paused_http())
        .unwrap()
        .with_auth(Auth::Basic {
            username: USER.into(),
            password: Secret::new(API_KEY),
        })
        .with_rate_limit(RateLimit::per_second(5.0).with_max_concurrent(1))
        .unwrap();
    let mut read = BTreeSet::new();
    let till = Utc::now();
    for page in 1..=3 {
        let req = HttpRequest::get(format!("{}/devices", fake.base_url))
            .with_query("modifiedSince", since.to_rfc3339())
            .with_query("modifiedTill", till.to_rfc3339())
            .with_query("pageNumber", page.to_string());
        let body: serde_json::Value = client.execute(&req).await.unwrap().json().unwrap();
        for d in body["devices"].as_array().unwrap() {
            read.insert(d["iccid"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(read.len(), 119);
    assert!(!read.contains("8988216716970000050"));

    // The source reads windows of one page each: only the changed device is not in this read
    // (its change is after the read's end, for the next run).
    let fake = CiscoFake::start(fleet()).await;
    fake.touch_at(1, "8988216716970000010");
    fake.touch_at(4, "8988216716970000070");
    let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
    let got = iccids(&read_all(&source, since).await);
    let missing: Vec<String> = fleet()
        .iter()
        .map(|d| d.iccid.clone())
        .filter(|i| !got.contains(i))
        .collect();
    assert!(
        missing
            .iter()
            .all(|i| i.ends_with("00010") || i.ends_with("00070")),
        "{missing:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_denser_than_a_page_is_read_in_passes_until_two_agree() {
    // 120 devices changed within one second, an hour ago.
    let second = (Utc::now() - Duration::hours(1)).timestamp();
    let at = chrono::DateTime::from_timestamp(second, 100_000_000).unwrap();
    let mut fleet = devices(120, |_| Duration::zero());
    for (i, d) in fleet.iter_mut().enumerate() {
        d.modified = at + Duration::milliseconds(i as i64);
    }
    for touched in [false, true] {
        let fake = CiscoFake::start(fleet.clone()).await;
        let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
        let mut pages: Vec<Page> = Vec::new();
        let mut selector = Some(PageSelector::First);
        while let Some(s) = selector.take() {
            let page = source
                .fetch_page(&request(s, Some(at - Duration::minutes(30))))
                .await
                .unwrap();
            // After the first page of the first pass, device 10 changes: the rest of that
            // pass shifts and loses device 50.
            if touched && pages.iter().all(|p| p.rows.len() < 50) && page.rows.len() == 50 {
                fake.touch("8988216716970000010");
            }
            selector = page.next.clone();
            pages.push(page);
        }
        let expected: BTreeSet<String> = fleet
            .iter()
            .map(|d| d.iccid.clone())
            .filter(|i| !(touched && i.ends_with("00010")))
            .collect();
        assert!(expected.is_subset(&iccids(&pages)), "touched={touched}");
        // Three pages a pass: two passes agree, or three when the first was disturbed.
        let passes = searches(&fake)
            .iter()
            .filter(|r| r.query["pageNumber"] == "3")
            .count();
        assert_eq!(passes, if touched { 3 } else { 2 }, "touched={touched}");
    }
}

#[tokio::test(start_paused = true)]
async fn modified_since_stays_within_the_year_and_never_in_the_future() {
    let fake = CiscoFake::start(devices(5, |i| Duration::minutes(i as i64))).await;
    let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
    let now = Utc::now();
    for (since, what) in [
        (None, "no lower bound"),
        (Some(now - Duration::days(366)), "older than a year"),
    ] {
        let e = source
            .fetch_page(&request(PageSelector::First, since))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.retry_class()),
            (ErrorKind::Unsupported, RetryClass::Permanent),
            "{what}: {e}"
        );
        assert!(e.to_string().contains("full sync"), "{what}: {e}");
    }
    let future = source
        .fetch_page(&request(
            PageSelector::First,
            Some(now + Duration::hours(1)),
        ))
        .await
        .unwrap();
    assert_eq!((future.rows.len(), future.next), (0, None));
    assert!(fake.requests().is_empty(), "none of these reached the api");

    // An upper bound in the future is cut at now.
    let page = source
        .fetch_page(&PageRequest {
            until: Some(vec![Value::Timestamp(now + Duration::days(2))]),
            ..request(PageSelector::First, Some(now - Duration::days(364)))
        })
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 0);
    let till = &fake.requests()[0].query["modifiedTill"];
    assert!(
        chrono::DateTime::parse_from_rfc3339(till).unwrap() <= Utc::now() + Duration::seconds(1)
    );

    // The fake refuses what the source never sends, with Cisco's codes.
    let client = source.client().clone();
    for (since, code) in [
        (Some(now - Duration::days(400)), "10000045"),
        (Some(now + Duration::hours(2)), "10002119"),
        (None, "10000003"),
    ] {
        let mut req = HttpRequest::get(format!("{}/devices", fake.base_url));
        if let Some(s) = since {
            req = req.with_query("modifiedSince", s.to_rfc3339());
        }
        let e = sync_connectors::cisco::classify(client.execute(&req).await.unwrap_err());
        assert_eq!(
            (e.kind(), e.context_value("error_code")),
            (ErrorKind::Remote, Some(code))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_account_limit_keeps_calls_apart_and_40000029_is_a_rate_limit() {
    let fleet = devices(400, |i| Duration::seconds(30 + 200 * i as i64));
    // The default client: one call at a time, 200 ms apart; the fake never refuses one.
    let fake = CiscoFake::start(fleet.clone()).await;
    let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
    read_all(&source, Utc::now() - Duration::days(1)).await;
    let at: Vec<tokio::time::Instant> = fake.requests().iter().map(|r| r.at).collect();
    assert!(at.len() > 10, "{}", at.len());
    assert!(at
        .windows(2)
        .all(|w| w[1] - w[0] >= std::time::Duration::from_millis(200)));
    assert_eq!(fake.rate_rejections(), 0);

    // Without the limit, concurrent calls get 400 + 40000029, classified as a rate limit.
    let fake = CiscoFake::start(fleet).await;
    let unlimited = HttpClient::new(paused_http())
        .unwrap()
        .with_auth(Auth::Basic {
            username: USER.into(),
            password: Secret::new(API_KEY),
        });
    let source = CiscoSource::with_client(config(&fake).build().unwrap(), unlimited).unwrap();
    let since = Some(Utc::now() - Duration::hours(3));
    let req = request(PageSelector::First, since);
    let calls = (0..4).map(|_| source.fetch_page(&req));
    let results = futures::future::join_all(calls).await;
    let limited: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(!limited.is_empty());
    for e in &limited {
        assert_eq!(
            (e.kind(), e.retry_class()),
            (ErrorKind::RateLimited, RetryClass::Transient),
            "{e}"
        );
        assert_eq!(e.context_value("error_code"), Some("40000029"));
        assert_eq!(e.context_value("connector"), Some("cisco"));
    }
    assert!(fake.rate_rejections() >= limited.len());
}

#[tokio::test(start_paused = true)]
async fn fetch_latest_reads_details_with_cisco_timestamps() {
    let fake = CiscoFake::start(devices(3, |i| Duration::minutes(i as i64 + 5))).await;
    let source = CiscoSource::new(config(&fake).build().unwrap()).unwrap();
    let ids = [
        "8988216716970000002",
        "8988216716970099999",
        "8988216716970000000",
    ]
    .map(sync_core::Key::text);
    let rows = source.fetch_latest("devices", &ids).await.unwrap();
    assert_eq!(
        rows.iter().map(iccid).collect::<Vec<_>>(),
        ["8988216716970000002", "8988216716970000000"]
    );
    let schema = source.schema("devices").unwrap();
    let (updated, cursor) = (
        schema.column_index("date_updated").unwrap(),
        schema.column_index(MODIFIED_UNTIL).unwrap(),
    );
    let modified = fake.state.lock().unwrap().devices[2].modified;
    let millis = chrono::DateTime::from_timestamp_millis(modified.timestamp_millis()).unwrap();
    assert_eq!(rows[0].get(updated), &Value::Timestamp(millis));
    assert_eq!(rows[0].get(cursor), rows[0].get(updated));
    assert_eq!(
        fake.requests()[0].path,
        "/rws/api/v1/devices/8988216716970000002"
    );
}
