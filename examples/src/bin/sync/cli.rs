//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sync_connectors::rest::StrategySpec;

/// Resumable, verifiable syncs of JSON APIs into SQLite or PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "sync", version)]
pub(crate) struct Cli {
    /// Print JSON instead of text (no progress bars).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Sync the streams of a pipeline file, or one endpoint given by --url.
    Run(Box<RunArgs>),
    /// Each stream's checkpoint and last committed window.
    Status {
        /// The pipeline file (TOML or JSON).
        pipeline: PathBuf,
        /// The database, when not the pipeline's (`sqlite://FILE`, `postgres://...`).
        #[arg(long)]
        database: Option<String>,
    },
    /// A stream's committed windows (the ledger) and its sync log.
    History {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The stream.
        stream: String,
        /// The database, when not the pipeline's.
        #[arg(long)]
        database: Option<String>,
        /// Most recent entries shown.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Forget a stream's checkpoint: its next run starts from the beginning.
    Reset {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The stream.
        stream: String,
        /// The database, when not the pipeline's.
        #[arg(long)]
        database: Option<String>,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The pipeline file (TOML or JSON); or describe one endpoint with --url.
    pub(crate) pipeline: Option<PathBuf>,
    /// The database (`sqlite://FILE`, `postgres://...`), overriding the pipeline's.
    #[arg(long)]
    pub(crate) database: Option<String>,
    /// Only these streams (repeatable).
    #[arg(long = "stream")]
    pub(crate) streams: Vec<String>,
    /// Run every stream with this strategy instead of its own.
    #[arg(long, value_enum)]
    pub(crate) strategy: Option<StrategyArg>,
    /// Stop each stream after this many pages (it resumes on the next run).
    #[arg(long)]
    pub(crate) max_pages: Option<u64>,
    #[command(flatten)]
    pub(crate) quick: QuickArgs,
}

/// One endpoint, without a pipeline file.
#[derive(Debug, Args)]
pub(crate) struct QuickArgs {
    /// The collection's URL.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Dotted path of the records array (empty: the body is the array).
    #[arg(long, default_value = "")]
    pub(crate) records_path: String,
    /// Primary-key field(s), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) primary_key: Vec<String>,
    /// The cursor field (timestamp or integer): incremental syncs.
    #[arg(long)]
    pub(crate) cursor: Option<String>,
    /// Query parameter the cursor's lower bound is sent in (inclusive).
    #[arg(long)]
    pub(crate) cursor_param: Option<String>,
    /// Version field: a larger value is a newer record.
    #[arg(long)]
    pub(crate) version: Option<String>,
    /// How the endpoint pages.
    #[arg(long, value_enum, default_value_t = PagingArg::Offset)]
    pub(crate) paging: PagingArg,
    /// Field that says more pages follow (offset paging), or holds the next token (cursor paging).
    #[arg(long)]
    pub(crate) next_field: Option<String>,
    /// Records per page.
    #[arg(long, default_value_t = 1000)]
    pub(crate) page_size: u32,
    /// The stream (target table) name.
    #[arg(long, default_value = "records")]
    pub(crate) stream_name: String,
    /// The records are ordered by (cursor, key): commit after every page.
    #[arg(long)]
    pub(crate) ordered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StrategyArg {
    Full,
    Incremental,
}

impl StrategyArg {
    /// The spec replacing `current` (keeping its options when it is of the same kind).
    pub(crate) fn spec(self, current: &StrategySpec) -> StrategySpec {
        match (self, current) {
            (StrategyArg::Full, s @ StrategySpec::Full { .. }) => s.clone(),
            (StrategyArg::Incremental, s @ StrategySpec::Incremental { .. }) => s.clone(),
            (StrategyArg::Full, _) => StrategySpec::full(),
            (StrategyArg::Incremental, _) => StrategySpec::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PagingArg {
    /// `offset` and `limit` parameters.
    Offset,
    /// `page` and `page_size` parameters.
    Page,
    /// A token in the body field given by --next-field, sent back as `cursor`.
    Cursor,
    /// The RFC 8288 `Link` header.
    Link,
    /// One request.
    None,
}
