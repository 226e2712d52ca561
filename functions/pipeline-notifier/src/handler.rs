//! One invocation: record every event in its execution's timeline, and send each outcome's
//! notification exactly once.
//!
//! Exactly once, across duplicates, reordering, concurrent invocations and retries: the timeline
//! (S3, conditional writes) holds a claim per (outcome, topic) before anything is sent. Only the
//! invocation whose write won sends; a failed send releases its claim and fails the invocation,
//! so Lambda retries and the retry sends what is missing. A claim left by an invocation that died
//! expires after `CLAIM_TTL_SECONDS`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use pipewarden_shared::deadline::bounded_optional;
use pipewarden_shared::deploy_context;
use pipewarden_shared::events::codepipeline::{ExecutionState, Level, PipelineEvent};
use pipewarden_shared::events::Document;
use pipewarden_shared::lambda::Retry;
use pipewarden_shared::ledger::{self, delivery_key, LedgerError};
use pipewarden_shared::ports::{ObjectStore, Publisher};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::decide::{self, EventDecision, FailureReport, Outcome};
use crate::format;
use crate::lookups::{ActionHistory, ApprovalDetail, DeploymentDiagnostics, ExecutionRevisions, SourceRevision};
use crate::metrics::{lead_time_seconds, outcome_document, MetricSink, PipelineHealth, Run};
use crate::timeline::Timeline;
use crate::timings;

/// At most this long for the deploy actions of an execution (and a quarter of the time left).
const DEPLOY_LOOKUP_CAP: std::time::Duration = std::time::Duration::from_secs(3);
/// At most this long for each lookup that explains a failure (and a quarter of the time left): a
/// lookup that hangs costs the detail, never the FAILED notification.
const FAILURE_LOOKUP_CAP: std::time::Duration = std::time::Duration::from_secs(3);
/// At most this long for the pipeline's health (one S3 read, for the line saying a success ended a
/// failing streak; and a quarter of the time left).
const HEALTH_LOOKUP_CAP: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Notifier<P, S, H, D, R, M> {
    pub config: Config,
    pub publisher: P,
    pub store: S,
    pub history: H,
    pub diagnostics: D,
    pub revisions: R,
    pub metrics: M,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("{period} digest to {to}: {problem}")]
    Digest { period: &'static str, to: String, problem: String, retryable: bool },
    #[error("timeline of pipeline {pipeline} execution {execution_id}: {source}")]
    Ledger { pipeline: String, execution_id: String, source: LedgerError },
    #[error("notification {outcome} of pipeline {pipeline} execution {execution_id} not delivered to: {failed}")]
    Delivery {
        pipeline: String,
        execution_id: String,
        outcome: String,
        failed: String,
        /// Whether trying again may deliver: not when SNS refused every failed message for what it
        /// is (a 4xx other than throttling), which the same message gets again.
        retryable: bool,
    },
}

impl NotifierError {
    pub fn retry(&self) -> Retry {
        match self {
            NotifierError::Ledger { source: LedgerError::Corrupt { .. }, .. } => Retry::Useless,
            NotifierError::Delivery { retryable: false, .. } => Retry::Useless,
            NotifierError::Digest { retryable: false, .. } => Retry::Useless,
            _ => Retry::Helps,
        }
    }
}

/// What one event led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventResult {
    /// Already recorded, nothing left to send.
    Duplicate,
    /// Recorded; nothing to tell (or another invocation is telling it).
    Recorded,
    /// Recorded, and the outcome's notification sent to these topics.
    Notified { outcome: String, topics: Vec<String> },
}

