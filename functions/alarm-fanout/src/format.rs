//! The words of an alarm message: subject, email text, chat JSON, and message attributes.

use std::collections::BTreeMap;

use pipewarden_shared::deploy_context::InFlight;
use pipewarden_shared::format::{ascii_subject, chat_escape, chat_icon, clean_text, ChatNotification};
use pipewarden_shared::links;
use pipewarden_shared::ports::OutboundMessage;

use crate::alarm::{AlarmTransition, MetricRef, Watched};
use crate::rules::Target;

pub fn message(alarm: &AlarmTransition, target: &Target, deployment: Option<&InFlight>) -> OutboundMessage {
    OutboundMessage {
        subject: (!target.chat).then(|| subject(alarm)),
        body: if target.chat { chat(alarm, target, deployment) } else { text(alarm, target, deployment) },
        attributes: attributes(alarm, target),
    }
}

/// `[ALARM] flask-web-app-5xx in us-east-1`.
pub fn subject(alarm: &AlarmTransition) -> String {
    ascii_subject(&format!("[{}] {} in {}", alarm.state, alarm.alarm_name, alarm.region))
}

fn metric_words(m: &MetricRef) -> String {
    let mut text = format!("{} {}", m.namespace.as_deref().unwrap_or("?"), m.name.as_deref().unwrap_or("?"));
    if !m.dimensions.is_empty() {
        let dims: Vec<String> = m.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!(" ({})", dims.join(", ")));
    }
    if let Some(stat) = &m.stat {
        text.push_str(&format!(" {stat}"));
    }
    if let Some(period) = m.period {
        text.push_str(&format!(" over {period}s"));
    }
    text
}

/// What crossed which threshold, in lines.
pub fn watched_lines(alarm: &AlarmTransition) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    match &alarm.watched {
        Watched::Metric(m) => lines.push(("Metric".to_string(), metric_words(m))),
        Watched::Expression { expression, label, metrics } => {
            let label = label.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
            lines.push(("Expression".to_string(), format!("{expression}{label}")));
            for m in metrics {
                lines.push(("  of".to_string(), metric_words(m)));
            }
        }
        Watched::Composite { rule, triggering } => {
            lines.push(("Rule".to_string(), rule.clone()));
            for (child, state) in triggering {
                let state = state.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "?".into());
                lines.push(("Triggered by".to_string(), format!("{child} ({state})")));
            }
        }
        Watched::Unknown => {}
    }
    if let Some(threshold) = alarm.threshold {
        let op = alarm.comparison.as_deref().unwrap_or("threshold");
        lines.push(("Threshold".to_string(), format!("{op} {threshold}")));
    }
    if let Some((id, attributes)) = &alarm.contributor {
        let attrs: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(("Contributor".to_string(), format!("{} ({id})", attrs.join(", "))));
    }
    lines
}

/// `application=flask-web-app, team=web`, or nothing for an alarm without tags.
fn tag_words(alarm: &AlarmTransition) -> Option<String> {
    let words: Vec<String> = alarm.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    (!words.is_empty()).then(|| words.join(", "))
}

pub fn text(alarm: &AlarmTransition, target: &Target, deployment: Option<&InFlight>) -> String {
    let was = alarm.previous.as_ref().map(|p| format!(" (was {p})")).unwrap_or_default();
    let mut out = vec![format!("{}: \"{}\" in {}{was}", alarm.state, alarm.alarm_name, alarm.region), String::new()];
    out.push(format!("Severity:     {} (rule {})", target.severity.as_str(), target.rule));
    out.push(format!("Account:      {}", alarm.account));
    if let Some(at) = alarm.state_time {
        out.push(format!("When:         {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    if let Some(reason) = &alarm.reason {
        out.push(format!("Reason:       {}", clean_text(reason, 1000)));
    }
    for (label, value) in watched_lines(alarm) {
        out.push(format!("{:<13} {}", format!("{label}:"), clean_text(&value, 500)));
    }
    if let Some(description) = &alarm.description {
        out.push(format!("Description:  {}", clean_text(description, 1000)));
    }
    if let Some(tags) = tag_words(alarm) {
        out.push(format!("Tags:         {}", clean_text(&tags, 500)));
    }
    if let Some(d) = deployment {
        out.push(format!(
            "Deploying:    {} (since {})",
            clean_text(&d.describe(), 300),
            d.started_at.format("%H:%M:%S UTC")
        ));
    }
    out.push(String::new());
    out.push(format!("Console:      {}", links::cloudwatch_alarm(&alarm.region, &alarm.alarm_name)));
    out.push(String::new());
    out.push("-- Pipewarden alarm-fanout".to_string());
    out.join("\n")
}

pub fn chat(alarm: &AlarmTransition, target: &Target, deployment: Option<&InFlight>) -> String {
    let link = links::cloudwatch_alarm(&alarm.region, &alarm.alarm_name);
    let mut description = Vec::new();
    if let Some(reason) = &alarm.reason {
        description.push(format!("*Reason:* {}", chat_escape(&clean_text(reason, 500))));
    }
    for (label, value) in watched_lines(alarm) {
        description.push(format!("*{}:* {}", chat_escape(label.trim()), chat_escape(&clean_text(&value, 300))));
    }
    if let Some(tags) = tag_words(alarm) {
        description.push(format!("*Tags:* {}", chat_escape(&clean_text(&tags, 300))));
    }
    if let Some(d) = deployment {
        description.push(format!("*Deploying:* {}", chat_escape(&d.describe())));
    }
    ChatNotification {
        id: alarm.key(),
        title: format!(
            "{} {} {} in {}",
            chat_icon(target.severity.as_str()),
            alarm.state,
            chat_escape(&alarm.alarm_name),
            chat_escape(&alarm.region)
        ),
        description,
        next_steps: vec![format!("Open <{link}|the alarm in CloudWatch>")],
        keywords: vec![alarm.alarm_name.clone(), alarm.state.to_string(), target.severity.as_str().to_string()],
        thread_id: alarm.subject(),
        summary: subject(alarm),
        event_type: "CloudWatch Alarm State Change",
        related_resources: alarm.alarm_arn.clone().into_iter().collect(),
        additional_context: [
            ("severity".to_string(), target.severity.as_str().to_string()),
            ("rule".to_string(), target.rule.clone()),
        ]
        .into(),
    }
    .to_json()
}

pub fn attributes(alarm: &AlarmTransition, target: &Target) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("alarm_name".to_string(), alarm.alarm_name.clone()),
        ("state".to_string(), alarm.state.to_string()),
        ("severity".to_string(), target.severity.as_str().to_string()),
        ("account".to_string(), alarm.account.clone()),
        ("region".to_string(), alarm.region.clone()),
        ("rule".to_string(), target.rule.clone()),
        ("source".to_string(), "pipewarden.alarm-fanout".to_string()),
    ])
}
