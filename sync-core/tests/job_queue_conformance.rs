//! The job-queue conformance suite against the in-memory reference queue.

use std::sync::Arc;

use sync_core::jobs::JobQueue;
use sync_core::memory::MemoryJobQueue;

async fn make_queue() -> Arc<dyn JobQueue> {
    Arc::new(MemoryJobQueue::new())
}

sync_core::job_queue_suite!(make_queue);
