//! Which events produce a notification, and what it reports: pure functions over the timeline.

use chrono::{DateTime, Utc};
use pipewarden_shared::events::codepipeline::{ExecutionState, Level, PipelineEvent};
use pipewarden_shared::links;

use crate::config::{NotifyOn, Target};
use crate::lookups::{ApprovalDetail, FailedActionDetail, LifecycleFailure, SourceRevision};
use crate::metrics::Streak;
use crate::timeline::{Timeline, Trigger};
use crate::timings::Timings;
use pipewarden_shared::events::parse_time;
use pipewarden_shared::ledger::{self, delivery_key};

/// Something worth telling: one per (execution, attempt, what happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Unique per execution: the dedup key of the notification.
    pub key: String,
    pub level: Level,
    pub state: ExecutionState,
    pub stage: Option<String>,
    pub action: Option<String>,
    pub approval: bool,
    pub attempt: u64,
}

/// What one event decides, given the execution's stored timeline and the time: the outcome to
/// notify (if any), the topics this invocation claimed for it, and whether the event is the
/// execution's first final state (which emits the metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct EventDecision {
    pub outcome: Option<Outcome>,
    pub claimed: Vec<Target>,
    /// Topics the final outcome may not be sent to yet: another live invocation is sending one of
    /// the attempt's earlier outcomes there, which could reach the topic after it. A retry sends it.
    pub waiting: Vec<Target>,
    pub first_final: bool,
}

