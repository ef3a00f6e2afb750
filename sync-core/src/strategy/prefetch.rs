//! Page fetching that can overlap the staging of the page before it.
//!
//! A [`Fetcher`] borrows the run context and shares the run's error count, but not the
//! [`RunState`] itself: while the run stages (or stages and promotes) page N through
//! `&mut RunState`, the fetcher reads page N+1. What it fetched comes back as [`Fetched`],
//! counted in the report only when the run takes it ([`RunState::count`]), so a page that is
//! dropped because the staging failed is never reported. [`while_fetching`] runs the two side
//! by side; staging, promotion and checkpoint commits stay in page order, only the source
//! fetch overlaps.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures::future::OptionFuture;
use tracing::Instrument;

use super::{retry_counted, RunState, SyncContext};
use crate::error::Result;
use crate::record::Key;
use crate::schema::StreamSchema;
use crate::source::{Page, PageRequest, PageSelector};

/// Pages fetched but not yet counted in the run report.
#[must_use = "a fetched page is counted when the run takes it"]
#[derive(Debug)]
pub(crate) struct Fetched<T> {
    value: T,
    /// Records of each page fetched to produce `value`.
    pages: Vec<usize>,
}

impl<T> Fetched<T> {
    /// What was fetched, before the run takes it.
    pub(crate) fn value(&self) -> &T {
        &self.value
    }

    /// Applies `f` to what was fetched; the page counts stay.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Fetched<U> {
        Fetched {
            value: f(self.value),
            pages: self.pages,
        }
    }
}

/// A page read at an offset, and whether it continues from the record read before it.
#[derive(Debug)]
pub(crate) struct ContinuedPage {
    pub(crate) page: Page,
    /// False when the record before the offset is not the last key seen: records were
    /// inserted or deleted before the offset and the offsets shifted.
    pub(crate) continuous: bool,
}

/// Fetches pages for a run under its retry policy and `max_errors` limit, without borrowing
/// the run (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Fetcher<'a> {
    ctx: &'a SyncContext,
    errors: Arc<AtomicU64>,
}

impl RunState {
    /// A fetcher sharing this run's error count.
    pub(crate) fn fetcher<'a>(&self, ctx: &'a SyncContext) -> Fetcher<'a> {
        Fetcher {
            ctx,
            errors: self.errors.clone(),
        }
    }

    /// Counts what `fetched` read in the report and the progress events, and hands it over.
    pub(crate) fn count<T>(&mut self, ctx: &SyncContext, fetched: Fetched<T>) -> T {
        for rows in fetched.pages {
            self.count_page(ctx, rows);
        }
        fetched.value
    }
}

impl Fetcher<'_> {
    async fn fetch_uncounted(&self, req: &PageRequest) -> Result<Page> {
        let ctx = self.ctx;
        retry_counted(ctx, &self.errors, || ctx.source.fetch_page(req))
            .await
            .map_err(|e| e.with_context("stream", &req.stream))
    }

    /// Fetches one page.
    pub(crate) async fn fetch(&self, req: &PageRequest) -> Result<Fetched<Page>> {
        let page = self.fetch_uncounted(req).await?;
        Ok(Fetched {
            pages: vec![page.rows.len()],
            value: page,
        })
    }

    /// Fetches one page of a request the future owns (to fetch ahead of the current page).
    pub(crate) async fn fetch_owned(&self, req: PageRequest) -> Result<Fetched<Page>> {
        self.fetch(&req)
            .instrument(tracing::debug_span!("page", selector = ?req.selector))
            .await
    }

    /// Fetches the page at `offset`. When `last_key` is known and `offset > 0` it asks for one
    /// record more, starting one before the offset, and checks that record is `last_key`; the
    /// record is dropped when it matches. A server that clamps pages to one record is asked
    /// again at `offset` so the read still moves on.
    pub(crate) async fn fetch_continuing(
        &self,
        base: &PageRequest,
        offset: u64,
        last_key: Option<&Key>,
        schema: &StreamSchema,
    ) -> Result<Fetched<ContinuedPage>> {
        let at = |offset, limit| PageRequest {
            selector: PageSelector::Offset(offset),
            limit,
            ..base.clone()
        };
        let Some(last_key) = last_key.filter(|_| offset > 0) else {
            let Fetched { value: page, pages } = self.fetch(&at(offset, base.limit)).await?;
            return Ok(Fetched {
                value: ContinuedPage {
                    page,
                    continuous: true,
                },
                pages,
            });
        };
        let mut page = self
            .fetch_uncounted(&at(offset - 1, base.limit.saturating_add(1)))
            .await?;
        let continuous = page
            .rows
            .first()
            .is_some_and(|r| &r.key(schema) == last_key);
        if continuous {
            page.rows.remove(0);
        }
        let mut pages = vec![page.rows.len()];
        if continuous && page.rows.is_empty() && page.next.is_some() {
            let more = self.fetch(&at(offset, base.limit)).await?;
            pages.extend(more.pages);
            page = Page {
                total: more.value.total.or(page.total),
                ..more.value
            };
        }
        Ok(Fetched {
            value: ContinuedPage { page, continuous },
            pages,
        })
    }
}

/// Runs `work` (staging, or staging and promoting, the current page) while `next` fetches the
/// page after it, both to completion: a stage is never cancelled half-way by a failed fetch.
/// The work's error comes first and drops the fetched page; the fetch's result is handed back
/// only once the work succeeded, so progress is consistent whichever failed.
pub(crate) async fn while_fetching<W, P>(
    work: impl Future<Output = Result<W>>,
    next: Option<impl Future<Output = Result<P>>>,
) -> Result<(W, Option<Result<P>>)> {
    let (work, next) = futures::join!(work, OptionFuture::from(next));
    Ok((work?, next))
}
