//! The words of a notification: SNS subject, readable text for email, the Amazon Q Developer in
//! chat applications custom notification JSON, and message attributes for filter policies.

use std::borrow::Cow;
use std::collections::BTreeMap;

use pipewarden_shared::format::{
    ascii_subject, chat_escape, chat_icon, chat_link, clean_text, duration_words, one_line, short_commit,
    ChatNotification,
};
use pipewarden_shared::links;
use pipewarden_shared::ports::OutboundMessage;

use crate::config::Format;
use crate::decide::Report;
use crate::digest::Digest;
use crate::lookups::ApprovalDetail;
use crate::lookups::SourceRevision;
use crate::timings;
use pipewarden_shared::events::codepipeline::ExecutionState;

/// At most this many source revisions are listed (a pipeline rarely has more sources).
const MAX_REVISIONS: usize = 5;

/// The most the text of a notification takes: SNS takes 256 KiB for the message with its
/// subject and attributes; what the lifecycle failures may fill stops here, leaving room for the
/// lines after them, the subject and the attributes.
const TEXT_BUDGET_BYTES: usize = 200 * 1024;

/// At most this many failed targets are listed in chat; the rest are counted.
const CHAT_MAX_TARGETS: usize = 10;

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
    // The revision lines already say which commit, with its message and link.
    let commit_listed = report.revisions.iter().any(|r| r.revision_id.is_some() && r.revision_id == t.commit_id);
    let mut parts = Vec::new();
    if let Some(commit) = t.commit_id.as_ref().filter(|_| !commit_listed) {
        parts.push(format!("commit {}", short_commit(commit)));
    }
    if let Some(message) = t.commit_message.as_ref().filter(|_| !commit_listed) {
        parts.push(format!("\"{}\"", first_line(message, 120)));
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

/// How long a failing streak lasted, as a reader says it: `34 minutes`, `2 hours 5 minutes`,
/// `3 days 4 hours` (the unit below the largest only).
/// Where the time went, in one line each: `Source 12s, Build 6m 07s (usually 2m 00s), Deploy 2m 09s`
/// and the slowest actions. Names come from the event: kept on one line.
fn timing_lines(report: &Report) -> Option<(String, String)> {
    let t = &report.timings;
    if t.stages.is_empty() {
        return None;
    }
    let stages = t
        .stages
        .iter()
        .map(|s| match s.slow_against {
            Some(usual) => {
                format!("{} {} (slow: usually {})", one_line(&s.name), timings::words(s.seconds), timings::words(usual))
            }
            None => format!("{} {}", one_line(&s.name), timings::words(s.seconds)),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let slowest = t
        .slowest_actions
        .iter()
        .map(|a| format!("{} {}", one_line(&a.name), timings::words(a.seconds)))
        .collect::<Vec<_>>()
        .join(", ");
    Some((stages, slowest))
}

/// `: 3 failed executions in a row`; nothing when they were not counted.
fn in_a_row(failures: u32) -> String {
    match failures {
        0 => String::new(),
        n => format!(": {n} failed executions in a row"),
    }
}

/// `, 3 failed executions`; nothing when the count is unknown (health written before counting).
fn failed_executions(failures: u32) -> String {
    match failures {
        0 => String::new(),
        1 => ", 1 failed execution".to_string(),
        n => format!(", {n} failed executions"),
    }
}

fn streak_words(seconds: i64) -> String {
    let unit = |n: i64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => unit(seconds.max(0), "second"),
        (0, 0, m) => unit(m, "minute"),
        (0, h, 0) => unit(h, "hour"),
        (0, h, m) => format!("{} {}", unit(h, "hour"), unit(m, "minute")),
        (d, 0, _) => unit(d, "day"),
        (d, h, _) => format!("{} {}", unit(d, "day"), unit(h, "hour")),
    }
}

fn first_line(text: &str, max: usize) -> Cow<'_, str> {
    clean_text(text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""), max)
}

/// The revisions worth a line: those that say something, at most [`MAX_REVISIONS`].
fn listed_revisions(report: &Report) -> impl Iterator<Item = &SourceRevision> {
    report
        .revisions
        .iter()
        .filter(|r| r.revision_id.is_some() || r.summary.is_some() || r.url.is_some())
        .take(MAX_REVISIONS)
}

/// `7c4a9e3f "Fix health check path for nginx" https://github.com/.../commit/7c4a9e3f...`, with the
/// artifact's name first when the execution ran several sources.
fn revision_line(report: &Report, revision: &SourceRevision) -> String {
    let mut parts = Vec::new();
    if report.revisions.len() > 1 {
        if let Some(artifact) = &revision.artifact {
            parts.push(clean_text(artifact, 100));
        }
    }
    if let Some(id) = &revision.revision_id {
        parts.push(clean_text(short_commit(id), 8));
    }
    if let Some(summary) = &revision.summary {
        parts.push(format!("\"{}\"", first_line(summary, 120)).into());
    }
    if let Some(url) = &revision.url {
        parts.push(clean_text(url, 500));
    }
    parts.join(" ")
}