impl<P, S, H, D, R, M> Notifier<P, S, H, D, R, M>
where
    P: Publisher,
    S: ObjectStore,
    H: ActionHistory,
    D: DeploymentDiagnostics,
    R: ExecutionRevisions,
    M: MetricSink,
{
    /// Handles one invocation's payload. `token` identifies this invocation in claims (the Lambda
    /// request id). Bad events are logged and acknowledged: retrying them cannot help.
    pub async fn handle(
        &self,
        payload: impl Document,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NotifierError> {
        let (shape, sns) = payload.classify();
        if shape == pipewarden_shared::events::eventbridge::Shape::ScheduledEvent {
            return self.scheduled(payload, token, now).await;
        }
        let events = match crate::events_of(payload, shape, sns) {
            Ok(events) => events,
            Err(e) => {
                error!(error = %e, event = %e.event, field = %e.field, "bad event acknowledged without retry");
                return Ok(json!({ "ignored": e.to_string() }));
            }
        };
        let mut results = Vec::new();
        for event in &events {
            let span = info_span!(
                "event",
                event_id = %event.event_id,
                execution_id = %event.detail.execution_id,
                pipeline = %event.detail.pipeline
            );
            let result = self.handle_event(event, token, now).instrument(span).await?;
            results.push(json!({
                "eventId": event.event_id,
                "executionId": event.detail.execution_id,
                "result": match &result {
                    EventResult::Duplicate => json!("duplicate"),
                    EventResult::Recorded => json!("recorded"),
                    EventResult::Notified { outcome, topics } => json!({"notified": outcome, "topics": topics}),
                },
            }));
        }
        Ok(json!({ "events": results }))
    }

    async fn handle_event(
        &self,
        event: &PipelineEvent,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<EventResult, NotifierError> {
        let key = Timeline::key(&event.detail.pipeline, &event.detail.execution_id);
        let ttl = Duration::seconds(self.config.claim_ttl_seconds);
        let targets = self.config.targets();
        let ledger_error = |source| NotifierError::Ledger {
            pipeline: event.detail.pipeline.clone(),
            execution_id: event.detail.execution_id.clone(),
            source,
        };

        // While another live invocation sends an earlier outcome of the attempt to a topic, the
        // final outcome looks again (that invocation settles within milliseconds), within a small
        // budget; what still waits then fails the invocation, and Lambda's retry sends it.
        let mut looks = ledger::LookAgain::new();
        let mut was_first_final = false;
        let (timeline, decision, etag) = loop {
            let ledger::Updated { document, result, etag } = ledger::update(
                &self.store,
                &key,
                None,
                || Timeline::new(event),
                |timeline| decide::on_event(timeline, event, &self.config.notify_on, &targets, token, now, ttl),
            )
            .await
            .map_err(ledger_error)?;
            was_first_final |= result.as_ref().is_some_and(|d| d.first_final);
            let waits = result.as_ref().is_some_and(|d| !d.waiting.is_empty());
            if !waits || !looks.pause().await {
                break (document, result, etag);
            }
        };
        let Some(EventDecision { outcome, claimed, waiting, .. }) = decision else {
            info!("duplicate event, nothing to do");
            return Ok(EventResult::Duplicate);
        };
        let first_final = was_first_final;
        info!(state = event.detail.state.as_str(), event_level = ?event.level, "event recorded");
        // What still waits: the invocation fails once the rest is done, and Lambda's retry sends it.
        for target in &waiting {
            info!(topic = %target.topic_arn, "still waiting for an earlier outcome being sent to this topic: left to Lambda's retry");
        }
        let still_waiting = (!waiting.is_empty()).then(|| {
            let topics: Vec<&str> = waiting.iter().map(|t| t.topic_arn.as_str()).collect();
            format!("{} (waits for an earlier outcome still being sent there)", topics.join(", "))
        });
        let waiting_outcome = outcome.as_ref().map(|o| o.key.clone());
        let Some(outcome) = outcome.filter(|_| !claimed.is_empty()) else {
            // Independent documents and lookups: at once.
            let metrics = async {
                if first_final {
                    // Only a success's metrics (lead time) use the revisions.
                    let revisions = match event.detail.state {
                        ExecutionState::Succeeded => self.source_revisions(&timeline).await,
                        _ => Vec::new(),
                    };
                    self.emit_metrics(&timeline, event, now, None, revisions).await;
                }
            };
            tokio::join!(self.record_deploy_context(&timeline, event, now), metrics);
            if let (Some(outcome), Some(failed)) = (waiting_outcome, still_waiting) {
                return Err(NotifierError::Delivery {
                    pipeline: event.detail.pipeline.clone(),
                    execution_id: event.detail.execution_id.clone(),
                    outcome,
                    failed,
                    retryable: true,
                });
            }
            return Ok(EventResult::Recorded);
        };

        let final_outcome = outcome.level == Level::Pipeline && outcome.state.is_final();
        let (failure, revisions, health) = if final_outcome {
            tokio::join!(
                self.failure(&timeline, &outcome),
                self.source_revisions(&timeline),
                self.health(&timeline, &outcome)
            )
        } else {
            (self.failure(&timeline, &outcome).await, Vec::new(), None)
        };
        let mut report = decide::report(&timeline, &outcome, event.time.as_ref(), failure, revisions);
        if outcome.approval {
            let mut detail = self.approval(&timeline, &outcome).await.unwrap_or_default();
            detail.approvers = self.config.approvals.approvers.clone();
            report.approval = Some(detail);
        }
        let at = pipewarden_shared::events::parse_time(event.time.as_deref());
        report.streak =
            health.as_ref().zip(at).and_then(|(health, at)| health.streak(&outcome.state, at, &timeline.execution_id));
        if final_outcome {
            let recent = health.map(|h| h.recent_stages).unwrap_or_default();
            report.timings = timings::of(&timeline, &recent, report.at);
        }
        // Each topic independently and at once: one that hangs does not hold the others back.
        let sends = claimed.iter().map(|target| async {
            let message = format::message(&report, target.format);
            let result = self.publisher.publish(&target.topic_arn, &message).await;
            match &result {
                Ok(message_id) => {
                    info!(outcome = %outcome.key, topic = %target.topic_arn, message_id = %message_id, "notification sent")
                }
                Err(e) => {
                    error!(outcome = %outcome.key, topic = %target.topic_arn, error = %e, "notification not sent")
                }
            }
            (target.clone(), result)
        });
        let results = futures_util::future::join_all(sends).await;
        // Mark what was sent and release what was not, so a retry sends only that, in the time
        // reserved for it (a send that hung used all of the work's). A failure here is logged, not
        // returned: the messages went out, and a retry would send them again once the claims expire.
        let outcomes: Vec<(String, Option<String>)> = results
            .iter()
            .map(|(target, result)| (delivery_key(&outcome.key, &target.topic_arn), result.as_ref().ok().cloned()))
            .collect();
        // From the timeline as the claim wrote it: no read, unless someone wrote since.
        let known = etag.map(|etag| (timeline.clone(), etag));
        let settled = ledger::settle_all(
            &self.store,
            &key,
            known,
            || Timeline::new(event),
            |timeline| &mut timeline.deliveries,
            ledger::Sends { outcomes: &outcomes, token, now },
        )
        .await;
        if let Err(e) = settled {
            error!(error = %e, "could not record the sent notification");
        }
        // After the notification and its record, which must not wait on them; at once, since the
        // deployment context and the pipeline's health are separate documents.
        let metrics = async {
            if first_final {
                self.emit_metrics(&timeline, event, now, Some(&report), Vec::new()).await;
            }
        };
        tokio::join!(self.record_deploy_context(&timeline, event, now), metrics);
        let mut failed: Vec<String> =
            results.iter().filter_map(|(t, r)| r.as_ref().err().map(|e| format!("{} ({e})", t.topic_arn))).collect();
        failed.extend(still_waiting);
        if !failed.is_empty() {
            return Err(NotifierError::Delivery {
                pipeline: event.detail.pipeline.clone(),
                execution_id: event.detail.execution_id.clone(),
                outcome: outcome.key.clone(),
                failed: failed.join("; "),
                retryable: !waiting.is_empty()
                    || results.iter().any(|(_, r)| r.as_ref().is_err_and(|e| e.is_retryable())),
            });
        }
        Ok(EventResult::Notified { outcome: outcome.key, topics: claimed.into_iter().map(|t| t.topic_arn).collect() })
    }

    /// A deploy action starting, or the pipeline ending, tells alarm-fanout what is in flight (best
    /// effort, after any notification of the event). The
    /// context is keyed by the CodeDeploy application the deploy action names (its configuration's
    /// `ApplicationName`, from the action history), the key the hook and alarm rules use; a deploy
    /// action that names none (S3, CloudFormation, ECS) is keyed by the pipeline's name.
    async fn record_deploy_context(&self, timeline: &Timeline, event: &PipelineEvent, now: DateTime<Utc>) {
        let deploy_started = event.level == Level::Action
            && event.detail.state == ExecutionState::Started
            && event.detail.action_type.as_ref().and_then(|t| t.category.as_deref()) == Some("Deploy");
        let ended = event.level == Level::Pipeline && event.detail.state.is_final();
        if !deploy_started && !ended {
            return;
        }
        let at = pipewarden_shared::events::parse_time(event.time.as_deref()).unwrap_or(now);
        let lookup = self.history.deploy_actions(&timeline.pipeline, &timeline.execution_id);
        let deploy_actions =
            match bounded_optional("CodePipeline", "ListActionExecutions", DEPLOY_LOOKUP_CAP, lookup).await {
                Ok(actions) => actions,
                Err(e) => {
                    warn!(error = %e, "deploy actions unknown; the deployment context is keyed by the pipeline's name");
                    Vec::new()
                }
            };
        let (applications, change) = if deploy_started {
            let this = deploy_actions.iter().find(|d| {
                Some(d.stage.as_str()) == event.detail.stage.as_deref()
                    && Some(d.action.as_str()) == event.detail.action.as_deref()
            });
            if this.is_none() {
                warn!("the deploy action names no CodeDeploy application in the action history; the deployment context is keyed by the pipeline's name");
            }
            let application = this.map(|d| d.application.clone()).unwrap_or_else(|| timeline.pipeline.clone());
            let trigger = timeline.trigger();
            let change = deploy_context::Change::PipelineDeploying {
                pipeline: timeline.pipeline.clone(),
                execution_id: timeline.execution_id.clone(),
                deployment_group: this.and_then(|d| d.deployment_group.clone()),
                commit: trigger.and_then(|t| t.commit_id.clone()),
                author: trigger.and_then(|t| t.author.clone()),
                at,
            };
            (vec![application], change)
        } else {
            // Every application this execution deployed, and the pipeline's own key: only the
            // record this execution wrote ends (an older execution finishing late changes nothing).
            let mut applications: Vec<String> = deploy_actions.into_iter().map(|d| d.application).collect();
            applications.push(timeline.pipeline.clone());
            applications.sort();
            applications.dedup();
            (applications, deploy_context::Change::PipelineEnded { execution_id: timeline.execution_id.clone(), at })
        };
        for application in applications {
            if let Err(e) = deploy_context::update(&self.store, &application, &change).await {
                warn!(error = %e, application = %application, "deployment context not recorded");
            }
        }
    }

    /// Why it failed: the recorded action events, else CodePipeline's action history; for a
    /// CodeDeploy action, also which lifecycle scripts failed where. Lookups that fail leave the
    /// detail out rather than the notification.
    async fn failure(&self, timeline: &Timeline, outcome: &Outcome) -> Option<FailureReport> {
        // A rejected approval is no failure to explain: its notification says who and why.
        if outcome.state != ExecutionState::Failed || outcome.approval {
            return None;
        }
        let mut failure = decide::failure_from_timeline(timeline, outcome.attempt);
        if failure.as_ref().map(|f| f.failed.provider.is_none()).unwrap_or(true) {
            let lookup = self.history.failed_actions(&timeline.pipeline, &timeline.execution_id);
            match bounded_optional("CodePipeline", "ListActionExecutions", FAILURE_LOOKUP_CAP, lookup).await {
                Ok(actions) => {
                    if let Some(first) = actions.first() {
                        let mut from_history = decide::failure_from_history(first);
                        if from_history.failed.summary.is_none() {
                            from_history.failed.summary = failure.as_ref().and_then(|f| f.failed.summary.clone());
                        }
                        failure = Some(from_history);
                    }
                }
                Err(e) => warn!(error = %e, "no action history; the notification says less"),
            }
        }
        let mut failure = failure?;
        failure.link = decide::failure_link(&timeline.region, &failure);
        if let Some(deployment_id) = failure.deployment_id().map(str::to_string) {
            let lookup = self.diagnostics.failed_lifecycle_events(&deployment_id);
            match bounded_optional("CodeDeploy", "BatchGetDeploymentTargets", FAILURE_LOOKUP_CAP, lookup).await {
                Ok(events) => failure.lifecycle = events,
                Err(e) => warn!(error = %e, deployment_id = %deployment_id, "no deployment diagnostics"),
            }
        }
        Some(failure)
    }

    /// For a pipeline's final outcome: the pipeline's health, for the failing streak it ends or
    /// continues and the stages' usual durations (one read, before the outcome updates it; a
    /// retry finds what it recorded). A read that fails or hangs leaves those lines out rather
    /// than the notification; a pipeline never seen has a healthy, empty one.
    async fn health(&self, timeline: &Timeline, outcome: &Outcome) -> Option<PipelineHealth> {
        if outcome.level != Level::Pipeline || !outcome.state.is_final() {
            return None;
        }
        let key = PipelineHealth::key(&timeline.pipeline);
        let read = self.store.get(&key);
        let health = match bounded_optional("S3", "GetObject", HEALTH_LOOKUP_CAP, Box::pin(read)).await {
            Ok(Some(object)) => serde_json::from_slice::<PipelineHealth>(&object.body).map_err(|e| e.to_string()),
            Ok(None) => return Some(PipelineHealth::default()),
            Err(e) => Err(e.to_string()),
        };
        match health {
            Ok(health) => Some(health),
            Err(e) => {
                warn!(error = %e, "pipeline health unknown; the notification leaves out the failing streak and which stages were slow");
                None
            }
        }
    }

    /// What a manual approval asks and who decided, from the action history; while it waits and
    /// chat actions are on, its token too. A lookup that fails or hangs leaves the detail out.
    async fn approval(&self, timeline: &Timeline, outcome: &Outcome) -> Option<ApprovalDetail> {
        let (stage, action) = (outcome.stage.as_deref()?, outcome.action.as_deref()?);
        let token = self.config.approvals.chat_actions
            && self.config.chat_topic_arn.is_some()
            && outcome.state == ExecutionState::Started;
        let lookup = self.history.approval(&timeline.pipeline, &timeline.execution_id, stage, action, token);
        match bounded_optional("CodePipeline", "ListActionExecutions", FAILURE_LOOKUP_CAP, lookup).await {
            Ok(detail) => detail,
            Err(e) => {
                warn!(error = %e, "no approval detail; the notification says less");
                None
            }
        }
    }

    /// The source revisions the execution ran, looked up once per outcome. A lookup that fails
    /// or runs out of time leaves the commit out rather than the notification.
    async fn source_revisions(&self, timeline: &Timeline) -> Vec<SourceRevision> {
        match self.revisions.source_revisions(&timeline.pipeline, &timeline.execution_id).await {
            Ok(revisions) => revisions,
            Err(e) => {
                warn!(error = %e, "no source revisions; the notification leaves the commit out");
                Vec::new()
            }
        }
    }

    /// `revisions` are for the report made here when `report` is `None`.
    async fn emit_metrics(
        &self,
        timeline: &Timeline,
        event: &PipelineEvent,
        now: DateTime<Utc>,
        report: Option<&decide::Report>,
        revisions: Vec<SourceRevision>,
    ) {
        let outcome = Outcome {
            key: format!("pipeline:{}:attempt-{}", event.detail.state.as_str(), event.attempt()),
            level: Level::Pipeline,
            state: event.detail.state.clone(),
            stage: None,
            action: None,
            approval: false,
            attempt: event.attempt(),
        };
        let owned;
        let report = match report {
            Some(r) => r,
            None => {
                owned = decide::report(timeline, &outcome, event.time.as_ref(), None, revisions);
                &owned
            }
        };
        // Conditional, like every other write of state: two outcomes of the pipeline ending
        // together each see the other's (one recovery is one time to restore, not two).
        let key = PipelineHealth::key(&timeline.pipeline);
        let at = report.at.unwrap_or(now);
        let state = report.outcome.state.clone();
        let updated = ledger::read_modify_write(&self.store, &key, PipelineHealth::default, |health| {
            let (mut next, restored) = health.after(&state, at, &timeline.execution_id);
            next.runs = health.with_run(Run {
                execution: timeline.execution_id.clone(),
                attempt: report.outcome.attempt,
                state: state.as_str().to_string(),
                ended: at,
                seconds: report.duration_seconds(),
                lead: lead_time_seconds(report),
                restore: restored,
            });
            next.runs_since = Some(health.runs_since.map_or(at, |since| since.min(at)));
            // A success's stages are what "usual" means; each execution's once (a retried
            // attempt that succeeds is a first final outcome again).
            if state == ExecutionState::Succeeded && health.stages_of.as_deref() != Some(&timeline.execution_id) {
                let timings = timings::of(timeline, &BTreeMap::new(), Some(at));
                next.recent_stages = timings::remember(&health.recent_stages, &timings);
                next.stages_of = Some(timeline.execution_id.clone());
            }
            (next != *health).then(|| {
                *health = next;
                restored
            })
        })
        .await;
        let restored = match updated {
            Ok((_, restored)) => restored.flatten(),
            Err(e) => {
                warn!(error = %e, "pipeline health not updated; time to restore left out");
                None
            }
        };
        self.metrics.emit(&outcome_document(report, restored, now));
    }
}
