//! Lambda's SNS event: `{"Records": [{"EventSource": "aws:sns", "Sns": {...}}]}`.
//!
//! Our own type rather than `aws_lambda_events::sns::SnsEvent`: that one requires the signature
//! and URL fields of every record and a strict timestamp, and we need only the message and ids.
//! Only what is read is modelled: the other fields (`Subject`, `Timestamp`, the signature and
//! URLs) are skipped by the parse without being copied.

use serde::Deserialize;

use super::{lenient, Document, EventError};

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SnsEvent {
    #[serde(rename = "Records", deserialize_with = "lenient::objects")]
    pub records: Vec<SnsRecord>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SnsRecord {
    #[serde(rename = "Sns", deserialize_with = "lenient::map_only")]
    pub sns: SnsMessage,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SnsMessage {
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "TopicArn", default, deserialize_with = "lenient::null_as_default")]
    pub topic_arn: String,
    #[serde(rename = "Message")]
    pub message: String,
}

pub fn parse_sns(document: impl Document) -> Result<SnsEvent, EventError> {
    document.parse("SNS")
}
