//! [`SqsConfig`]: the queue, the credentials, how an entity id is found in a message, and
//! the receive, dead-letter and journal settings.

use std::fmt;

use serde::{Deserialize, Serialize};
use sync_core::{Error, Result, RetryPolicy};

use crate::http::{HttpConfig, Secret};

/// AWS credentials: an access key, optionally temporary (with a session token).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsCredentials {
    /// The access key id (not secret; it names the key).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl AwsCredentials {
    /// A long-term access key.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
        }
    }

    /// Adds the session token of temporary credentials.
    pub fn with_session_token(mut self, token: Secret) -> Self {
        self.session_token = Some(token);
        self
    }
}

/// What the body of an SQS message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// An SNS notification (`Type: Notification`, the published message as the JSON string
    /// `Message`): the subscription's raw message delivery is off.
    #[default]
    Sns,
    /// The published message itself (raw message delivery on).
    Raw,
}

/// The type of the entity id, as the stream's key column has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// Text (a JSON number is taken as its decimal text).
    #[default]
    Text,
    /// A 64-bit integer (a JSON string of digits is accepted).
    Integer,
}

/// Configuration of an [`SqsChangeFeed`](super::SqsChangeFeed).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// The queue URL, for example `https://sqs.eu-west-1.amazonaws.com/111122223333/changes.fifo`.
    pub queue_url: String,
    /// The AWS region, for example `eu-west-1`.
    pub region: String,
    /// The SQS endpoint requests go to; `None`: `https://sqs.<region>.amazonaws.com/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The credentials.
    pub credentials: AwsCredentials,
    /// The [`ChangeQueue`](sync_core::ChangeQueue) the entity ids are appended to.
    pub change_queue: String,
    /// SNS envelope or raw message.
    #[serde(default)]
    pub envelope: Envelope,
    /// Where the entity id is in the published message: a dotted path of object fields
    /// (`restaurant.id`); empty: the message is the id itself (a JSON scalar or plain text).
    pub id_path: String,
    /// The id's type.
    #[serde(default)]
    pub id_type: IdType,
    /// Messages per receive, 1 to 10.
    #[serde(default = "default_max_messages")]
    pub max_messages: u8,
    /// Long-poll wait per receive in seconds, 0 to 20.
    #[serde(default = "default_wait")]
    pub wait_time_seconds: u8,
    /// Visibility timeout of received messages; `None`: the queue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_seconds: Option<u32>,
    /// Receives after which a message that still cannot be read is reported as dead-letter
    /// bound. It is never deleted: the queue's redrive policy (with the same
    /// `maxReceiveCount`) moves it to the dead-letter queue.
    #[serde(default = "default_max_receive_count")]
    pub max_receive_count: u32,
    /// The sync name of the feed's journal in the checkpoint store; `None`:
    /// `sqs-feed/<change_queue>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// Retries of one SQS call (throttling, 5xx, transport errors).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// HTTP settings; the read timeout must exceed the long-poll wait.
    #[serde(default)]
    pub http: HttpConfig,
}

fn default_max_messages() -> u8 {
    10
}
fn default_wait() -> u8 {
    20
}
fn default_max_receive_count() -> u32 {
    5
}

impl fmt::Debug for SqsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsConfig")
            .field("queue_url", &crate::http::redact_url(&self.queue_url))
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("change_queue", &self.change_queue)
            .field("envelope", &self.envelope)
            .field("id_path", &self.id_path)
            .field("id_type", &self.id_type)
            .field("max_messages", &self.max_messages)
            .field("wait_time_seconds", &self.wait_time_seconds)
            .field(
                "visibility_timeout_seconds",
                &self.visibility_timeout_seconds,
            )
            .field("max_receive_count", &self.max_receive_count)
            .field("journal", &self.journal)
            .field("retry", &self.retry)
            .field("http", &self.http)
            .finish()
    }
}

impl SqsConfig {
    /// A builder for `queue_url` in `region`, appending to `change_queue`.
    pub fn builder(
        queue_url: impl Into<String>,
        region: impl Into<String>,
        credentials: AwsCredentials,
        change_queue: impl Into<String>,
    ) -> SqsBuilder {
        SqsBuilder {
            config: SqsConfig {
                queue_url: queue_url.into(),
                region: region.into(),
                endpoint: None,
                credentials,
                change_queue: change_queue.into(),
                envelope: Envelope::Sns,
                id_path: String::new(),
                id_type: IdType::Text,
                max_messages: default_max_messages(),
                wait_time_seconds: default_wait(),
                visibility_timeout_seconds: None,
                max_receive_count: default_max_receive_count(),
                journal: None,
                retry: RetryPolicy::default(),
                http: HttpConfig::default(),
            },
        }
    }

