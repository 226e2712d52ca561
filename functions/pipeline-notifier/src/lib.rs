//! pipeline-notifier: CodePipeline execution state changes in; one notification per execution
//! outcome on SNS, an audit timeline in S3, and delivery metrics out.

pub mod config;
pub mod decide;
pub mod format;
pub mod handler;
pub mod lookups;
pub mod metrics;
pub mod timeline;

use pipewarden_shared::events::codepipeline::PipelineEvent;
use pipewarden_shared::events::eventbridge::Shape;
use pipewarden_shared::events::sns::parse_sns;
use pipewarden_shared::events::{parse_str, EventError};

/// Reads every pipeline event an invocation carries: an EventBridge event, a CodeStar
/// notification, or SNS records wrapping CodeStar notifications.
pub fn read_events(payload: serde_json::Value) -> Result<Vec<PipelineEvent>, EventError> {
    match Shape::of(&payload) {
        Shape::CodePipelineEvent => Ok(vec![PipelineEvent::from_eventbridge(payload)?]),
        Shape::CodePipelineNotification => Ok(vec![PipelineEvent::from_notification(payload)?]),
        Shape::SnsPipelineNotifications => parse_sns(payload)?
            .records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let inner: serde_json::Value = parse_str(&format!("SNS record {i} message"), &record.sns.message)?;
                PipelineEvent::from_notification(inner)
            })
            .collect(),
        other => Err(EventError::new(
            "pipeline-notifier input",
            "source",
            format!("not a CodePipeline event or notification (looks like {other:?})"),
        )),
    }
}
