//! CloudWatch alarm state changes in the three shapes AWS delivers them:
//! EventBridge `CloudWatch Alarm State Change`, the payload of an alarm's Lambda action
//! (`alarmData`), and the classic alarm message that SNS wraps.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::eventbridge::EventBridgeEvent;
use super::{lenient, parse_str, parse_value, EventError};

pub const ALARM_DETAIL_TYPE: &str = "CloudWatch Alarm State Change";
pub const CONTRIBUTOR_DETAIL_TYPE: &str = "CloudWatch Alarm Contributor State Change";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlarmStateValue {
    Ok,
    Alarm,
    InsufficientData,
    Other(String),
}

impl AlarmStateValue {
    pub fn parse(text: &str) -> AlarmStateValue {
        match text.to_ascii_uppercase().as_str() {
            "OK" => Self::Ok,
            "ALARM" => Self::Alarm,
            "INSUFFICIENT_DATA" => Self::InsufficientData,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
            Self::Other(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for AlarmStateValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(AlarmStateValue::parse(&String::deserialize(d)?))
    }
}

impl std::fmt::Display for AlarmStateValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `state` / `previousState` of an alarm.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AlarmState {
    pub value: AlarmStateValue,
    #[serde(default)]
    pub reason: Option<String>,
    /// A JSON document in a string; read it with [`AlarmState::reason_data`].
    #[serde(rename = "reasonData", default)]
    pub reason_data: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Set when a composite alarm's actions were suppressed (`Alarm`, `WaitPeriod`, `ExtensionPeriod`).
    #[serde(rename = "actionsSuppressedBy", default)]
    pub actions_suppressed_by: Option<String>,
    #[serde(rename = "actionsSuppressedReason", default)]
    pub actions_suppressed_reason: Option<String>,
    /// Set when the alarm could not be evaluated (for example `PARTIAL_DATA`).
    #[serde(rename = "evaluationState", default)]
    pub evaluation_state: Option<String>,
}

impl AlarmState {
    /// The `reasonData` JSON, read leniently; `None` when absent or not JSON.
    pub fn reason_data(&self) -> Option<ReasonData> {
        let text = self.reason_data.as_deref()?;
        serde_json::from_str(text).ok()
    }
}

/// What `reasonData` holds for metric, metric-math, anomaly and composite alarms.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ReasonData {
    #[serde(default, deserialize_with = "lenient::version")]
    pub version: Option<String>,
    #[serde(rename = "queryDate", default)]
    pub query_date: Option<String>,
    #[serde(rename = "startDate", default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub statistic: Option<String>,
    #[serde(default, deserialize_with = "lenient::whole_number")]
    pub period: Option<u64>,
    #[serde(rename = "recentDatapoints", default, deserialize_with = "lenient::null_as_default")]
    pub recent_datapoints: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient::decimal")]
    pub threshold: Option<f64>,
    #[serde(rename = "evaluatedDatapoints", default, deserialize_with = "lenient::null_as_default")]
    pub evaluated_datapoints: Vec<EvaluatedDatapoint>,
    #[serde(rename = "triggeringAlarms", default, deserialize_with = "lenient::null_as_default")]
    pub triggering_alarms: Vec<TriggeringAlarm>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct EvaluatedDatapoint {
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(rename = "sampleCount", default, deserialize_with = "lenient::decimal")]
    pub sample_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::decimal")]
    pub value: Option<f64>,
    #[serde(default, deserialize_with = "lenient::decimal")]
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TriggeringAlarm {
    pub arn: String,
    #[serde(default)]
    pub state: Option<TriggeringAlarmState>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TriggeringAlarmState {
    pub value: AlarmStateValue,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `configuration` of an alarm in EventBridge and Lambda-action payloads.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct AlarmConfiguration {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub metrics: Vec<MetricQuery>,
    /// Composite alarms: the rule over child alarms.
    #[serde(rename = "alarmRule", default)]
    pub alarm_rule: Option<String>,
    #[serde(rename = "actionsSuppressor", default)]
    pub actions_suppressor: Option<String>,
    #[serde(rename = "actionsSuppressorWaitPeriod", default, deserialize_with = "lenient::whole_number")]
    pub actions_suppressor_wait_period: Option<u64>,
    #[serde(rename = "actionsSuppressorExtensionPeriod", default, deserialize_with = "lenient::whole_number")]
    pub actions_suppressor_extension_period: Option<u64>,
    /// Metrics Insights / contributor alarms carry their query and threshold here.
    #[serde(default, deserialize_with = "lenient::decimal")]
    pub threshold: Option<f64>,
    #[serde(rename = "comparisonOperator", default)]
    pub comparison_operator: Option<String>,
    #[serde(rename = "thresholdMetricId", default)]
    pub threshold_metric_id: Option<String>,
}

/// One entry of `configuration.metrics`: a plain metric (`metricStat`), or an expression
/// (metric math, `ANOMALY_DETECTION_BAND`, Metrics Insights SQL).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct MetricQuery {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "metricStat", default)]
    pub metric_stat: Option<MetricStat>,
    #[serde(default)]
    pub expression: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(rename = "returnData", default, deserialize_with = "lenient::boolean")]
    pub return_data: Option<bool>,
    #[serde(default, deserialize_with = "lenient::whole_number")]
    pub period: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct MetricStat {
    #[serde(default)]
    pub metric: Metric,
    /// Seconds; 86400 and longer periods are valid.
    #[serde(default, deserialize_with = "lenient::whole_number")]
    pub period: Option<u64>,
    #[serde(default)]
    pub stat: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Metric {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub dimensions: BTreeMap<String, String>,
}

/// `detail` of an EventBridge alarm event, and `alarmData` of a Lambda alarm action.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AlarmDetail {
    #[serde(rename = "alarmName")]
    pub alarm_name: String,
    pub state: AlarmState,
    #[serde(rename = "previousState", default)]
    pub previous_state: Option<AlarmState>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub configuration: AlarmConfiguration,
    /// Contributor State Change events: the contributor whose state changed.
    #[serde(default)]
    pub contributor: Option<Contributor>,
    #[serde(rename = "alarmContributor", default)]
    pub alarm_contributor: Option<Contributor>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Contributor {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub attributes: BTreeMap<String, String>,
}

/// The payload CloudWatch sends when an alarm's action is a Lambda function.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AlarmLambdaAction {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(rename = "alarmArn")]
    pub alarm_arn: String,
    #[serde(rename = "accountId", default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(rename = "alarmData")]
    pub alarm_data: AlarmDetail,
}

/// The classic alarm notification that CloudWatch publishes to an SNS topic (as `Sns.Message`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClassicAlarmMessage {
    #[serde(rename = "AlarmName")]
    pub alarm_name: String,
    #[serde(rename = "AlarmDescription", default)]
    pub alarm_description: Option<String>,
    #[serde(rename = "AWSAccountId", default)]
    pub aws_account_id: Option<String>,
    #[serde(rename = "AlarmConfigurationUpdatedTimestamp", default)]
    pub alarm_configuration_updated_timestamp: Option<String>,
    #[serde(rename = "NewStateValue")]
    pub new_state_value: AlarmStateValue,
    #[serde(rename = "NewStateReason", default)]
    pub new_state_reason: Option<String>,
    #[serde(rename = "StateChangeTime", default)]
    pub state_change_time: Option<String>,
    /// A region's display name ("US East (N. Virginia)"), not its code: use [`Self::region_code`].
    #[serde(rename = "Region", default)]
    pub region: Option<String>,
    #[serde(rename = "AlarmArn", default)]
    pub alarm_arn: Option<String>,
    #[serde(rename = "OldStateValue", default)]
    pub old_state_value: Option<AlarmStateValue>,
    #[serde(rename = "OKActions", default, deserialize_with = "lenient::null_as_default")]
    pub ok_actions: Vec<String>,
    #[serde(rename = "AlarmActions", default, deserialize_with = "lenient::null_as_default")]
    pub alarm_actions: Vec<String>,
    #[serde(rename = "InsufficientDataActions", default, deserialize_with = "lenient::null_as_default")]
    pub insufficient_data_actions: Vec<String>,
    #[serde(rename = "Trigger", default)]
    pub trigger: Option<ClassicTrigger>,
    /// Composite alarms.
    #[serde(rename = "AlarmRule", default)]
    pub alarm_rule: Option<String>,
    #[serde(rename = "TriggeringChildren", default, deserialize_with = "lenient::null_as_default")]
    pub triggering_children: Vec<ClassicTriggeringChild>,
}

impl ClassicAlarmMessage {
    /// The region code, taken from the alarm ARN (`arn:aws:cloudwatch:us-east-1:...`).
    pub fn region_code(&self) -> Option<&str> {
        self.alarm_arn.as_deref().and_then(|arn| arn.split(':').nth(3)).filter(|r| !r.is_empty())
    }

    /// The account id, from the message or else from the alarm ARN.
    pub fn account_id(&self) -> Option<&str> {
        self.aws_account_id
            .as_deref()
            .filter(|a| !a.is_empty())
            .or_else(|| self.alarm_arn.as_deref().and_then(|arn| arn.split(':').nth(4)))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClassicTrigger {
    #[serde(rename = "MetricName", default)]
    pub metric_name: Option<String>,
    #[serde(rename = "Namespace", default)]
    pub namespace: Option<String>,
    #[serde(rename = "StatisticType", default)]
    pub statistic_type: Option<String>,
    #[serde(rename = "Statistic", default)]
    pub statistic: Option<String>,
    #[serde(rename = "ExtendedStatistic", default)]
    pub extended_statistic: Option<String>,
    #[serde(rename = "Unit", default)]
    pub unit: Option<String>,
    #[serde(rename = "Dimensions", default, deserialize_with = "lenient::null_as_default")]
    pub dimensions: Vec<ClassicDimension>,
    #[serde(rename = "Period", default, deserialize_with = "lenient::whole_number")]
    pub period: Option<u64>,
    #[serde(rename = "EvaluationPeriods", default, deserialize_with = "lenient::whole_number")]
    pub evaluation_periods: Option<u64>,
    #[serde(rename = "DatapointsToAlarm", default, deserialize_with = "lenient::whole_number")]
    pub datapoints_to_alarm: Option<u64>,
    #[serde(rename = "ComparisonOperator", default)]
    pub comparison_operator: Option<String>,
    #[serde(rename = "Threshold", default, deserialize_with = "lenient::decimal")]
    pub threshold: Option<f64>,
    #[serde(rename = "TreatMissingData", default, deserialize_with = "lenient::non_empty")]
    pub treat_missing_data: Option<String>,
    #[serde(rename = "EvaluateLowSampleCountPercentile", default, deserialize_with = "lenient::non_empty")]
    pub evaluate_low_sample_count_percentile: Option<String>,
    /// Metric-math and anomaly-detection alarms.
    #[serde(rename = "Metrics", default, deserialize_with = "lenient::null_as_default")]
    pub metrics: Vec<ClassicMetricQuery>,
    #[serde(rename = "ThresholdMetricId", default)]
    pub threshold_metric_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClassicDimension {
    #[serde(default, alias = "Name")]
    pub name: String,
    #[serde(default, alias = "Value", deserialize_with = "lenient::null_as_default")]
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClassicMetricQuery {
    #[serde(rename = "Id", default)]
    pub id: Option<String>,
    #[serde(rename = "Expression", default)]
    pub expression: Option<String>,
    #[serde(rename = "Label", default)]
    pub label: Option<String>,
    #[serde(rename = "ReturnData", default, deserialize_with = "lenient::boolean")]
    pub return_data: Option<bool>,
    #[serde(rename = "MetricStat", default)]
    pub metric_stat: Option<ClassicMetricStat>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClassicMetricStat {
    #[serde(rename = "Metric", default)]
    pub metric: ClassicMetric,
    #[serde(rename = "Period", default, deserialize_with = "lenient::whole_number")]
    pub period: Option<u64>,
    #[serde(rename = "Stat", default)]
    pub stat: Option<String>,
    #[serde(rename = "Unit", default)]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClassicMetric {
    #[serde(rename = "Namespace", default)]
    pub namespace: Option<String>,
    #[serde(rename = "MetricName", default)]
    pub metric_name: Option<String>,
    #[serde(rename = "Dimensions", default, deserialize_with = "lenient::null_as_default")]
    pub dimensions: Vec<ClassicDimension>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClassicTriggeringChild {
    #[serde(rename = "Arn")]
    pub arn: String,
    #[serde(rename = "State", default)]
    pub state: Option<ClassicChildState>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClassicChildState {
    #[serde(rename = "Value")]
    pub value: AlarmStateValue,
    #[serde(rename = "Timestamp", default)]
    pub timestamp: Option<String>,
}

/// An EventBridge alarm state-change event.
pub type AlarmStateChangeEvent = EventBridgeEvent<AlarmDetail>;

pub fn parse_eventbridge_alarm(value: serde_json::Value) -> Result<AlarmStateChangeEvent, EventError> {
    let event: AlarmStateChangeEvent = parse_value("CloudWatch Alarm State Change", value)?;
    if event.detail_type != ALARM_DETAIL_TYPE && event.detail_type != CONTRIBUTOR_DETAIL_TYPE {
        return Err(EventError::new(
            "CloudWatch Alarm State Change",
            "detail-type",
            format!("{:?} is not an alarm state change", event.detail_type),
        ));
    }
    Ok(event)
}

pub fn parse_lambda_action(value: serde_json::Value) -> Result<AlarmLambdaAction, EventError> {
    parse_value("CloudWatch alarm Lambda action", value)
}

pub fn parse_classic(message: &str) -> Result<ClassicAlarmMessage, EventError> {
    parse_str("CloudWatch alarm SNS message", message)
}
