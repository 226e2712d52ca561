//! CloudWatch alarm state changes in the three shapes AWS delivers them:
//! EventBridge `CloudWatch Alarm State Change`, the payload of an alarm's Lambda action
//! (`alarmData`), and the classic alarm message that SNS wraps.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::eventbridge::EventBridgeEvent;
use super::{lenient, parse_str, Document, EventError};

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
        // Compared without an uppercase copy: this is read for every state of every alarm.
        if text.eq_ignore_ascii_case("OK") {
            Self::Ok
        } else if text.eq_ignore_ascii_case("ALARM") {
            Self::Alarm
        } else if text.eq_ignore_ascii_case("INSUFFICIENT_DATA") {
            Self::InsufficientData
        } else {
            Self::Other(text.to_ascii_uppercase())
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
        // Read from the text where it lies (no `String` made for it).
        struct State;
        impl serde::de::Visitor<'_> for State {
            type Value = AlarmStateValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an alarm state (text)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<AlarmStateValue, E> {
                Ok(AlarmStateValue::parse(text))
            }
        }
        d.deserialize_str(State)
    }
}

impl Serialize for AlarmStateValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
    /// The alarm's tags, when its tag propagation is on (an object; a list of `{Key, Value}` is
    /// read too). Complete only when [`Self::alarm_tags_status`] says `SUCCESS`.
    #[serde(rename = "alarmTags", default, deserialize_with = "tags")]
    pub alarm_tags: BTreeMap<String, String>,
    #[serde(rename = "alarmTagsStatus", default)]
    pub alarm_tags_status: Option<String>,
}

impl AlarmDetail {
    /// CloudWatch sent the alarm's tags (those its propagation settings include) with the event.
    pub fn tags_complete(&self) -> bool {
        tags_complete(self.alarm_tags_status.as_deref())
    }
}

/// `SUCCESS` is the one tag status that says the payload holds the alarm's (filtered) tags;
/// absent means propagation is off, anything else that they could not all be sent.
pub fn tags_complete(status: Option<&str>) -> bool {
    status.is_some_and(|s| s.trim().eq_ignore_ascii_case("SUCCESS"))
}

/// Alarm tags as an object (`{"team": "web"}`) or a list of `{Key, Value}` (either case); values
/// that are numbers or booleans are read as their text, `null` as no tags.
fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    fn text(value: serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Null => Some(String::new()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    let field = |entry: &serde_json::Map<String, serde_json::Value>, name: &str| {
        entry.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(BTreeMap::new()),
        // A tag is worth less than the alarm: an entry that is not text is left out, never the alarm.
        Some(serde_json::Value::Object(map)) => Ok(map.into_iter().filter_map(|(k, v)| Some((k, text(v)?))).collect()),
        Some(serde_json::Value::Array(list)) => Ok(list
            .into_iter()
            .filter_map(|entry| {
                let entry = entry.as_object().cloned().unwrap_or_default();
                let key = field(&entry, "key").and_then(text).filter(|k| !k.is_empty())?;
                let value = field(&entry, "value").map(text).unwrap_or(Some(String::new()))?;
                Some((key, value))
            })
            .collect()),
        Some(_) => Ok(BTreeMap::new()),
    }
}

/// `arn:aws:cloudwatch:<region>:<account>:alarm:<name>`, in the partition of the region; `None`
/// unless the region is written as AWS writes regions and the account is an account id.
pub fn alarm_arn(region: &str, account: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    crate::links::arn("cloudwatch", region.trim(), account.trim(), &format!("alarm:{name}"))
}

/// An alarm ARN as sent, with stray spaces around its first five fields removed (AWS's own
/// example payloads carry `us-east-1: 111122223333`); the alarm name, which may hold spaces, is kept.
pub fn normalize_alarm_arn(arn: &str) -> Option<String> {
    normalized_alarm_arn(arn).map(std::borrow::Cow::into_owned)
}

/// [`normalize_alarm_arn`], borrowed when there is nothing to remove (as AWS itself sends it).
fn normalized_alarm_arn(arn: &str) -> Option<std::borrow::Cow<'_, str>> {
    let arn = arn.trim();
    let mut parts = arn.splitn(6, ':');
    let head: [&str; 5] = std::array::from_fn(|_| parts.next().unwrap_or(""));
    let rest = parts.next()?;
    if head[0].trim() != "arn" {
        return None;
    }
    if head.iter().all(|p| p.trim().len() == p.len()) {
        return Some(arn.into());
    }
    Some(format!("{}:{rest}", head.map(str::trim).join(":")).into())
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Contributor {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub attributes: BTreeMap<String, String>,
}

/// The payload CloudWatch sends when an alarm's action is a Lambda function. Also read: the same
/// `alarmData` in an EventBridge-style envelope (`id`, `account`, `resources`), as one of
/// `aws_lambda_events`' fixtures has it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AlarmLambdaAction {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// As sent; use [`Self::alarm_arn`], which derives it when absent.
    #[serde(rename = "alarmArn", default, deserialize_with = "lenient::non_empty")]
    pub alarm_arn: Option<String>,
    #[serde(rename = "accountId", alias = "account", default, deserialize_with = "lenient::non_empty")]
    pub account_id: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default, deserialize_with = "lenient::non_empty")]
    pub region: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub resources: Vec<String>,
    #[serde(rename = "alarmData")]
    pub alarm_data: AlarmDetail,
    /// Tags beside `alarmData` rather than in it, read in case CloudWatch sends them there.
    #[serde(rename = "alarmTags", default, deserialize_with = "tags")]
    pub alarm_tags: BTreeMap<String, String>,
    #[serde(rename = "alarmTagsStatus", default)]
    pub alarm_tags_status: Option<String>,
}

