//! The EventBridge envelope shared by every AWS service event.

use serde::Deserialize;

use super::lenient;

/// `{version, id, detail-type, source, account, time, region, resources, detail}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct EventBridgeEvent<D> {
    #[serde(default, deserialize_with = "lenient::version")]
    pub version: Option<String>,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub account: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub region: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub resources: Vec<String>,
    pub detail: D,
}

/// Which of the shapes Pipewarden handles a JSON document is, judged by its keys alone, so that a
/// caller (a function's entry point, `make replay`) can route it before parsing it fully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// EventBridge event from `aws.codepipeline`.
    CodePipelineEvent,
    /// CodeStar Notifications message about a pipeline (`detailType`, `additionalAttributes`).
    CodePipelineNotification,
    /// EventBridge `CloudWatch Alarm State Change` (or Contributor State Change).
    AlarmStateChange,
    /// The payload CloudWatch sends when an alarm invokes a Lambda function directly.
    AlarmLambdaAction,
    /// Lambda's SNS event whose (first) message is a classic CloudWatch alarm notification.
    SnsAlarmMessages,
    /// Lambda's SNS event whose (first) message is a CodeStar pipeline notification.
    SnsPipelineNotifications,
    /// CodeDeploy lifecycle hook invocation `{DeploymentId, LifecycleEventHookExecutionId}`.
    CodeDeployHook,
    Unknown,
}

/// The keys of an SNS message that tell its shape; everything else is skipped unparsed.
#[derive(Deserialize, Default)]
struct InnerKeys {
    #[serde(rename = "AlarmName")]
    alarm_name: Option<serde::de::IgnoredAny>,
    source: Option<String>,
    #[serde(rename = "detailType")]
    detail_type: Option<serde::de::IgnoredAny>,
}

impl Shape {
    pub fn of(value: &serde_json::Value) -> Shape {
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("");
        if value.get("DeploymentId").is_some() && value.get("LifecycleEventHookExecutionId").is_some() {
            return Shape::CodeDeployHook;
        }
        if let Some(message) = value.pointer("/Records/0/Sns/Message").and_then(|m| m.as_str()) {
            // Only the keys that tell the shape: the message is parsed in full once, later.
            let inner: InnerKeys = serde_json::from_str(message).unwrap_or_default();
            if inner.alarm_name.is_some() {
                return Shape::SnsAlarmMessages;
            }
            if inner.source.as_deref() == Some("aws.codepipeline") && inner.detail_type.is_some() {
                return Shape::SnsPipelineNotifications;
            }
            return Shape::Unknown;
        }
        if value.get("alarmData").is_some() {
            return Shape::AlarmLambdaAction;
        }
        if text("source") == "aws.codepipeline" && value.get("detailType").is_some() {
            return Shape::CodePipelineNotification;
        }
        if text("source") == "aws.codepipeline" && value.get("detail-type").is_some() {
            return Shape::CodePipelineEvent;
        }
        if text("source") == "aws.cloudwatch" && text("detail-type").starts_with("CloudWatch Alarm") {
            return Shape::AlarmStateChange;
        }
        Shape::Unknown
    }

    /// The function that handles this shape, if any.
    pub fn function(self) -> Option<&'static str> {
        match self {
            Shape::CodePipelineEvent | Shape::CodePipelineNotification | Shape::SnsPipelineNotifications => {
                Some("pipeline-notifier")
            }
            Shape::AlarmStateChange | Shape::AlarmLambdaAction | Shape::SnsAlarmMessages => Some("alarm-fanout"),
            Shape::CodeDeployHook => Some("deploy-validator"),
            Shape::Unknown => None,
        }
    }
}
