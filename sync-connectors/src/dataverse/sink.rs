//! [`DataverseSink`]: a delivery becomes `$batch` requests of upserts and deletes by
//! alternate key; per-operation results map back to records.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sync_core::{Delivery, DeliveryReceipt, Error, ErrorKind, Result, RetryClass, Sink};

use super::batch::{self, OpResponse, PartResponse};
use super::config::DataverseConfig;
use super::model::{
    bad_response, is_insert_race, parse_error_body, DeliveryOutcome, OpKind, Operation,
    RecordFailure, Resolved,
};
use crate::http::{parse_retry_after, HttpClient, HttpRequest, Method, RequestBody};

/// Failures listed in a delivery error's context; the rest are counted.
const FAILURES_IN_ERROR: usize = 10;

/// A [`Sink`] writing promoted rows to a Dataverse table.
///
/// Each row becomes a `PATCH <entity_set>(<alternate key>)` upsert (key attributes in the URL
/// only), each deleted key a `DELETE` (a record already gone counts as deleted). Operations go
/// in `$batch` requests of `batch_size`, grouped in changesets of `changeset_size`, with
/// `Prefer: odata.continue-on-error`, so every operation gets its own status.
///
/// Then, operation by operation:
/// - an upsert that lost the first-insert race (409/412 "A record with matching key values
///   already exists", `0x80040237`) is sent again as an update (`If-Match: *`);
/// - 429 (with its `Retry-After`), 5xx, operations rolled back with their changeset and
///   operations without a response part are sent again in a later round, after the longest
///   `Retry-After` seen or the policy's backoff; a changeset that failed without naming the
///   operation that failed is split into single operations;
/// - any other status is a failure of that record.
///
/// A whole `$batch` answered with 429 or 5xx is retried under the configured policy,
/// honouring `Retry-After`. `deliver` succeeds only when every record was accepted; otherwise
/// its error names the records that failed and why ([`DataverseSink::send`] returns them
/// as data).
#[derive(Debug, Clone)]
pub struct DataverseSink {
    config: DataverseConfig,
    client: HttpClient,
}

impl DataverseSink {
    /// A sink for `config` (validated again); no I/O happens until a delivery.
    pub fn new(mut config: DataverseConfig) -> Result<Self> {
        config.validate()?;
        let client = HttpClient::new(config.http.clone())?
            .with_auth(config.auth.clone())
            .with_rate_limit(config.rate_limit)?;
        Ok(DataverseSink { config, client })
    }

    /// The configuration.
    pub fn config(&self) -> &DataverseConfig {
        &self.config
    }

    /// Delivers `delivery` and reports every record's outcome. An `Err` means a `$batch`
    /// request failed as a whole (after retries) or its response could not be read; records
    /// Dataverse refused are in [`DeliveryOutcome::failures`].
    pub async fn send(&self, delivery: &Delivery) -> Result<DeliveryOutcome> {
        let stream = delivery.schema.name();
        let mapping = self.config.entity(stream).ok_or_else(|| {
            Error::config("dataverse sink has no mapping for this stream")
                .with_context("connector", "dataverse")
                .with_context("stream", stream)
        })?;
        let resolved = Resolved::new(mapping, &delivery.schema)?;
        let mut outcome = DeliveryOutcome::default();
        let mut pending = Vec::with_capacity(delivery.upserts.len() + delivery.deletes.len());
        for row in &delivery.upserts {
            let key = row.key(&delivery.schema);
            match resolved.upsert(key.clone(), row) {
                Ok(op) => pending.push(op),
                Err(message) => outcome.failures.push(refused(key, true, message)),
            }
        }
        for key in &delivery.deletes {
            match resolved.delete(key.clone(), &delivery.schema) {
                Ok(op) => pending.push(op),
                Err(message) => outcome.failures.push(refused(key.clone(), false, message)),
            }
        }
        // Rounds with transient failures are bounded by the policy's attempts; rounds that
        // only re-send lost insert races are not, but the total is capped (a record created
        // and deleted again and again by someone else cannot keep the sink busy forever).
        let max_transient = self.config.retry.max_attempts.max(1);
        let (mut round, mut transient_rounds) = (0u32, 0u32);
        while !pending.is_empty() {
            round += 1;
            let mut again = Vec::new();
            let mut wait: Option<Duration> = None;
            let mut transient = 0usize;
            for chunk in pending.chunks(self.config.batch_size) {
                let results = self.send_batch(chunk, &mut outcome).await.map_err(|e| {
                    e.with_context("stream", stream)
                        .with_context("entity_set", &mapping.entity_set)
                })?;
                for (op, result) in chunk.iter().zip(results) {
                    match judge(op, result) {
                        Verdict::Done => outcome.delivered += 1,
                        Verdict::Again(next) => {
                            if next.kind == OpKind::Update && op.kind == OpKind::Upsert {
                                outcome.race_retries += 1;
                            }
                            again.push((next, None));
                        }
                        Verdict::Later(next, after, failure) => {
                            if let Some(after) = after {
                                wait = Some(wait.map_or(after, |w| w.max(after)));
                            }
                            transient += 1;
                            again.push((next, Some(failure)));
                        }
                        Verdict::Failed(failure) => outcome.failures.push(failure),
                    }
                }
            }
            if transient > 0 {
                transient_rounds += 1;
            }
            let spent =
                (transient > 0 && transient_rounds >= max_transient) || round >= max_transient + 4;
            if spent && !again.is_empty() {
                for (op, failure) in again {
                    outcome.failures.push(failure.unwrap_or_else(|| {
                        op.failure(
                            None,
                            None,
                            "not accepted within the retry rounds",
                            RetryClass::Transient,
                        )
                    }));
                }
                break;
            }
            if transient > 0 {
                let mut marker = Error::new(ErrorKind::Remote, "operations to retry").transient();
                if let Some(after) = wait {
                    marker = marker.with_retry_after(after);
                }
                let delay = self.config.retry.delay(transient_rounds - 1, &marker);
                tracing::debug!(
                    stream,
                    retrying = again.len(),
                    delay_ms = delay.as_millis() as u64,
                    "dataverse operations sent again"
                );
                tokio::time::sleep(delay).await;
            }
            pending = again.into_iter().map(|(op, _)| op).collect();
        }
        Ok(outcome)
    }