/// The notifier's decision, a plain function over plain data: records `event` in `timeline`,
/// decides the outcome and claims its topics for `token`. `None` when nothing changed (a duplicate
/// with nothing left to send): nothing to store, nothing to do. The handler only loads the
/// timeline, calls this, delivers and settles.
pub fn on_event(
    timeline: &mut Timeline,
    event: &PipelineEvent,
    rules: &[NotifyOn],
    targets: &[Target],
    token: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Option<EventDecision> {
    let was_final = timeline.final_state(event.attempt()).is_some();
    let recorded = timeline.record(event);
    let outcome = outcome_for(event, rules, timeline);
    let (mut claimed, mut waiting) = (Vec::new(), Vec::new());
    if let Some(o) = &outcome {
        for target in targets {
            let final_outcome = o.level == Level::Pipeline && o.state.is_final();
            if final_outcome && earlier_in_flight(timeline, o.attempt, &target.topic_arn, token, now, ttl) {
                waiting.push(target.clone());
            } else if ledger::claim(&mut timeline.deliveries, &delivery_key(&o.key, &target.topic_arn), token, now, ttl)
            {
                claimed.push(target.clone());
            }
        }
    }
    let superseded = supersede_overtaken(timeline, event.attempt(), rules, targets, token, now, ttl);
    if !recorded && claimed.is_empty() && waiting.is_empty() && !superseded {
        return None;
    }
    let first_final = recorded && !was_final && event.level == Level::Pipeline && event.detail.state.is_final();
    Some(EventDecision { outcome, claimed, waiting, first_final })
}

/// Whether another live invocation holds a claim on `topic` for one of the attempt's outcomes
/// other than its final one (a stage's or an action's): sent now, it could reach the topic after
/// the final outcome.
fn earlier_in_flight(
    timeline: &Timeline,
    attempt: u64,
    topic: &str,
    token: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> bool {
    let (attempt_suffix, topic_suffix) = (format!(":attempt-{attempt}"), format!("|{topic}"));
    timeline.deliveries.iter().any(|(key, delivery)| {
        matches!(delivery, ledger::Delivery::Claimed { token: other, at } if other != token && now - *at <= ttl)
            && key
                .strip_suffix(&topic_suffix)
                .is_some_and(|outcome| outcome.ends_with(&attempt_suffix) && !is_final_pipeline_outcome(outcome))
    })
}

/// Once an attempt has ended, its final outcome is the last word: any other outcome of the attempt
/// (a stage's, an action's, the pipeline's STARTED) that has not reached a topic by then never will
/// (sent after the final one, it would leave the topic on a stale message). Each such delivery is
/// recorded as superseded by the final outcome, where nothing holds it or where the invocation that
/// claimed it died (its claim is past the TTL) or is this request's earlier try, so no claim is left
/// held and the record says why the topic did not get it. A claim still alive is left to its
/// invocation, which records what it sent. Returns whether anything changed.
pub fn supersede_overtaken(
    timeline: &mut Timeline,
    attempt: u64,
    rules: &[NotifyOn],
    targets: &[Target],
    token: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> bool {
    let Some(final_state) = timeline.final_state(attempt).map(|e| e.state()) else {
        return false;
    };
    let final_key = format!("pipeline:{}:attempt-{attempt}", final_state.as_str());
    // The attempt's stage and action outcomes: those the rules notify, from the recorded events
    // (a send that failed everywhere leaves no delivery behind), and those with a delivery.
    let suffix = format!(":attempt-{attempt}");
    let notified = timeline.entries.iter().filter(|e| e.attempt == attempt && !is_final_entry(e)).filter_map(|e| {
        let approval = approval_outcome(e.level, &e.state(), e.category.as_deref() == Some("Approval"), rules);
        let by_state = rules.contains(&NotifyOn::State(e.level, e.state()));
        let what = approval.unwrap_or(e.state.as_str());
        (approval.is_some() || by_state)
            .then(|| outcome_key(e.level, e.stage.as_deref(), e.action.as_deref(), what, attempt))
    });
    let delivered = timeline
        .deliveries
        .keys()
        .filter_map(|key| key.split_once('|').map(|(outcome, _)| outcome))
        .filter(|outcome| outcome.ends_with(&suffix) && !is_final_pipeline_outcome(outcome))
        .map(str::to_string);
    let overtaken: std::collections::BTreeSet<String> = notified.chain(delivered).collect();
    let mut changed = false;
    for outcome in overtaken {
        for target in targets {
            let key = delivery_key(&outcome, &target.topic_arn);
            let free = match timeline.deliveries.get(&key) {
                None => true,
                // A claim of an invocation that died, or of this request's earlier try (Lambda's
                // retry keeps the request id, and finds the event already recorded).
                Some(ledger::Delivery::Claimed { token: other, at }) => other == token || now - *at > ttl,
                Some(_) => false,
            };
            if free {
                timeline.deliveries.insert(key, ledger::Delivery::Superseded { by: final_key.clone(), at: now });
                changed = true;
            }
        }
    }
    changed
}

/// The outcome this event announces, if the rules say it notifies. A non-final event that arrives
/// after its attempt already ended (a late STARTED, say) announces nothing.
pub fn outcome_for(event: &PipelineEvent, rules: &[NotifyOn], timeline: &Timeline) -> Option<Outcome> {
    let d = &event.detail;
    let attempt = event.attempt();
    let manual_approval = d.action_type.as_ref().is_some_and(|t| t.is_manual_approval());
    let approval_what = approval_outcome(event.level, &d.state, manual_approval, rules);
    let approval = approval_what.is_some();
    let by_state = rules.contains(&NotifyOn::State(event.level, d.state.clone()));
    if !approval && !by_state {
        return None;
    }
    let is_final = event.level == Level::Pipeline && d.state.is_final();
    if !is_final && timeline.final_state(attempt).is_some() {
        return None;
    }
    let what = approval_what.unwrap_or(d.state.as_str());
    Some(Outcome {
        key: outcome_key(event.level, d.stage.as_deref(), d.action.as_deref(), what, attempt),
        level: event.level,
        state: d.state.clone(),
        stage: d.stage.clone(),
        action: d.action.clone(),
        approval,
        attempt,
    })
}

/// What a manual approval action's event announces, when the rules ask for it: waiting
/// (STARTED, rule `approval`), approved (SUCCEEDED) or rejected (FAILED, rule `approval-result`).
fn approval_outcome(
    level: Level,
    state: &ExecutionState,
    manual_approval: bool,
    rules: &[NotifyOn],
) -> Option<&'static str> {
    if level != Level::Action || !manual_approval {
        return None;
    }
    match state {
        ExecutionState::Started if rules.contains(&NotifyOn::Approval) => Some("APPROVAL_WAITING"),
        ExecutionState::Succeeded if rules.contains(&NotifyOn::ApprovalResult) => Some("APPROVAL_APPROVED"),
        ExecutionState::Failed if rules.contains(&NotifyOn::ApprovalResult) => Some("APPROVAL_REJECTED"),
        _ => None,
    }
}

fn is_final_entry(entry: &crate::timeline::Entry) -> bool {
    entry.level == Level::Pipeline && entry.state().is_final()
}

/// Whether an outcome key (`pipeline:FAILED:attempt-1`) is a pipeline's final outcome.
fn is_final_pipeline_outcome(outcome: &str) -> bool {
    outcome
        .strip_prefix("pipeline:")
        .and_then(|rest| rest.split(':').next())
        .is_some_and(|state| ExecutionState::parse(state).is_final())
}

/// The dedup key of an outcome: `action:Build/Build:FAILED:attempt-1`.
fn outcome_key(level: Level, stage: Option<&str>, action: Option<&str>, what: &str, attempt: u64) -> String {
    let place = match level {
        Level::Pipeline => "pipeline".to_string(),
        Level::Stage => format!("stage:{}", stage.unwrap_or("?")),
        Level::Action => format!("action:{}/{}", stage.unwrap_or("?"), action.unwrap_or("?")),
    };
    format!("{place}:{what}:attempt-{attempt}")
}

/// Why an execution failed, from whatever source knew, with what we add to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailureReport {
    pub failed: FailedActionDetail,
    pub link: Option<String>,
    /// For a CodeDeploy action: which lifecycle scripts failed on which targets.
    pub lifecycle: Vec<LifecycleFailure>,
}

impl FailureReport {
    pub fn is_codedeploy(&self) -> bool {
        matches!(self.failed.provider.as_deref(), Some("CodeDeploy") | Some("CodeDeployToECS"))
    }

    /// The CodeDeploy deployment id, when the failed action is a deployment.
    pub fn deployment_id(&self) -> Option<&str> {
        self.failed.external_id.as_deref().filter(|_| self.is_codedeploy())
    }
}

/// Everything a notification says.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub pipeline: String,
    pub execution_id: String,
    pub account: String,
    pub region: String,
    pub outcome: Outcome,
    pub started_at: Option<DateTime<Utc>>,
    pub at: Option<DateTime<Utc>>,
    pub trigger: Option<Trigger>,
    /// The source revisions the execution ran (`GetPipelineExecution`), for V1 and V2 pipelines
    /// alike; empty when the lookup was not made or failed.
    pub revisions: Vec<SourceRevision>,
    pub failure: Option<FailureReport>,
    /// The execution in the console; `None` when the event's region is not an AWS region.
    pub execution_link: Option<String>,
    /// For a pipeline's SUCCEEDED that ends a failing streak, or a FAILED that continues one: the
    /// streak (`PipelineHealth::streak`). `None` otherwise, or when the health could not be read.
    pub streak: Option<Streak>,
    /// Where the time went: the stages and slowest actions, for a pipeline's final outcome.
    pub timings: Timings,
    /// For an approval's outcome: what the action asks, and who decided (the action history).
    pub approval: Option<ApprovalDetail>,
}

