//! The two actions the fake serves: `ReceiveMessage` (FIFO group blocking, visibility
//! timeout, long poll on the logical clock, redrive) and `DeleteMessageBatch`.

use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use wiremock::ResponseTemplate;

use super::sigv4::hex;
use super::{aws_error, State};

fn visible(st: &State) -> Vec<usize> {
    // FIFO: per group, the messages before the first one in flight.
    let mut blocked = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, m) in st.messages.iter().enumerate() {
        if blocked.contains(&m.group) {
            continue;
        }
        if m.visible_at > st.clock {
            blocked.insert(m.group.clone());
            continue;
        }
        out.push(i);
    }
    out
}

pub(super) fn receive(st: &mut State, body: &Json) -> ResponseTemplate {
    let max = body["MaxNumberOfMessages"].as_u64().unwrap_or(1);
    if !(1..=10).contains(&max) {
        return aws_error(
            400,
            "InvalidParameterValue",
            "MaxNumberOfMessages must be 1 to 10",
        );
    }
    let wait = body["WaitTimeSeconds"].as_u64().unwrap_or(0);
    st.waits.push(wait);
    let names = body["MessageSystemAttributeNames"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for want in [
        "SequenceNumber",
        "MessageGroupId",
        "ApproximateReceiveCount",
    ] {
        if !names.iter().any(|n| n == want || n == "All") {
            st.violations.push(format!("{want} not asked for"));
        }
    }
    let mut picked = visible(st);
    if picked.is_empty() && wait > 0 {
        // Long poll without real waiting: jump to the next message that becomes visible.
        let next = st
            .messages
            .iter()
            .map(|m| m.visible_at)
            .filter(|&t| t > st.clock)
            .min();
        if let Some(t) = next.filter(|&t| t <= st.clock + wait) {
            st.clock = t;
        } else {
            st.clock += wait;
        }
        picked = visible(st);
    }
    let timeout = body["VisibilityTimeout"]
        .as_u64()
        .unwrap_or(st.visibility_timeout);
    let mut out = Vec::new();
    let mut moved = Vec::new();
    // FIFO returns consecutive messages of a group together; a few groups are enough here.
    let mut taken = 0;
    for i in picked {
        if taken == max {
            break;
        }
        let clock = st.clock;
        let redrive = st.max_receive_count;
        let m = &mut st.messages[i];
        if redrive.is_some_and(|r| m.receive_count >= r) {
            moved.push(i);
            continue;
        }
        m.receive_count += 1;
        m.visible_at = clock + timeout;
        let receipt = format!("AQEB{}-{}", m.id, m.receive_count);
        m.receipt = Some(receipt.clone());
        out.push(json!({
            "MessageId": m.id,
            "ReceiptHandle": receipt,
            "MD5OfBody": hex(&Sha256::digest(m.body.as_bytes()))[..32].to_owned(),
            "Body": m.body,
            "Attributes": {
                "ApproximateReceiveCount": m.receive_count.to_string(),
                "SentTimestamp": (1_700_000_000_000u64 + m.sent * 1000).to_string(),
                "ApproximateFirstReceiveTimestamp": (1_700_000_000_000u64 + clock * 1000).to_string(),
                "SequenceNumber": m.seq.to_string(),
                "MessageGroupId": m.group,
                "MessageDeduplicationId": m.dedup,
                "SenderId": "AIDAIO23YVJENQZJOL4VO",
            }
        }));
        taken += 1;
    }
    for i in moved.into_iter().rev() {
        let m = st.messages.remove(i);
        st.dead_letters.push(m);
    }
    let body = if out.is_empty() {
        json!({})
    } else {
        json!({ "Messages": out })
    };
    ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/x-amz-json-1.0")
}

pub(super) fn delete_batch(st: &mut State, body: &Json) -> ResponseTemplate {
    let entries = body["Entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() || entries.len() > 10 {
        return aws_error(400, "TooManyEntriesInBatchRequest", "1 to 10 entries");
    }
    let fail_all = std::mem::take(&mut st.fail_next_deletes);
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for e in entries {
        let id = e["Id"].as_str().unwrap_or("").to_owned();
        let handle = e["ReceiptHandle"].as_str().unwrap_or("");
        let clock = st.clock;
        let pos = st
            .messages
            .iter()
            .position(|m| m.receipt.as_deref() == Some(handle) && m.visible_at > clock);
        match pos {
            Some(i) if !fail_all => {
                let m = st.messages.remove(i);
                st.deleted.push(m.id);
                ok.push(json!({"Id": id}));
            }
            _ => failed.push(json!({
                "Id": id, "SenderFault": true, "Code": "ReceiptHandleIsInvalid",
                "Message": "The receipt handle has expired."
            })),
        }
    }
    ResponseTemplate::new(200).set_body_raw(
        json!({"Successful": ok, "Failed": failed}).to_string(),
        "application/x-amz-json-1.0",
    )
}
