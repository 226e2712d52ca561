//! One alarm state transition, whichever of the three shapes it arrived in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pipewarden_shared::events::cloudwatch::{
    AlarmDetail, AlarmStateValue, ClassicAlarmMessage, ClassicMetric, Contributor, MetricQuery,
};
use pipewarden_shared::events::parse_time;
use serde::{Deserialize, Serialize};

/// What the alarm watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Watched {
    /// One metric.
    Metric(MetricRef),
    /// Metric math, anomaly detection band or Metrics Insights query, over these metrics.
    Expression {
        expression: String,
        label: Option<String>,
        metrics: Vec<MetricRef>,
    },
    /// A composite alarm's rule, and the children that triggered it.
    Composite {
        rule: String,
        triggering: Vec<(String, Option<AlarmStateValue>)>,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricRef {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub dimensions: Vec<(String, String)>,
    pub stat: Option<String>,
    pub period: Option<u64>,
}

/// Kept whole in the alarm's memory (JSON) when a timer may send it later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmTransition {
    /// The id of what carried it (EventBridge event id, SNS message id).
    pub source_id: String,
    pub alarm_name: String,
    pub alarm_arn: Option<String>,
    pub account: String,
    pub region: String,
    pub state: AlarmStateValue,
    pub previous: Option<AlarmStateValue>,
    pub reason: Option<String>,
    pub state_time: Option<DateTime<Utc>>,
    pub description: Option<String>,
    pub watched: Watched,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    /// `actionsSuppressedBy` and its reason: AWS says not to act.
    pub suppressed: Option<String>,
    /// Why a silence holds it back (set by the handler from the silences in force), if one does.
    pub silenced: Option<String>,
    /// Said at the top of the message when it is not the transition's first word: a reminder, or
    /// an ALARM sent once what held it back ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    pub contributor: Option<(String, BTreeMap<String, String>)>,
    /// The alarm's tags: those the event carries, or those looked up (see [`crate::tags`]).
    pub tags: BTreeMap<String, String>,
    /// CloudWatch sent the alarm's tags with the event (`SUCCESS`): no need to look them up.
    pub tags_known: bool,
}

/// See [`AlarmTransition::note`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// For the subject: `reminder 2`, `held back`.
    pub tag: String,
    /// The sentence.
    pub text: String,
}

impl AlarmTransition {
    /// The same transition has the same key whatever shape or delivery brought it.
    pub fn key(&self) -> String {
        // `subject:state:when`, written in one buffer (it is asked for several times per event),
        // piece by piece rather than through `write!`'s formatting.
        let mut key = String::with_capacity(self.alarm_name.len() + 48);
        key.push_str(&self.alarm_name);
        if let Some((id, _)) = &self.contributor {
            key.push('#');
            key.push_str(id);
        }
        key.push(':');
        key.push_str(self.state.as_str());
        key.push(':');
        match self.state_time {
            Some(t) => key.push_str(itoa::Buffer::new().format(t.timestamp_millis())),
            None => key.push_str(&self.source_id),
        }
        key
    }

    /// The alarm (and contributor) whose memory this transition belongs to.
    pub fn subject(&self) -> String {
        match &self.contributor {
            Some((id, _)) => format!("{}#{id}", self.alarm_name),
            None => self.alarm_name.clone(),
        }
    }

    /// Every metric the alarm reads (for routing on namespace and metric name).
    pub fn metrics(&self) -> Vec<&MetricRef> {
        match &self.watched {
            Watched::Metric(m) => vec![m],
            Watched::Expression { metrics, .. } => metrics.iter().collect(),
            _ => Vec::new(),
        }
    }
}

fn metric_ref_from_query(q: &MetricQuery) -> Option<MetricRef> {
    let stat = q.metric_stat.as_ref()?;
    Some(MetricRef {
        namespace: stat.metric.namespace.clone(),
        name: stat.metric.name.clone(),
        dimensions: stat.metric.dimensions.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        stat: stat.stat.clone(),
        period: stat.period.or(q.period),
    })
}

fn contributor(c: &Contributor) -> (String, BTreeMap<String, String>) {
    (c.id.clone().unwrap_or_default(), c.attributes.clone())
}

