//! The proactive rate limit: requests per second with a burst (paused clock) and requests in
//! flight (a server that counts them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sync_connectors::http::{HttpClient, HttpConfig, HttpRequest, RateLimit};
use sync_core::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// No timeouts and no pool timer: with a paused clock tokio jumps to the next timer while a
/// socket read is pending, so any of them would fire or move the clock.
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

/// Sends `n` requests at once from clones of `client`; the tokio time they took.
async fn send_all(client: &HttpClient, url: &str, n: usize) -> Duration {
    let clones: Vec<HttpClient> = (0..n).map(|_| client.clone()).collect();
    let request = HttpRequest::get(url);
    let start = Instant::now();
    let results = futures::future::join_all(clones.iter().map(|c| c.execute(&request))).await;
    let elapsed = start.elapsed();
    for result in results {
        result.unwrap();
    }
    elapsed
}

async fn ok_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/items"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

#[tokio::test(start_paused = true)]
async fn five_per_second_burst_one_spaces_ten_requests_over_1_8_s() {
    let server = ok_server().await;
    let client = paused_clock_client()
        .with_rate_limit(RateLimit::per_second(5.0))
        .unwrap();
    let elapsed = send_all(&client, &format!("{}/items", server.uri()), 10).await;
    // Starts at 0, 0.2, ..., 1.8 s.
    assert!(elapsed >= Duration::from_millis(1800), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_burst_starts_at_once_then_the_rate_applies() {
    let server = ok_server().await;
    let client = paused_clock_client()
        .with_rate_limit(RateLimit::per_second(5.0).with_burst(5))
        .unwrap();
    let url = format!("{}/items", server.uri());
    let elapsed = send_all(&client, &url, 5).await;
    assert!(elapsed < Duration::from_millis(200), "{elapsed:?}");
    // The bucket is empty now: five more take 5 * 0.2 s.
    let elapsed = send_all(&client, &url, 5).await;
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn without_a_limit_requests_do_not_wait() {
    let server = ok_server().await;
    let elapsed = send_all(
        &paused_clock_client(),
        &format!("{}/items", server.uri()),
        10,
    )
    .await;
    assert!(elapsed < Duration::from_millis(200), "{elapsed:?}");
}

/// A keep-alive HTTP/1.1 server that counts requests in flight and remembers the most it saw;
/// each response is held back `hold` so that overlapping requests would be seen.
async fn counting_server(hold: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let most_seen = most.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let in_flight = in_flight.clone();
            let most = most.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    // Requests are bodiless GETs: a request ends at the blank line.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if socket.write_all(response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/items"), most_seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_one_never_has_two_requests_in_flight() {
    let (url, most) = counting_server(Duration::from_millis(30)).await;
    let client = HttpClient::new(HttpConfig::default())
        .unwrap()
        .with_rate_limit(RateLimit::none().with_max_concurrent(1))
        .unwrap();
    send_all(&client, &url, 6).await;
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_three_allows_overlap_up_to_three() {
    let (url, most) = counting_server(Duration::from_millis(100)).await;
    let client = HttpClient::new(HttpConfig::default())
        .unwrap()
        .with_rate_limit(RateLimit::none().with_max_concurrent(3))
        .unwrap();
    send_all(&client, &url, 9).await;
    let most = most.load(Ordering::SeqCst);
    assert!((2..=3).contains(&most), "{most}");
}

#[test]
fn invalid_rate_limits_are_config_errors() {
    let client = HttpClient::new(HttpConfig::default()).unwrap();
    for limit in [
        RateLimit::per_second(0.0),
        RateLimit::per_second(f64::INFINITY),
        RateLimit::per_second(1.0).with_burst(0),
        RateLimit::none().with_max_concurrent(0),
    ] {
        let error = client.clone().with_rate_limit(limit).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config, "{limit:?}");
    }
    let parsed: RateLimit =
        serde_json::from_str(r#"{"requests_per_second": 2.5, "burst": 3, "max_concurrent": 4}"#)
            .unwrap();
    assert_eq!(
        parsed,
        RateLimit::per_second(2.5)
            .with_burst(3)
            .with_max_concurrent(4)
    );
    assert_eq!(
        serde_json::from_str::<RateLimit>("{}").unwrap(),
        RateLimit::none()
    );
}