impl Report {
    pub fn duration_seconds(&self) -> Option<i64> {
        Some((self.at? - self.started_at?).num_seconds()).filter(|s| *s >= 0)
    }

    /// Since when the pipeline had been failing, for how long (seconds) and how many executions
    /// failed, when this outcome ended a failing streak.
    pub fn restored(&self) -> Option<(DateTime<Utc>, i64, u32)> {
        let Some(Streak::Restored { since, failures }) = self.streak else { return None };
        Some((since, (self.at? - since).num_seconds(), failures)).filter(|(_, s, _)| *s >= 0)
    }

    /// Since when the pipeline has been failing, for how long (seconds), and this failure's
    /// number in the streak (2 or more), when this outcome continues a failing streak.
    pub fn still_failing(&self) -> Option<(DateTime<Utc>, i64, u32)> {
        let Some(Streak::StillFailing { since, failures }) = self.streak else { return None };
        Some((since, (self.at? - since).num_seconds(), failures)).filter(|(_, s, _)| *s >= 0)
    }

    /// `critical` for failures, `warning` for stops, waiting and rejected approvals, `info`
    /// otherwise.
    pub fn severity(&self) -> &'static str {
        if self.outcome.approval {
            return if self.outcome.state == ExecutionState::Succeeded { "info" } else { "warning" };
        }
        match self.outcome.state {
            ExecutionState::Failed | ExecutionState::Abandoned => "critical",
            ExecutionState::Stopped | ExecutionState::Stopping | ExecutionState::Canceled => "warning",
            _ => "info",
        }
    }

    /// What happened, in words: "FAILED", "stage Deploy FAILED", "approval waiting at Approve/ProductionApproval".
    pub fn what(&self) -> String {
        let o = &self.outcome;
        if o.approval {
            let verb = match o.state {
                ExecutionState::Succeeded => "approved",
                // Rejected, or not answered in time: the message says which when it knows.
                ExecutionState::Failed => "not approved",
                _ => "approval waiting",
            };
            return format!("{verb} at {}/{}", o.stage.as_deref().unwrap_or("?"), o.action.as_deref().unwrap_or("?"));
        }
        match o.level {
            Level::Pipeline => o.state.as_str().to_string(),
            Level::Stage => format!("stage {} {}", o.stage.as_deref().unwrap_or("?"), o.state.as_str()),
            Level::Action => format!(
                "action {}/{} {}",
                o.stage.as_deref().unwrap_or("?"),
                o.action.as_deref().unwrap_or("?"),
                o.state.as_str()
            ),
        }
    }
}

