//! `sync-admin`: the sync engine as a service — the admin HTTP API, a job queue in the
//! database, and workers that run the jobs.
//!
//! ```text
//! SYNC_ADMIN_TOKEN=... sync-admin [--database sqlite://admin.db] [--listen 127.0.0.1:8080]
//!     [--workers 2] [--demo-records 10000] [--pipeline FILE]...
//! ```
//!
//! Providers are the `--pipeline` files (provider = the pipeline's name, its streams the
//! provider's) plus `demo`, an in-process demo API on 127.0.0.1 with one stream, `items`
//! (`--demo-records 0` turns it off). Every request needs `Authorization: Bearer
//! $SYNC_ADMIN_TOKEN`. Ctrl+C stops the workers gracefully (their jobs go back to the queue
//! with their batch in flight committed) and then the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sync_connectors::http::HttpConfig;
use sync_connectors::rest::PipelineConfig;
use sync_core::jobs::WorkerConfig;
use sync_core::{Error, Result};
use sync_examples::demo_api::{items_stream, DemoApi};
use sync_examples::engine::Catalog;
use sync_examples::service::{EngineService, ServiceOptions};
use sync_examples::store::open_engine_store;

/// The admin API of the sync engine.
#[derive(Debug, Parser)]
#[command(name = "sync-admin", version)]
struct Args {
    /// The database holding targets, checkpoints and the job queue.
    #[arg(long, default_value = "sqlite://admin.db")]
    database: String,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker loops in this process (0: API only; workers run elsewhere).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Records of the in-process demo API (0: no demo provider).
    #[arg(long, default_value_t = 10_000)]
    demo_records: usize,
    /// Pipeline files whose streams become providers.
    #[arg(long)]
    pipeline: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sync-admin: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: Args) -> Result<()> {
    let token = std::env::var("SYNC_ADMIN_TOKEN")
        .map_err(|_| Error::config("set SYNC_ADMIN_TOKEN to the bearer token clients must send"))?;
    let store = open_engine_store(&args.database).await?;
    let mut catalog = Catalog::new(HttpConfig::default())?;
    let demo = if args.demo_records > 0 {
        let api = DemoApi::start(args.demo_records)
            .map_err(|e| Error::config("the demo API did not start").with_source(e))?;
        catalog = catalog.with_provider("demo", [items_stream(api.url())])?;
        Some(api)
    } else {
        None
    };
    for path in &args.pipeline {
        catalog = catalog.with_pipeline(PipelineConfig::from_path(path)?)?;
    }
    let catalog = Arc::new(catalog);
    let mut options = ServiceOptions::new(args.listen, token);
    options.workers = args.workers;
    options.worker = WorkerConfig::new(format!("admin-{}", std::process::id()));
    let service = EngineService::start(&store, catalog.clone(), options).await?;
    let addr = service.addr();
    println!(
        "sync-admin listening on http://{addr} ({} workers, {})",
        args.workers, args.database
    );
    println!(
        "providers: {}",
        catalog.providers().collect::<Vec<_>>().join(", ")
    );
    if demo.is_some() {
        println!("try:");
        println!("  curl -s -X PUT -H \"Authorization: Bearer $SYNC_ADMIN_TOKEN\" -H 'content-type: application/json' \\");
        println!("       -d '{{\"strategy\":\"incremental\",\"streams\":[\"items\"]}}' http://{addr}/demo/integrations/venue-1");
        println!("  curl -s -X POST -H \"Authorization: Bearer $SYNC_ADMIN_TOKEN\" -H 'content-type: application/json' \\");
        println!("       -d '{{\"tenant\":\"venue-1\"}}' http://{addr}/demo/sync");
        println!("  curl -s -H \"Authorization: Bearer $SYNC_ADMIN_TOKEN\" 'http://{addr}/demo/sync/status?tenant=venue-1'");
    }
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping: workers finish their batch in flight and release their jobs");
    let stopped = service.shutdown().await;
    drop(demo);
    stopped
}
