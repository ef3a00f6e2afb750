//! SQS JSON protocol shapes (ReceiveMessage, DeleteMessageBatch, errors), the SNS envelope,
//! and a received message with its entity id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sync_core::{Key, SequenceNo, Value};

use super::config::{Envelope, IdType};

/// A received message, its attributes and the entity id it names.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsMessage {
    /// SQS's message id (the same on every redelivery).
    pub message_id: String,
    /// The receipt handle of this receive (needed to delete it).
    pub receipt_handle: String,
    /// The body as received.
    pub body: String,
    /// The FIFO queue's sequence number (128 bits; per message group, with gaps).
    pub sequence_number: Option<SequenceNo>,
    /// The FIFO message group.
    pub message_group_id: Option<String>,
    /// The FIFO deduplication id.
    pub deduplication_id: Option<String>,
    /// How many times the message was received, this time included.
    pub receive_count: u32,
    /// The SNS notification's message id, when the body is an SNS envelope.
    pub sns_message_id: Option<String>,
    /// The SNS FIFO topic's own sequence number (not the queue's).
    pub sns_sequence_number: Option<SequenceNo>,
    /// The entity id, or why none could be read.
    pub entity: std::result::Result<Key, String>,
}

impl SqsMessage {
    /// The key the feed deduplicates on: the SNS message id when there is one (it survives
    /// SNS redelivering into the queue), else SQS's.
    pub fn idempotency_key(&self) -> &str {
        self.sns_message_id.as_deref().unwrap_or(&self.message_id)
    }
}

/// `ReceiveMessage` input.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveRequest<'a> {
    pub(crate) queue_url: &'a str,
    pub(crate) max_number_of_messages: u8,
    pub(crate) wait_time_seconds: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) visibility_timeout: Option<u32>,
    pub(crate) attribute_names: &'a [&'a str],
    pub(crate) message_system_attribute_names: &'a [&'a str],
    pub(crate) receive_request_attempt_id: &'a str,
}

/// The system attributes asked for.
pub(crate) const SYSTEM_ATTRIBUTES: &[&str] = &[
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
];

/// `ReceiveMessage` output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveResponse {
    #[serde(default)]
    pub(crate) messages: Vec<WireMessage>,
}

/// One message as SQS sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireMessage {
    pub(crate) message_id: String,
    pub(crate) receipt_handle: String,
    pub(crate) body: String,
    #[serde(default)]
    pub(crate) attributes: BTreeMap<String, String>,
}

/// `DeleteMessageBatch` input.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteBatchRequest<'a> {
    pub(crate) queue_url: &'a str,
    pub(crate) entries: Vec<DeleteEntry<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteEntry<'a> {
    pub(crate) id: String,
    pub(crate) receipt_handle: &'a str,
}

