//! SNS notifications from an SQS queue into a change queue (feature `sqs`): the producer of
//! the sequence-window strategy.
//!
//! ```text
//!  SNS topic -> SQS (FIFO) queue
//!    |  client.rs   ReceiveMessage (JSON 1.0 protocol, SigV4, long poll, <= 10 messages,
//!    |              SequenceNumber / MessageGroupId / ApproximateReceiveCount)
//!    v
//!  model.rs  read_message        SNS envelope unwrapped, entity id read at `id_path`,
//!    |                           sequence numbers parsed as u128 (SequenceNo)
//!    v
//!  feed.rs   SqsChangeFeed::poll journal intent -> ChangeQueue::append -> DeleteMessageBatch
//!    v
//!  ChangeQueue (MemoryStore, SqliteStore, PostgresStore) -> SequenceWindowStrategy
//! ```
//!
//! Facts this follows (shared/reference/api-semantics.md, section 5): delivery is
//! at-least-once (visibility expiry, failed deletes, a 5-minute dedup window), so appends are
//! idempotent per message id and messages are deleted only after the append committed; the
//! SQS and SNS `SequenceNumber`s are 128-bit, per message group and with gaps, so they are
//! kept as `u128` for diagnostics and never used as the queue's order (the change queue
//! numbers entries itself, in commit order).
//!
//! Why a small SigV4 signer instead of the AWS SDK: the feed needs two actions of one
//! service (`ReceiveMessage`, `DeleteMessageBatch`) over the JSON protocol. `aws-sdk-sqs`
//! with `aws-config` brings in the smithy runtime, its own HTTP stack and credential
//! providers: well over a hundred crates and minutes of build on two cores, and a second
//! HTTP client beside the shared one. Signing is ~150 lines over RustCrypto's `hmac` and
//! `sha2` (already built for the PostgreSQL driver), checked against AWS's published test
//! vectors, and the requests then go through the shared [`HttpClient`](crate::http::HttpClient)
//! (pooling, capped bodies, one error classification). What the SDK would add and this does
//! not: credential discovery (instance profiles, SSO, assume-role); credentials are given
//! in the configuration (a [`Secret`](crate::http::Secret) can come from the environment).

mod client;
mod config;
mod feed;
mod model;
mod sigv4;

pub use client::{DeleteOutcome, SqsClient};
pub use config::{AwsCredentials, Envelope, IdType, SqsBuilder, SqsConfig};
pub use feed::{PollReport, SqsChangeFeed};
pub use model::SqsMessage;