/// From an EventBridge event's `detail` or a Lambda alarm action's `alarmData`.
pub fn from_detail(
    source_id: &str,
    alarm_arn: Option<String>,
    account: &str,
    region: &str,
    d: &AlarmDetail,
) -> AlarmTransition {
    let config = &d.configuration;
    let reason_data = d.state.reason_data();
    let watched = if let Some(rule) = &config.alarm_rule {
        let triggering = reason_data
            .as_ref()
            .map(|r| {
                r.triggering_alarms
                    .iter()
                    .map(|t| (alarm_name_of(&t.arn), t.state.as_ref().map(|s| s.value.clone())))
                    .collect()
            })
            .unwrap_or_default();
        Watched::Composite { rule: rule.clone(), triggering }
    } else if let Some(expr) = config.metrics.iter().find(|m| m.expression.is_some() && m.return_data != Some(false)) {
        Watched::Expression {
            expression: expr.expression.clone().unwrap_or_default(),
            label: expr.label.clone(),
            metrics: config.metrics.iter().filter_map(metric_ref_from_query).collect(),
        }
    } else if let Some(metric) = config.metrics.iter().find_map(metric_ref_from_query) {
        Watched::Metric(metric)
    } else {
        Watched::Unknown
    };
    let suppressed = d.state.actions_suppressed_by.as_ref().map(|by| match &d.state.actions_suppressed_reason {
        Some(reason) => format!("{by}: {reason}"),
        None => by.clone(),
    });
    AlarmTransition {
        source_id: source_id.to_string(),
        alarm_name: d.alarm_name.clone(),
        alarm_arn,
        account: account.to_string(),
        region: region.to_string(),
        state: d.state.value.clone(),
        previous: d.previous_state.as_ref().map(|p| p.value.clone()),
        reason: d.state.reason.clone(),
        state_time: parse_time(d.state.timestamp.as_deref()),
        description: config.description.clone().filter(|s| !s.is_empty()),
        watched,
        threshold: reason_data.as_ref().and_then(|r| r.threshold).or(config.threshold),
        comparison: config.comparison_operator.clone(),
        suppressed,
        silenced: None,
        note: None,
        contributor: d.contributor.as_ref().or(d.alarm_contributor.as_ref()).map(contributor),
        tags: d.alarm_tags.clone(),
        tags_known: d.tags_complete(),
    }
}

fn classic_metric(m: &ClassicMetric, stat: Option<String>, period: Option<u64>) -> MetricRef {
    MetricRef {
        namespace: m.namespace.clone(),
        name: m.metric_name.clone(),
        dimensions: m.dimensions.iter().map(|d| (d.name.clone(), d.value.clone())).collect(),
        stat,
        period,
    }
}

/// From a classic alarm notification (SNS message).
pub fn from_classic(message_id: &str, mut m: ClassicAlarmMessage) -> AlarmTransition {
    // The message is taken, not copied: its strings move into the transition.
    // The message's own account id is taken, not copied; else the one in the alarm ARN.
    let account = match m.aws_account_id.take() {
        Some(id) if !id.is_empty() => id,
        _ => m.account_id().unwrap_or_default().to_string(),
    };
    let region = m.region_code().unwrap_or_default().to_string();
    let tags_known = m.tags_complete();
    let state_time = parse_time(m.state_change_time.as_deref());
    let mut trigger = m.trigger.unwrap_or_default();
    let watched = if let Some(rule) = m.alarm_rule {
        Watched::Composite {
            rule,
            triggering: m
                .triggering_children
                .into_iter()
                .map(|c| (alarm_name_of(&c.arn), c.state.map(|s| s.value)))
                .collect(),
        }
    } else if let Some(i) = trigger.metrics.iter().position(|q| q.expression.is_some() && q.return_data != Some(false))
    {
        let expr = &mut trigger.metrics[i];
        Watched::Expression {
            expression: expr.expression.take().unwrap_or_default(),
            label: expr.label.take(),
            metrics: trigger
                .metrics
                .iter()
                .filter_map(|q| q.metric_stat.as_ref().map(|s| classic_metric(&s.metric, s.stat.clone(), s.period)))
                .collect(),
        }
    } else if trigger.metric_name.is_some() {
        Watched::Metric(MetricRef {
            namespace: trigger.namespace.take(),
            name: trigger.metric_name.take(),
            dimensions: std::mem::take(&mut trigger.dimensions).into_iter().map(|d| (d.name, d.value)).collect(),
            stat: trigger.statistic.take().or(trigger.extended_statistic.take()),
            period: trigger.period,
        })
    } else {
        Watched::Unknown
    };
    AlarmTransition {
        source_id: message_id.to_string(),
        alarm_name: m.alarm_name,
        alarm_arn: m.alarm_arn,
        account,
        region,
        state: m.new_state_value,
        previous: m.old_state_value,
        reason: m.new_state_reason,
        state_time,
        description: m.alarm_description.filter(|s| !s.is_empty()),
        watched,
        threshold: trigger.threshold,
        comparison: trigger.comparison_operator,
        suppressed: None,
        silenced: None,
        note: None,
        contributor: None,
        tags: m.alarm_tags,
        tags_known,
    }
}

/// `arn:aws:cloudwatch:us-east-1:123:alarm:Name` -> `Name`.
pub fn alarm_name_of(arn: &str) -> String {
    arn.split_once(":alarm:").map(|(_, name)| name.to_string()).unwrap_or_else(|| arn.to_string())
}
