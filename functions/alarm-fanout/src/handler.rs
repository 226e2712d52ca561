//! One invocation: every alarm transition it carries is routed, checked against the alarm's
//! memory (noise control), and fanned out to its topics concurrently, exactly once per
//! (transition, topic). If any topic fails, the invocation fails naming it, and the retry
//! publishes only what is missing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use pipewarden_shared::deploy_context::{self, InFlight};
use pipewarden_shared::events::cloudwatch::{parse_classic, parse_eventbridge_alarm, parse_lambda_action};
use pipewarden_shared::events::eventbridge::Shape;
use pipewarden_shared::events::sns::parse_sns;
use pipewarden_shared::events::EventError;
use pipewarden_shared::lambda::Retry;
use pipewarden_shared::ledger::{self, delivery_key, LedgerError};
use pipewarden_shared::ports::{ObjectStore, OutboundMessage, PortError, Publisher};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument};

use crate::alarm::{self, AlarmTransition};
use crate::config::Config;
use crate::format;
use crate::memory::{AlarmMemory, Verdict};
use crate::rules::{RuleSet, Target};

/// SNS PublishBatch takes at most ten entries.
const BATCH_LIMIT: usize = 10;

pub struct Fanout<P, S> {
    pub config: Config,
    pub rules: RuleSet,
    pub publisher: P,
    pub store: S,
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("memory of alarm {alarm}: {source}")]
    Ledger { alarm: String, source: LedgerError },
    #[error("not delivered: {failed}")]
    Delivery { failed: String },
}

impl FanoutError {
    pub fn retry(&self) -> Retry {
        match self {
            FanoutError::Ledger { source: LedgerError::Corrupt { .. }, .. } => Retry::Useless,
            _ => Retry::Helps,
        }
    }
}

/// Reads every alarm transition a payload carries. A record that cannot be read is returned as an
/// error beside the others (it is logged; retrying cannot fix it); a payload that is no alarm
/// shape at all is an error.
pub fn read_transitions(payload: Value) -> Result<(Vec<AlarmTransition>, Vec<EventError>), EventError> {
    match Shape::of(&payload) {
        Shape::AlarmStateChange => {
            let e = parse_eventbridge_alarm(payload)?;
            Ok((
                vec![alarm::from_detail(&e.id, e.resources.first().cloned(), &e.account, &e.region, &e.detail)],
                vec![],
            ))
        }
        Shape::AlarmLambdaAction => {
            let a = parse_lambda_action(payload)?;
            let account =
                a.account_id.clone().or_else(|| a.alarm_arn.split(':').nth(4).map(str::to_string)).unwrap_or_default();
            let region =
                a.region.clone().or_else(|| a.alarm_arn.split(':').nth(3).map(str::to_string)).unwrap_or_default();
            let source = format!("{}@{}", a.alarm_arn, a.time.as_deref().unwrap_or(""));
            Ok((vec![alarm::from_detail(&source, Some(a.alarm_arn.clone()), &account, &region, &a.alarm_data)], vec![]))
        }
        Shape::SnsAlarmMessages => {
            let sns = parse_sns(payload)?;
            let mut alarms = Vec::new();
            let mut rejected = Vec::new();
            for (i, record) in sns.records.iter().enumerate() {
                match parse_classic(&record.sns.message) {
                    Ok(m) => alarms.push(alarm::from_classic(&record.sns.message_id, &m)),
                    Err(mut e) => {
                        e.event = format!("{} (SNS record {i}, message {})", e.event, record.sns.message_id);
                        rejected.push(e);
                    }
                }
            }
            Ok((alarms, rejected))
        }
        other => Err(EventError::new(
            "alarm-fanout input",
            "source",
            format!("not a CloudWatch alarm state change, alarm action or SNS alarm message (looks like {other:?})"),
        )),
    }
}

/// The plan for one transition after its memory was consulted.
struct Plan {
    alarm: AlarmTransition,
    memory_key: String,
    verdict: Verdict,
    claimed: Vec<Target>,
    deployment: Option<InFlight>,
}

