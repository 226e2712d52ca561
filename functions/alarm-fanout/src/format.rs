//! The words of an alarm message: subject, email text, chat JSON, and message attributes.

use chrono::{Datelike, Timelike};
use std::collections::BTreeMap;
use std::fmt::Write;

use pipewarden_shared::deploy_context::InFlight;
use pipewarden_shared::format::{
    ascii_subject, chat_escape, chat_icon, chat_link, clean_text, one_line, ChatNotification,
};
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

/// `[ALARM] flask-web-app-5xx in us-east-1`; a reminder `[ALARM] ... in us-east-1 (reminder 2)`.
pub fn subject(alarm: &AlarmTransition) -> String {
    let mut text = String::with_capacity(128);
    push_all(&mut text, &["[", alarm.state.as_str(), "] ", &alarm.alarm_name, " in ", &alarm.region]);
    if let Some(note) = &alarm.note {
        push_all(&mut text, &[" (", &note.tag, ")"]);
    }
    ascii_subject(&text)
}

/// Appends each piece. The messages are written piece by piece rather than with `write!`, whose
/// formatting machinery costs some hundreds of instructions a call: most of what formatting took.
#[inline]
fn push_all(out: &mut String, pieces: &[&str]) {
    for piece in pieces {
        out.push_str(piece);
    }
}

/// Appends `n` in decimal, zero-padded to `width` digits.
fn push_number(out: &mut String, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(digits);
}

fn metric_words(m: &MetricRef) -> String {
    let mut text = String::with_capacity(128);
    push_all(&mut text, &[m.namespace.as_deref().unwrap_or("?"), " ", m.name.as_deref().unwrap_or("?")]);
    for (i, (k, v)) in m.dimensions.iter().enumerate() {
        push_all(&mut text, &[if i == 0 { " (" } else { ", " }, k, "=", v]);
    }
    if !m.dimensions.is_empty() {
        text.push(')');
    }
    if let Some(stat) = &m.stat {
        push_all(&mut text, &[" ", stat]);
    }
    if let Some(period) = m.period {
        text.push_str(" over ");
        push_number(&mut text, period, 0);
        text.push('s');
    }
    text
}

/// What crossed which threshold, in lines.
pub fn watched_lines(alarm: &AlarmTransition) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    match &alarm.watched {
        Watched::Metric(m) => lines.push(("Metric", metric_words(m))),
        Watched::Expression { expression, label, metrics } => {
            let mut line = expression.clone();
            if let Some(label) = label {
                push_all(&mut line, &[" (", label, ")"]);
            }
            lines.push(("Expression", line));
            for m in metrics {
                lines.push(("  of", metric_words(m)));
            }
        }
        Watched::Composite { rule, triggering } => {
            lines.push(("Rule", rule.clone()));
            for (child, state) in triggering {
                let mut line = String::with_capacity(child.len() + 24);
                push_all(&mut line, &[child, " (", state.as_ref().map_or("?", |s| s.as_str()), ")"]);
                lines.push(("Triggered by", line));
            }
        }
        Watched::Unknown => {}
    }
    if let Some(threshold) = alarm.threshold {
        let op = alarm.comparison.as_deref().unwrap_or("threshold");
        let mut line = String::with_capacity(op.len() + 24);
        push_all(&mut line, &[op, " "]);
        // The number as Rust writes it (`5`, `0.5`): the one part left to `fmt`.
        let _ = write!(line, "{threshold}");
        lines.push(("Threshold", line));
    }
    if let Some((id, attributes)) = &alarm.contributor {
        let attrs: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(("Contributor", format!("{} ({id})", attrs.join(", "))));
    }
    lines
}

/// `application=flask-web-app, team=web`, or nothing for an alarm without tags.
fn tag_words(alarm: &AlarmTransition) -> Option<String> {
    let mut words = String::new();
    for (i, (k, v)) in alarm.tags.iter().enumerate() {
        push_all(&mut words, &[if i == 0 { "" } else { ", " }, k, "=", v]);
    }
    (!words.is_empty()).then_some(words)
}

