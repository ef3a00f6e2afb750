//! [`SqsChangeFeed`]: receive, append to the change queue once per message, delete after the
//! append committed.
//!
//! [`ChangeQueue::append`] takes entity ids only, with no idempotency key, so the feed keeps
//! a small write-ahead journal in the checkpoint store (one [`Checkpoint`] record, fenced):
//!
//! 1. receive up to 10 messages;
//! 2. commit to the journal, for each new message, its idempotency key, its entity and the
//!    queue's safe high-water mark `h` read now: whatever this message's append gets, it is
//!    numbered above `h`;
//! 3. append the entities (one call, one transaction in every store);
//! 4. `DeleteMessageBatch`; the deleted messages leave the journal.
//!
//! A message received again while still in the journal (the process died, or the append or
//! the delete failed, between 2 and 4) was appended iff the queue holds an entry for its
//! entity numbered above its `h`; then it is only deleted. Such an entry might also come from
//! another producer, after our message was received: it reads the entity's state later than
//! our message's change, so it serves for both. Nothing is ever deleted before its append
//! committed.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sync_core::{
    ChangeQueue, Checkpoint, CheckpointCommit, CheckpointDelta, CheckpointState, Error, FenceToken,
    Key, Position, Result, SequenceNo, Window,
};
use tokio::sync::Mutex;

use super::client::SqsClient;
use super::config::SqsConfig;
use super::model::SqsMessage;

/// Messages kept in the journal at most; older ones are dropped (their redelivery would
/// then be appended again: a harmless duplicate entry, never a loss).
const MAX_PENDING: usize = 1_000;

/// What one [`SqsChangeFeed::poll`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Messages received.
    pub received: usize,
    /// Sequence numbers the change queue gave the appended entities, in receive order.
    pub appended: Vec<SequenceNo>,
    /// Messages received again whose entity was already appended (only deleted now).
    pub duplicates: usize,
    /// Messages whose entity id could not be read, with the reason: not appended, not
    /// deleted (they come back after the visibility timeout).
    pub rejected: Vec<(String, String)>,
    /// Rejected messages received `max_receive_count` times or more: the queue's redrive
    /// policy moves them to its dead-letter queue.
    pub dead_letter_bound: Vec<String>,
    /// Messages deleted.
    pub deleted: usize,
    /// Messages whose delete failed, with SQS's code; they come back and are recognised.
    pub delete_failed: Vec<(String, String)>,
}

/// A journal entry: a message received, not yet known deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    id: String,
    entity: Key,
    /// The safe high-water mark read before its first append.
    after: SequenceNo,
}

/// The producer side of the sequence-window strategy: SNS notifications from an SQS queue
/// into a [`ChangeQueue`] (see the module documentation for the protocol).
///
/// Dead letters: a message whose entity id cannot be read is never deleted; the queue's
/// redrive policy moves it to the dead-letter queue after `maxReceiveCount` receives (the
/// feed reports it once it reached `max_receive_count`). The feed does not send messages to a
/// dead-letter queue itself: SQS's redrive is atomic, keeps the message's attributes and
/// needs no extra permission, where a send then delete could lose or double a message.
#[derive(Debug)]
pub struct SqsChangeFeed {
    client: SqsClient,
    queue: Arc<dyn ChangeQueue>,
    journal: Arc<dyn Checkpoint>,
    journal_name: String,
    fence: Mutex<Option<FenceToken>>,
}

impl SqsChangeFeed {
    /// A feed for `config` appending to `queue`, its journal in `journal` (normally the same
    /// store). No I/O until the first poll, which takes the journal's fence: a second feed on
    /// the same journal fences this one out.
    pub fn new(
        config: SqsConfig,
        queue: Arc<dyn ChangeQueue>,
        journal: Arc<dyn Checkpoint>,
    ) -> Result<Self> {
        let journal_name = config.journal_name();
        Ok(SqsChangeFeed {
            client: SqsClient::new(config)?,
            queue,
            journal,
            journal_name,
            fence: Mutex::new(None),
        })
    }

    /// The SQS client (receive and delete on their own).
    pub fn client(&self) -> &SqsClient {
        &self.client
    }

