//! [`SqsClient`]: SQS over the AWS JSON 1.0 protocol (`POST /`, `X-Amz-Target:
//! AmazonSQS.<Action>`, `Content-Type: application/x-amz-json-1.0`), every attempt signed
//! with SigV4, errors classified by their `__type`.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_core::{Error, ErrorKind, Result};

use super::config::SqsConfig;
use super::model::{
    error_type, read_message, DeleteBatchRequest, DeleteBatchResponse, DeleteEntry, ReceiveRequest,
    ReceiveResponse, SqsMessage, SYSTEM_ATTRIBUTES,
};
use super::sigv4::Signer;
use crate::http::{HttpClient, HttpRequest, Method, RequestBody};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// AWS error types that mean "slow down" or "try again".
const TRANSIENT_TYPES: &[&str] = &[
    "ThrottlingException",
    "RequestThrottled",
    "KmsThrottled",
    "KMSThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
];

/// What a `DeleteMessageBatch` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Message ids deleted.
    pub deleted: Vec<String>,
    /// Message ids not deleted, with SQS's code (a receipt handle that expired with the
    /// visibility timeout gives `ReceiptHandleIsInvalid`: the message comes back).
    pub failed: Vec<(String, String)>,
}

/// An SQS client for one queue.
#[derive(Debug, Clone)]
pub struct SqsClient {
    config: SqsConfig,
    endpoint: url::Url,
    http: HttpClient,
}

impl SqsClient {
    /// A client for `config` (validated); no I/O until a call.
    pub fn new(config: SqsConfig) -> Result<Self> {
        config.validate()?;
        let endpoint = url::Url::parse(&config.endpoint_url())
            .map_err(|_| Error::config("sqs endpoint is not a url"))?;
        let http = HttpClient::new(config.http.clone())?;
        Ok(SqsClient {
            config,
            endpoint,
            http,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SqsConfig {
        &self.config
    }

    /// One `ReceiveMessage` long poll: up to `max_messages`, waiting up to
    /// `wait_time_seconds` when the queue is empty; the messages parsed, their entity ids read.
    pub async fn receive(&self) -> Result<Vec<SqsMessage>> {
        // The same attempt id on every retry: a FIFO queue then returns the same messages
        // to a receive retried after a lost response.
        let attempt = format!("sync-{:016x}", fastrand::u64(..));
        let request = ReceiveRequest {
            queue_url: &self.config.queue_url,
            max_number_of_messages: self.config.max_messages,
            wait_time_seconds: self.config.wait_time_seconds,
            visibility_timeout: self.config.visibility_timeout_seconds,
            attribute_names: &["All"],
            message_system_attribute_names: SYSTEM_ATTRIBUTES,
            receive_request_attempt_id: &attempt,
        };
        let response: ReceiveResponse = self.call("ReceiveMessage", &request).await?;
        let c = &self.config;
        Ok(response
            .messages
            .into_iter()
            .map(|m| read_message(m, c.envelope, &c.id_path, c.id_type))
            .collect())
    }

    /// `DeleteMessageBatch` of `messages` (at most 10 per call; more are split).
    pub async fn delete(&self, messages: &[&SqsMessage]) -> Result<DeleteOutcome> {
        let mut outcome = DeleteOutcome::default();
        for chunk in messages.chunks(10) {
            let request = DeleteBatchRequest {
                queue_url: &self.config.queue_url,
                entries: chunk
                    .iter()
                    .enumerate()
                    .map(|(i, m)| DeleteEntry {
                        id: i.to_string(),
                        receipt_handle: &m.receipt_handle,
                    })
                    .collect(),
            };
            let response: DeleteBatchResponse = self.call("DeleteMessageBatch", &request).await?;
            let by_entry = |id: &str| id.parse::<usize>().ok().and_then(|i| chunk.get(i));
            for ok in response.successful {
                if let Some(m) = by_entry(&ok.id) {
                    outcome.deleted.push(m.message_id.clone());
                }
            }
            for failed in response.failed {
                if let Some(m) = by_entry(&failed.id) {
                    let why = match failed.message {
                        Some(text) => format!("{}: {text}", failed.code),
                        None => failed.code,
                    };
                    outcome.failed.push((m.message_id.clone(), why));
                }
            }
        }
        Ok(outcome)
    }

    /// One action under the retry policy, signed afresh on every attempt.
    async fn call<I: Serialize, O: DeserializeOwned>(&self, action: &str, input: &I) -> Result<O> {
        let body = Bytes::from(serde_json::to_vec(input).expect("sqs request serializes"));
        let target = format!("AmazonSQS.{action}");
        let response = self
            .config
            .retry
            .run(
                || async {
                    let request = self.signed(&target, body.clone());
                    self.http
                        .execute(&request)
                        .await
                        .map_err(|e| reclassify(e, action))
                },
                |_, _, _| {},
            )
            .await?;
        response.json::<O>().map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                "sqs response is not the expected json",
            )
            .permanent()
            .with_context("connector", "sqs")
            .with_context("action", action)
            .with_context("reason", e.message())
        })
    }

    fn signed(&self, target: &str, body: Bytes) -> HttpRequest {
        let creds = &self.config.credentials;
        let signer = Signer {
            access_key_id: &creds.access_key_id,
            secret_access_key: &creds.secret_access_key,
            session_token: creds.session_token.as_ref(),
            region: &self.config.region,
            service: "sqs",
        };
        let headers = [("Content-Type", CONTENT_TYPE), ("X-Amz-Target", target)];
        let auth = signer.sign("POST", &self.endpoint, &headers, &body, chrono::Utc::now());
        let mut request = HttpRequest::new(Method::Post, self.endpoint.as_str())
            .with_header("X-Amz-Target", target)
            .with_body(RequestBody::Raw {
                content_type: CONTENT_TYPE.into(),
                bytes: body,
            });
        for (name, value) in auth {
            request = request.with_header(name, value);
        }
        request
    }
}

/// Adds the AWS error type to an HTTP error, and makes throttling and service errors sent as
/// 400 transient (SQS reports `ThrottlingException` with status 400).
fn reclassify(error: Error, action: &str) -> Error {
    let kind = error.context_value("body").and_then(error_type);
    let error = error
        .with_context("connector", "sqs")
        .with_context("action", action);
    let Some(kind) = kind else { return error };
    if error.is_transient() || !TRANSIENT_TYPES.contains(&kind.as_str()) {
        return error.with_context("aws_error", kind);
    }
    let new_kind = if kind.contains("Throttl") {
        ErrorKind::RateLimited
    } else {
        ErrorKind::Remote
    };
    let mut out = Error::new(new_kind, format!("sqs {action} failed: {kind}")).transient();
    for (k, v) in error.context() {
        out = out.with_context(k, v);
    }
    out.with_context("aws_error", kind)
}