/// The email text. Plain text needs no escaping, but every field from the event is kept on its own
/// line ([`one_line`]): a line separator in an alarm name must not start a line of its own.
pub fn text(alarm: &AlarmTransition, target: &Target, deployment: Option<&InFlight>) -> String {
    // One buffer: the message is written, not assembled from a line per allocation.
    let mut out = String::with_capacity(1024);
    push_all(
        &mut out,
        &[&one_line(alarm.state.as_str()), ": \"", &one_line(&alarm.alarm_name), "\" in ", &one_line(&alarm.region)],
    );
    if let Some(previous) = &alarm.previous {
        push_all(&mut out, &[" (was ", &one_line(previous.as_str()), ")"]);
    }
    if let Some(note) = &alarm.note {
        push_all(&mut out, &["\n\n", &one_line(&note.text)]);
    }
    push_all(&mut out, &["\n\nSeverity:     ", target.severity.as_str(), " (rule ", &target.rule, ")"]);
    push_all(&mut out, &["\nAccount:      ", &one_line(&alarm.account)]);
    if let Some(at) = alarm.state_time {
        // Written field by field: a strftime format is parsed at every call.
        out.push_str("\nWhen:         ");
        match u64::try_from(at.year()) {
            Ok(year) => push_number(&mut out, year, 4),
            Err(_) => {
                let _ = write!(out, "{:04}", at.year());
            }
        }
        for (separator, n) in
            [("-", at.month()), ("-", at.day()), (" ", at.hour()), (":", at.minute()), (":", at.second())]
        {
            out.push_str(separator);
            push_number(&mut out, u64::from(n), 2);
        }
        out.push_str(" UTC");
    }
    if let Some(reason) = &alarm.reason {
        push_all(&mut out, &["\nReason:       ", &clean_text(reason, 1000)]);
    }
    for (label, value) in watched_lines(alarm) {
        // The label and its colon padded to 13 columns, as `{:<13}` would.
        let pad = 12usize.saturating_sub(label.chars().count());
        push_all(&mut out, &["\n", label, ":"]);
        out.extend(std::iter::repeat_n(' ', pad + 1));
        out.push_str(&clean_text(&value, 500));
    }
    if let Some(description) = &alarm.description {
        push_all(&mut out, &["\nDescription:  ", &clean_text(description, 1000)]);
    }
    if let Some(tags) = tag_words(alarm) {
        push_all(&mut out, &["\nTags:         ", &clean_text(&tags, 500)]);
    }
    if let Some(d) = deployment {
        let _ = write!(
            out,
            "\nDeploying:    {} (since {})",
            clean_text(&d.describe(), 300),
            d.started_at.format("%H:%M:%S UTC")
        );
    }
    if let Some(link) = links::cloudwatch_alarm(&alarm.region, &alarm.alarm_name) {
        push_all(&mut out, &["\n\nConsole:      ", &link]);
    }
    out.push_str("\n\n-- Pipewarden alarm-fanout");
    out
}

/// The chat notification. Every field of the event in it passes [`chat_escape`] once: here for the
/// markup fields, in [`ChatNotification::to_json`] for keywords and summary.
pub fn chat(alarm: &AlarmTransition, target: &Target, deployment: Option<&InFlight>) -> String {
    let mut description = Vec::new();
    if let Some(note) = &alarm.note {
        description.push(format!("*{}*", chat_escape(&clean_text(&note.text, 300))));
    }
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
        // A reminder is its own notification, in the alarm's thread.
        id: match &alarm.note {
            Some(note) => format!("{} {}", alarm.key(), note.tag),
            None => alarm.key(),
        },
        title: format!(
            "{} {} {} in {}",
            chat_icon(target.severity.as_str()),
            chat_escape(alarm.state.as_str()),
            chat_escape(&alarm.alarm_name),
            chat_escape(&alarm.region)
        ),
        description,
        next_steps: links::cloudwatch_alarm(&alarm.region, &alarm.alarm_name)
            .and_then(|url| chat_link(&url, "the alarm in CloudWatch"))
            .map(|link| format!("Open {link}"))
            .into_iter()
            .collect(),
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

pub fn attributes(alarm: &AlarmTransition, target: &Target) -> BTreeMap<&'static str, String> {
    attributes_of(alarm.alarm_name.clone(), Some(alarm), target)
}

