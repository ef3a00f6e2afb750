//! The fill of a full sync: its progress (staged with every batch, so a crash resumes the
//! fill), the pages fetched ahead while a batch is staged, and the staging of a batch of pages.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{ContinuedPage, Fetched, Fetcher, SyncContext};
use crate::error::{Error, Result};
use crate::position::Position;
use crate::record::{Key, RecordBatch, Row};
use crate::schema::StreamSchema;
use crate::source::{PageRequest, PageSelector};
use crate::stager::StagingRun;
use crate::stop::StopSignal;
use crate::value::Value;

/// Fill progress after a page, staged atomically with the batch that ends at that page (kept in
/// an opaque token position).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FillProgress {
    pub(super) next: Option<PageSelector>,
    pub(super) pages: u64,
    pub(super) rows: u64,
    pub(super) max_cursor: Option<Vec<Value>>,
    /// The source's total at the last page, to notice it changing under the fill.
    #[serde(default)]
    pub(super) total: Option<u64>,
    /// The last key read, to check offset pages continue from it.
    #[serde(default)]
    pub(super) last_key: Option<Key>,
    /// The source changed while the fill read it: rows it seems to lack may only have
    /// shifted out of view, so this snapshot deletes nothing.
    #[serde(default)]
    pub(super) drifted: bool,
    /// Pages were read by number from a source whose records move when they change: a shift
    /// cannot be noticed, so this snapshot deletes nothing.
    #[serde(default)]
    pub(super) unverifiable: bool,
}

impl FillProgress {
    /// Raises `max_cursor` to the greatest cursor of `rows`. The running maximum is the
    /// stored one or a row of the page, by reference: values are copied once per page, not
    /// per row.
    pub(super) fn note_max_cursor(&mut self, rows: &[Row], schema: &StreamSchema) {
        let mut page_max: Option<&Row> = None;
        for row in rows {
            let greater = match page_max {
                Some(m) => row.compare_cursor_row(m, schema),
                None => self
                    .max_cursor
                    .as_ref()
                    .map_or(Some(Ordering::Greater), |m| row.compare_cursor(schema, m)),
            } == Some(Ordering::Greater);
            if greater {
                page_max = Some(row);
            }
        }
        if let Some(m) = page_max {
            self.max_cursor = Some(m.cursor_values(schema));
        }
    }

    pub(super) fn new() -> Self {
        FillProgress {
            next: Some(PageSelector::First),
            pages: 0,
            rows: 0,
            max_cursor: None,
            total: None,
            last_key: None,
            drifted: false,
            unverifiable: false,
        }
    }
}

/// Stages the batches of consecutive pages as one batch, or one by one when a key is on
/// two of them; returns where the run's progress stands after the last.
pub(super) async fn stage_pages(
    ctx: &SyncContext,
    run: &StagingRun,
    pages: Vec<RecordBatch>,
) -> Result<Position> {
    let batches = RecordBatch::concat(pages).map_or_else(|each| each, |one| vec![one]);
    let mut staged = None;
    for batch in batches {
        staged = Some(ctx.stager.stage(run, batch).await?);
    }
    staged.ok_or_else(|| Error::internal("no page to stage"))
}

/// A chain of fill pages fetched ahead, each from the selector and last key of the page
/// before it.
pub(super) struct FillChain<'a> {
    pub(super) fetcher: &'a Fetcher<'a>,
    pub(super) schema: &'a StreamSchema,
    /// Pages to fetch at most.
    pub(super) pages: u64,
}

impl FillChain<'_> {
    /// Fetches from `next` on until `pages` pages are read, the last page is, a page does
    /// not continue from the one before it (the fill restarts there), a stop is requested
    /// or a fetch fails (its error is the last item).
    pub(super) async fn fetch(
        self,
        request: impl Fn(&PageSelector) -> PageRequest,
        mut next: PageSelector,
        mut last_key: Option<Key>,
        stop: &StopSignal,
    ) -> Vec<Result<Fetched<ContinuedPage>>> {
        let mut out = Vec::new();
        loop {
            let fetched = fetch_fill(self.fetcher, request(&next), last_key.clone(), self.schema)
                .instrument(tracing::debug_span!("page ahead", selector = ?next))
                .await;
            let following = match &fetched {
                Ok(f) if f.value().continuous => {
                    if let Some(last) = f.value().page.rows.last() {
                        last_key = Some(last.key(self.schema));
                    }
                    f.value().page.next.clone()
                }
                _ => None,
            };
            out.push(fetched);
            match following {
                Some(selector) if (out.len() as u64) < self.pages && !stop.is_stopped() => {
                    next = selector;
                }
                _ => return out,
            }
        }
    }
}

/// Fetches the fill's page at `req.selector`; an offset page re-reads the record before it to
/// check it continues from `last_key` (every other selector counts as continuous).
pub(super) async fn fetch_fill(
    fetcher: &Fetcher<'_>,
    req: PageRequest,
    last_key: Option<Key>,
    schema: &StreamSchema,
) -> Result<Fetched<ContinuedPage>> {
    match req.selector {
        PageSelector::Offset(offset) => {
            fetcher
                .fetch_continuing(&req, offset, last_key.as_ref(), schema)
                .await
        }
        _ => Ok(fetcher.fetch(&req).await?.map(|page| ContinuedPage {
            page,
            continuous: true,
        })),
    }
}
