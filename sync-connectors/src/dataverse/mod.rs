//! Dynamics 365 / Dataverse Web API sink (feature `dataverse`).
//!
//! [`DataverseSink`] implements [`sync_core::Sink`]: the promoted rows of a window are
//! upserted by alternate key and the deleted keys deleted, in `$batch` requests.
//!
//! One delivery, followed through the code:
//!
//! ```text
//!  Delivery { upserts, deletes }        from the strategy, after promotion
//!    |  model.rs   Resolved::upsert / delete   row -> PATCH accounts(accountnumber='A''1')
//!    |                                         body: mapped attributes and lookups, never the key
//!    v
//!  batch.rs  build                      multipart/mixed, changesets, CRLF, Content-ID per op
//!    |  HttpClient::execute_with_retry  OAuth2 bearer, rate limit, 429 + Retry-After retried
//!    v
//!  batch.rs  parse                      per-operation status, headers, error body
//!    |  sink.rs    judge                done / insert race -> If-Match: * update /
//!    |                                  429, 5xx, rolled back -> next round / failed
//!    v
//!  DeliveryOutcome { delivered, failures }   -> DeliveryReceipt, or an error naming records
//! ```
//!
//! Facts of the API this follows (shared/reference/api-semantics.md, section 4):
//! - no conditional header is an upsert; the answer is 204 whether it created or updated;
//! - alternate key values go in the URL, strings quoted with `'` doubled; values holding
//!   `/ < > * % & : \ ? + #` cannot be addressed by key at all and are refused before sending;
//!   key attributes are not repeated in the body (the body would win over the URL);
//! - at most 1000 operations per `$batch`; changesets are atomic; with
//!   `Prefer: odata.continue-on-error` every operation answers for itself;
//! - service protection: 6000 requests per 300 s, 20 minutes of execution time per 300 s and
//!   52 concurrent requests per user and server, enforced with 429 and `Retry-After`: the
//!   default [`RateLimit`](crate::http::RateLimit) stays under them and 429s wait as told;
//! - concurrent upserts of a missing key race: the loser gets "A record with matching key
//!   values already exists" and is sent again as an update.
//!
//! Limits: only mapped columns are sent, all of them (the sink does not know which changed);
//! a NULL lookup column leaves the lookup as it is.

mod batch;
mod config;
mod model;
mod sink;

pub use config::{
    default_rate_limit, AttributeMapping, DataverseBuilder, DataverseConfig, EntityMapping,
    LookupMapping, MAX_BATCH_OPERATIONS,
};
pub use model::{DeliveryOutcome, RecordAction, RecordFailure};
pub use sink::DataverseSink;