/// The message attributes subscription filter policies match on: `alarm_name` as given, the rest
/// from `alarm` (a group message's first) and the target.
fn attributes_of(
    alarm_name: String,
    alarm: Option<&AlarmTransition>,
    target: &Target,
) -> BTreeMap<&'static str, String> {
    // In the map's own order, so that building it sorts nothing.
    BTreeMap::from([
        ("account", alarm.map(|a| a.account.clone()).unwrap_or_default()),
        ("alarm_name", alarm_name),
        ("region", alarm.map(|a| a.region.clone()).unwrap_or_default()),
        ("rule", target.rule.clone()),
        ("severity", target.severity.as_str().to_string()),
        ("source", "pipewarden.alarm-fanout".to_string()),
        ("state", alarm.map(|a| a.state.as_str().to_string()).unwrap_or_default()),
    ])
}

/// One group message for `target`: every alarm of the flush that goes there, its newest state
/// first by severity of state (ALARM, INSUFFICIENT_DATA, OK), at most [`crate::groups::LISTED`].
pub fn group_message(
    rule: &str,
    labels: &BTreeMap<String, String>,
    entries: &[&crate::groups::Entry],
    target: &Target,
) -> OutboundMessage {
    let rank = |e: &&&crate::groups::Entry| match e.transition.state.as_str() {
        "ALARM" => 0,
        "INSUFFICIENT_DATA" => 1,
        _ => 2,
    };
    let mut sorted: Vec<&&crate::groups::Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| (rank(e), e.transition.alarm_name.clone()));
    let mut counts: BTreeMap<u8, (String, usize)> = BTreeMap::new();
    for e in &sorted {
        counts.entry(rank(e)).or_insert_with(|| (e.transition.state.to_string(), 0)).1 += 1;
    }
    let counts: Vec<String> = counts.values().map(|(state, n)| format!("{n} {state}")).collect();
    let group: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let group = if group.is_empty() { format!("rule {rule}") } else { group.join(", ") };
    let line = |e: &crate::groups::Entry| {
        let a = &e.transition;
        let when = a.state_time.map(|t| t.format(" at %H:%M:%S UTC").to_string()).unwrap_or_default();
        let mut text = format!("{:<17} {} in {}{when}", a.state.as_str(), one_line(&a.alarm_name), one_line(&a.region));
        if e.changes > 1 {
            let was = e.was.as_deref().map(|w| format!(", was {w}")).unwrap_or_default();
            let _ = write!(text, " ({} changes{was})", e.changes);
        }
        if let Some(reason) = &a.reason {
            let _ = write!(text, ": {}", clean_text(reason, 200));
        }
        text
    };
    let more = sorted.len().saturating_sub(crate::groups::LISTED);
    let first = sorted.first().map(|e| &e.transition);
    let attributes = attributes_of(format!("{} alarms", sorted.len()), first, target);
    if target.chat {
        let mut description: Vec<String> =
            sorted.iter().take(crate::groups::LISTED).map(|e| chat_escape(&line(e))).collect();
        if more > 0 {
            description.push(format!("(and {more} more)"));
        }
        let body = ChatNotification {
            id: format!("{rule} {group} {}", sorted.iter().map(|e| e.key.as_str()).collect::<Vec<_>>().join(",")),
            title: format!(
                "{} {}: {}",
                chat_icon(target.severity.as_str()),
                chat_escape(&counts.join(", ")),
                chat_escape(&group)
            ),
            description,
            next_steps: Vec::new(),
            keywords: vec![rule.to_string(), target.severity.as_str().to_string()],
            thread_id: format!("{rule} {group}"),
            summary: ascii_subject(&format!("[{}] {group}", counts.join(", "))),
            event_type: "CloudWatch Alarm State Change",
            related_resources: sorted.iter().filter_map(|e| e.transition.alarm_arn.clone()).take(10).collect(),
            additional_context: [
                ("severity".to_string(), target.severity.as_str().to_string()),
                ("rule".to_string(), target.rule.clone()),
            ]
            .into(),
        }
        .to_json();
        return OutboundMessage { subject: None, body, attributes };
    }
    let mut out = String::with_capacity(256 + 160 * sorted.len().min(crate::groups::LISTED));
    let _ = writeln!(out, "{} alarm{} of {group} changed:", sorted.len(), if sorted.len() == 1 { "" } else { "s" });
    for e in sorted.iter().take(crate::groups::LISTED) {
        let _ = write!(out, "\n{}", line(e));
    }
    if more > 0 {
        let _ = write!(out, "\n(and {more} more)");
    }
    let _ = write!(out, "\n\nSeverity:     {} (rule {})", target.severity.as_str(), target.rule);
    out.push_str("\n\n-- Pipewarden alarm-fanout");
    OutboundMessage {
        subject: Some(ascii_subject(&format!("[{}] {} alarms, {group}", counts.join(", "), sorted.len()))),
        body: out,
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Severity;
    use pipewarden_shared::events::cloudwatch::AlarmStateValue;
    use serde_json::Value;

    fn alarm(name: &str, state: &str, region: &str, arn: &str) -> AlarmTransition {
        AlarmTransition {
            source_id: "m-1".into(),
            alarm_name: name.into(),
            alarm_arn: Some(arn.into()),
            account: "123456789012".into(),
            region: region.into(),
            state: AlarmStateValue::parse(state),
            previous: Some(AlarmStateValue::Ok),
            reason: Some("Threshold Crossed <https://evil.example|the runbook>\n*Reason:* fine".into()),
            state_time: None,
            description: None,
            watched: Watched::Unknown,
            threshold: None,
            comparison: None,
            suppressed: None,
            silenced: None,
            note: None,
            contributor: None,
            tags: BTreeMap::new(),
            tags_known: true,
        }
    }

    fn target(chat: bool) -> Target {
        Target {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:t".into(),
            chat,
            severity: Severity::Critical,
            rule: "r".into(),
        }
    }

    fn chat_doc(alarm: &AlarmTransition) -> Value {
        serde_json::from_str(&chat(alarm, &target(true), None)).unwrap()
    }

    #[test]
    fn the_state_name_and_region_are_escaped_wherever_chat_shows_them() {
        let a = alarm(
            "web <!channel> [x](https://evil.example)",
            "<@U024BE7LH>",
            "us-east-1",
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web",
        );

        let doc = chat_doc(&a);

        assert_eq!(
            doc["content"]["title"],
            ":x: &lt;@U024BE7LH&gt; web &lt;!channel&gt; \\[x\\](https://evil.example) in us-east-1"
        );
        assert_eq!(doc["content"]["keywords"][0], "web &lt;!channel&gt; \\[x\\](https://evil.example)");
        assert_eq!(doc["content"]["keywords"][1], "&lt;@U024BE7LH&gt;");
        assert_eq!(
            doc["metadata"]["summary"],
            "\\[&lt;@U024BE7LH&gt;\\] web &lt;!channel&gt; \\[x\\](https://evil.example) in us-east-1"
        );
        assert_eq!(
            doc["content"]["description"],
            "*Reason:* Threshold Crossed &lt;https://evil.example\\|the runbook&gt; \\*Reason:\\* fine"
        );
        assert_eq!(
            doc["content"]["nextSteps"][0],
            "Open <https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/web%20%3C%21channel%3E%20%5Bx%5D%28https%3A%2F%2Fevil%2Eexample%29|the alarm in CloudWatch>"
        );
    }

    #[test]
    fn an_arn_or_region_that_is_not_aws_gives_no_link_and_no_related_resource() {
        let a = alarm("web", "ALARM", "evil.example/x?", "arn:aws:cloudwatch:evil.example/x?:123456789012:alarm:a");

        let doc = chat_doc(&a);
        let body = text(&a, &target(false), None);

        assert_eq!(doc["content"]["nextSteps"], serde_json::json!([]));
        assert_eq!(doc["metadata"]["relatedResources"], serde_json::json!([]));
        assert_eq!(doc["content"]["title"], ":x: ALARM web in evil.example/x?");
        assert!(!body.contains("console.aws.amazon.com"), "{body}");
        assert!(!body.contains("Console:"), "{body}");
        assert!(body.starts_with("ALARM: \"web\" in evil.example/x? (was OK)"), "{body}");
    }

    #[test]
    fn a_line_break_in_any_field_of_the_first_line_stays_on_it() {
        let a = alarm("web\nSeverity: info\u{2028}x", "ALARM\r\nAccount: 1", "us-east-1", "");

        let body = text(&a, &target(false), None);

        let first = body.lines().next().unwrap();
        assert_eq!(first, "ALARM  ACCOUNT: 1: \"web Severity: info x\" in us-east-1 (was OK)");
        assert_eq!(body.lines().filter(|l| l.starts_with("Severity:")).count(), 1, "{body}");
        assert!(!body.contains('\u{2028}'));
    }
}
