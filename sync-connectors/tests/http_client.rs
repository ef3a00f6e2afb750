//! `HttpClient` against real servers on 127.0.0.1: retries, Retry-After, permanent errors,
//! timeouts, the size cap, compression, connection failures and redirects.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sync_connectors::http::{HttpClient, HttpConfig, HttpRequest, RequestBody};
use sync_core::{ErrorKind, RetryClass, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::{body_string, header, header_regex, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A client on the real clock with short timeouts.
fn client() -> HttpClient {
    HttpClient::new(HttpConfig {
        connect_timeout_ms: Some(2_000),
        read_timeout_ms: Some(5_000),
        total_timeout_ms: Some(10_000),
        ..HttpConfig::default()
    })
    .unwrap()
}

/// A client for paused-clock tests: with the clock paused tokio jumps to the next timer while
/// a socket read is pending, so any reqwest timeout would fire at once. No timeouts here.
fn paused_clock_client() -> HttpClient {
    HttpClient::new(HttpConfig {
        connect_timeout_ms: None,
        read_timeout_ms: None,
        total_timeout_ms: None,
        pool_idle_timeout_ms: None,
        ..HttpConfig::default()
    })
    .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(4)
        .with_backoff(Duration::from_millis(1), Duration::from_millis(2))
}

async fn received(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn sends_method_query_headers_and_json_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/items"))
        .and(query_param("fixed", "1"))
        .and(query_param("q", "a b&c"))
        .and(header("x-trace", "t-1"))
        .and(header("content-type", "application/json"))
        .and(body_string(r#"{"a":1}"#))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
                .set_body_string(r#"{"ok":true}"#),
        )
        .expect(1)
        .mount(&server)
        .await;
    let request = HttpRequest::post_json(
        format!("{}/v1/items?fixed=1", server.uri()),
        Bytes::from_static(br#"{"a":1}"#),
    )
    .with_query("q", "a b&c")
    .with_header("X-Trace", "t-1");
    let response = client().execute(&request).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
    assert_eq!(response.url, format!("{}/v1/items", server.uri()));
    assert_eq!(
        response.date().unwrap().to_rfc3339(),
        "1994-11-06T08:49:37+00:00"
    );
    let value: serde_json::Value = response.json().unwrap();
    assert_eq!(value["ok"], true);
}

#[tokio::test]
async fn form_bodies_are_url_encoded() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("a=1+2&b=%26"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let mut request = HttpRequest::get(server.uri()).with_body(RequestBody::Form(vec![
        ("a".into(), "1 2".into()),
        ("b".into(), "&".into()),
    ]));
    request.method = sync_connectors::http::Method::Put;
    assert_eq!(client().execute(&request).await.unwrap().status, 204);
}

#[tokio::test]
async fn a_500_then_200_succeeds_after_exactly_one_retry() {
    let server = MockServer::start().await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let request = HttpRequest::get(format!("{}/flaky", server.uri()));
    let response = client()
        .execute_with_retry(&request, &fast_retries())
        .await
        .unwrap();
    assert_eq!(&response.body[..], b"ok");
    assert_eq!(received(&server).await, 2, "one failure, one retry");
}

#[tokio::test]
async fn a_400_is_permanent_not_retried_and_carries_the_body_excerpt() {
    let server = MockServer::start().await;
    Mock::given(path("/bad"))
        .respond_with(
            ResponseTemplate::new(400).set_body_string(r#"{"error":"field `since` is invalid"}"#),
        )
        .mount(&server)
        .await;
    let request = HttpRequest::get(format!("{}/bad?since=x", server.uri()));
    let error = client()
        .execute_with_retry(&request, &fast_retries())
        .await
        .unwrap_err();
    assert_eq!(received(&server).await, 1);
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert_eq!(error.context_value("status"), Some("400"));
    assert_eq!(
        error.context_value("body"),
        Some(r#"{"error":"field `since` is invalid"}"#)
    );
    assert_eq!(
        error.context_value("url"),
        Some(format!("{}/bad", server.uri()).as_str())
    );
}

#[tokio::test]
async fn a_long_error_body_is_cut_to_the_excerpt_size() {
    let server = MockServer::start().await;
    Mock::given(path("/bad"))
        .respond_with(ResponseTemplate::new(422).set_body_string("é".repeat(10_000)))
        .mount(&server)
        .await;
    let client = HttpClient::new(HttpConfig {
        error_body_excerpt_bytes: 11,
        ..HttpConfig::default()
    })
    .unwrap();
    let request = HttpRequest::get(format!("{}/bad", server.uri()));
    let error = client.execute(&request).await.unwrap_err();
    assert_eq!(error.context_value("body"), Some("ééééé…"));
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_seconds_is_waited_exactly() {
    let server = MockServer::start().await;
    Mock::given(path("/limited"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/limited"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = paused_clock_client();
    let request = HttpRequest::get(format!("{}/limited", server.uri()));

    let error = client.execute(&request).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert!(error.is_transient());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));

    let start = tokio::time::Instant::now();
    client
        .execute_with_retry(&request, &RetryPolicy::default())
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(7),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(received(&server).await, 3);
}

#[tokio::test(start_paused = true)]
async fn a_429_with_an_http_date_is_waited_until_that_date() {
    let server = MockServer::start().await;
    // The date is computed when the server answers; whole seconds, so 7 to 8 s ahead.
    let respond = |_: &wiremock::Request| {
        let at = SystemTime::now() + Duration::from_secs(8);
        ResponseTemplate::new(429).insert_header("retry-after", httpdate::fmt_http_date(at))
    };
    Mock::given(path("/limited"))
        .respond_with(respond)
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/limited"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let client = paused_clock_client();
    let request = HttpRequest::get(format!("{}/limited", server.uri()));

    let error = client.execute(&request).await.unwrap_err();
    let after = error.retry_after().unwrap();
    assert!(
        after > Duration::from_secs(6) && after <= Duration::from_secs(8),
        "{after:?}"
    );

    // The delay RetryPolicy reports is the server's, not a backoff.
    let mut delays = vec![];
    let start = tokio::time::Instant::now();
    RetryPolicy::default()
        .run(|| client.execute(&request), |_, d, _| delays.push(d))
        .await
        .unwrap();
    assert_eq!(delays.len(), 1);
    assert!(delays[0] > Duration::from_secs(6), "{delays:?}");
    assert!(start.elapsed() >= delays[0]);
}

#[tokio::test]
async fn a_503_retry_after_reaches_the_error() {
    let server = MockServer::start().await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "3"))
        .mount(&server)
        .await;
    let error = client()
        .execute(&HttpRequest::get(format!("{}/down", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert!(error.is_transient());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
}

/// A server that accepts connections, reads the request and sends `head` (maybe nothing),
/// then keeps the connection open without another byte.
async fn stalling_server(head: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut open = vec![];
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(head).await;
            open.push(socket);
        }
    });
    format!("http://{addr}/slow")
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_read_timeout() {
    let url = stalling_server(b"").await;
    let client = HttpClient::new(HttpConfig {
        read_timeout_ms: Some(200),
        ..HttpConfig::default()
    })
    .unwrap();
    let error = client.execute(&HttpRequest::get(url)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.retry_class(), RetryClass::Transient);
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_total_timeout() {
    let url = stalling_server(b"").await;
    let client = HttpClient::new(HttpConfig {
        read_timeout_ms: None,
        total_timeout_ms: Some(200),
        ..HttpConfig::default()
    })
    .unwrap();
    let error = client.execute(&HttpRequest::get(url)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_body_that_stalls_between_chunks_hits_the_read_timeout() {
    let url = stalling_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc").await;
    let client = HttpClient::new(HttpConfig {
        read_timeout_ms: Some(200),
        ..HttpConfig::default()
    })
    .unwrap();
    let error = client.execute(&HttpRequest::get(url)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.is_transient());
}

/// A server that answers every connection with `response` and closes it.
async fn raw_server(response: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(&response).await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{addr}/raw")
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_transient() {
    let url =
        raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly a part".to_vec()).await;
    let error = client().execute(&HttpRequest::get(url)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote, "{error}");
    assert!(error.is_transient(), "{error}");
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = client()
        .execute(&HttpRequest::get(format!("http://{addr}/")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote, "{error}");
    assert_eq!(error.retry_class(), RetryClass::Transient);
}

fn capped_client(max_response_bytes: u64) -> HttpClient {
    HttpClient::new(HttpConfig {
        max_response_bytes,
        ..HttpConfig::default()
    })
    .unwrap()
}

fn assert_too_large(error: &sync_core::Error) {
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert_eq!(error.context_value("limit_bytes"), Some("1000"));
}

#[tokio::test]
async fn a_body_over_the_cap_is_a_typed_error() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 1001]))
        .mount(&server)
        .await;
    Mock::given(path("/fits"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 1000]))
        .mount(&server)
        .await;
    let client = capped_client(1000);
    let error = client
        .execute(&HttpRequest::get(format!("{}/big", server.uri())))
        .await
        .unwrap_err();
    assert_too_large(&error);
    let fits = client
        .execute(&HttpRequest::get(format!("{}/fits", server.uri())))
        .await
        .unwrap();
    assert_eq!(fits.body.len(), 1000);
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_is_stopped_while_streaming() {
    // No Content-Length: the cap can only be enforced while reading.
    let mut response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        response.extend_from_slice(format!("{:x}\r\n", 400).as_bytes());
        response.extend_from_slice(&[b'y'; 400]);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let url = raw_server(response).await;
    let error = capped_client(1000)
        .execute(&HttpRequest::get(url))
        .await
        .unwrap_err();
    assert_too_large(&error);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn a_gzip_bomb_is_stopped_at_the_decompressed_cap() {
    let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
    assert!(bomb.len() < 20_000, "small on the wire: {}", bomb.len());
    let server = MockServer::start().await;
    Mock::given(path("/bomb"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_bytes(bomb),
        )
        .mount(&server)
        .await;
    let error = capped_client(1000)
        .execute(&HttpRequest::get(format!("{}/bomb", server.uri())))
        .await
        .unwrap_err();
    assert_too_large(&error);
}

#[tokio::test]
async fn gzip_bodies_are_decompressed_and_corrupt_ones_are_invalid_input() {
    let server = MockServer::start().await;
    Mock::given(path("/gz"))
        .and(header_regex("accept-encoding", "gzip"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_bytes(gzip(br#"{"hello":"world"}"#)),
        )
        .mount(&server)
        .await;
    let mut corrupt = gzip(&[b'z'; 5000]);
    let middle = corrupt.len() / 2;
    corrupt[middle..].iter_mut().for_each(|b| *b = !*b);
    Mock::given(path("/corrupt"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_bytes(corrupt),
        )
        .mount(&server)
        .await;
    let ok = client()
        .execute(&HttpRequest::get(format!("{}/gz", server.uri())))
        .await
        .unwrap();
    assert_eq!(&ok.body[..], br#"{"hello":"world"}"#);
    let error = client()
        .execute(&HttpRequest::get(format!("{}/corrupt", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.retry_class(), RetryClass::Permanent);
}

#[tokio::test]
async fn same_origin_redirects_are_followed_and_the_final_url_reported() {
    let server = MockServer::start().await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/new?k=v"))
        .mount(&server)
        .await;
    Mock::given(path("/new"))
        .respond_with(ResponseTemplate::new(200).set_body_string("moved"))
        .mount(&server)
        .await;
    let response = client()
        .execute(&HttpRequest::get(format!("{}/old", server.uri())))
        .await
        .unwrap();
    assert_eq!(&response.body[..], b"moved");
    assert_eq!(response.url, format!("{}/new", server.uri()));
}

#[tokio::test]
async fn redirect_loops_and_cross_origin_redirects_are_permanent() {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(path("/a"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/b"))
        .mount(&server)
        .await;
    Mock::given(path("/b"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/a"))
        .mount(&server)
        .await;
    Mock::given(path("/away"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/elsewhere?sig=s", other.uri())),
        )
        .mount(&server)
        .await;
    let error = client()
        .execute(&HttpRequest::get(format!("{}/a", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote, "{error}");
    assert_eq!(error.retry_class(), RetryClass::Permanent);

    let error = client()
        .execute(&HttpRequest::get(format!("{}/away", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote, "{error}");
    assert_eq!(error.retry_class(), RetryClass::Permanent);
    assert_eq!(error.context_value("status"), Some("302"));
    assert!(!error.to_string().contains("sig=s"), "{error}");
    assert_eq!(received(&other).await, 0);
}

#[tokio::test]
async fn invalid_requests_and_configs_fail_before_any_io() {
    let error = client()
        .execute(&HttpRequest::get("not a url"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    let error = client()
        .execute(&HttpRequest::get("ftp://host/file"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    let error = client()
        .execute(&HttpRequest::get("http://127.0.0.1:1/").with_header("bad header", "v"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    let error = HttpClient::new(HttpConfig {
        max_response_bytes: 0,
        ..HttpConfig::default()
    })
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
}