fn chat_revision_line(report: &Report, revision: &SourceRevision) -> String {
    let mut parts = Vec::new();
    if report.revisions.len() > 1 {
        if let Some(artifact) = &revision.artifact {
            parts.push(chat_escape(&clean_text(artifact, 100)));
        }
    }
    let id = revision.revision_id.as_deref().map(|id| clean_text(short_commit(id), 8));
    let url = revision.url.as_deref();
    match (id, url) {
        (Some(id), Some(url)) => parts.push(chat_link(url, &id).unwrap_or_else(|| chat_escape(&id))),
        (None, Some(url)) => parts.extend(chat_link(url, "commit")),
        (Some(id), None) => parts.push(chat_escape(&id)),
        (None, None) => {}
    }
    if let Some(summary) = &revision.summary {
        parts.push(format!("\"{}\"", chat_escape(&first_line(summary, 120))));
    }
    parts.join(" ")
}

/// The email body. Plain text needs no escaping, but every field from the event is kept on its own
/// line ([`one_line`], [`clean_text`]).
pub fn text(report: &Report) -> String {
    // The verdict, then why (what failed where), then what ran, then the links.
    let mut out = Vec::new();
    out.push(format!("Pipeline {} {}", one_line(&report.pipeline), one_line(&report.what())));
    out.push(String::new());
    if let Some((since, seconds, failures)) = report.restored() {
        out.push(format!(
            "Restored:   the pipeline had been failing since {} ({}{})",
            since.format("%Y-%m-%d %H:%M:%S UTC"),
            streak_words(seconds),
            failed_executions(failures)
        ));
    }
    if let Some((since, seconds, failures)) = report.still_failing() {
        out.push(format!(
            "Failing:    since {} ({}){}",
            since.format("%Y-%m-%d %H:%M:%S UTC"),
            streak_words(seconds),
            in_a_row(failures)
        ));
    }
    if let Some(a) = &report.approval {
        out.extend(
            approval_lines(report, a).into_iter().map(|(label, value)| format!("{:<12}{value}", format!("{label}:"))),
        );
        out.push(String::new());
    }
    if let Some(f) = &report.failure {
        let provider = f.failed.provider.as_deref().map(|p| format!(" ({})", one_line(p))).unwrap_or_default();
        out.push(format!(
            "Failed:     stage {}, action {}{provider}",
            one_line(&f.failed.stage),
            one_line(&f.failed.action)
        ));
        if let Some(code) = &f.failed.error_code {
            out.push(format!("Error:      {}", clean_text(code, 200)));
        }
        if let Some(summary) = &f.failed.summary {
            out.push(format!("Summary:    {}", clean_text(summary, 1000)));
        }
        // What failed where, within the room SNS leaves: each target with its log tail while that
        // fits, then without, then "and N more". The verdict above is never cut, and the budget
        // keeps room for the few short lines below.
        let mut used: usize = out.iter().map(|l| l.len() + 1).sum();
        for (i, l) in f.lifecycle.iter().enumerate() {
            let script = l.script_name.as_deref().map(|s| format!(" (script {})", one_line(s))).unwrap_or_default();
            let code = l.error_code.as_deref().map(|c| format!(": {}", one_line(c))).unwrap_or_default();
            let mut block = vec![format!(
                "Lifecycle:  {}{script} failed on {}{code}",
                one_line(&l.lifecycle_event),
                one_line(&l.target_id)
            )];
            if let Some(message) = &l.message {
                block.push(format!("            {}", clean_text(message, 500)));
            }
            let brief = block.clone();
            if let Some(tail) = l.log_tail.as_deref().filter(|t| !t.trim().is_empty()) {
                block.push("            Log tail:".to_string());
                let lines: Vec<&str> = tail.lines().collect();
                for line in &lines[lines.len().saturating_sub(20)..] {
                    block.push(format!("            | {}", clean_text(line, 300)));
                }
            }
            let size = |b: &[String]| b.iter().map(|l| l.len() + 1).sum::<usize>();
            let block = if used + size(&block) <= TEXT_BUDGET_BYTES { block } else { brief };
            if used + size(&block) > TEXT_BUDGET_BYTES {
                out.push(format!(
                    "            ... and {} more failed target(s): see the deployment",
                    f.lifecycle.len() - i
                ));
                break;
            }
            used += size(&block);
            out.extend(block);
        }
        out.push(String::new());
    }
    out.push(format!("Execution:  {} (attempt {})", one_line(&report.execution_id), report.outcome.attempt));
    out.push(format!("Account:    {} in {}", one_line(&report.account), one_line(&report.region)));
    if let Some(started) = report.started_at {
        out.push(format!("Started:    {}", started.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    if let Some(at) = report.at {
        out.push(format!("At:         {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    if let Some(seconds) = report.duration_seconds() {
        out.push(format!("Duration:   {}", duration_words(seconds)));
    }
    if let Some((stages, slowest)) = timing_lines(report) {
        out.push(format!("Stages:     {stages}"));
        if !slowest.is_empty() {
            out.push(format!("Slowest:    {slowest}"));
        }
    }
    for revision in listed_revisions(report) {
        out.push(format!("Revision:   {}", revision_line(report, revision)));
    }
    if let Some(trigger) = trigger_line(report) {
        out.push(format!("Trigger:    {}", one_line(&trigger)));
    }
    let details = report.failure.as_ref().and_then(|f| f.link.as_ref());
    if details.is_some() || report.execution_link.is_some() {
        out.push(String::new());
    }
    if let Some(link) = details {
        out.push(format!("Details:    {link}"));
    }
    if let Some(link) = &report.execution_link {
        out.push(format!("Console:    {link}"));
    }
    out.push(String::new());
    out.push("-- Pipewarden pipeline-notifier".to_string());
    out.join("\n")
}

/// What an approval's notification says: the action, what it asks, what to review, who can
/// approve; once decided, by whom and the comment. Text from the action's configuration and the
/// reviewer is kept on one line.
fn approval_lines(report: &Report, a: &ApprovalDetail) -> Vec<(&'static str, String)> {
    let o = &report.outcome;
    let place = format!(
        "stage {}, action {}",
        one_line(o.stage.as_deref().unwrap_or("?")),
        one_line(o.action.as_deref().unwrap_or("?"))
    );
    let mut lines = Vec::new();
    match o.state {
        ExecutionState::Succeeded => lines.push(("Approved", place)),
        // An approval nobody answers in time fails too, with no reviewer.
        ExecutionState::Failed if a.by.is_some() => lines.push(("Rejected", place)),
        ExecutionState::Failed => lines.push(("Not approved", format!("{place}: rejected, or not answered in time"))),
        _ => lines.push(("Approval", format!("{place}: waiting for review"))),
    }
    if let Some(by) = &a.by {
        lines.push(("By", clean_text(&reviewer(by), 200).into_owned()));
    }
    if let Some(comment) = &a.comment {
        lines.push(("Comment", clean_text(comment, 512).into_owned()));
    }
    if let Some(summary) = &a.summary {
        lines.push(("Summary", clean_text(summary, 1000).into_owned()));
    }
    if let Some(url) = &a.review_url {
        lines.push(("Review", clean_text(url, 1000).into_owned()));
    }
    if o.state == ExecutionState::Started {
        if let Some(approvers) = &a.approvers {
            lines.push(("Approvers", clean_text(approvers, 300).into_owned()));
        }
    }
    lines
}

/// `Bob (arn:aws:iam::123456789012:user/Bob)`: the name after the ARN's last `/`, then the ARN.
fn reviewer(arn: &str) -> String {
    match arn.rsplit_once('/') {
        Some((_, name)) if arn.starts_with("arn:") && !name.is_empty() => format!("{name} ({arn})"),
        _ => arn.to_string(),
    }
}

/// What the Approve and Reject custom actions run, as `PutApprovalResult` input (compact JSON, no
/// spaces: one command-line word), for a waiting approval whose token is known.
pub fn approval_inputs(report: &Report) -> Option<(String, String)> {
    let a = report.approval.as_ref()?;
    let token = a.token.as_deref()?;
    let o = &report.outcome;
    let input = |status: &str, summary: &str| {
        serde_json::json!({
            "pipelineName": report.pipeline,
            "stageName": o.stage,
            "actionName": o.action,
            "result": {"summary": summary, "status": status},
            "token": token,
        })
        .to_string()
    };
    Some((input("Approved", "Approved-from-chat"), input("Rejected", "Rejected-from-chat")))
}

/// Amazon Q Developer in chat applications custom notification. Every field of the event in it
/// passes [`chat_escape`] once: here (or in [`chat_link`]) for the markup fields, in
/// [`ChatNotification::to_json`] for keywords and summary.
pub fn chat(report: &Report) -> String {
    let mut description = Vec::new();
    if let Some((since, seconds, failures)) = report.restored() {
        description.push(format!(
            "*Restored:* failing since {} ({}{})",
            since.format("%Y-%m-%d %H:%M UTC"),
            streak_words(seconds),
            failed_executions(failures)
        ));
    }
    if let Some((since, seconds, failures)) = report.still_failing() {
        description.push(format!(
            "*Failing:* since {} ({}){}",
            since.format("%Y-%m-%d %H:%M UTC"),
            streak_words(seconds),
            in_a_row(failures)
        ));
    }
    let execution = report.execution_link.as_deref().and_then(|url| chat_link(url, &report.execution_id));
    description.push(format!("*Execution:* {}", execution.unwrap_or_else(|| chat_escape(&report.execution_id))));
    if let Some(seconds) = report.duration_seconds() {
        description.push(format!("*Duration:* {}", duration_words(seconds)));
    }
    if let Some((stages, slowest)) = timing_lines(report) {
        description.push(format!("*Stages:* {}", chat_escape(&stages)));
        if !slowest.is_empty() {
            description.push(format!("*Slowest:* {}", chat_escape(&slowest)));
        }
    }
    for revision in listed_revisions(report) {
        description.push(format!("*Revision:* {}", chat_revision_line(report, revision)));
    }
    if let Some(trigger) = trigger_line(report) {
        description.push(format!("*Trigger:* {}", chat_escape(&trigger)));
    }
    let mut next_steps = Vec::new();
    if let Some(a) = &report.approval {
        for (label, value) in approval_lines(report, a) {
            match (label, chat_link(&value, "what to review")) {
                ("Review", Some(link)) => next_steps.push(format!("Review {link}")),
                _ => description.push(format!("*{label}:* {}", chat_escape(&value))),
            }
        }
    }
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
        for l in f.lifecycle.iter().take(CHAT_MAX_TARGETS) {
            description.push(format!(
                "*Lifecycle:* {} failed on {}",
                chat_escape(&l.lifecycle_event),
                chat_escape(&l.target_id)
            ));
        }
        if f.lifecycle.len() > CHAT_MAX_TARGETS {
            description.push(format!("... and {} more failed target(s)", f.lifecycle.len() - CHAT_MAX_TARGETS));
        }
        let label = format!("the failed {}", f.failed.provider.as_deref().unwrap_or("action"));
        if let Some(link) = f.link.as_deref().and_then(|url| chat_link(url, &label)) {
            next_steps.push(format!("Open {link}"));
        }
    }
    if let Some(link) = report.execution_link.as_deref().and_then(|url| chat_link(url, "the execution timeline")) {
        next_steps.push(format!("Open {link}"));
    }
    let json = ChatNotification {
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
        related_resources: links::arn("codepipeline", &report.region, &report.account, &report.pipeline)
            .into_iter()
            .collect(),
        additional_context: {
            let mut context: BTreeMap<String, String> = [
                ("severity".to_string(), report.severity().to_string()),
                ("attempt".to_string(), report.outcome.attempt.to_string()),
            ]
            .into();
            // What the Approve and Reject custom actions run (their variables `approve`, `reject`).
            if let Some((approve, reject)) = approval_inputs(report) {
                context.insert("approve".to_string(), approve);
                context.insert("reject".to_string(), reject);
            }
            context
        },
    }
    .to_json();
    if approval_inputs(report).is_none() {
        return json;
    }
    // Buttons of custom actions show on custom notifications that enable them.
    let mut value: serde_json::Value = serde_json::from_str(&json).expect("the chat notification is JSON");
    value["metadata"]["enableCustomActions"] = serde_json::Value::Bool(true);
    value.to_string()
}

/// The digest's message: plain text for email, or the chat notification.
pub fn digest_message(d: &Digest, format: Format) -> OutboundMessage {
    let name: String =
        d.pipeline.as_deref().map(|p| one_line(p).into_owned()).unwrap_or_else(|| "all pipelines".into());
    let subject =
        ascii_subject(&format!("[DIGEST] {name}: {} delivery to {}", d.period.as_str(), d.to.format("%Y-%m-%d")));
    let lines = digest_lines(d);
    let attributes = BTreeMap::from([
        ("pipeline", d.pipeline.clone().unwrap_or_else(|| "*".into())),
        ("state", "DIGEST".to_string()),
        ("severity", "info".to_string()),
        ("level", "digest".to_string()),
        ("source", "pipewarden.pipeline-notifier".to_string()),
    ]);
    let heading = format!(
        "Delivery of {name}, the {} to {} (the {} before in brackets)",
        d.period.noun(),
        d.to.format("%Y-%m-%d %H:%M UTC"),
        d.period.noun()
    );
    match format {
        Format::Text => {
            let mut out = vec![heading, String::new()];
            out.extend(lines.iter().map(|(label, value)| format!("{:<22}{value}", format!("{label}:"))));
            out.extend(digest_notes(d));
            OutboundMessage { subject: Some(subject), body: out.join("\n") + "\n", attributes }
        }
        Format::Chat => {
            let mut description: Vec<String> =
                lines.iter().map(|(label, value)| format!("*{label}:* {}", chat_escape(value))).collect();
            description.extend(digest_notes(d).iter().map(|n| chat_escape(n)));
            let body = ChatNotification {
                id: format!(
                    "digest:{}:{}:{}",
                    d.period.as_str(),
                    d.pipeline.as_deref().unwrap_or("*"),
                    d.to.timestamp()
                ),
                title: format!(":bar_chart: {} {} delivery", chat_escape(&name), d.period.as_str()),
                description,
                next_steps: Vec::new(),
                keywords: vec![name.clone(), "DORA".to_string(), d.period.as_str().to_string()],
                thread_id: format!("digest/{}/{}", d.period.as_str(), d.pipeline.as_deref().unwrap_or("*")),
                summary: subject,
                event_type: "Pipewarden Delivery Digest",
                related_resources: Vec::new(),
                additional_context: [("period".to_string(), d.period.as_str().to_string())].into(),
            }
            .to_json();
            OutboundMessage { subject: None, body, attributes }
        }
    }
}

/// Each figure with the period before: `12 (8, up 4)`.
fn digest_lines(d: &Digest) -> Vec<(&'static str, String)> {
    let (c, p) = (&d.current, &d.previous);
    let count = |now: usize, before: usize| {
        format!("{now} ({before}, {})", change(now as f64 - before as f64, |x| format!("{x:.0}")))
    };
    let rate = |now: Option<f64>, before: Option<f64>| {
        let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
        let trend = match (now, before) {
            (Some(n), Some(b)) => change((n - b) * 100.0, |x| format!("{x:.0} points")),
            _ => "no trend".to_string(),
        };
        format!("{} ({}, {trend})", pct(now), pct(before))
    };
    let time = |now: Option<f64>, before: Option<f64>| {
        let words = |s: Option<f64>| s.map_or("-".to_string(), |s| timings::words(s.round() as i64));
        let trend = match (now, before) {
            (Some(n), Some(b)) => change(n - b, |x| timings::words(x.round() as i64)),
            _ => "no trend".to_string(),
        };
        format!("{} ({}, {trend})", words(now), words(before),)
    };
    let mut lines = vec![
        ("Executions", count(c.executions, p.executions)),
        ("Success rate", rate(c.success_rate, p.success_rate)),
        ("Duration (median)", time(c.median_seconds, p.median_seconds)),
        ("Duration (p90)", time(c.p90_seconds, p.p90_seconds)),
        (
            "Deployments",
            format!(
                "{} ({}, {}), {:.1} a day",
                c.deployments,
                p.deployments,
                change(c.deployments as f64 - p.deployments as f64, |x| format!("{x:.0}")),
                c.deployments_per_day
            ),
        ),
        ("Lead time (median)", time(c.median_lead_seconds, p.median_lead_seconds)),
        ("Change failure rate", rate(c.change_failure_rate, p.change_failure_rate)),
        ("Time to restore", time(c.median_restore_seconds, p.median_restore_seconds)),
    ];
    if d.pipeline.is_none() {
        const LISTED: usize = 20;
        if d.pipelines.len() > LISTED {
            lines.push(("Pipelines", format!("{} ran; the {LISTED} with the most executions:", d.pipelines.len())));
        }
        let mut busiest: Vec<&(String, crate::digest::Figures)> = d.pipelines.iter().collect();
        busiest.sort_by(|a, b| b.1.executions.cmp(&a.1.executions).then_with(|| a.0.cmp(&b.0)));
        for (name, f) in busiest.into_iter().take(LISTED) {
            let rate = f.success_rate.map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
            lines.push(("Pipeline", format!("{}: {} executions, {rate} succeeded", one_line(name), f.executions)));
        }
    }
    lines
}

fn digest_notes(d: &Digest) -> Vec<String> {
    let mut notes = Vec::new();
    if d.current.executions == 0 && d.previous.executions == 0 {
        notes.push(format!("No execution ended in either {}.", d.period.noun()));
    }
    if let Some(since) = d.partial {
        notes.push(format!(
            "Runs are counted from {} on (when recording began, or the oldest of the {} kept): the {} before is not complete.",
            since.format("%Y-%m-%d %H:%M UTC"),
            crate::metrics::MAX_RUNS,
            d.period.noun()
        ));
    }
    if !notes.is_empty() {
        notes.insert(0, String::new());
    }
    notes
}

/// `up 4`, `down 2 points`, `no change`.
fn change(delta: f64, show: impl Fn(f64) -> String) -> String {
    let shown = show(delta.abs());
    if delta.abs() < 1e-9 || shown == show(0.0) {
        "no change".to_string()
    } else if delta > 0.0 {
        format!("up {shown}")
    } else {
        format!("down {shown}")
    }
}

/// String attributes subscribers can filter on.
pub fn attributes(report: &Report) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("pipeline", report.pipeline.clone()),
        (
            "state",
            if report.outcome.approval {
                match report.outcome.state {
                    ExecutionState::Succeeded => "APPROVAL_APPROVED".to_string(),
                    ExecutionState::Failed => "APPROVAL_REJECTED".to_string(),
                    _ => "APPROVAL_WAITING".to_string(),
                }
            } else {
                report.outcome.state.as_str().to_string()
            },
        ),
        ("severity", report.severity().to_string()),
        ("level", format!("{:?}", report.outcome.level).to_lowercase()),
        ("source", "pipewarden.pipeline-notifier".to_string()),
        ("region", report.region.clone()),
        ("account", report.account.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{FailureReport, Outcome};
    use crate::lookups::FailedActionDetail;
    use crate::metrics::Streak;
    use crate::timeline::Trigger;
    use pipewarden_shared::events::codepipeline::{ExecutionState, Level};

    const COMMIT: &str = "7c4a9e3f1b2d6e5a8c0f3b9d2e1a4c6b8d0e2f13";

    fn report(trigger: Option<Trigger>, revisions: Vec<SourceRevision>) -> Report {
        Report {
            pipeline: "flask-web-app".into(),
            execution_id: "8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            outcome: Outcome {
                key: "pipeline:SUCCEEDED:attempt-1".into(),
                level: Level::Pipeline,
                state: ExecutionState::Succeeded,
                stage: None,
                action: None,
                approval: false,
                attempt: 1,
            },
            started_at: None,
            at: None,
            trigger,
            revisions,
            failure: None,
            execution_link: Some("https://console.example/execution".into()),
            streak: None,
            timings: Default::default(),
            approval: None,
        }
    }

    fn revision(summary: &str, url: &str) -> SourceRevision {
        SourceRevision {
            artifact: Some("SourceArtifact".into()),
            revision_id: Some(COMMIT.into()),
            summary: Some(summary.into()),
            created: None,
            url: Some(url.into()),
        }
    }

    #[test]
    fn the_revision_line_names_the_commit_its_first_line_and_link_and_the_trigger_does_not_repeat_them() {
        let trigger = Trigger {
            trigger_type: Some("CodeStarSourceConnection".into()),
            commit_id: Some(COMMIT.into()),
            commit_message: Some("Fix health check path for nginx".into()),
            author: Some("Mary Major".into()),
            branch: Some("main".into()),
            ..Trigger::default()
        };
        let url = format!("https://github.com/example-org/flask-web-app/commit/{COMMIT}");
        let r = report(Some(trigger), vec![revision("Fix health check path for nginx\n\nnginx answers /health", &url)]);

        let body = text(&r);

        assert!(body.contains(&format!("Revision:   7c4a9e3f \"Fix health check path for nginx\" {url}")), "{body}");
        assert!(body.contains("Trigger:    by Mary Major on main (CodeStarSourceConnection)"), "{body}");
        assert!(!body.contains("nginx answers /health"), "first line only: {body}");
    }

    #[test]
    fn chat_links_the_commit_only_when_the_link_is_safe_and_escapes_the_summary() {
        let safe = report(None, vec![revision("*bold* <!channel>", "https://github.com/o/r/commit/7c4a9e3f")]);
        let doc: serde_json::Value = serde_json::from_str(&chat(&safe)).unwrap();
        let description = doc["content"]["description"].as_str().unwrap();
        assert!(description.contains("*Revision:* <https://github.com/o/r/commit/7c4a9e3f|7c4a9e3f>"), "{description}");
        assert!(description.contains("\\*bold\\* &lt;!channel&gt;"), "{description}");

        let unsafe_link = report(None, vec![revision("x", "https://evil.example/a|click here")]);
        let doc: serde_json::Value = serde_json::from_str(&chat(&unsafe_link)).unwrap();
        let description = doc["content"]["description"].as_str().unwrap();
        assert!(description.contains("*Revision:* 7c4a9e3f \"x\""), "{description}");
        assert!(!description.contains("evil.example"), "{description}");
    }

    #[test]
    fn several_sources_are_named_and_a_v1_trigger_stays_whole() {
        let trigger = Trigger {
            trigger_type: Some("StartPipelineExecution".into()),
            trigger_detail: Some("arn:aws:sts::123456789012:assumed-role/Admin/jdoe".into()),
            ..Trigger::default()
        };
        let mut config = revision("Raise worker count", "https://github.com/o/config/commit/1234");
        config.artifact = Some("ConfigArtifact".into());
        config.revision_id = Some("0123456789abcdef".into());
        let r = report(Some(trigger), vec![revision("Fix", "https://github.com/o/r/commit/7c4a"), config]);

        let body = text(&r);

        assert!(body.contains("Revision:   SourceArtifact 7c4a9e3f \"Fix\""), "{body}");
        assert!(body.contains("Revision:   ConfigArtifact 01234567 \"Raise worker count\""), "{body}");
        assert!(
            body.contains("Trigger:    StartPipelineExecution (arn:aws:sts::123456789012:assumed-role/Admin/jdoe)"),
            "{body}"
        );
    }

    /// Issue 21: the verdict, then why, then what ran, then the links.
    #[test]
    fn a_failure_reads_verdict_then_why_then_what_ran_then_links() {
        let mut r = report(None, vec![]);
        r.outcome.state = ExecutionState::Failed;
        r.failure = Some(FailureReport {
            failed: FailedActionDetail {
                stage: "Deploy".into(),
                action: "Deploy".into(),
                provider: Some("CodeDeploy".into()),
                ..FailedActionDetail::default()
            },
            link: Some("https://console.example/deployments/d-1".into()),
            lifecycle: vec![],
        });

        let body = text(&r);
        let position = |prefix: &str| {
            body.lines().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix}: {body}"))
        };
        assert_eq!(position("Pipeline flask-web-app FAILED"), 0, "{body}");
        assert_eq!(position("Failed:     stage Deploy, action Deploy (CodeDeploy)"), 2, "{body}");
        assert!(position("Failed:") < position("Execution:  8f2a"), "{body}");
        assert!(position("Execution:  8f2a") < position("Details:    https://"), "{body}");
        assert!(position("Details:    https://") < position("Console:    https://"), "{body}");
    }

    #[test]
    fn a_bogus_region_gives_no_console_link_and_no_arn_but_the_message_goes_out() {
        let mut r = report(None, vec![]);
        r.region = "evil.example/x?".into();
        r.execution_link = None;
        r.failure = Some(FailureReport {
            failed: FailedActionDetail {
                stage: "Build".into(),
                action: "Build".into(),
                provider: Some("CodeBuild".into()),
                external_id: Some("web:1".into()),
                ..FailedActionDetail::default()
            },
            link: crate::decide::failure_link(
                "evil.example/x?",
                &FailureReport {
                    failed: FailedActionDetail {
                        provider: Some("CodeBuild".into()),
                        external_id: Some("web:1".into()),
                        ..FailedActionDetail::default()
                    },
                    ..FailureReport::default()
                },
            ),
            lifecycle: vec![],
        });

        let doc: serde_json::Value = serde_json::from_str(&chat(&r)).unwrap();
        let body = text(&r);

        assert_eq!(r.failure.as_ref().unwrap().link, None);
        assert_eq!(doc["content"]["nextSteps"], serde_json::json!([]));
        assert_eq!(doc["metadata"]["relatedResources"], serde_json::json!([]));
        assert!(doc["content"]["description"]
            .as_str()
            .unwrap()
            .starts_with("*Execution:* 8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33\n"));
        assert!(!body.contains("https://"), "{body}");
        assert!(body.contains("Account:    123456789012 in evil.example/x?"), "{body}");
    }

    #[test]
    fn pipeline_names_are_escaped_in_keywords_and_summary_and_kept_on_one_line_in_text() {
        let mut r = report(None, vec![]);
        r.pipeline = "web <!here>\nSummary:    all fine".into();
        r.region = "us-gov-west-1".into();

        let doc: serde_json::Value = serde_json::from_str(&chat(&r)).unwrap();
        let body = text(&r);

        assert_eq!(doc["content"]["keywords"][0], "web &lt;!here&gt; Summary:    all fine");
        assert_eq!(doc["metadata"]["summary"], "\\[SUCCEEDED\\] web &lt;!here&gt; Summary: all fine");
        assert_eq!(doc["metadata"]["relatedResources"], serde_json::json!([]), "no ARN holds a line break");
        assert!(body.starts_with("Pipeline web <!here> Summary:    all fine SUCCEEDED\n"), "{body}");
        assert!(!body.lines().any(|l| l.starts_with("Summary:")), "{body}");

        r.pipeline = "web".into();
        let doc: serde_json::Value = serde_json::from_str(&chat(&r)).unwrap();
        assert_eq!(
            doc["metadata"]["relatedResources"][0],
            "arn:aws-us-gov:codepipeline:us-gov-west-1:123456789012:web"
        );
    }

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc)
    }

    #[test]
    fn a_success_that_ends_a_failing_streak_says_so_right_after_the_verdict() {
        let mut r = report(None, vec![]);
        r.started_at = Some(at("2026-11-26T10:30:00Z"));
        r.at = Some(at("2026-11-26T10:36:11Z"));
        r.streak = Some(Streak::Restored { since: at("2026-11-26T10:02:11Z"), failures: 3 });

        let body = text(&r);
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines[0], "Pipeline flask-web-app SUCCEEDED", "{body}");
        assert_eq!(
            lines[2],
            "Restored:   the pipeline had been failing since 2026-11-26 10:02:11 UTC (34 minutes, 3 failed executions)",
            "{body}"
        );
        assert!(lines[3].starts_with("Execution:  "), "{body}");

        let doc: serde_json::Value = serde_json::from_str(&chat(&r)).unwrap();
        let description = doc["content"]["description"].as_str().unwrap();
        assert!(
            description.starts_with(
                "*Restored:* failing since 2026-11-26 10:02 UTC (34 minutes, 3 failed executions)\n*Execution:*"
            ),
            "{description}"
        );

        r.streak = None;
        assert!(!text(&r).contains("Restored"), "an ordinary success says nothing of it");
        assert!(!chat(&r).contains("Restored"));
    }

    #[test]
    fn the_stages_and_slowest_actions_follow_the_duration_in_both_formats() {
        use crate::timings::{Span, Timings};
        let mut r = report(None, vec![]);
        r.started_at = Some(at("2026-11-26T10:00:00Z"));
        r.at = Some(at("2026-11-26T10:09:12Z"));
        let span = |name: &str, seconds, slow_against| Span { name: name.into(), seconds, slow_against };
        r.timings = Timings {
            stages: vec![span("Source", 12, None), span("Build*", 420, Some(120))],
            slowest_actions: vec![span("Build*/CodeBuild", 400, None)],
            succeeded: Vec::new(),
        };
        let body = text(&r);
        let at_duration = body.lines().position(|l| l.starts_with("Duration:")).expect("a duration");
        let lines: Vec<&str> = body.lines().skip(at_duration + 1).take(2).collect();
        assert_eq!(
            lines,
            vec!["Stages:     Source 12s, Build* 7m 00s (slow: usually 2m 00s)", "Slowest:    Build*/CodeBuild 6m 40s"],
            "{body}"
        );
        let doc: serde_json::Value = serde_json::from_str(&chat(&r)).unwrap();
        let description = doc["content"]["description"].as_str().unwrap();
        assert!(
            description.contains(
                "*Stages:* Source 12s, Build\\* 7m 00s (slow: usually 2m 00s)\n*Slowest:* Build\\*/CodeBuild 6m 40s"
            ),
            "names escaped for chat: {description}"
        );
    }

    #[test]
    fn a_failure_that_continues_a_streak_says_since_when_and_how_many() {
        let mut r = report(None, vec![]);
        r.outcome.state = ExecutionState::Failed;
        r.at = Some(at("2026-11-26T10:36:11Z"));
        r.streak = Some(Streak::StillFailing { since: at("2026-11-26T10:02:11Z"), failures: 3 });
        let body = text(&r);
        assert_eq!(
            body.lines().nth(2),
            Some("Failing:    since 2026-11-26 10:02:11 UTC (34 minutes): 3 failed executions in a row"),
            "{body}"
        );
        let doc: serde_json::Value = serde_json::from_str(&chat(&r)).unwrap();
        let description = doc["content"]["description"].as_str().unwrap();
        assert!(
            description
                .starts_with("*Failing:* since 2026-11-26 10:02 UTC (34 minutes): 3 failed executions in a row\n"),
            "{description}"
        );
        r.streak = None;
        assert!(!text(&r).contains("Failing:"), "a first failure is no streak");
    }

    #[test]
    fn streaks_are_said_in_the_largest_units() {
        assert_eq!(streak_words(45), "45 seconds");
        assert_eq!(streak_words(60), "1 minute");
        assert_eq!(streak_words(34 * 60 + 59), "34 minutes");
        assert_eq!(streak_words(3600), "1 hour");
        assert_eq!(streak_words(2 * 3600 + 5 * 60), "2 hours 5 minutes");
        assert_eq!(streak_words(86_400 + 30), "1 day");
        assert_eq!(streak_words(3 * 86_400 + 4 * 3600 + 59), "3 days 4 hours");
    }
}