/// `DeleteMessageBatch` output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteBatchResponse {
    #[serde(default)]
    pub(crate) successful: Vec<DeleteOk>,
    #[serde(default)]
    pub(crate) failed: Vec<DeleteFailed>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteOk {
    pub(crate) id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteFailed {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// The SNS notification envelope.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    message_id: Option<String>,
    sequence_number: Option<String>,
    message: String,
}

/// Turns a wire message into an [`SqsMessage`]: attributes parsed (sequence numbers as
/// `u128`), the envelope unwrapped and the entity id read. A wrong body is not an error here:
/// it is kept in `entity` as the reason.
pub(crate) fn read_message(
    wire: WireMessage,
    envelope: Envelope,
    id_path: &str,
    id_type: IdType,
) -> SqsMessage {
    let attr = |name: &str| wire.attributes.get(name).cloned();
    let seq = |s: Option<String>| s.and_then(|s| s.parse::<SequenceNo>().ok());
    let mut message = SqsMessage {
        sequence_number: seq(attr("SequenceNumber")),
        message_group_id: attr("MessageGroupId"),
        deduplication_id: attr("MessageDeduplicationId"),
        receive_count: attr("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        sns_message_id: None,
        sns_sequence_number: None,
        entity: Err(String::new()),
        message_id: wire.message_id,
        receipt_handle: wire.receipt_handle,
        body: wire.body,
    };
    let published = match envelope {
        Envelope::Raw => Ok(message.body.clone()),
        Envelope::Sns => match serde_json::from_str::<SnsEnvelope>(&message.body) {
            Ok(env) if env.kind == "Notification" => {
                message.sns_message_id = env.message_id;
                message.sns_sequence_number = seq(env.sequence_number);
                Ok(env.message)
            }
            Ok(env) => Err(format!(
                "sns envelope of type {:?}, not Notification",
                env.kind
            )),
            Err(e) => Err(format!("body is not an sns notification: {e}")),
        },
    };
    message.entity = published.and_then(|text| entity_id(&text, id_path, id_type));
    message
}

/// The entity id at `path` in the published message `text`.
pub(crate) fn entity_id(
    text: &str,
    path: &str,
    id_type: IdType,
) -> std::result::Result<Key, String> {
    let parsed: std::result::Result<serde_json::Value, _> = serde_json::from_str(text);
    let mut node = match (parsed, path.is_empty()) {
        (Ok(v), _) => v,
        // A plain-text message is its own id.
        (Err(_), true) => serde_json::Value::String(text.trim().to_owned()),
        (Err(e), false) => return Err(format!("message is not json: {e}")),
    };
    for field in path.split('.').filter(|f| !f.is_empty()) {
        node = match node {
            serde_json::Value::Object(mut map) => map
                .remove(field)
                .ok_or_else(|| format!("message has no field {path:?}"))?,
            _ => return Err(format!("message has no object at {path:?}")),
        };
    }
    let value = match (id_type, node) {
        (IdType::Text, serde_json::Value::String(s)) if !s.is_empty() => Value::from(s),
        (IdType::Text, serde_json::Value::Number(n)) => Value::from(n.to_string()),
        (IdType::Integer, serde_json::Value::Number(n)) => {
            Value::from(n.as_i64().ok_or("entity id is not a 64-bit integer")?)
        }
        (IdType::Integer, serde_json::Value::String(s)) => Value::from(
            s.parse::<i64>()
                .map_err(|_| "entity id is not a 64-bit integer".to_owned())?,
        ),
        (_, other) => return Err(format!("entity id at {path:?} is not a scalar id: {other}")),
    };
    Ok(Key(vec![value]))
}

/// The `__type` of an SQS JSON error body (`com.amazonaws.sqs#QueueDoesNotExist` gives
/// `QueueDoesNotExist`).
pub(crate) fn error_type(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    let start = body.find('{')?;
    let parsed: ErrorBody = serde_json::from_str(body[start..].trim_end_matches('…')).ok()?;
    parsed
        .kind
        .map(|k| k.rsplit('#').next().unwrap_or(&k).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_by_path_and_typed() {
        let msg = r#"{"entity":"restaurant","key":"674","n":7,"deep":{"id":12}}"#;
        assert_eq!(entity_id(msg, "key", IdType::Text), Ok(Key::text("674")));
        assert_eq!(entity_id(msg, "n", IdType::Text), Ok(Key::text("7")));
        assert_eq!(
            entity_id(msg, "deep.id", IdType::Integer),
            Ok(Key(vec![Value::from(12)]))
        );
        assert!(entity_id(msg, "missing", IdType::Text).is_err());
        assert!(entity_id(msg, "deep", IdType::Text).is_err());
        assert_eq!(entity_id("828", "", IdType::Text), Ok(Key::text("828")));
        assert_eq!(entity_id("abc-1", "", IdType::Text), Ok(Key::text("abc-1")));
    }

    #[test]
    fn error_types_lose_their_namespace() {
        let body = r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"nope"}"#;
        assert_eq!(error_type(body).as_deref(), Some("QueueDoesNotExist"));
        assert_eq!(error_type("<html/>"), None);
    }
}
