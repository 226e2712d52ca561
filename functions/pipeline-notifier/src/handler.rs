//! One invocation: record every event in its execution's timeline, and send each outcome's
//! notification exactly once.
//!
//! Exactly once, across duplicates, reordering, concurrent invocations and retries: the timeline
//! (S3, conditional writes) holds a claim per (outcome, topic) before anything is sent. Only the
//! invocation whose write won sends; a failed send releases its claim and fails the invocation,
//! so Lambda retries and the retry sends what is missing. A claim left by an invocation that died
//! expires after `CLAIM_TTL_SECONDS`.

use chrono::{DateTime, Duration, Utc};
use pipewarden_shared::events::codepipeline::{ExecutionState, Level, PipelineEvent};
use pipewarden_shared::lambda::Retry;
use pipewarden_shared::ports::{ObjectStore, PortError, Publisher, PutOutcome, WriteCondition};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::{Config, Target};
use crate::decide::{self, FailureReport, Outcome};
use crate::format;
use crate::lookups::{ActionHistory, DeploymentDiagnostics};
use crate::metrics::{outcome_document, MetricSink, PipelineHealth};
use crate::timeline::{Delivery, Timeline};

/// How many times we re-read and re-apply after losing a conditional write to a concurrent writer.
const MAX_WRITE_TRIES: usize = 8;

pub struct Notifier<P, S, H, D, M> {
    pub config: Config,
    pub publisher: P,
    pub store: S,
    pub history: H,
    pub diagnostics: D,
    pub metrics: M,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("timeline of pipeline {pipeline} execution {execution_id}: {source}")]
    Storage { pipeline: String, execution_id: String, source: PortError },
    #[error("timeline of pipeline {pipeline} execution {execution_id} in S3 is not readable: {problem}")]
    CorruptTimeline { pipeline: String, execution_id: String, problem: String },
    #[error("timeline of pipeline {pipeline} execution {execution_id} kept changing under concurrent writers")]
    Contention { pipeline: String, execution_id: String },
    #[error("notification {outcome} of pipeline {pipeline} execution {execution_id} not delivered to: {failed}")]
    Delivery { pipeline: String, execution_id: String, outcome: String, failed: String },
}