    /// Sends one `$batch` of `ops` and returns one response (or none) per operation.
    async fn send_batch(
        &self,
        ops: &[Operation],
        outcome: &mut DeliveryOutcome,
    ) -> Result<Vec<OpResult>> {
        let body = batch::build(&self.config.base_url, ops, self.config.changeset_size);
        let request = HttpRequest::new(Method::Post, format!("{}$batch", self.config.base_url))
            .with_header("Accept", "application/json")
            .with_header("OData-MaxVersion", "4.0")
            .with_header("OData-Version", "4.0")
            .with_header("If-None-Match", "null")
            .with_header("Prefer", "odata.continue-on-error")
            .with_body(RequestBody::Raw {
                content_type: format!("multipart/mixed; boundary={}", body.boundary),
                bytes: Bytes::from(body.body),
            });
        outcome.batches += 1;
        let response = self
            .client
            .execute_with_retry(&request, &self.config.retry)
            .await
            .map_err(|e| {
                e.with_context("connector", "dataverse")
                    .with_context("endpoint", "$batch")
                    .with_context("batch", outcome.batches)
            })?;
        let parts = batch::parse(response.header("content-type"), &response.body)
            .map_err(|e| e.with_context("batch", outcome.batches))?;
        if parts.len() > body.parts.len() {
            return Err(
                bad_response("dataverse $batch response has more parts than the request")
                    .with_context("batch", outcome.batches),
            );
        }
        let mut results: Vec<OpResult> = vec![OpResult::NoResponse; ops.len()];
        for (members, part) in body.parts.iter().zip(parts) {
            match part {
                PartResponse::Changeset(responses) => {
                    for (n, resp) in responses.into_iter().enumerate() {
                        let index = resp
                            .content_id
                            .as_deref()
                            .and_then(|id| id.parse::<usize>().ok())
                            .and_then(|id| id.checked_sub(1))
                            .filter(|i| members.contains(i))
                            .or_else(|| members.get(n).copied());
                        if let Some(i) = index {
                            results[i] = OpResult::Response(resp);
                        }
                    }
                }
                PartResponse::Single(resp) if members.len() == 1 => {
                    results[members[0]] = OpResult::Response(resp);
                }
                PartResponse::Single(resp) if (200..300).contains(&resp.status) => {
                    for &i in members {
                        results[i] = OpResult::Response(resp.clone());
                    }
                }
                PartResponse::Single(resp) => {
                    // The changeset failed as a whole and was rolled back.
                    let culprit = resp
                        .content_id
                        .as_deref()
                        .and_then(|id| id.parse::<usize>().ok())
                        .and_then(|id| id.checked_sub(1))
                        .filter(|i| members.contains(i));
                    for &i in members {
                        results[i] = match culprit {
                            Some(c) if c == i => OpResult::Response(resp.clone()),
                            Some(_) => OpResult::RolledBack { isolate: false },
                            None => OpResult::RolledBack { isolate: true },
                        };
                    }
                }
            }
        }
        Ok(results)
    }
}

