//! Every paginator and stop rule against a real HTTP server on 127.0.0.1.

mod support;

use serde_json::json;
use support::*;
use sync_connectors::rest::{
    LinkSource, OffsetStop, PageStop, PaginatorConfig, TimeWindowConfig, TokenSource,
};
use sync_core::{PageSelector, Source};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn serve(
    responder: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

fn offsets_requested(requests: &[Request]) -> Vec<u64> {
    requests
        .iter()
        .map(|r| param(r, "offset").map_or(0, |o| o.parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn offset_stop_rules_all_read_everything_once_advancing_by_the_count_received() {
    for stop in [
        OffsetStop::HasMore("has_more".into()),
        OffsetStop::Total("total".into()),
        OffsetStop::Count("count".into()),
        OffsetStop::NextOffset("next_offset".into()),
        OffsetStop::EmptyPage,
    ] {
        // The server clamps pages to 7 records whatever the limit asked (10).
        let server = serve(offset_responder(Items::new(25), 7)).await;
        let config = items_stream(&server.uri()).with_paginator(PaginatorConfig::Offset {
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            stop: stop.clone(),
        });
        let pages = read_all(&source(config), 10).await.unwrap();
        assert_eq!(ids(&pages), expected_ids(0..25), "{stop:?}");
        let offsets = offsets_requested(&server.received_requests().await.unwrap());
        let want: &[u64] = match stop {
            // Only an empty page tells these rules the end: one request more.
            OffsetStop::Count(_) | OffsetStop::EmptyPage => &[0, 7, 14, 21, 25],
            _ => &[0, 7, 14, 21],
        };
        assert_eq!(offsets, want, "{stop:?}");
        assert_eq!(pages[0].total, Some(25));
    }
}

#[tokio::test]
async fn offset_more_without_records_or_a_backward_next_offset_is_an_error_not_a_loop() {
    let server = serve(|_: &Request| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"items": [], "has_more": true, "next_offset": 0}))
    })
    .await;
    for stop in [
        OffsetStop::HasMore("has_more".into()),
        OffsetStop::NextOffset("next_offset".into()),
    ] {
        let config = items_stream(&server.uri()).with_paginator(PaginatorConfig::Offset {
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            stop,
        });
        let err = read_all(&source(config), 10).await.unwrap_err();
        assert_eq!(err.kind(), sync_core::ErrorKind::Remote, "{err}");
        assert!(err.message().contains("does not advance"), "{err}");
    }
}

#[tokio::test]
async fn offset_count_that_disagrees_with_the_records_is_invalid_input() {
    let server = serve(|_: &Request| {
        let items: Vec<_> = Items::new(2)
            .matching(None)
            .iter()
            .map(Item::json)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"items": items, "count": 3}))
    })
    .await;
    let config = items_stream(&server.uri()).with_paginator(PaginatorConfig::Offset {
        offset_param: "offset".into(),
        limit_param: "limit".into(),
        stop: OffsetStop::Count("count".into()),
    });
    let err = read_all(&source(config), 10).await.unwrap_err();
    assert_eq!(err.kind(), sync_core::ErrorKind::InvalidInput, "{err}");
}

/// Page-number paging over 25 records, 10 a page, with `lastPage` and `pages` fields.
fn page_responder(items: Items) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |req: &Request| {
        let page: usize = param(req, "pageNumber").unwrap().parse().unwrap();
        let size: usize = param(req, "pageSize").unwrap().parse().unwrap();
        let all = items.matching(None);
        let rows: Vec<_> = all
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(Item::json)
            .collect();
        let pages = all.len().div_ceil(size);
        ResponseTemplate::new(200).set_body_json(
            json!({"devices": rows, "pageNumber": page, "lastPage": page >= pages, "pages": pages}),
        )
    }
}

#[tokio::test]
async fn page_number_stops_on_the_flag_the_page_count_or_an_empty_page() {
    for (stop, requests) in [
        (PageStop::LastPageFlag("lastPage".into()), 3),
        (PageStop::PageCount("pages".into()), 3),
        (PageStop::EmptyPage, 4),
    ] {
        let server = serve(page_responder(Items::new(25))).await;
        let config = items_stream(&server.uri())
            .with_records_path("devices")
            .with_paginator(PaginatorConfig::PageNumber {
                page_param: "pageNumber".into(),
                size_param: Some("pageSize".into()),
                first_page: 1,
                stop: stop.clone(),
            });
        let pages = read_all(&source(config), 10).await.unwrap();
        assert_eq!(ids(&pages), expected_ids(0..25), "{stop:?}");
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            requests,
            "{stop:?}"
        );
    }
}

