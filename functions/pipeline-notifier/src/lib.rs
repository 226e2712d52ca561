//! pipeline-notifier: CodePipeline execution state changes in; one notification per execution
//! outcome on SNS, an audit timeline in S3, and delivery metrics out.

pub mod config;
pub mod decide;
pub mod digest;
pub mod digest_run;
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
    events_of(payload, shape, sns)
}

/// [`read_events`] of a payload already classified.
pub fn events_of(
    payload: impl Document,
    shape: Shape,
    sns: Option<pipewarden_shared::events::sns::SnsEvent>,
) -> Result<Vec<PipelineEvent>, EventError> {
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