/// What came back for one operation.
#[derive(Debug, Clone)]
enum OpResult {
    Response(OpResponse),
    /// Its changeset failed because of another operation (`isolate`: unknown which).
    RolledBack {
        isolate: bool,
    },
    NoResponse,
}

enum Verdict {
    Done,
    /// Send again in the next round, without waiting.
    Again(Operation),
    /// Send again after a wait (at least the duration, when given).
    Later(Operation, Option<Duration>, RecordFailure),
    Failed(RecordFailure),
}

fn judge(op: &Operation, result: OpResult) -> Verdict {
    let resp = match result {
        OpResult::Response(resp) => resp,
        OpResult::RolledBack { isolate } => {
            let mut next = op.clone();
            next.isolate |= isolate;
            let f = op.failure(
                None,
                None,
                "rolled back with its changeset",
                RetryClass::Transient,
            );
            return Verdict::Later(next, None, f);
        }
        OpResult::NoResponse => {
            let f = op.failure(None, None, "no response part", RetryClass::Transient);
            return Verdict::Later(op.clone(), None, f);
        }
    };
    let status = resp.status;
    if (200..300).contains(&status) {
        return Verdict::Done;
    }
    let (code, message) = parse_error_body(&resp.body);
    match (op.kind, status) {
        (OpKind::Delete, 404) => Verdict::Done,
        (OpKind::Upsert, _) if is_insert_race(status, code.as_deref(), &message) => {
            let mut next = op.clone();
            next.kind = OpKind::Update;
            Verdict::Again(next)
        }
        // The record the race created is gone again: back to a plain upsert.
        (OpKind::Update, 404) => {
            let mut next = op.clone();
            next.kind = OpKind::Upsert;
            Verdict::Again(next)
        }
        (_, 408 | 429 | 500..=599) => {
            let after = resp
                .header("retry-after")
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            let f = op.failure(Some(status), code, message, RetryClass::Transient);
            Verdict::Later(op.clone(), after, f)
        }
        _ => Verdict::Failed(op.failure(Some(status), code, message, RetryClass::Permanent)),
    }
}

fn refused(key: sync_core::Key, upsert: bool, message: String) -> RecordFailure {
    RecordFailure {
        key,
        action: if upsert {
            super::RecordAction::Upsert
        } else {
            super::RecordAction::Delete
        },
        alternate_key: None,
        status: None,
        code: None,
        message,
        retry: RetryClass::Permanent,
    }
}

/// The error of a delivery with failed records: permanent when any failure is, listing the
/// first failures and counting all.
fn failures_error(delivery: &Delivery, outcome: &DeliveryOutcome) -> Error {
    let failures = &outcome.failures;
    let permanent = failures.iter().any(|f| f.retry == RetryClass::Permanent);
    let rate_limited = failures.iter().all(|f| f.status == Some(429));
    let kind = if rate_limited {
        ErrorKind::RateLimited
    } else {
        ErrorKind::Remote
    };
    let mut error = Error::new(
        kind,
        "dataverse did not accept every record of the delivery",
    );
    error = if permanent {
        error.permanent()
    } else {
        error.transient()
    };
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for f in failures {
        let s = f
            .status
            .map_or_else(|| "none".to_owned(), |s| s.to_string());
        *by_status.entry(s).or_default() += 1;
    }
    let listed: Vec<String> = failures
        .iter()
        .take(FAILURES_IN_ERROR)
        .map(|f| f.to_string())
        .collect();
    error
        .with_context("connector", "dataverse")
        .with_context("stream", delivery.schema.name())
        .with_context(
            "window",
            format!("({}, {}]", delivery.delta.from, delivery.delta.to),
        )
        .with_context("failed", failures.len())
        .with_context("delivered", outcome.delivered)
        .with_context(
            "statuses",
            by_status
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .with_context("records", listed.join("; "))
}

#[async_trait]
impl Sink for DataverseSink {
    fn name(&self) -> &str {
        "dataverse"
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<DeliveryReceipt> {
        let outcome = self.send(delivery).await?;
        if !outcome.failures.is_empty() {
            return Err(failures_error(delivery, &outcome));
        }
        tracing::info!(
            stream = delivery.schema.name(),
            delivered = outcome.delivered,
            batches = outcome.batches,
            race_retries = outcome.race_retries,
            "dataverse delivery accepted"
        );
        Ok(DeliveryReceipt {
            delivered: outcome.delivered,
        })
    }
}
