//! The Oracle source against the fake collection: what every request sends, the clamped
//! `limit` (reads advance by `count`), the documented page shape, bounds in whole seconds,
//! and offset drift when a record is updated mid-read (with the keyset mode not drifting).

mod oracle_support;

use std::collections::BTreeSet;

use chrono::Duration;
use oracle_support::*;
use sync_connectors::oracle::{OracleMode, OracleSource};
use sync_core::{Key, Page, PageRequest, PageSelector, Source, Value};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn request(selector: PageSelector, limit: u32) -> PageRequest {
    PageRequest {
        stream: "accounts".into(),
        selector,
        since: None,
        until: None,
        limit,
    }
}

/// Follows `next` from the first page to the last.
async fn read_all(source: &OracleSource, limit: u32) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut selector = Some(PageSelector::First);
    while let Some(s) = selector.take() {
        assert!(pages.len() < 100, "a read that never ends");
        let page = source.fetch_page(&request(s, limit)).await.unwrap();
        selector = page.next.clone();
        pages.push(page);
    }
    pages
}

fn ids(pages: &[Page]) -> Vec<i64> {
    pages
        .iter()
        .flat_map(|p| p.rows.iter())
        .map(party_id)
        .collect()
}

#[tokio::test]
async fn a_clamped_limit_advances_by_count_until_has_more_is_false() {
    let fake = OracleFake::start(60).await;
    fake.set_max_limit(25);
    let source = OracleSource::with_client(
        builder(&fake.base_url(), OracleMode::Offset)
            .build()
            .unwrap(),
        client(),
    )
    .unwrap();
    // Asked for 500, served 25 with hasMore: the next offset is 25, not 500.
    let pages = read_all(&source, 500).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.rows.len()).collect();
    assert_eq!(sizes, [25, 25, 10]);
    assert_eq!(ids(&pages), (1000..1060).collect::<Vec<_>>());
    let sent: Vec<(String, String)> = fake
        .requests()
        .iter()
        .map(|(q, _)| (q["offset"].clone(), q["limit"].clone()))
        .collect();
    assert_eq!(
        sent,
        [("0", "500"), ("25", "500"), ("50", "500")].map(|(o, l)| (o.to_owned(), l.to_owned()))
    );
    assert_eq!(pages[0].next, Some(PageSelector::Offset(25)));
}

#[tokio::test]
async fn the_keyset_mode_continues_after_the_last_record_with_offset_zero() {
    let fake = OracleFake::start(60).await;
    fake.set_max_limit(25);
    let source = OracleSource::with_client(
        builder(&fake.base_url(), OracleMode::Keyset)
            .build()
            .unwrap(),
        client(),
    )
    .unwrap();
    let pages = read_all(&source, 500).await;
    assert_eq!(ids(&pages), (1000..1060).collect::<Vec<_>>());
    let requests = fake.requests();
    assert!(requests.iter().all(|(q, _)| q["offset"] == "0"));
    assert!(
        !requests[0].0.contains_key("q"),
        "the first page has no bound"
    );
    // Account 1024 is the 25th; it shares 12:00:16 with 1025 (every third one ties).
    assert_eq!(
        requests[1].0["q"],
        "(LastUpdateDate > '2024-05-01T12:00:16+00:00' or \
         (LastUpdateDate = '2024-05-01T12:00:16+00:00' and PartyId > 1024))"
    );
}

#[tokio::test]
async fn every_request_pins_the_version_and_sends_fields_only_data_order_and_finder() {
    let fake = OracleFake::start(10).await;
    let config = builder(&fake.base_url(), OracleMode::Keyset)
        .with_finder("PrimaryKey;PartyNumber=CDRM_1003")
        .with_total_results(true)
        .with_filter("OrganizationName != 'nobody'")
        .build()
        .unwrap();
    let source = OracleSource::with_client(config, client()).unwrap();
    let page = source
        .fetch_page(&request(PageSelector::First, 100))
        .await
        .unwrap();
    assert_eq!(page.rows.iter().map(party_id).collect::<Vec<_>>(), [1003]);
    assert_eq!((page.total, page.next), (Some(1), None));
    let (query, version) = &fake.requests()[0];
    assert_eq!(version.as_deref(), Some("4"));
    assert_eq!(query["onlyData"], "true");
    assert_eq!(
        query["fields"],
        "PartyId,PartyNumber,OrganizationName,LastUpdateDate"
    );
    assert_eq!(query["orderBy"], "LastUpdateDate:asc,PartyId:asc");
    assert_eq!(query["finder"], "PrimaryKey;PartyNumber=CDRM_1003");
    assert_eq!(query["totalResults"], "true");
    assert_eq!(query["q"], "(OrganizationName != 'nobody')");
}