impl NotifierError {
    pub fn retry(&self) -> Retry {
        match self {
            NotifierError::CorruptTimeline { .. } => Retry::Useless,
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

impl<P, S, H, D, M> Notifier<P, S, H, D, M>
where
    P: Publisher,
    S: ObjectStore,
    H: ActionHistory,
    D: DeploymentDiagnostics,
    M: MetricSink,
{
    /// Handles one invocation's payload. `token` identifies this invocation in claims (the Lambda
    /// request id). Bad events are logged and acknowledged: retrying them cannot help.
    pub async fn handle(&self, payload: Value, token: &str, now: DateTime<Utc>) -> Result<Value, NotifierError> {
        let events = match crate::read_events(payload) {
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
        let pipeline = &event.detail.pipeline;
        let execution_id = &event.detail.execution_id;
        let key = Timeline::key(pipeline, execution_id);
        let storage =
            |source| NotifierError::Storage { pipeline: pipeline.clone(), execution_id: execution_id.clone(), source };
        let ttl = Duration::seconds(self.config.claim_ttl_seconds);

        let mut tries = 0;
        let (timeline, outcome, claimed, first_final) = loop {
            tries += 1;
            if tries > MAX_WRITE_TRIES {
                return Err(NotifierError::Contention {
                    pipeline: pipeline.clone(),
                    execution_id: execution_id.clone(),
                });
            }
            let (mut timeline, condition) = self.load(&key, event).await?;
            let was_final = timeline.final_state(event.attempt()).is_some();
            let recorded = timeline.record(event);
            let outcome = decide::outcome_for(event, &self.config.notify_on, &timeline);
            let mut claimed = Vec::new();
            if let Some(outcome) = &outcome {
                for target in self.config.targets() {
                    let delivery = Timeline::delivery_key(&outcome.key, &target.topic_arn);
                    let free = match timeline.deliveries.get(&delivery) {
                        None => true,
                        Some(Delivery::Sent { .. }) => false,
                        Some(Delivery::Claimed { token: other, at }) => other == token || now - *at > ttl,
                    };
                    if free {
                        timeline.deliveries.insert(delivery, Delivery::Claimed { token: token.to_string(), at: now });
                        claimed.push(target);
                    }
                }
            }
            if !recorded && claimed.is_empty() {
                info!("duplicate event, nothing to do");
                return Ok(EventResult::Duplicate);
            }
            let body = serde_json::to_vec_pretty(&timeline).expect("a timeline always serializes");
            match self.store.put(&key, body, "application/json", condition).await.map_err(storage)? {
                PutOutcome::Written { .. } => {
                    let first_final =
                        recorded && !was_final && event.level == Level::Pipeline && event.detail.state.is_final();
                    break (timeline, outcome, claimed, first_final);
                }
                PutOutcome::ConditionFailed => {
                    info!(tries, "timeline changed under us; reading it again");
                    continue;
                }
            }
        };
        info!(state = event.detail.state.as_str(), level = ?event.level, "event recorded");

        let Some(outcome) = outcome.filter(|_| !claimed.is_empty()) else {
            if first_final {
                self.emit_metrics(&timeline, event, now, None).await;
            }
            return Ok(EventResult::Recorded);
        };

        let failure = self.failure(&timeline, &outcome).await;
        let report = decide::report(&timeline, &outcome, event.time.as_ref(), failure);
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        for target in &claimed {
            let message = format::message(&report, target.format);
            match self.publisher.publish(&target.topic_arn, &message).await {
                Ok(message_id) => {
                    info!(outcome = %outcome.key, topic = %target.topic_arn, message_id = %message_id, "notification sent");
                    sent.push((target.clone(), message_id));
                }
                Err(e) => {
                    error!(outcome = %outcome.key, topic = %target.topic_arn, error = %e, "notification not sent");
                    failed.push((target.clone(), e));
                }
            }
        }
        self.settle(&key, event, &outcome, token, &sent, &failed, now).await;
        if first_final {
            self.emit_metrics(&timeline, event, now, Some(&report)).await;
        }
        if !failed.is_empty() {
            return Err(NotifierError::Delivery {
                pipeline: pipeline.clone(),
                execution_id: execution_id.clone(),
                outcome: outcome.key.clone(),
                failed: failed.iter().map(|(t, e)| format!("{} ({e})", t.topic_arn)).collect::<Vec<_>>().join("; "),
            });
        }
        Ok(EventResult::Notified { outcome: outcome.key, topics: sent.into_iter().map(|(t, _)| t.topic_arn).collect() })
    }

    async fn load(&self, key: &str, event: &PipelineEvent) -> Result<(Timeline, WriteCondition), NotifierError> {
        let stored = self.store.get(key).await.map_err(|source| NotifierError::Storage {
            pipeline: event.detail.pipeline.clone(),
            execution_id: event.detail.execution_id.clone(),
            source,
        })?;
        match stored {
            None => Ok((Timeline::new(event), WriteCondition::IfAbsent)),
            Some(object) => {
                let timeline = serde_json::from_slice(&object.body).map_err(|e| NotifierError::CorruptTimeline {
                    pipeline: event.detail.pipeline.clone(),
                    execution_id: event.detail.execution_id.clone(),
                    problem: e.to_string(),
                })?;
                Ok((timeline, WriteCondition::IfMatches(object.etag)))
            }
        }
    }

    /// Marks what was sent, and releases our claims on what was not, so a retry sends only that.
    /// A failure here is logged, not returned: the messages went out, and failing now would make
    /// the retry send them again once the claims expire.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        key: &str,
        event: &PipelineEvent,
        outcome: &Outcome,
        token: &str,
        sent: &[(Target, String)],
        failed: &[(Target, PortError)],
        now: DateTime<Utc>,
    ) {
        for _ in 0..MAX_WRITE_TRIES {
            let (mut timeline, condition) = match self.load(key, event).await {
                Ok(loaded) => loaded,
                Err(e) => {
                    error!(error = %e, "could not record the sent notification");
                    return;
                }
            };
            for (target, message_id) in sent {
                timeline.deliveries.insert(
                    Timeline::delivery_key(&outcome.key, &target.topic_arn),
                    Delivery::Sent { message_id: message_id.clone(), at: now },
                );
            }
            for (target, _) in failed {
                let delivery = Timeline::delivery_key(&outcome.key, &target.topic_arn);
                if matches!(timeline.deliveries.get(&delivery), Some(Delivery::Claimed { token: t, .. }) if t == token)
                {
                    timeline.deliveries.remove(&delivery);
                }
            }
            let body = serde_json::to_vec_pretty(&timeline).expect("a timeline always serializes");
            match self.store.put(key, body, "application/json", condition).await {
                Ok(PutOutcome::Written { .. }) => return,
                Ok(PutOutcome::ConditionFailed) => continue,
                Err(e) => {
                    error!(error = %e, "could not record the sent notification");
                    return;
                }
            }
        }
        error!("could not record the sent notification: timeline kept changing");
    }

    /// Why it failed: the recorded action events, else CodePipeline's action history; for a
    /// CodeDeploy action, also which lifecycle scripts failed where. Lookups that fail leave the
    /// detail out rather than the notification.
    async fn failure(&self, timeline: &Timeline, outcome: &Outcome) -> Option<FailureReport> {
        if outcome.state != ExecutionState::Failed {
            return None;
        }
        let mut failure = decide::failure_from_timeline(timeline, outcome.attempt);
        if failure.as_ref().map(|f| f.provider.is_none()).unwrap_or(true) {
            match self.history.failed_actions(&timeline.pipeline, &timeline.execution_id).await {
                Ok(actions) => {
                    if let Some(first) = actions.first() {
                        let mut from_history = decide::failure_from_history(first);
                        if from_history.summary.is_none() {
                            from_history.summary = failure.as_ref().and_then(|f| f.summary.clone());
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
            match self.diagnostics.failed_lifecycle_events(&deployment_id).await {
                Ok(events) => failure.lifecycle = events,
                Err(e) => warn!(error = %e, deployment_id = %deployment_id, "no deployment diagnostics"),
            }
        }
        Some(failure)
    }

    async fn emit_metrics(
        &self,
        timeline: &Timeline,
        event: &PipelineEvent,
        now: DateTime<Utc>,
        report: Option<&decide::Report>,
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
                owned = decide::report(timeline, &outcome, event.time.as_ref(), None);
                &owned
            }
        };
        let key = PipelineHealth::key(&timeline.pipeline);
        let health = match self.store.get(&key).await {
            Ok(Some(object)) => serde_json::from_slice(&object.body).unwrap_or_default(),
            Ok(None) => PipelineHealth::default(),
            Err(e) => {
                warn!(error = %e, "pipeline health unreadable; time to restore left out");
                PipelineHealth::default()
            }
        };
        let at = report.at.unwrap_or(now);
        let (next, restored) = health.after(&report.outcome.state, at);
        if next != health {
            let body = serde_json::to_vec(&next).expect("health serializes");
            if let Err(e) = self.store.put(&key, body, "application/json", WriteCondition::Always).await {
                warn!(error = %e, "pipeline health not saved");
            }
        }
        self.metrics.emit(&outcome_document(report, restored, now));
    }
}