impl AlarmLambdaAction {
    /// `alarmArn`, else the alarm ARN in `resources`, else one made of region, account and name.
    pub fn alarm_arn(&self) -> Option<String> {
        self.alarm_arn
            .as_deref()
            .and_then(normalize_alarm_arn)
            .or_else(|| self.resources.iter().find(|r| r.contains(":alarm:")).and_then(|r| normalize_alarm_arn(r)))
            .or_else(|| alarm_arn(self.region.as_deref()?, self.account_id.as_deref()?, &self.alarm_data.alarm_name))
    }

    /// The account: `accountId`, else the ARN's.
    pub fn account(&self) -> Option<String> {
        self.account_id.clone().or_else(|| arn_field(self.alarm_arn().as_deref()?, 4))
    }

    /// The region: `region`, else the ARN's.
    pub fn region_code(&self) -> Option<String> {
        self.region.clone().or_else(|| arn_field(self.alarm_arn().as_deref()?, 3))
    }

    /// The alarm's tags and whether they are complete, wherever in the payload they are.
    pub fn tags(&self) -> (BTreeMap<String, String>, bool) {
        if !self.alarm_data.alarm_tags.is_empty() || self.alarm_data.alarm_tags_status.is_some() {
            (self.alarm_data.alarm_tags.clone(), self.alarm_data.tags_complete())
        } else {
            (self.alarm_tags.clone(), tags_complete(self.alarm_tags_status.as_deref()))
        }
    }
}

fn arn_field(arn: &str, index: usize) -> Option<String> {
    arn.split(':').nth(index).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The classic alarm notification that CloudWatch publishes to an SNS topic (as `Sns.Message`).
/// Only what Pipewarden reads is modelled: the other fields (the alarm's actions, its evaluation
/// periods, how it treats missing data, the region's display name, ...) are skipped by the parse
/// without being copied.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClassicAlarmMessage {
    #[serde(rename = "AlarmName")]
    pub alarm_name: String,
    #[serde(rename = "AlarmDescription", default)]
    pub alarm_description: Option<String>,
    #[serde(rename = "AWSAccountId", default)]
    pub aws_account_id: Option<String>,
    #[serde(rename = "NewStateValue")]
    pub new_state_value: AlarmStateValue,
    #[serde(rename = "NewStateReason", default)]
    pub new_state_reason: Option<String>,
    #[serde(rename = "StateChangeTime", default)]
    pub state_change_time: Option<String>,
    #[serde(rename = "AlarmArn", default)]
    pub alarm_arn: Option<String>,
    #[serde(rename = "OldStateValue", default)]
    pub old_state_value: Option<AlarmStateValue>,
    #[serde(rename = "Trigger", default)]
    pub trigger: Option<ClassicTrigger>,
    /// Composite alarms.
    #[serde(rename = "AlarmRule", default)]
    pub alarm_rule: Option<String>,
    #[serde(rename = "TriggeringChildren", default, deserialize_with = "lenient::null_as_default")]
    pub triggering_children: Vec<ClassicTriggeringChild>,
    /// The alarm's tags, when its tag propagation is on; complete only when `AlarmTagsStatus` is `SUCCESS`.
    #[serde(rename = "AlarmTags", default, deserialize_with = "tags")]
    pub alarm_tags: BTreeMap<String, String>,
    #[serde(rename = "AlarmTagsStatus", default)]
    pub alarm_tags_status: Option<String>,
}

impl ClassicAlarmMessage {
    /// The region code, taken from the alarm ARN (`arn:aws:cloudwatch:us-east-1:...`).
    pub fn region_code(&self) -> Option<&str> {
        self.alarm_arn.as_deref().and_then(|arn| arn.split(':').nth(3)).map(str::trim).filter(|r| !r.is_empty())
    }

    pub fn tags_complete(&self) -> bool {
        tags_complete(self.alarm_tags_status.as_deref())
    }