/// Cursor tokens `c<offset>`; the page at offset 10 comes back empty once, with a token.
fn token_responder(
    items: Items,
    in_header: bool,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |req: &Request| {
        let token = param(req, "cursor");
        let all = items.matching(None);
        let (offset, rows): (usize, Vec<_>) = match token.as_deref() {
            Some("c10-empty") => (10, vec![]),
            Some(t) => (
                t[1..].parse().unwrap(),
                all.iter().skip(t[1..].parse().unwrap()).take(5).collect(),
            ),
            None => (0, all.iter().take(5).collect()),
        };
        let end = offset + rows.len();
        let next = match (token.as_deref(), end) {
            (Some("c5"), _) => Some("c10-empty".to_string()),
            (Some("c10-empty"), _) => Some("c10".to_string()),
            (_, e) if e < all.len() => Some(format!("c{e}")),
            _ => None,
        };
        let rows: Vec<_> = rows.into_iter().map(Item::json).collect();
        let mut r = ResponseTemplate::new(200);
        if in_header {
            if let Some(n) = &next {
                r = r.insert_header("X-Next-Cursor", n.as_str());
            }
            r.set_body_json(json!({ "data": { "items": rows } }))
        } else {
            r.set_body_json(json!({ "data": { "items": rows, "next": next } }))
        }
    }
}

#[tokio::test]
async fn cursor_tokens_from_a_body_field_or_a_header_and_an_empty_page_is_not_the_end() {
    for in_header in [false, true] {
        let server = serve(token_responder(Items::new(23), in_header)).await;
        let from = if in_header {
            TokenSource::Header("X-Next-Cursor".into())
        } else {
            // Found by its own name although the decoder lifted it next to the records.
            TokenSource::Body("data.next".into())
        };
        let config = items_stream(&server.uri())
            .with_records_path("data.items")
            .with_paginator(PaginatorConfig::CursorToken {
                param: "cursor".into(),
                from,
                limit_param: None,
            });
        let pages = read_all(&source(config), 5).await.unwrap();
        assert_eq!(ids(&pages), expected_ids(0..23), "header {in_header}");
        assert!(pages.iter().any(|p| p.rows.is_empty() && p.next.is_some()));
    }
}

#[tokio::test]
async fn a_cursor_cycle_is_an_error() {
    // a -> b -> a: every response is well formed, the read would never end.
    let server = serve(|req: &Request| {
        let next = match param(req, "cursor").as_deref() {
            None => "a",
            Some("a") => "b",
            _ => "a",
        };
        let rows: Vec<_> = Items::new(1)
            .matching(None)
            .iter()
            .map(Item::json)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"items": rows, "next": next}))
    })
    .await;
    let config = items_stream(&server.uri()).with_paginator(PaginatorConfig::CursorToken {
        param: "cursor".into(),
        from: TokenSource::Body("next".into()),
        limit_param: None,
    });
    let err = read_all(&source(config), 5).await.unwrap_err();
    assert!(err.message().contains("loops"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

/// Next links, relative in the body or absolute in a `Link` header.
fn link_responder(
    items: Items,
    header: bool,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    move |req: &Request| {
        let from: usize = param(req, "from").map_or(0, |f| f.parse().unwrap());
        let all = items.matching(None);
        let rows: Vec<_> = all.iter().skip(from).take(4).map(Item::json).collect();
        let end = from + rows.len();
        let more = end < all.len();
        if header {
            let mut r = ResponseTemplate::new(200).set_body_json(json!(rows));
            if more {
                let base = format!("http://{}", req.headers["host"].to_str().unwrap());
                r = r.insert_header(
                    "Link",
                    format!(r#"<{base}/items?from={end}>; rel="next", <{base}/items?from=0>; rel="first""#)
                        .as_str(),
                );
            }
            r
        } else {
            let next = more.then(|| format!("/items?from={end}"));
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": rows, "@odata.nextLink": next}))
        }
    }
}

#[tokio::test]
async fn next_links_from_the_body_or_the_link_header() {
    for header in [false, true] {
        let server = serve(link_responder(Items::new(10), header)).await;
        let (records, from) = if header {
            ("", LinkSource::LinkHeader)
        } else {
            ("value", LinkSource::Body("@odata.nextLink".into()))
        };
        let config = items_stream(&server.uri())
            .with_records_path(records)
            .with_paginator(PaginatorConfig::NextLink {
                from,
                limit_param: None,
            });
        let pages = read_all(&source(config), 4).await.unwrap();
        assert_eq!(ids(&pages), expected_ids(0..10), "header {header}");
        assert_eq!(pages.len(), 3);
    }
}

#[tokio::test]
async fn a_link_to_the_same_page_is_an_error() {
    let server = serve(|req: &Request| {
        let link = format!(
            "http://{}/items?from=3",
            req.headers["host"].to_str().unwrap()
        );
        ResponseTemplate::new(200).set_body_json(json!({"value": [], "next": link}))
    })
    .await;
    let config = items_stream(&server.uri())
        .with_records_path("value")
        .with_paginator(PaginatorConfig::NextLink {
            from: LinkSource::Body("next".into()),
            limit_param: None,
        });
    let err = read_all(&source(config), 4).await.unwrap_err();
    assert!(
        err.message().contains("does not advance") || err.message().contains("loops"),
        "{err}"
    );
}

#[tokio::test]
async fn keyset_asks_for_records_after_the_last_key_and_stops_on_an_empty_page() {
    let items = Items::new(12);
    let server = serve(move |req: &Request| {
        let after = param(req, "after_id");
        let limit: usize = param(req, "limit").unwrap().parse().unwrap();
        let mut all = items.matching(None);
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let rows: Vec<_> = all
            .iter()
            .filter(|i| after.as_ref().map_or(true, |a| &i.id > a))
            .take(limit)
            .map(Item::json)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "items": rows }))
    })
    .await;
    let config = items_stream(&server.uri()).with_paginator(PaginatorConfig::Keyset {
        key_param: "after_id".into(),
        cursor_param: None,
        limit_param: "limit".into(),
    });
    let source = source(config);
    assert!(
        !source.capabilities().keyset,
        "key-only keyset is not (cursor, key) keyset"
    );
    let pages = read_all(&source, 5).await.unwrap();
    assert_eq!(ids(&pages), expected_ids(0..12));
    let afters: Vec<Option<String>> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| param(r, "after_id"))
        .collect();
    assert_eq!(
        afters,
        [
            None,
            Some("itm-00004".into()),
            Some("itm-00009".into()),
            Some("itm-00011".into())
        ]
    );
}

