//! The words of a notification: SNS subject, readable text for email, the Amazon Q Developer in
//! chat applications custom notification JSON, and message attributes for filter policies.

use std::collections::BTreeMap;

use pipewarden_shared::format::{
    ascii_subject, chat_escape, chat_icon, clean_text, duration_words, short_commit, ChatNotification,
};
use pipewarden_shared::ports::OutboundMessage;
use serde_json::json;

use crate::config::Format;
use crate::decide::Report;

pub fn message(report: &Report, format: Format) -> OutboundMessage {
    OutboundMessage {
        subject: match format {
            Format::Text => Some(subject(report)),
            // Chat applications read the JSON body; SNS passes no subject to them.
            Format::Chat => None,
        },
        body: match format {
            Format::Text => text(report),
            Format::Chat => chat(report),
        },
        attributes: attributes(report),
    }
}

/// `[FAILED] flask-web-app: Deploy/Deploy failed`: plain ASCII, at most 100 characters.
pub fn subject(report: &Report) -> String {
    let tag = if report.outcome.approval { "APPROVAL".to_string() } else { report.outcome.state.as_str().to_string() };
    let mut text = format!("[{tag}] {}", report.pipeline);
    match (&report.failure, &report.outcome.approval) {
        (Some(f), false) if !f.failed.stage.is_empty() => {
            text.push_str(&format!(": {}/{} failed", f.failed.stage, f.failed.action))
        }
        _ if report.outcome.level != pipewarden_shared::events::codepipeline::Level::Pipeline
            || report.outcome.approval =>
        {
            text.push_str(&format!(": {}", report.what()))
        }
        _ => {}
    }
    if report.outcome.attempt > 1 {
        text.push_str(&format!(" (attempt {})", report.outcome.attempt));
    }
    ascii_subject(&text)
}

fn trigger_line(report: &Report) -> Option<String> {
    let t = report.trigger.as_ref()?;
    let mut parts = Vec::new();
    if let Some(commit) = &t.commit_id {
        parts.push(format!("commit {}", short_commit(commit)));
    }
    if let Some(message) = &t.commit_message {
        parts.push(format!("\"{}\"", clean_text(message.lines().next().unwrap_or(""), 120)));
    }
    if let Some(author) = &t.author {
        parts.push(format!("by {}", clean_text(author, 80)));
    }
    if let Some(branch) = &t.branch {
        parts.push(format!("on {}", clean_text(branch, 100)));
    } else if let Some(tag) = &t.tag {
        parts.push(format!("tag {}", clean_text(tag, 100)));
    }
    match (&t.trigger_type, parts.is_empty()) {
        (Some(kind), true) => match &t.trigger_detail {
            Some(detail) => Some(format!("{kind} ({})", clean_text(detail, 200))),
            None => Some(kind.clone()),
        },
        (Some(kind), false) => Some(format!("{} ({kind})", parts.join(" "))),
        (None, false) => Some(parts.join(" ")),
        (None, true) => None,
    }
}

