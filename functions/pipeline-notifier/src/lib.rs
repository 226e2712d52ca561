//! pipeline-notifier: CodePipeline execution state changes in; one notification per execution
//! outcome on SNS, an audit timeline in S3, and delivery metrics out.

pub mod config;
pub mod decide;
pub mod format;
pub mod handler;
pub mod lookups;
pub mod metrics;
pub mod timeline;
pub mod timings;

use pipewarden_shared::events::codepipeline::PipelineEvent;
use pipewarden_shared::events::eventbridge::Shape;
use pipewarden_shared::events::sns::parse_sns;
use pipewarden_shared::events::{Document, EventError};

/// Reads every pipeline event an invocation carries: an EventBridge event, a CodeStar
/// notification, or SNS records wrapping CodeStar notifications.
pub fn read_events(payload: impl Document) -> Result<Vec<PipelineEvent>, EventError> {
    let (shape, sns) = payload.classify();
    match shape {
        Shape::CodePipelineEvent => Ok(vec![PipelineEvent::from_eventbridge(payload)?]),
        Shape::CodePipelineNotification => Ok(vec![PipelineEvent::from_notification(payload)?]),
        Shape::SnsPipelineNotifications => match sns {
            Some(read) => read,
            None => parse_sns(payload)?,
        }
        .records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            PipelineEvent::from_notification(record.sns.message.as_str()).map_err(|mut e| {
                e.event = format!("{} (SNS record {i}, message {})", e.event, record.sns.message_id);
                e
            })
        })
        .collect(),
        other => Err(EventError::new(
            "pipeline-notifier input",
            "source",
            format!("not a CodePipeline event or notification (looks like {other:?})"),
        )),
    }
}
