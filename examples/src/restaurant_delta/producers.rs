//! The producers of the change queue: the "SNS monitoring Lambdas" of the seed (SNS
//! notifications through the SQS fake, appended by `SqsChangeFeed`), and a producer inside
//! the same system that appends directly.

use std::sync::Arc;

use sync_connectors::fakes::sqs::{builder, change, start, FakeSqs, MockServer};
use sync_connectors::sqs::SqsChangeFeed;
use sync_core::{ChangeQueue, Checkpoint, Error, Key, Result, SequenceNo};

use super::core_api::CoreApi;
use super::report::{Change, Enqueued, Producer};
use super::QUEUE;

/// Both producers, over one change queue.
#[derive(Debug)]
pub struct Producers {
    sqs_server: MockServer,
    sqs: FakeSqs,
    feed: SqsChangeFeed,
    changes: Arc<dyn ChangeQueue>,
}

impl Producers {
    /// Starts the SQS fake and a feed from it into `changes`, its journal in `journal`.
    pub async fn start(
        changes: Arc<dyn ChangeQueue>,
        journal: Arc<dyn Checkpoint>,
    ) -> Result<Producers> {
        let (sqs_server, sqs) = start().await;
        let feed = SqsChangeFeed::new(
            builder(&sqs_server, QUEUE).build()?,
            changes.clone(),
            journal,
        )?;
        Ok(Producers {
            sqs_server,
            sqs,
            feed,
            changes,
        })
    }

    /// The SQS fake's URL.
    pub fn sqs_url(&self) -> String {
        self.sqs_server.uri()
    }

    /// The SQS fake (its messages, calls and contract violations).
    pub fn sqs(&self) -> &FakeSqs {
        &self.sqs
    }

    /// Applies `change` to restaurant `id` at the core API, then queues `id` through
    /// `via`; returns the entry.
    pub async fn record(
        &self,
        core: &CoreApi,
        id: &str,
        change: Change,
        via: Producer,
    ) -> Result<Enqueued> {
        match &change {
            Change::Opened => core.open(id).map(drop)?,
            Change::Seats(seats) => core.update(id, *seats).map(drop)?,
        }
        let (seq, duplicates) = match via {
            Producer::Sns => (self.via_sns(id).await?, 0),
            Producer::SnsRedelivered => self.via_sns_twice(id).await?,
            Producer::Direct => (self.direct(id).await?, 0),
        };
        Ok(Enqueued {
            seq,
            id: id.to_owned(),
            via,
            change,
            duplicates,
        })
    }

    /// Like [`Producers::via_sns`], but the first `DeleteMessageBatch` fails (as when the
    /// process dies between the append and the delete): SQS delivers the message again
    /// after its visibility timeout, and the feed, finding it in its journal with the entry
    /// appended, only deletes it. Returns the one entry and the duplicates recognised.
    async fn via_sns_twice(&self, id: &str) -> Result<(SequenceNo, usize)> {
        self.sqs.publish(id, change(id));
        self.sqs.state().fail_next_deletes = true;
        let first = self.feed.poll().await?;
        let [seq] = first.appended.as_slice() else {
            return Err(
                Error::internal("the sqs feed did not append exactly one entry")
                    .with_context("appended", first.appended.len()),
            );
        };
        // The visibility timeout (30 s on the fake's logical clock) expires.
        self.sqs.advance(31);
        let again = self.feed.drain(3).await?;
        if !again.appended.is_empty() {
            return Err(Error::internal(
                "a redelivered notification was appended again",
            ));
        }
        Ok((*seq, again.duplicates))
    }

    /// Publishes a notification for `id` to the SNS topic (its message group: the id, so
    /// SQS keeps each restaurant's notifications in order) and drains the queue into the
    /// change queue: append, then delete.
    async fn via_sns(&self, id: &str) -> Result<SequenceNo> {
        self.sqs.publish(id, change(id));
        let report = self.feed.drain(3).await?;
        match report.appended.as_slice() {
            [seq] if report.rejected.is_empty() => Ok(*seq),
            _ => Err(
                Error::internal("the sqs feed did not append exactly one entry")
                    .with_context("appended", report.appended.len())
                    .with_context("rejected", report.rejected.len()),
            ),
        }
    }

    /// Appends `id` to the change queue directly.
    async fn direct(&self, id: &str) -> Result<SequenceNo> {
        let seqs = self.changes.append(QUEUE, &[Key::text(id)]).await?;
        seqs.first()
            .copied()
            .ok_or_else(|| Error::internal("the change queue returned no number"))
    }
}