/// The email body.
pub fn text(report: &Report) -> String {
    let mut out = Vec::new();
    out.push(format!("Pipeline {} {}", report.pipeline, report.what()));
    out.push(String::new());
    out.push(format!("Execution:  {} (attempt {})", report.execution_id, report.outcome.attempt));
    out.push(format!("Account:    {} in {}", report.account, report.region));
    if let Some(started) = report.started_at {
        out.push(format!("Started:    {}", started.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    if let Some(at) = report.at {
        out.push(format!("At:         {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    if let Some(seconds) = report.duration_seconds() {
        out.push(format!("Duration:   {}", duration_words(seconds)));
    }
    if let Some(trigger) = trigger_line(report) {
        out.push(format!("Trigger:    {trigger}"));
    }
    if let Some(f) = &report.failure {
        out.push(String::new());
        let provider = f.failed.provider.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        out.push(format!("Failed:     stage {}, action {}{provider}", f.failed.stage, f.failed.action));
        if let Some(code) = &f.failed.error_code {
            out.push(format!("Error:      {}", clean_text(code, 200)));
        }
        if let Some(summary) = &f.failed.summary {
            out.push(format!("Summary:    {}", clean_text(summary, 1000)));
        }
        if let Some(link) = &f.link {
            out.push(format!("Details:    {link}"));
        }
        for l in &f.lifecycle {
            let script = l.script_name.as_deref().map(|s| format!(" (script {s})")).unwrap_or_default();
            let code = l.error_code.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
            out.push(format!("Lifecycle:  {}{script} failed on {}{code}", l.lifecycle_event, l.target_id));
            if let Some(message) = &l.message {
                out.push(format!("            {}", clean_text(message, 500)));
            }
            if let Some(tail) = l.log_tail.as_deref().filter(|t| !t.trim().is_empty()) {
                out.push("            Log tail:".to_string());
                let lines: Vec<&str> = tail.lines().collect();
                for line in &lines[lines.len().saturating_sub(20)..] {
                    out.push(format!("            | {}", clean_text(line, 300)));
                }
            }
        }
    }
    out.push(String::new());
    out.push(format!("Execution:  {}", report.execution_link));
    out.push(String::new());
    out.push("-- Pipewarden pipeline-notifier".to_string());
    out.join("\n")
}

/// Amazon Q Developer in chat applications custom notification.
pub fn chat(report: &Report) -> String {
    let mut description = Vec::new();
    description.push(format!("*Execution:* <{}|{}>", report.execution_link, chat_escape(&report.execution_id)));
    if let Some(seconds) = report.duration_seconds() {
        description.push(format!("*Duration:* {}", duration_words(seconds)));
    }
    if let Some(trigger) = trigger_line(report) {
        description.push(format!("*Trigger:* {}", chat_escape(&trigger)));
    }
    let mut next_steps = Vec::new();
    if let Some(f) = &report.failure {
        let provider = f.failed.provider.as_deref().map(|p| format!(" ({})", chat_escape(p))).unwrap_or_default();
        description.push(format!(
            "*Failed:* stage {}, action {}{provider}",
            chat_escape(&f.failed.stage),
            chat_escape(&f.failed.action)
        ));
        if let Some(summary) = &f.failed.summary {
            description.push(format!("*Summary:* {}", chat_escape(&clean_text(summary, 500))));
        }
        for l in &f.lifecycle {
            description.push(format!(
                "*Lifecycle:* {} failed on {}",
                chat_escape(&l.lifecycle_event),
                chat_escape(&l.target_id)
            ));
        }
        if let Some(link) = &f.link {
            next_steps.push(format!(
                "Open <{link}|the failed {}>",
                chat_escape(f.failed.provider.as_deref().unwrap_or("action"))
            ));
        }
    }
    next_steps.push(format!("Open <{}|the execution timeline>", report.execution_link));
    ChatNotification {
        id: format!("{}:{}", report.execution_id, report.outcome.key),
        title: format!(
            "{} {} {}",
            chat_icon(report.severity()),
            chat_escape(&report.pipeline),
            chat_escape(&report.what())
        ),
        description,
        next_steps,
        keywords: vec![
            report.pipeline.clone(),
            report.outcome.state.as_str().to_string(),
            report.severity().to_string(),
        ],
        thread_id: format!("{}/{}", report.pipeline, report.execution_id),
        summary: subject(report),
        event_type: "CodePipeline Execution State Change",
        related_resources: vec![format!(
            "arn:{}:codepipeline:{}:{}:{}",
            pipewarden_shared::links::partition(&report.region),
            report.region,
            report.account,
            report.pipeline
        )],
        additional_context: json!({"severity": report.severity(), "attempt": report.outcome.attempt}),
    }
    .to_json()
}

/// String attributes subscribers can filter on.
pub fn attributes(report: &Report) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("pipeline".to_string(), report.pipeline.clone()),
        (
            "state".to_string(),
            if report.outcome.approval {
                "APPROVAL_WAITING".to_string()
            } else {
                report.outcome.state.as_str().to_string()
            },
        ),
        ("severity".to_string(), report.severity().to_string()),
        ("level".to_string(), format!("{:?}", report.outcome.level).to_lowercase()),
        ("source".to_string(), "pipewarden.pipeline-notifier".to_string()),
        ("region".to_string(), report.region.clone()),
        ("account".to_string(), report.account.clone()),
    ])
}
