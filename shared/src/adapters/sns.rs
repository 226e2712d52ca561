use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::classify;
use crate::deadline::bounded;
use crate::ports::{BatchEntryOutcome, FailureKind, OutboundMessage, PortError, Publisher};

/// Publishes with the SNS SDK client.
#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
}

impl SnsPublisher {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }
}

fn attributes(
    message: &OutboundMessage,
) -> Result<std::collections::HashMap<String, MessageAttributeValue>, PortError> {
    message
        .attributes
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map(|v| (name.to_string(), v))
                .map_err(|e| PortError::new("SNS", "Publish", FailureKind::Rejected, e.to_string()))
        })
        .collect()
}

impl Publisher for SnsPublisher {
    async fn publish(&self, topic_arn: &str, message: &OutboundMessage) -> Result<String, PortError> {
        let request = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .set_subject(message.subject.clone())
            .message(&message.body)
            .set_message_attributes(Some(attributes(message)?));
        let output =
            bounded("SNS", "Publish", async { request.send().await.map_err(|e| classify("SNS", "Publish", &e)) })
                .await?;
        Ok(output.message_id.unwrap_or_default())
    }

    async fn publish_batch(
        &self,
        topic_arn: &str,
        messages: &[OutboundMessage],
    ) -> Result<Vec<BatchEntryOutcome>, PortError> {
        let mut entries = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let entry = PublishBatchRequestEntry::builder()
                .id(index.to_string())
                .set_subject(message.subject.clone())
                .message(&message.body)
                .set_message_attributes(Some(attributes(message)?))
                .build()
                .map_err(|e| PortError::new("SNS", "PublishBatch", FailureKind::Rejected, e.to_string()))?;
            entries.push(entry);
        }
        let request = self.client.publish_batch().topic_arn(topic_arn).set_publish_batch_request_entries(Some(entries));
        let output = bounded("SNS", "PublishBatch", async {
            request.send().await.map_err(|e| classify("SNS", "PublishBatch", &e))
        })
        .await?;
        let mut outcomes = Vec::with_capacity(messages.len());
        for ok in output.successful.unwrap_or_default() {
            if let Some(index) = ok.id.as_deref().and_then(|id| id.parse().ok()) {
                outcomes.push(BatchEntryOutcome { index, result: Ok(ok.message_id.unwrap_or_default()) });
            }
        }
        for failed in output.failed.unwrap_or_default() {
            if let Ok(index) = failed.id.parse() {
                let kind = if failed.sender_fault { FailureKind::Rejected } else { FailureKind::ServerError };
                let message = format!("{}: {}", failed.code, failed.message.unwrap_or_default());
                outcomes.push(BatchEntryOutcome {
                    index,
                    result: Err(PortError::new("SNS", "PublishBatch", kind, message)),
                });
            }
        }
        outcomes.sort_by_key(|o| o.index);
        Ok(outcomes)
    }
}
