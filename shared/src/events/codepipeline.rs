//! CodePipeline execution state changes: EventBridge events (V1 and V2 pipelines) and the
//! CodeStar Notifications shape.

use serde::{Deserialize, Deserializer};

use super::eventbridge::EventBridgeEvent;
use super::{lenient, Document, EventError};

pub const PIPELINE_DETAIL_TYPE: &str = "CodePipeline Pipeline Execution State Change";
pub const STAGE_DETAIL_TYPE: &str = "CodePipeline Stage Execution State Change";
pub const ACTION_DETAIL_TYPE: &str = "CodePipeline Action Execution State Change";

/// Which level of the pipeline an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Pipeline,
    Stage,
    Action,
}

impl Level {
    pub fn from_detail_type(detail_type: &str) -> Option<Level> {
        match detail_type {
            PIPELINE_DETAIL_TYPE => Some(Level::Pipeline),
            STAGE_DETAIL_TYPE => Some(Level::Stage),
            ACTION_DETAIL_TYPE => Some(Level::Action),
            _ => None,
        }
    }
}

/// Execution states across pipeline, stage and action events; anything new AWS adds is kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ExecutionState {
    Started,
    Succeeded,
    Failed,
    Stopping,
    Stopped,
    Superseded,
    Resumed,
    Canceled,
    Abandoned,
    Other(String),
}

impl ExecutionState {
    pub fn parse(text: &str) -> ExecutionState {
        match text.to_ascii_uppercase().as_str() {
            "STARTED" => Self::Started,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "STOPPING" => Self::Stopping,
            "STOPPED" => Self::Stopped,
            "SUPERSEDED" => Self::Superseded,
            "RESUMED" => Self::Resumed,
            "CANCELED" | "CANCELLED" => Self::Canceled,
            "ABANDONED" => Self::Abandoned,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Started => "STARTED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Superseded => "SUPERSEDED",
            Self::Resumed => "RESUMED",
            Self::Canceled => "CANCELED",
            Self::Abandoned => "ABANDONED",
            Self::Other(s) => s,
        }
    }

    /// A pipeline execution in this state will not change again.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped | Self::Superseded | Self::Canceled)
    }
}

impl<'de> Deserialize<'de> for ExecutionState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ExecutionState::parse(&String::deserialize(d)?))
    }
}

/// `detail` of a CodePipeline state-change event (pipeline, stage or action level).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PipelineDetail {
    pub pipeline: String,
    #[serde(rename = "execution-id")]
    pub execution_id: String,
    pub state: ExecutionState,
    /// The pipeline's structure version: `1`, `13.0` or `"1"`.
    #[serde(default, deserialize_with = "lenient::version")]
    pub version: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(rename = "type", default)]
    pub action_type: Option<ActionType>,
    #[serde(rename = "execution-result", default)]
    pub execution_result: Option<ExecutionResult>,
    #[serde(rename = "execution-trigger", default)]
    pub execution_trigger: Option<ExecutionTrigger>,
    #[serde(rename = "start-time", default)]
    pub start_time: Option<String>,
    #[serde(rename = "pipeline-execution-attempt", default, deserialize_with = "lenient::whole_number")]
    pub pipeline_execution_attempt: Option<u64>,
    #[serde(rename = "stage-execution-attempt", default, deserialize_with = "lenient::whole_number")]
    pub stage_execution_attempt: Option<u64>,
    #[serde(rename = "action-execution-attempt", default, deserialize_with = "lenient::whole_number")]
    pub action_execution_attempt: Option<u64>,
    #[serde(rename = "execution-mode", default)]
    pub execution_mode: Option<String>,
}

/// `type` of an action: `{owner, provider, category, version}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ActionType {
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient::version")]
    pub version: Option<String>,
}

impl ActionType {
    pub fn is_manual_approval(&self) -> bool {
        self.category.as_deref() == Some("Approval")
    }
}

/// `execution-result` of an action (and of V2 pipeline-level failures).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ExecutionResult {
    #[serde(rename = "external-execution-url", default, deserialize_with = "lenient::non_empty")]
    pub external_execution_url: Option<String>,
    #[serde(rename = "external-execution-summary", default, deserialize_with = "lenient::non_empty")]
    pub external_execution_summary: Option<String>,
    #[serde(rename = "external-execution-id", default, deserialize_with = "lenient::non_empty")]
    pub external_execution_id: Option<String>,
    #[serde(rename = "error-code", default, deserialize_with = "lenient::non_empty")]
    pub error_code: Option<String>,
}