struct Sent {
    plan: usize,
    target: Target,
    result: Result<String, PortError>,
}

impl<P: Publisher, S: ObjectStore> Fanout<P, S> {
    pub async fn handle(&self, payload: Value, token: &str, now: DateTime<Utc>) -> Result<Value, FanoutError> {
        let (alarms, rejected) = match read_transitions(payload) {
            Ok(read) => read,
            Err(e) => {
                error!(error = %e, event = %e.event, field = %e.field, "bad event acknowledged without retry");
                return Ok(json!({ "ignored": e.to_string() }));
            }
        };
        for e in &rejected {
            error!(error = %e, event = %e.event, field = %e.field, "unreadable alarm record skipped");
        }

        let mut plans = Vec::new();
        for alarm in alarms {
            let span =
                info_span!("alarm", event_id = %alarm.source_id, alarm = %alarm.alarm_name, state = %alarm.state);
            plans.push(self.plan(alarm, token, now).instrument(span).await?);
        }

        let sent = self.publish(&plans).await;
        let mut failed = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            let span = info_span!("alarm", event_id = %plan.alarm.source_id, alarm = %plan.alarm.alarm_name);
            let _entered = span.enter();
            let results: Vec<&Sent> = sent.iter().filter(|s| s.plan == i).collect();
            for s in &results {
                match &s.result {
                    Ok(id) => {
                        info!(topic = %s.target.topic_arn, message_id = %id, severity = s.target.severity.as_str(), "alarm sent")
                    }
                    Err(e) => {
                        error!(topic = %s.target.topic_arn, error = %e, "alarm not sent");
                        failed.push(format!("{} -> {} ({e})", plan.alarm.alarm_name, s.target.topic_arn));
                    }
                }
            }
            if results.is_empty() {
                continue;
            }
            let transition = plan.alarm.key();
            let settled = ledger::read_modify_write(
                &self.store,
                &plan.memory_key,
                || AlarmMemory { subject: plan.alarm.subject(), ..AlarmMemory::default() },
                |memory| {
                    for s in &results {
                        let key = delivery_key(&transition, &s.target.topic_arn);
                        ledger::settle(
                            &mut memory.deliveries,
                            &key,
                            token,
                            s.result.as_ref().ok().map(String::as_str),
                            now,
                        );
                    }
                    Some(())
                },
            )
            .await;
            if let Err(e) = settled {
                error!(error = %e, "could not record what was sent");
            }
        }

