//! The outbound effects Pipewarden has on the world, one small trait each. Handlers are generic
//! over these; [`crate::adapters`] holds the one real SDK adapter of each.

use std::collections::BTreeMap;
use std::future::Future;

/// An outbound call that failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} {operation} failed ({kind}): {message}")]
pub struct PortError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 429 or a throttling error code.
    Throttled,
    /// 5xx from the service.
    ServerError,
    /// No answer in time.
    Timeout,
    /// The request never got an answer (connection refused, reset, DNS).
    Network,
    /// The service refused the request (4xx other than throttling): retrying the same call will not help.
    Rejected,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::Throttled => "throttled",
            FailureKind::ServerError => "server error",
            FailureKind::Timeout => "timeout",
            FailureKind::Network => "network error",
            FailureKind::Rejected => "rejected",
        })
    }
}

impl PortError {
    pub fn new(service: &'static str, operation: &'static str, kind: FailureKind, message: impl Into<String>) -> Self {
        Self { service, operation, kind, message: message.into() }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind != FailureKind::Rejected
    }

    /// Whether the call may have taken effect although it failed: no answer came back (the time ran
    /// out, or the connection failed) after the request may have been sent.
    pub fn may_have_taken_effect(&self) -> bool {
        matches!(self.kind, FailureKind::Timeout | FailureKind::Network)
    }
}

/// A message to publish to an SNS topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundMessage {
    /// Plain text, at most 100 characters (SNS's limit for email subjects).
    pub subject: Option<String>,
    pub body: String,
    /// String message attributes, so subscribers can use filter policies. Their names are ours,
    /// fixed: no string is made for them.
    pub attributes: BTreeMap<&'static str, String>,
}

/// The outcome of one entry of a batch publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntryOutcome {
    /// Index of the message in the batch given.
    pub index: usize,
    pub result: Result<String, PortError>,
}

/// Publishes to SNS topics.
pub trait Publisher: Send + Sync {
    /// Publishes one message; returns SNS's message id.
    fn publish(
        &self,
        topic_arn: &str,
        message: &OutboundMessage,
    ) -> impl Future<Output = Result<String, PortError>> + Send;

    /// Publishes up to ten messages to one topic in one call; each entry succeeds or fails alone.
    fn publish_batch(
        &self,
        topic_arn: &str,
        messages: &[OutboundMessage],
    ) -> impl Future<Output = Result<Vec<BatchEntryOutcome>, PortError>> + Send;
}

/// An object read from the store, with the ETag that a conditional write can be made against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Vec<u8>,
    pub etag: String,
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    Always,
    /// Only if no object exists under the key (`If-None-Match: *`).
    IfAbsent,
    /// Only if the object still has this ETag (`If-Match`).
    IfMatches(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        etag: String,
    },
    /// The condition did not hold: someone else wrote first.
    ConditionFailed,
}

/// Reads and writes objects (the S3 audit bucket).
pub trait ObjectStore: Send + Sync {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<StoredObject>, PortError>> + Send;

    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> impl Future<Output = Result<PutOutcome, PortError>> + Send;

    /// The keys under `prefix`, in key order, at most `limit` of them (ListObjectsV2, following
    /// its continuation tokens). A store that cannot list says so.
    fn list(&self, prefix: &str, limit: usize) -> impl Future<Output = Result<Vec<String>, PortError>> + Send {
        let _ = (prefix, limit);
        async { Err(PortError::new("S3", "ListObjectsV2", FailureKind::Rejected, "this store cannot list its keys")) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HookStatus {
    Succeeded,
    Failed,
}

impl HookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Succeeded => "Succeeded",
            HookStatus::Failed => "Failed",
        }
    }
}

/// Reports a CodeDeploy lifecycle hook's outcome (`PutLifecycleEventHookExecutionStatus`).
pub trait HookReporter: Send + Sync {
    fn report(
        &self,
        deployment_id: &str,
        hook_execution_id: &str,
        status: HookStatus,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}
