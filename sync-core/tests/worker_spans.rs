//! The worker's tracing: each attempt runs in a `sync_job` span naming the worker, job, key,
//! action and attempt, with its outcome recorded once known, and the strategy's `sync_run`
//! span (with the store's and source's spans) nests inside it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sync_core::jobs::{Integration, Job, JobRunner, SyncJobs, Trigger, Worker, WorkerConfig};
use sync_core::memory::{MemoryJobQueue, MemorySource, MemoryStore};
use sync_core::testkit::{item, keyed_schema};
use sync_core::{
    Error, ErrorKind, FullConfig, FullStrategy, Result, RetryPolicy, RunReport, StopSignal,
    Strategy, StrategyKind, SyncContext,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span as recorded: its name, its parent's name and its fields.
#[derive(Debug, Clone, Default)]
struct SpanRecord {
    name: String,
    parent: Option<String>,
    fields: BTreeMap<String, String>,
}

struct FieldsOf<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldsOf<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

/// Records every span into a shared list; a span's index there is kept in its extensions.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanRecord>>>);

impl Spans {
    fn named(&self, name: &str) -> Vec<SpanRecord> {
        let spans = self.0.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span is registered");
        let mut record = SpanRecord {
            name: span.name().to_string(),
            parent: span.parent().map(|p| p.name().to_string()),
            ..SpanRecord::default()
        };
        attrs.record(&mut FieldsOf(&mut record.fields));
        let mut spans = self.0.lock().unwrap();
        span.extensions_mut().insert(spans.len());
        spans.push(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a recorded span is registered");
        let index = *span.extensions().get::<usize>().expect("its index");
        values.record(&mut FieldsOf(&mut self.0.lock().unwrap()[index].fields));
    }
}

/// Runs a full sync of `items` for `acme/t1/items`, and fails `acme/t1/broken` permanently.
#[derive(Debug)]
struct Runner {
    source: Arc<MemorySource>,
    store: Arc<MemoryStore>,
}

#[async_trait]
impl JobRunner for Runner {
    async fn run(&self, job: &Job, stop: StopSignal) -> Result<RunReport> {
        if job.key.stream == "broken" {
            return Err(Error::new(ErrorKind::Config, "the stream is misconfigured"));
        }
        let ctx = SyncContext::new(
            job.key.sync_name(),
            self.source.clone(),
            self.store.clone(),
            self.store.clone(),
        )
        .with_retry(RetryPolicy::none())
        .with_stop(stop);
        FullStrategy::new(FullConfig::new("items"))?.run(&ctx).await
    }
}

#[tokio::test]
async fn each_attempt_runs_in_a_job_span_holding_the_strategy_span_and_its_outcome() {
    let spans = Spans::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let source = Arc::new(MemorySource::new((*keyed_schema("items")).clone()));
    for id in ["a", "b"] {
        source.upsert(item(id, 1, None).values().to_vec());
    }
    let queue = Arc::new(MemoryJobQueue::new());
    let store = Arc::new(MemoryStore::new());
    let jobs = SyncJobs::new(queue.clone(), store.clone());
    jobs.put_integration(&Integration::new(
        "acme",
        "t1",
        StrategyKind::Full,
        ["items", "broken"],
    ))
    .await
    .unwrap();
    let runner = Arc::new(Runner { source, store });
    let worker = Worker::new(queue, runner, WorkerConfig::new("w7")).unwrap();
    jobs.trigger(&Trigger::new("acme", "t1")).await.unwrap();
    while worker.run_one().await.unwrap().is_some() {}

    let mut job_spans = spans.named("sync_job");
    job_spans.sort_by(|a, b| a.fields["key"].cmp(&b.fields["key"]));
    let fields: Vec<Vec<(&str, &str)>> = job_spans
        .iter()
        .map(|s| {
            ["worker", "key", "action", "attempt", "outcome"]
                .iter()
                .map(|f| (*f, s.fields.get(*f).map_or("<missing>", String::as_str)))
                .collect()
        })
        .collect();
    assert_eq!(
        fields,
        [
            [
                ("worker", "w7"),
                ("key", "acme/t1/broken"),
                ("action", "sync"),
                ("attempt", "1"),
                ("outcome", "failed"),
            ],
            [
                ("worker", "w7"),
                ("key", "acme/t1/items"),
                ("action", "sync"),
                ("attempt", "1"),
                ("outcome", "completed"),
            ],
        ]
    );
    assert!(job_spans.iter().all(|s| s.fields.contains_key("job")));
    let runs = spans.named("sync_run");
    assert_eq!(
        runs.len(),
        1,
        "one run: the broken stream never started one"
    );
    assert_eq!(runs[0].parent.as_deref(), Some("sync_job"));
    assert_eq!(runs[0].fields["sync"], "acme/t1/items");
    let m = worker.metrics();
    assert_eq!((m.claimed, m.completed, m.failed, m.running), (2, 1, 1, 0));
}