        let summary: Vec<Value> = plans
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let topics: Vec<&str> =
                    sent.iter().filter(|s| s.plan == i && s.result.is_ok()).map(|s| s.target.topic_arn.as_str()).collect();
                json!({
                    "alarm": p.alarm.alarm_name,
                    "state": p.alarm.state.to_string(),
                    "verdict": match &p.verdict { Verdict::Send => "send".to_string(), Verdict::Suppress(r) => format!("suppressed: {r}") },
                    "sentTo": topics,
                })
            })
            .collect();
        if !failed.is_empty() {
            return Err(FanoutError::Delivery { failed: failed.join("; ") });
        }
        Ok(json!({ "alarms": summary, "rejected": rejected.iter().map(|e| e.to_string()).collect::<Vec<_>>() }))
    }

    /// Decides (or recalls) the verdict and claims the targets not yet sent.
    async fn plan(&self, alarm: AlarmTransition, token: &str, now: DateTime<Utc>) -> Result<Plan, FanoutError> {
        let targets = self.rules.targets(&alarm);
        let memory_key = AlarmMemory::key(&alarm.account, &alarm.region, &alarm.subject());
        let transition = alarm.key();
        let (memory, claimed) = ledger::read_modify_write(
            &self.store,
            &memory_key,
            || AlarmMemory { subject: alarm.subject(), ..AlarmMemory::default() },
            |memory| {
                let fresh = !memory.decided.iter().any(|(k, _)| *k == transition);
                let verdict = memory.decide(&alarm, self.config.flap_window, now);
                let claimed: Vec<Target> = match verdict {
                    Verdict::Suppress(_) => Vec::new(),
                    Verdict::Send => targets
                        .iter()
                        .filter(|t| {
                            let key = delivery_key(&transition, &t.topic_arn);
                            ledger::claim(&mut memory.deliveries, &key, token, now, self.config.claim_ttl)
                        })
                        .cloned()
                        .collect(),
                };
                (fresh || !claimed.is_empty()).then_some(claimed)
            },
        )
        .await
        .map_err(|source| FanoutError::Ledger { alarm: alarm.alarm_name.clone(), source })?;
        let verdict =
            memory.decided.iter().find(|(k, _)| *k == transition).map(|(_, v)| v.clone()).unwrap_or(Verdict::Send);
        let claimed = claimed.unwrap_or_default();
        match &verdict {
            Verdict::Suppress(reason) => info!(reason = %reason, "not sent: suppressed"),
            Verdict::Send if claimed.is_empty() => info!("already sent to every target"),
            Verdict::Send => {}
        }
        let deployment = if claimed.is_empty() { None } else { self.deployment(&alarm, now).await };
        Ok(Plan { alarm, memory_key, verdict, claimed, deployment })
    }

    /// The deployment in flight for the alarm's application, if one is recorded.
    async fn deployment(&self, alarm: &AlarmTransition, now: DateTime<Utc>) -> Option<InFlight> {
        let application = self.rules.application(alarm)?;
        let at = alarm.state_time.unwrap_or(now);
        match deploy_context::read(&self.store, &application).await {
            Ok(Some(d))
                if d.covers(at, chrono::Duration::minutes(15))
                    && at - d.started_at < self.config.deploy_context_max_age =>
            {
                Some(d)
            }
            Ok(_) => None,
            Err(e) => {
                warn!(error = %e, "deployment context unreadable");
                None
            }
        }
    }

    /// Publishes every claimed message, every topic concurrently; several messages for one topic go
    /// in PublishBatch calls.
    async fn publish(&self, plans: &[Plan]) -> Vec<Sent> {
        let mut by_topic: BTreeMap<&str, Vec<(usize, &Target, OutboundMessage)>> = BTreeMap::new();
        for (i, plan) in plans.iter().enumerate() {
            for target in &plan.claimed {
                let message = format::message(&plan.alarm, target, plan.deployment.as_ref());
                by_topic.entry(target.topic_arn.as_str()).or_default().push((i, target, message));
            }
        }
        let calls = by_topic.into_iter().map(|(topic, entries)| async move {
            let mut out = Vec::new();
            if entries.len() == 1 {
                let (plan, target, message) = &entries[0];
                out.push(Sent {
                    plan: *plan,
                    target: (*target).clone(),
                    result: self.publisher.publish(topic, message).await,
                });
                return out;
            }
            for chunk in entries.chunks(BATCH_LIMIT) {
                let messages: Vec<OutboundMessage> = chunk.iter().map(|(_, _, m)| m.clone()).collect();
                match self.publisher.publish_batch(topic, &messages).await {
                    Ok(outcomes) => {
                        for (index, (plan, target, _)) in chunk.iter().enumerate() {
                            let result =
                                outcomes.iter().find(|o| o.index == index).map(|o| o.result.clone()).unwrap_or_else(
                                    || {
                                        Err(PortError::new(
                                            "SNS",
                                            "PublishBatch",
                                            pipewarden_shared::ports::FailureKind::ServerError,
                                            "no result for entry",
                                        ))
                                    },
                                );
                            out.push(Sent { plan: *plan, target: (*target).clone(), result });
                        }
                    }
                    Err(e) => {
                        for (plan, target, _) in chunk {
                            out.push(Sent { plan: *plan, target: (*target).clone(), result: Err(e.clone()) });
                        }
                    }
                }
            }
            out
        });
        join_all(calls).await.into_iter().flatten().collect()
    }
}
