//! The quick form: one endpoint described on the command line, its columns inferred from a
//! sample page.

use sync_connectors::http::{HttpClient, HttpConfig, HttpRequest};
use sync_connectors::rest::{
    infer_columns, CursorConfig, CursorFormat, LinkSource, OffsetStop, PageStop, PaginatorConfig,
    PipelineConfig, RestStreamConfig, StrategySpec, TokenSource,
};
use sync_core::{ColumnType, Error, Result, SourceOrdering};

use crate::cli::{PagingArg, QuickArgs};

/// Records asked for in the sample page the columns are inferred from.
const SAMPLE: u32 = 100;

/// A one-stream pipeline for `args`.
pub(crate) async fn pipeline(args: &QuickArgs, database: Option<&str>) -> Result<PipelineConfig> {
    let url = args.url.clone().expect("the caller checked --url");
    if args.primary_key.is_empty() {
        return Err(Error::config("--url needs --primary-key"));
    }
    let paginator = match args.paging {
        PagingArg::Offset => PaginatorConfig::Offset {
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            stop: args
                .next_field
                .clone()
                .map_or(OffsetStop::EmptyPage, OffsetStop::HasMore),
        },
        PagingArg::Page => PaginatorConfig::PageNumber {
            page_param: "page".into(),
            size_param: Some("page_size".into()),
            first_page: 1,
            stop: PageStop::EmptyPage,
        },
        PagingArg::Cursor => PaginatorConfig::CursorToken {
            param: "cursor".into(),
            from: TokenSource::Body(args.next_field.clone().ok_or_else(|| {
                Error::config("--paging cursor needs --next-field (where the token is)")
            })?),
            limit_param: Some("limit".into()),
        },
        PagingArg::Link => PaginatorConfig::NextLink {
            from: LinkSource::LinkHeader,
            limit_param: Some("limit".into()),
        },
        PagingArg::None => PaginatorConfig::Single,
    };
    let sample_param = match args.paging {
        PagingArg::Page => Some("page_size"),
        PagingArg::None => None,
        _ => Some("limit"),
    };
    let http = HttpConfig::default();
    let client = HttpClient::new(http.clone())?;
    let mut request = HttpRequest::get(url.clone());
    if let Some(p) = sample_param {
        request = request.with_query(p, SAMPLE.to_string());
    }
    let sample = client.execute(&request).await?;
    let mut stream = RestStreamConfig::new(&args.stream_name, url, "")
        .with_records_path(&args.records_path)
        .with_primary_key(args.primary_key.iter().cloned())
        .with_paginator(paginator)
        .with_page_size(args.page_size);
    let columns = infer_columns(&sample.body, &args.records_path)
        .map_err(|e| Error::config(format!("cannot infer the columns from a sample page: {e}")))?;
    for mut column in columns {
        if args.primary_key.contains(&column.name) {
            column.nullable = false;
        }
        stream = stream.with_column(column);
    }
    stream.strategy = match &args.cursor {
        Some(field) => {
            let ty = stream
                .columns
                .iter()
                .find(|c| &c.name == field)
                .map(|c| c.ty)
                .ok_or_else(|| {
                    Error::config(format!("the sample has no cursor field {field:?}"))
                })?;
            let format = match ty {
                ColumnType::Timestamp => CursorFormat::Rfc3339Millis,
                ColumnType::Integer => CursorFormat::Plain,
                _ => {
                    return Err(Error::config(format!(
                        "the cursor field {field:?} is neither a timestamp nor an integer"
                    )))
                }
            };
            stream.cursor = Some(CursorConfig {
                field: field.clone(),
                param: args.cursor_param.clone(),
                until_param: None,
                format,
                inclusive: true,
                until_inclusive: true,
            });
            StrategySpec::default()
        }
        None => StrategySpec::full(),
    };
    stream.version = args.version.clone();
    if args.ordered {
        stream.ordering = SourceOrdering::ByCursorThenKey;
    }
    let config = PipelineConfig {
        name: "quick".into(),
        database: database.map(str::to_owned),
        http,
        auth: None,
        rate_limit: None,
        concurrency: 1,
        retry: Default::default(),
        limits: Default::default(),
        streams: vec![stream],
    };
    config.validate()?;
    Ok(config)
}