#[tokio::test]
async fn the_documented_collection_page_decodes() {
    let server = MockServer::start().await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/oracle/accounts_page.json"
    ))
    .unwrap();
    Mock::given(path(RESOURCE_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(body, "application/vnd.oracle.adf.resourcecollection+json"),
        )
        .mount(&server)
        .await;
    let base = format!("{}/crmRestApi/resources/11.13.18.05", server.uri());
    for (mode, next) in [
        (OracleMode::Offset, PageSelector::Offset(3)),
        (
            OracleMode::Keyset,
            PageSelector::After(sync_core::CursorKey {
                cursor: vec![Value::Timestamp("2024-05-01T12:00:01Z".parse().unwrap())],
                key: Some(Key(vec![Value::Integer(300000001234568)])),
            }),
        ),
    ] {
        let source =
            OracleSource::with_client(builder(&base, mode).build().unwrap(), client()).unwrap();
        let page = source
            .fetch_page(&request(PageSelector::First, 3))
            .await
            .unwrap();
        assert_eq!(page.total, Some(89));
        assert_eq!(page.next, Some(next));
        let first = &page.rows[0];
        assert_eq!(first.get(0), &Value::Integer(300000001234590));
        assert_eq!(first.get(1), &Value::from("CDRM_1030"));
        assert_eq!(
            first.get(3),
            &Value::Timestamp("1998-03-17T14:53:51Z".parse().unwrap())
        );
    }
}

#[tokio::test]
async fn bounds_go_out_in_whole_seconds_and_records_outside_them_are_dropped() {
    let fake = OracleFake::start(30).await;
    let source = OracleSource::with_client(
        builder(&fake.base_url(), OracleMode::Keyset)
            .build()
            .unwrap(),
        client(),
    )
    .unwrap();
    let at = |ms: i64| Value::Timestamp(t0() + Duration::milliseconds(ms));
    let page = source
        .fetch_page(&PageRequest {
            since: Some(vec![at(4_500)]),
            until: Some(vec![at(7_200)]),
            ..request(PageSelector::First, 100)
        })
        .await
        .unwrap();
    assert_eq!(
        fake.requests()[0].0["q"],
        "LastUpdateDate >= '2024-05-01T12:00:04+00:00' and LastUpdateDate <= '2024-05-01T12:00:08+00:00'"
    );
    // Seconds 5, 6 and 7 (the server also sent seconds 4 and 8).
    let kept: Vec<i64> = page.rows.iter().map(party_id).collect();
    assert_eq!(kept, [1007, 1008, 1009, 1010]);
}

/// Account 1005 is updated between the first and the second page: it moves to the end, and
/// every record after it shifts one place towards the start.
#[tokio::test]
async fn an_update_mid_read_skips_a_record_by_offset_and_none_by_keyset() {
    for mode in [OracleMode::Offset, OracleMode::Keyset] {
        let fake = OracleFake::start(60).await;
        fake.set_max_limit(25);
        fake.touch_at(1, 1005);
        let source =
            OracleSource::with_client(builder(&fake.base_url(), mode).build().unwrap(), client())
                .unwrap();
        let read = ids(&read_all(&source, 25).await);
        let distinct: BTreeSet<i64> = read.iter().copied().collect();
        let missing: Vec<i64> = (1000..1060).filter(|i| !distinct.contains(i)).collect();
        match mode {
            OracleMode::Offset => {
                // 1025 slid into the part already read: never returned.
                assert_eq!(missing, [1025], "{mode:?}");
                assert_eq!(read.iter().filter(|&&i| i == 1005).count(), 2);
            }
            OracleMode::Keyset => {
                assert!(missing.is_empty(), "{mode:?}: {missing:?}");
                assert_eq!(read.last(), Some(&1005), "the updated record comes last");
            }
        }
    }
}