    /// Fills in an absent `AlarmArn` from the account and the region of the topic that carried the
    /// message (an alarm notifies topics of its own region).
    pub fn derive_missing(&mut self, topic_arn: &str) {
        if let Some(given) = self.alarm_arn.take().filter(|a| !a.trim().is_empty()) {
            self.alarm_arn = Some(match normalized_alarm_arn(&given) {
                // As sent (the common case): kept, not copied.
                Some(std::borrow::Cow::Borrowed(same)) if same.len() == given.len() => given,
                Some(normalized) => normalized.into_owned(),
                None => given,
            });
            return;
        }
        let region = arn_field(topic_arn, 3);
        let account = self.aws_account_id.clone().or_else(|| arn_field(topic_arn, 4));
        if let (Some(region), Some(account)) = (region, account) {
            self.alarm_arn = alarm_arn(&region, &account, &self.alarm_name);
        }
    }

    /// The account id, from the message or else from the alarm ARN.
    pub fn account_id(&self) -> Option<&str> {
        self.aws_account_id
            .as_deref()
            .filter(|a| !a.is_empty())
            .or_else(|| self.alarm_arn.as_deref().and_then(|arn| arn.split(':').nth(4)).map(str::trim))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClassicTrigger {
    #[serde(rename = "MetricName", default)]
    pub metric_name: Option<String>,
    #[serde(rename = "Namespace", default)]
    pub namespace: Option<String>,
    #[serde(rename = "Statistic", default)]
    pub statistic: Option<String>,
    #[serde(rename = "ExtendedStatistic", default)]
    pub extended_statistic: Option<String>,
    #[serde(rename = "Dimensions", default, deserialize_with = "lenient::null_as_default")]
    pub dimensions: Vec<ClassicDimension>,
    #[serde(rename = "Period", default, deserialize_with = "lenient::whole_number")]
    pub period: Option<u64>,
    #[serde(rename = "ComparisonOperator", default)]
    pub comparison_operator: Option<String>,
    #[serde(rename = "Threshold", default, deserialize_with = "lenient::decimal")]
    pub threshold: Option<f64>,
    /// Metric-math and anomaly-detection alarms.
    #[serde(rename = "Metrics", default, deserialize_with = "lenient::null_as_default")]
    pub metrics: Vec<ClassicMetricQuery>,
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

impl EventBridgeEvent<AlarmDetail> {
    /// The alarm ARN in `resources`, else one made of the event's region, account and alarm name.
    pub fn alarm_arn(&self) -> Option<String> {
        self.resources
            .iter()
            .find(|r| r.contains(":alarm:"))
            .and_then(|r| normalize_alarm_arn(r))
            .or_else(|| alarm_arn(&self.region, &self.account, &self.detail.alarm_name))
    }
}

pub fn parse_eventbridge_alarm(document: impl Document) -> Result<AlarmStateChangeEvent, EventError> {
    let event: AlarmStateChangeEvent = document.parse("CloudWatch Alarm State Change")?;
    if event.detail_type != ALARM_DETAIL_TYPE && event.detail_type != CONTRIBUTOR_DETAIL_TYPE {
        return Err(EventError::new(
            "CloudWatch Alarm State Change",
            "detail-type",
            format!("{:?} is not an alarm state change", event.detail_type),
        ));
    }
    Ok(event)
}

pub fn parse_lambda_action(document: impl Document) -> Result<AlarmLambdaAction, EventError> {
    document.parse("CloudWatch alarm Lambda action")
}

pub fn parse_classic(message: &str) -> Result<ClassicAlarmMessage, EventError> {
    // The message as CloudWatch writes it is read by hand; whatever that reader is not sure of,
    // the model reads (and names what is wrong with it).
    if let Some(read) = super::classic_alarm::read(message) {
        return Ok(read);
    }
    parse_str("CloudWatch alarm SNS message", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(extra: serde_json::Value) -> Result<AlarmDetail, EventError> {
        let mut d = json!({"alarmName": "web-5xx", "state": {"value": "ALARM"}});
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        crate::events::parse_value("detail", d)
    }

    #[test]
    fn alarm_tags_are_read_as_an_object_or_a_list_and_complete_only_on_success() {
        let object = detail(json!({"alarmTags": {"team": "web", "tier": 1}, "alarmTagsStatus": "SUCCESS"})).unwrap();
        assert_eq!(object.alarm_tags["team"], "web");
        assert_eq!(object.alarm_tags["tier"], "1");
        assert!(object.tags_complete());

        let list =
            detail(json!({"alarmTags": [{"Key": "team", "Value": "web"}, {"key": "env", "value": "prod"}]})).unwrap();
        assert_eq!(list.alarm_tags.len(), 2);
        assert_eq!(list.alarm_tags["env"], "prod");
        assert!(!list.tags_complete(), "no status: propagation is off");

        let other = detail(json!({"alarmTags": null, "alarmTagsStatus": "FAILED"})).unwrap();
        assert!(other.alarm_tags.is_empty() && !other.tags_complete());
        assert!(detail(json!({})).unwrap().alarm_tags.is_empty());

        // A malformed tag never costs the alarm: what cannot be read is left out.
        assert!(detail(json!({"alarmTags": "team=web"})).unwrap().alarm_tags.is_empty());
        let partly = detail(json!({"alarmTags": {"team": "web", "bad": {"x": 1}}})).unwrap();
        assert_eq!(partly.alarm_tags.len(), 1);
    }

    #[test]
    fn classic_message_tags_and_a_missing_arn_from_the_topic() {
        let mut m = parse_classic(
            r#"{"AlarmName": "web 5xx", "NewStateValue": "ALARM", "AWSAccountId": "123456789012",
                "AlarmTags": {"team": "web"}, "AlarmTagsStatus": "SUCCESS"}"#,
        )
        .unwrap();
        assert!(m.tags_complete());
        m.derive_missing("arn:aws:sns:eu-west-1:123456789012:classic-alarms");
        assert_eq!(m.alarm_arn.as_deref(), Some("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web 5xx"));
        assert_eq!(m.region_code(), Some("eu-west-1"));
    }

    #[test]
    fn alarm_arns_are_normalized_and_derived() {
        assert_eq!(
            normalize_alarm_arn("arn:aws:cloudwatch:us-east-1: 111122223333:alarm:Demo Main").as_deref(),
            Some("arn:aws:cloudwatch:us-east-1:111122223333:alarm:Demo Main")
        );
        assert_eq!(normalize_alarm_arn("not an arn"), None);
        assert_eq!(normalize_alarm_arn("arn:aws:cloudwatch:us-east-1"), None, "fewer than six fields");
        assert_eq!(normalize_alarm_arn("urn:aws:cloudwatch:us-east-1:1:alarm:a"), None);
        assert_eq!(
            normalize_alarm_arn(" arn:aws:cloudwatch:us-east-1:111122223333:alarm:Demo Main ").as_deref(),
            Some("arn:aws:cloudwatch:us-east-1:111122223333:alarm:Demo Main"),
            "spaces around it go, those of the name stay"
        );
        assert_eq!(
            normalize_alarm_arn("arn :aws:cloudwatch:us-east-1:111122223333:alarm:a").as_deref(),
            Some("arn:aws:cloudwatch:us-east-1:111122223333:alarm:a")
        );
        // A classic message's ARN cleaned in place: spaces inside its fields, and only around it.
        for sent in [
            " arn:aws:cloudwatch:us-east-1 :111122223333:alarm:a",
            " arn:aws:cloudwatch:us-east-1:111122223333:alarm:a ",
        ] {
            let mut classic = parse_classic(
                &serde_json::json!({"AlarmName": "a", "NewStateValue": "OK", "AlarmArn": sent}).to_string(),
            )
            .unwrap();
            classic.derive_missing("arn:aws:sns:eu-west-1:123456789012:t");
            assert_eq!(
                classic.alarm_arn.as_deref(),
                Some("arn:aws:cloudwatch:us-east-1:111122223333:alarm:a"),
                "{sent:?}"
            );
        }
        assert_eq!(
            alarm_arn("cn-north-1", "123456789012", "a").unwrap(),
            "arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:a"
        );
        assert_eq!(alarm_arn("EXAMPLE REGION", "123456789012", "a"), None);
        assert_eq!(alarm_arn("evil.example/x?", "123456789012", "a"), None);
        assert_eq!(
            alarm_arn("eusc-de-east-1", "123456789012", "a").as_deref(),
            Some("arn:aws-eusc:cloudwatch:eusc-de-east-1:123456789012:alarm:a")
        );

        let enveloped = parse_lambda_action(json!({
            "id": "d3df", "account": "123456789012", "region": "us-east-1",
            "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:Aggregated"],
            "alarmData": {"alarmName": "Aggregated", "state": {"value": "ALARM"}}
        }))
        .unwrap();
        assert_eq!(
            enveloped.alarm_arn().as_deref(),
            Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:Aggregated")
        );
        assert_eq!(enveloped.account().as_deref(), Some("123456789012"));

        let bare = parse_lambda_action(json!({
            "accountId": "123456789012", "region": "us-east-1",
            "alarmData": {"alarmName": "Bare", "state": {"value": "OK"}},
            "alarmTags": {"team": "web"}, "alarmTagsStatus": "SUCCESS"
        }))
        .unwrap();
        assert_eq!(bare.alarm_arn().as_deref(), Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:Bare"));
        assert_eq!(bare.tags(), (BTreeMap::from([("team".to_string(), "web".to_string())]), true));
    }
}
