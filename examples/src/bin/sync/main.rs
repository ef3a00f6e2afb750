//! `sync`: run a pipeline of REST streams into SQLite or PostgreSQL, and look after it.
//!
//! ```text
//! sync run pipeline.toml [--database URL] [--stream NAME]... [--strategy full|incremental] [--json]
//! sync run --url URL --records-path items --primary-key id [--cursor updated_at --cursor-param updated_since]
//!          --database sqlite://FILE
//! sync status pipeline.toml [--json]
//! sync history pipeline.toml STREAM [--limit N] [--json]
//! sync reset pipeline.toml STREAM --yes
//! ```
//!
//! Exit codes: 0 success, 1 some streams failed, 2 bad configuration or usage, 3 the run failed.

mod cli;
mod output;
mod quick;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sync_connectors::rest::{Pipeline, PipelineConfig};
use sync_core::{Checkpoint, Error, ErrorKind};
use sync_examples::store::{open_engine_store, EngineStore};

use cli::{Cli, Command, RunArgs};

/// Exit code of a successful command.
const OK: u8 = 0;
/// Exit code when some streams failed and others did not.
const PARTIAL: u8 = 1;
/// Exit code of a bad configuration or command line.
const BAD_CONFIG: u8 = 2;
/// Exit code when the run failed as a whole.
const FAILED: u8 = 3;

fn exit_code_of(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::Config | ErrorKind::Unsupported => BAD_CONFIG,
        _ => FAILED,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { BAD_CONFIG } else { OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.json;
    match dispatch(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::error(json, &e);
            ExitCode::from(exit_code_of(&e))
        }
    }
}

async fn dispatch(cli: Cli) -> sync_core::Result<u8> {
    let json = cli.json;
    match cli.command {
        Command::Run(args) => run(*args, json).await,
        Command::Status { pipeline, database } => {
            let (pipeline, checkpoints) = open(&pipeline, database.as_deref()).await?;
            let mut rows = Vec::new();
            for stream in pipeline.stream_names() {
                let sync = pipeline.sync_name(stream);
                let stored = checkpoints.load(&sync).await?;
                let last = checkpoints.ledger(&sync).await?.pop();
                rows.push(output::StatusRow {
                    stream: stream.to_owned(),
                    sync,
                    stored,
                    last,
                });
            }
            output::status(json, &rows);
            Ok(OK)
        }
        Command::History {
            pipeline,
            stream,
            database,
            limit,
        } => {
            let (pipeline, checkpoints) = open(&pipeline, database.as_deref()).await?;
            let sync = known_sync(&pipeline, &stream)?;
            let mut ledger = checkpoints.ledger(&sync).await?;
            let skip = ledger.len().saturating_sub(limit);
            ledger.drain(..skip);
            let log = checkpoints.sync_log(&sync, limit).await?;
            output::history(json, &sync, &ledger, &log);
            Ok(OK)
        }
        Command::Reset {
            pipeline,
            stream,
            database,
            yes,
        } => {
            if !yes {
                return Err(Error::config(
                    "reset forgets the stream's checkpoint: confirm with --yes",
                ));
            }
            let (pipeline, checkpoints) = open(&pipeline, database.as_deref()).await?;
            let sync = known_sync(&pipeline, &stream)?;
            sync_core::checkpoint::reset_checkpoint(checkpoints.as_ref(), &sync).await?;
            output::reset(json, &sync);
            Ok(OK)
        }
    }
}

fn known_sync(pipeline: &Pipeline, stream: &str) -> sync_core::Result<String> {
    if pipeline.stream_names().any(|s| s == stream) {
        Ok(pipeline.sync_name(stream))
    } else {
        Err(Error::config(format!(
            "the pipeline has no stream {stream:?}"
        )))
    }
}

/// The pipeline of a file and its store's checkpoints.
async fn open(
    path: &std::path::Path,
    database: Option<&str>,
) -> sync_core::Result<(Pipeline, Arc<dyn Checkpoint>)> {
    let config = PipelineConfig::from_path(path)?;
    let url = database_url(&config, database)?;
    let pipeline = Pipeline::new(config)?;
    let checkpoints = open_engine_store(&url).await?.checkpoints;
    Ok((pipeline, checkpoints))
}

fn database_url(config: &PipelineConfig, flag: Option<&str>) -> sync_core::Result<String> {
    flag.map(str::to_owned)
        .or_else(|| config.database.clone())
        .ok_or_else(|| {
            Error::config("no database: set `database` in the pipeline or pass --database")
        })
}

async fn run(args: RunArgs, json: bool) -> sync_core::Result<u8> {
    let mut config = match (&args.pipeline, &args.quick.url) {
        (Some(path), None) => PipelineConfig::from_path(path)?,
        (None, Some(_)) => quick::pipeline(&args.quick, args.database.as_deref()).await?,
        (Some(_), Some(_)) => return Err(Error::config("give a pipeline file or --url, not both")),
        (None, None) => return Err(Error::config("give a pipeline file or --url")),
    };
    if let Some(strategy) = &args.strategy {
        for s in &mut config.streams {
            s.strategy = strategy.spec(&s.strategy);
        }
    }
    if let Some(max) = args.max_pages {
        config.limits.max_pages = Some(max);
    }
    let url = database_url(&config, args.database.as_deref())?;
    let pipeline = Pipeline::new(config)?;
    for s in &args.streams {
        known_sync(&pipeline, s)?;
    }
    let EngineStore {
        stager,
        checkpoints,
        ..
    } = open_engine_store(&url).await?;
    let only = (!args.streams.is_empty()).then_some(args.streams.as_slice());
    let display = output::RunDisplay::new(json, &pipeline, only);
    let report = pipeline
        .run(stager, checkpoints, only, |stream| display.progress(stream))
        .await;
    display.finish(&report);
    let failed = report.failed();
    Ok(match failed {
        0 => OK,
        n if n == report.streams.len() => report
            .streams
            .iter()
            .filter_map(|s| s.result.as_ref().err())
            .map(exit_code_of)
            .min()
            .unwrap_or(FAILED),
        _ => PARTIAL,
    })
}