/// `execution-trigger` of a V2 pipeline execution.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ExecutionTrigger {
    #[serde(rename = "trigger-type", default)]
    pub trigger_type: Option<String>,
    #[serde(rename = "trigger-detail", default)]
    pub trigger_detail: Option<String>,
    #[serde(rename = "commit-id", default)]
    pub commit_id: Option<String>,
    #[serde(rename = "commit-message", default)]
    pub commit_message: Option<String>,
    #[serde(rename = "author-display-name", default)]
    pub author_display_name: Option<String>,
    #[serde(rename = "author-id", default)]
    pub author_id: Option<String>,
    #[serde(rename = "author-email", default)]
    pub author_email: Option<String>,
    /// When the commit was authored, where the source provider says.
    #[serde(rename = "author-date", default)]
    pub author_date: Option<String>,
    #[serde(rename = "branch-name", default)]
    pub branch_name: Option<String>,
    #[serde(rename = "tag-name", default)]
    pub tag_name: Option<String>,
    #[serde(rename = "full-repository-name", default)]
    pub full_repository_name: Option<String>,
    #[serde(rename = "provider-type", default)]
    pub provider_type: Option<String>,
}

/// `additionalAttributes` of a CodeStar Notifications message.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct AdditionalAttributes {
    #[serde(rename = "failedActionCount", default, deserialize_with = "lenient::whole_number")]
    pub failed_action_count: Option<u64>,
    #[serde(rename = "failedActions", default, deserialize_with = "lenient::null_as_default")]
    pub failed_actions: Vec<FailedAction>,
    #[serde(rename = "failedStage", default)]
    pub failed_stage: Option<String>,
    #[serde(rename = "sourceActions", default, deserialize_with = "lenient::null_as_default")]
    pub source_actions: Vec<SourceAction>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct FailedAction {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(rename = "additionalInformation", default)]
    pub additional_information: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct SourceAction {
    #[serde(rename = "sourceActionName", default)]
    pub source_action_name: Option<String>,
    #[serde(rename = "sourceActionProvider", default)]
    pub source_action_provider: Option<String>,
    #[serde(rename = "sourceActionVariables", default)]
    pub source_action_variables: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The CodeStar Notifications shape (what a notification rule sends to SNS or chat).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CodeStarNotification {
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub account: String,
    #[serde(rename = "detailType")]
    pub detail_type: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub region: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub source: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(rename = "notificationRuleArn", default)]
    pub notification_rule_arn: Option<String>,
    pub detail: PipelineDetail,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub resources: Vec<String>,
    #[serde(rename = "additionalAttributes", default, deserialize_with = "lenient::null_as_default")]
    pub additional_attributes: AdditionalAttributes,
}

/// One CodePipeline state change, whichever shape it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineEvent {
    /// EventBridge's event id; for CodeStar notifications (which carry none) a stable id made of
    /// the execution, level, stage, action and state, so duplicates still collapse.
    pub event_id: String,
    pub level: Level,
    pub account: String,
    pub region: String,
    pub time: Option<String>,
    pub detail: PipelineDetail,
    pub additional: Option<AdditionalAttributes>,
}

impl PipelineEvent {
    /// Reads an EventBridge CodePipeline event.
    pub fn from_eventbridge(document: impl Document) -> Result<PipelineEvent, EventError> {
        let event: EventBridgeEvent<PipelineDetail> = document.parse("CodePipeline EventBridge")?;
        let level = Level::from_detail_type(&event.detail_type).ok_or_else(|| {
            EventError::new(
                "CodePipeline EventBridge",
                "detail-type",
                format!("{:?} is not a pipeline, stage or action execution state change", event.detail_type),
            )
        })?;
        let region = event.detail.region.clone().filter(|r| !r.is_empty()).unwrap_or(event.region);
        Ok(PipelineEvent {
            event_id: event.id,
            level,
            account: event.account,
            region,
            time: event.time,
            detail: event.detail,
            additional: None,
        })
    }

    /// Reads a CodeStar Notifications message about a pipeline.
    pub fn from_notification(document: impl Document) -> Result<PipelineEvent, EventError> {
        let n: CodeStarNotification = document.parse("CodeStar pipeline notification")?;
        let level = Level::from_detail_type(&n.detail_type).ok_or_else(|| {
            EventError::new(
                "CodeStar pipeline notification",
                "detailType",
                format!("{:?} is not a pipeline, stage or action execution state change", n.detail_type),
            )
        })?;
        let d = &n.detail;
        let event_id = format!(
            "{}:{:?}:{}:{}:{}",
            d.execution_id,
            level,
            d.stage.as_deref().unwrap_or("-"),
            d.action.as_deref().unwrap_or("-"),
            d.state.as_str()
        );
        let region = n.detail.region.clone().filter(|r| !r.is_empty()).unwrap_or(n.region);
        Ok(PipelineEvent {
            event_id,
            level,
            account: n.account,
            region,
            time: n.time,
            detail: n.detail,
            additional: Some(n.additional_attributes),
        })
    }

    /// The execution attempt (V2 pipelines retry failed stages as new attempts); 1 when absent.
    pub fn attempt(&self) -> u64 {
        self.detail.pipeline_execution_attempt.unwrap_or(1)
    }

    /// A manual approval action now waiting for someone.
    pub fn is_approval_waiting(&self) -> bool {
        self.level == Level::Action
            && self.detail.state == ExecutionState::Started
            && self.detail.action_type.as_ref().map(ActionType::is_manual_approval).unwrap_or(false)
    }
}
