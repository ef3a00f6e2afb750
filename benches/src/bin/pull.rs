//! Pulls every record of a fake API (shared/bench's `fake_api`, or the demo API) through the
//! REST source (the demo API's `items` stream), decoding pages into rows, with no store: the connector's share of a sync.
//! Prints one JSON line, comparable with shared/bench's `http_pull --decode typed`.
//!
//! ```text
//! pull [--url http://127.0.0.1:18080] [--limit 1000]
//! ```

use std::time::Instant;

use sync_connectors::http::{HttpClient, HttpConfig};
use sync_connectors::rest::RestSource;
use sync_core::{PageRequest, PageSelector, Source};

fn arg(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == &flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Peak resident set size of this process, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> sync_core::Result<()> {
    let url = arg("url").unwrap_or_else(|| "http://127.0.0.1:18080".into());
    let limit: u32 = arg("limit").map_or(1000, |l| l.parse().expect("--limit N"));
    let stream = sync_examples::demo_api::items_stream(&url).with_page_size(limit);
    let source = RestSource::new(stream, HttpClient::new(HttpConfig::default())?)?;
    let request = |selector| PageRequest {
        stream: "items".into(),
        selector,
        since: None,
        until: None,
        limit,
    };
    let started = Instant::now();
    let (mut rows, mut pages) = (0u64, 0u64);
    let mut next = Some(PageSelector::First);
    while let Some(selector) = next.take() {
        let page = source.fetch_page(&request(selector)).await?;
        pages += 1;
        rows += page.rows.len() as u64;
        next = page.next;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"tool\":\"sync-rest-source\",\"limit\":{limit},\"items\":{rows},\"pages\":{pages},\"secs\":{secs:.4},\"items_per_s\":{:.0},\"peak_rss_kb\":{}}}",
        rows as f64 / secs,
        peak_rss_kib()
    );
    Ok(())
}