#[tokio::test]
async fn time_windows_slice_the_range_and_bisect_a_slice_over_max_records() {
    // 40 records one second apart; the API pages at most 8 records of a query consistently.
    let items = Items(std::sync::Arc::new(std::sync::Mutex::new(
        (0..40)
            .map(|i| Item {
                id: format!("itm-{i:05}"),
                updated_ms: i as i64 * 1000,
                version: 1,
            })
            .collect(),
    )));
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let answered = log.clone();
    let server = serve(move |req: &Request| {
        let t = |name: &str| {
            param(req, name).map(|s| {
                let t: chrono::DateTime<chrono::Utc> = s.parse().unwrap();
                (t - "2024-01-01T00:00:00Z"
                    .parse::<chrono::DateTime<chrono::Utc>>()
                    .unwrap())
                .num_milliseconds()
            })
        };
        let (lo, hi) = (t("updated_since").unwrap(), t("updated_before").unwrap());
        let offset: usize = param(req, "offset").map_or(0, |o| o.parse().unwrap());
        let all: Vec<Item> = items
            .matching(None)
            .into_iter()
            .filter(|i| i.updated_ms >= lo && i.updated_ms <= hi)
            .collect();
        let rows: Vec<_> = all.iter().skip(offset).take(3).map(Item::json).collect();
        answered.lock().unwrap().push((offset, all.len()));
        ResponseTemplate::new(200).set_body_json(
            json!({"items": rows, "total": all.len(), "has_more": offset + rows.len() < all.len()}),
        )
    })
    .await;
    let mut config =
        items_stream(&server.uri()).with_paginator(PaginatorConfig::TimeWindow(TimeWindowConfig {
            slice_ms: 20_000,
            min_slice_ms: 1000,
            max_records: Some(8),
            start: "2024-01-01T00:00:00Z".parse().unwrap(),
            inner: Box::new(PaginatorConfig::Offset {
                offset_param: "offset".into(),
                limit_param: "limit".into(),
                stop: OffsetStop::HasMore("has_more".into()),
            }),
        }));
    config.cursor.as_mut().unwrap().until_param = Some("updated_before".into());
    let source = source(config);
    let until = sync_core::Value::Timestamp("2024-01-01T00:00:39Z".parse().unwrap());
    let mut selector = Some(PageSelector::First);
    let mut got = Vec::new();
    while let Some(s) = selector.take() {
        let page = source
            .fetch_page(&sync_core::PageRequest {
                until: Some(vec![until.clone()]),
                ..request(s, 3)
            })
            .await
            .unwrap();
        got.extend(page.rows.iter().map(id_of));
        selector = page.next;
        assert!(got.len() <= 40, "no record twice");
    }
    assert_eq!(got, expected_ids(0..40));
    // Slices over 8 records were asked for (20 s hold 20) but never paged past their first
    // page: every slice read further held at most 8.
    let log = log.lock().unwrap();
    assert!(log.iter().any(|&(_, total)| total > 8), "{log:?}");
    assert!(log.iter().any(|&(offset, _)| offset > 0), "{log:?}");
    assert!(
        log.iter().all(|&(offset, total)| offset == 0 || total <= 8),
        "{log:?}"
    );
}
