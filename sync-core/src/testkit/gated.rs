//! `GatedSource`: a memory source that holds one page request until the test releases it, to
//! catch a run in the middle (a page promoted, the next one in flight).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::error::Result;
use crate::memory::MemorySource;
use crate::schema::StreamSchema;
use crate::source::{Page, PageRequest, Source, SourceCapabilities};
use crate::value::Value;

/// A [`MemorySource`] whose second page request, once, waits until [`GatedSource::release`],
/// announcing to [`GatedSource::reached`] that it got there. Every other request passes.
#[derive(Debug)]
pub struct GatedSource {
    inner: Arc<MemorySource>,
    calls: AtomicUsize,
    reached: Notify,
    release: Notify,
}

impl GatedSource {
    /// A gate over `inner`.
    pub fn over(inner: Arc<MemorySource>) -> Arc<Self> {
        Arc::new(GatedSource {
            inner,
            calls: AtomicUsize::new(0),
            reached: Notify::new(),
            release: Notify::new(),
        })
    }

    /// Waits until the held request arrives.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held request through.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

#[async_trait]
impl Source for GatedSource {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }
    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>> {
        self.inner.schema(stream)
    }
    async fn fetch_page(&self, request: &PageRequest) -> Result<Page> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
            self.reached.notify_one();
            self.release.notified().await;
        }
        self.inner.fetch_page(request).await
    }
    async fn high_watermark(&self, stream: &str) -> Result<Option<Vec<Value>>> {
        self.inner.high_watermark(stream).await
    }
}