/// The failure as the timeline knows it: action-level FAILED events, else a CodeStar
/// notification's failed stage and actions.
pub fn failure_from_timeline(timeline: &Timeline, attempt: u64) -> Option<FailureReport> {
    if let Some(entry) = timeline.failed_actions(attempt).first() {
        return Some(FailureReport {
            failed: FailedActionDetail {
                stage: entry.stage.clone().unwrap_or_default(),
                action: entry.action.clone().unwrap_or_default(),
                provider: entry.provider.clone(),
                error_code: entry.error_code.clone(),
                summary: entry.summary.clone(),
                external_id: entry.external_id.clone(),
                external_url: entry.external_url.clone(),
            },
            ..FailureReport::default()
        });
    }
    let (stage, actions) = timeline.notification_failure()?;
    let (action, info) = actions.first().cloned().unwrap_or_default();
    Some(FailureReport {
        failed: FailedActionDetail {
            stage: stage.to_string(),
            action,
            summary: Some(info).filter(|i| !i.is_empty()),
            ..FailedActionDetail::default()
        },
        ..FailureReport::default()
    })
}

pub fn failure_from_history(detail: &FailedActionDetail) -> FailureReport {
    FailureReport { failed: detail.clone(), ..FailureReport::default() }
}

/// A console link to what failed (the CodeBuild build, the CodeDeploy deployment), for the region.
pub fn failure_link(region: &str, failure: &FailureReport) -> Option<String> {
    let id = failure.failed.external_id.as_deref()?;
    match failure.failed.provider.as_deref()? {
        "CodeBuild" => links::codebuild_build(region, id),
        "CodeDeploy" | "CodeDeployToECS" => links::codedeploy_deployment(region, id),
        _ => None,
    }
}

pub fn report(
    timeline: &Timeline,
    outcome: &Outcome,
    event_time: Option<&String>,
    failure: Option<FailureReport>,
    revisions: Vec<SourceRevision>,
) -> Report {
    let at = parse_time(event_time.map(String::as_str));
    Report {
        pipeline: timeline.pipeline.clone(),
        execution_id: timeline.execution_id.clone(),
        account: timeline.account.clone(),
        region: timeline.region.clone(),
        outcome: outcome.clone(),
        started_at: timeline.started_at(),
        at,
        trigger: timeline.trigger().cloned(),
        revisions,
        failure,
        execution_link: links::pipeline_execution(&timeline.region, &timeline.pipeline, &timeline.execution_id),
        streak: None,
        timings: Timings::default(),
        approval: None,
    }
}