    /// The endpoint requests go to.
    pub fn endpoint_url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://sqs.{}.amazonaws.com/", self.region))
    }

    /// The journal's sync name.
    pub fn journal_name(&self) -> String {
        self.journal
            .clone()
            .unwrap_or_else(|| format!("sqs-feed/{}", self.change_queue))
    }

    /// Checks everything without I/O.
    pub fn validate(&self) -> Result<()> {
        let http_url = |u: &str| {
            url::Url::parse(u)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .is_some()
        };
        if !http_url(&self.queue_url) {
            return Err(Error::config("sqs queue_url is not an http(s) url"));
        }
        if !http_url(&self.endpoint_url()) {
            return Err(Error::config("sqs endpoint is not an http(s) url"));
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(Error::config("sqs region is not a region name")
                .with_context("region", &self.region));
        }
        if self.credentials.access_key_id.is_empty()
            || self.credentials.secret_access_key.expose().is_empty()
        {
            return Err(Error::config("sqs credentials are empty"));
        }
        if self.change_queue.is_empty() {
            return Err(Error::config("sqs change_queue is empty"));
        }
        if !(1..=10).contains(&self.max_messages) {
            return Err(Error::config("sqs max_messages must be 1 to 10"));
        }
        if self.wait_time_seconds > 20 {
            return Err(Error::config("sqs wait_time_seconds must be 0 to 20"));
        }
        if self.visibility_timeout_seconds.is_some_and(|v| v > 43_200) {
            return Err(Error::config("sqs visibility timeout is at most 12 hours"));
        }
        if self.max_receive_count == 0 {
            return Err(Error::config("sqs max_receive_count must be at least 1"));
        }
        if self.id_path.split('.').any(str::is_empty) && !self.id_path.is_empty() {
            return Err(Error::config("sqs id_path has an empty segment"));
        }
        let wait_ms = u64::from(self.wait_time_seconds) * 1000;
        for timeout in [self.http.read_timeout_ms, self.http.total_timeout_ms] {
            if timeout.is_some_and(|t| t <= wait_ms + 5_000) {
                return Err(Error::config(
                    "sqs http timeouts must exceed the long-poll wait by 5 s",
                ));
            }
        }
        self.http.validate()
    }
}

/// Builds an [`SqsConfig`]; [`build`](Self::build) validates without I/O.
#[derive(Debug, Clone)]
pub struct SqsBuilder {
    config: SqsConfig,
}

impl SqsBuilder {
    /// Another endpoint (a VPC endpoint, a local test server).
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.config.endpoint = Some(url.into());
        self
    }

    /// SNS envelope or raw messages.
    pub fn with_envelope(mut self, envelope: Envelope) -> Self {
        self.config.envelope = envelope;
        self
    }

    /// Where the entity id is, and its type.
    pub fn with_id(mut self, path: impl Into<String>, id_type: IdType) -> Self {
        self.config.id_path = path.into();
        self.config.id_type = id_type;
        self
    }

    /// Messages per receive.
    pub fn with_max_messages(mut self, n: u8) -> Self {
        self.config.max_messages = n;
        self
    }

    /// Long-poll wait in seconds.
    pub fn with_wait_time_seconds(mut self, s: u8) -> Self {
        self.config.wait_time_seconds = s;
        self
    }

    /// The visibility timeout of received messages.
    pub fn with_visibility_timeout_seconds(mut self, s: u32) -> Self {
        self.config.visibility_timeout_seconds = Some(s);
        self
    }

    /// Receives after which an unreadable message is reported as dead-letter bound.
    pub fn with_max_receive_count(mut self, n: u32) -> Self {
        self.config.max_receive_count = n;
        self
    }

    /// The journal's sync name.
    pub fn with_journal(mut self, name: impl Into<String>) -> Self {
        self.config.journal = Some(name.into());
        self
    }

    /// The retry policy of one SQS call.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// HTTP settings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.config.http = http;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<SqsConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}