    /// One long-poll receive, the appends, the deletes. An error leaves every message not
    /// yet deleted in the queue; it comes back after its visibility timeout and is appended
    /// at most once in all.
    pub async fn poll(&self) -> Result<PollReport> {
        let messages = self.client.receive().await?;
        let config = self.client.config();
        let mut report = PollReport {
            received: messages.len(),
            ..PollReport::default()
        };
        let mut good: Vec<(&SqsMessage, &Key)> = Vec::new();
        for m in &messages {
            match &m.entity {
                Ok(key) => good.push((m, key)),
                Err(reason) => {
                    tracing::warn!(message_id = %m.message_id, receive_count = m.receive_count, reason = %reason, "sqs message rejected");
                    report.rejected.push((m.message_id.clone(), reason.clone()));
                    if m.receive_count >= config.max_receive_count {
                        report.dead_letter_bound.push(m.message_id.clone());
                    }
                }
            }
        }
        if good.is_empty() {
            return Ok(report);
        }
        let mut fence = self.fence.lock().await;
        let token = match *fence {
            Some(t) => t,
            None => *fence.insert(self.journal.acquire_fence(&self.journal_name).await?),
        };
        let (mut pending, mut version, mut position) = self.load().await?;
        let queue_name = &config.change_queue;

        // Which messages were appended by an earlier, unfinished poll.
        let known: Vec<Option<Pending>> = good
            .iter()
            .map(|(m, _)| {
                pending
                    .iter()
                    .find(|p| p.id == m.idempotency_key())
                    .cloned()
            })
            .collect();
        let mut done = vec![false; good.len()];
        if let Some(low) = known.iter().flatten().map(|p| p.after).min() {
            let window = Window::new(low, SequenceNo(u128::MAX))?;
            let entries = self.queue.read_window(queue_name, window).await?;
            for (i, p) in known.iter().enumerate() {
                if let Some(p) = p {
                    done[i] = entries
                        .iter()
                        .any(|e| e.seq > p.after && e.entity == p.entity);
                }
            }
        }
        // The same notification twice in one receive is appended once.
        let mut seen = BTreeSet::new();
        for (i, (m, _)) in good.iter().enumerate() {
            if !seen.insert(m.idempotency_key()) {
                done[i] = true;
            }
        }
        let hwm = self.queue.safe_high_water_mark(queue_name).await?;
        let mut added = BTreeSet::new();
        for (i, (m, key)) in good.iter().enumerate() {
            if known[i].is_none() && added.insert(m.idempotency_key()) {
                pending.push(Pending {
                    id: m.idempotency_key().to_owned(),
                    entity: (*key).clone(),
                    after: hwm,
                });
            }
        }
        if pending.len() > MAX_PENDING {
            let excess = pending.len() - MAX_PENDING;
            pending.drain(..excess);
        }
        version = self
            .commit(token, version, &position, position.clone(), &pending)
            .await?;

        let entities: Vec<Key> = good
            .iter()
            .zip(&done)
            .filter(|(_, done)| !**done)
            .map(|((_, key), _)| (*key).clone())
            .collect();
        report.duplicates = done.iter().filter(|d| **d).count();
        if !entities.is_empty() {
            report.appended = self.queue.append(queue_name, &entities).await?;
        }

        let to_delete: Vec<&SqsMessage> = good.iter().map(|(m, _)| *m).collect();
        let deleted = self.client.delete(&to_delete).await?;
        report.deleted = deleted.deleted.len();
        for (id, why) in &deleted.failed {
            tracing::warn!(message_id = %id, reason = %why, "sqs delete failed; the message will come back");
        }
        report.delete_failed = deleted.failed;
        let gone: BTreeSet<&str> = to_delete
            .iter()
            .filter(|m| deleted.deleted.contains(&m.message_id))
            .map(|m| m.idempotency_key())
            .collect();
        pending.retain(|p| !gone.contains(p.id.as_str()));
        let to = match report.appended.last() {
            Some(seq) => Position::Sequence(*seq),
            None => position.clone(),
        };
        self.commit(token, version, &position, to.clone(), &pending)
            .await?;
        position = to;
        tracing::debug!(journal = %self.journal_name, %position, received = report.received, appended = report.appended.len(), duplicates = report.duplicates, "sqs poll");
        Ok(report)
    }

    /// Polls until a receive returns nothing or `max_polls` polls ran; reports summed.
    pub async fn drain(&self, max_polls: usize) -> Result<PollReport> {
        let mut total = PollReport::default();
        for _ in 0..max_polls {
            let r = self.poll().await?;
            let empty = r.received == 0;
            total.received += r.received;
            total.appended.extend(r.appended);
            total.duplicates += r.duplicates;
            total.rejected.extend(r.rejected);
            total.dead_letter_bound.extend(r.dead_letter_bound);
            total.deleted += r.deleted;
            total.delete_failed.extend(r.delete_failed);
            if empty {
                break;
            }
        }
        Ok(total)
    }

    async fn load(&self) -> Result<(Vec<Pending>, Option<u64>, Position)> {
        let Some(stored) = self.journal.load(&self.journal_name).await? else {
            return Ok((Vec::new(), None, Position::Start));
        };
        let pending = match stored.state.extra.get("pending") {
            None => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::new(
                    sync_core::ErrorKind::CorruptState,
                    "sqs feed journal is malformed",
                )
                .with_context("journal", &self.journal_name)
                .with_source(e)
            })?,
        };
        Ok((pending, Some(stored.version), stored.state.position))
    }

    async fn commit(
        &self,
        fence: FenceToken,
        version: Option<u64>,
        from: &Position,
        to: Position,
        pending: &[Pending],
    ) -> Result<Option<u64>> {
        let mut state = CheckpointState::at(to.clone());
        state.extra.insert(
            "pending".into(),
            serde_json::to_value(pending).expect("journal serializes"),
        );
        let commit = CheckpointCommit {
            sync: self.journal_name.clone(),
            expected_version: version,
            fence,
            delta: CheckpointDelta {
                from: from.clone(),
                to,
            },
            state,
            ledger: None,
            log: Vec::new(),
        };
        let v = self.journal.commit(&commit).await.map_err(|e| {
            e.with_context("connector", "sqs")
                .with_context("journal", &self.journal_name)
        })?;
        Ok(Some(v))
    }
}
