//! One invocation: every alarm transition it carries is routed, checked against the alarm's
//! memory (noise control), and fanned out to its topics concurrently, exactly once per
//! (transition, topic). If any topic fails, the invocation fails naming it, and the retry
//! publishes only what is missing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use pipewarden_shared::deadline::{self, bounded_optional};
use pipewarden_shared::deploy_context::{self, InFlight};
use pipewarden_shared::events::cloudwatch::{
    parse_classic, parse_eventbridge_alarm, parse_lambda_action, AlarmStateValue,
};
use pipewarden_shared::events::eventbridge::Shape;
use pipewarden_shared::events::sns::{parse_sns, SnsEvent};
use pipewarden_shared::events::{Document, EventError};
use pipewarden_shared::lambda::Retry;
use pipewarden_shared::ledger::{self, delivery_key, LedgerError};
use pipewarden_shared::ports::{ObjectStore, OutboundMessage, PortError, Publisher};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument};

use crate::alarm::{self, AlarmTransition, Note};
use crate::config::Config;
use crate::deployments::{self, Asked, DeploymentLister};
use crate::format;
use crate::inhibit;
use crate::memory::{self, AlarmMemory, Claims, Verdict};
use crate::rules::{RuleSet, Target};
use crate::silences::{self, ActiveSilence, Labels, SilenceCache};
use crate::tags::{AlarmTagSource, CachedAlarmTags};
use crate::timers::{self, Timer, TimerDetail, TimerKind, Timers};

/// Why a route that is quiet during deployments held a transition back.
fn quiet_reason(d: &InFlight) -> String {
    let what = match (&d.deployment_id, &d.pipeline, &d.execution_id) {
        (Some(id), _, _) => format!("deployment {id}"),
        (None, Some(pipeline), Some(execution)) => format!("pipeline {pipeline} execution {execution}"),
        _ => "a deployment".to_string(),
    };
    format!("quiet while {what} of {} is in flight (since {})", d.application, d.started_at.to_rfc3339())
}

/// What holds an ALARM back, and until when (a silence's end; a deployment's is not known).
struct Hold {
    reason: String,
    until: Option<DateTime<Utc>>,
}

/// When a timer looks again at an ALARM held back by a deployment in flight: the next five-minute
/// mark at least five minutes away (so the same hold seen twice sets one timer).
fn recheck_at(now: DateTime<Utc>) -> DateTime<Utc> {
    let later = now + chrono::Duration::minutes(5);
    let step = 300;
    let t = later.timestamp();
    DateTime::from_timestamp(t + (step - t.rem_euclid(step)) % step, 0).unwrap_or(later)
}

/// A timer is never set in the past (Scheduler's answer to that is not documented): a minute
/// from now at the earliest.
fn not_before_now(at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    at.max(now + chrono::Duration::minutes(1))
}

/// How many alarms a cleared inhibit source has looked at again at once (the others' own looks
/// come within 10 minutes).
const HELD_LOOKS: usize = 50;

/// The transitions of one invocation for one group: its rule, its labels, how it groups, and the
/// (plan, target) pairs handed to it.
struct Members {
    rule: String,
    labels: BTreeMap<String, String>,
    grouping: crate::groups::Grouping,
    members: Vec<(usize, Target)>,
}

/// SNS PublishBatch takes at most ten entries.
const BATCH_LIMIT: usize = 10;

pub struct Fanout<P, S, T, D, R> {
    pub config: Config,
    pub rules: RuleSet,
    pub publisher: P,
    pub store: S,
    /// Where an alarm's tags come from when the event does not carry them all.
    pub tags: CachedAlarmTags<T>,
    /// Which CodeDeploy deployment a release is, when its deployment context does not say.
    pub deployments: D,
    /// The silences in force, read from the audit bucket at most once a minute.
    pub silences: SilenceCache,
    /// Reminders and looks again at what was held back (EventBridge Scheduler).
    pub timers: R,
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("memory of alarm {alarm}: {source}")]
    Ledger { alarm: String, source: LedgerError },
    #[error("not delivered: {failed}")]
    Delivery {
        failed: String,
        /// Whether trying again may deliver: not when SNS refused every failed message for what it
        /// is (a 4xx other than throttling), which the same message gets again.
        retryable: bool,
    },
}

impl FanoutError {
    pub fn retry(&self) -> Retry {
        match self {
            FanoutError::Ledger { source: LedgerError::Corrupt { .. }, .. } => Retry::Useless,
            FanoutError::Delivery { retryable: false, .. } => Retry::Useless,
            _ => Retry::Helps,
        }
    }
}

/// Reads every alarm transition a payload carries. A record that cannot be read is returned as an
/// error beside the others (it is logged; retrying cannot fix it); a payload that is no alarm
/// shape at all is an error.
pub fn read_transitions(payload: impl Document) -> Result<(Vec<AlarmTransition>, Vec<EventError>), EventError> {
    let (shape, sns) = payload.classify();
    transitions_of(payload, shape, sns)
}

/// [`read_transitions`] of a payload already classified ([`Document::classify`]).
pub fn transitions_of(
    payload: impl Document,
    shape: Shape,
    sns: Option<SnsEvent>,
) -> Result<(Vec<AlarmTransition>, Vec<EventError>), EventError> {
    match input_of(payload, shape, sns)? {
        Input::Transitions(alarms, rejected) => Ok((alarms, rejected)),
        Input::Timer(_) => Err(EventError::new(
            "alarm-fanout input",
            "source",
            "an alarm-fanout timer (pipewarden.alarm-fanout), not an alarm transition",
        )),
    }
}

/// What an invocation carries: alarm transitions (and records that did not read), or one of
/// alarm-fanout's own timers.
pub enum Input {
    Transitions(Vec<AlarmTransition>, Vec<EventError>),
    Timer(TimerDetail),
}

/// Reads an invocation's payload (see [`read_transitions`]).
pub fn read_input(payload: impl Document) -> Result<Input, EventError> {
    let (shape, sns) = payload.classify();
    input_of(payload, shape, sns)
}

/// [`read_input`] of a payload already classified ([`Document::classify`]).
pub fn input_of(payload: impl Document, shape: Shape, sns: Option<SnsEvent>) -> Result<Input, EventError> {
    let (alarms, rejected) = match shape {
        Shape::AlarmFanoutTimer => return Ok(Input::Timer(timers::read(payload)?)),
        Shape::AlarmStateChange => {
            let e = parse_eventbridge_alarm(payload)?;
            (vec![alarm::from_detail(&e.id, e.alarm_arn(), &e.account, &e.region, &e.detail)], vec![])
        }
        Shape::AlarmLambdaAction => {
            let a = parse_lambda_action(payload)?;
            let arn = a.alarm_arn();
            let account = a.account().unwrap_or_default();
            let region = a.region_code().unwrap_or_default();
            let source = match &a.id {
                Some(id) => id.clone(),
                None => format!(
                    "{}@{}",
                    arn.as_deref().unwrap_or(&a.alarm_data.alarm_name),
                    a.time.as_deref().unwrap_or("")
                ),
            };
            let mut transition = alarm::from_detail(&source, arn, &account, &region, &a.alarm_data);
            (transition.tags, transition.tags_known) = a.tags();
            (vec![transition], vec![])
        }
        Shape::SnsAlarmMessages => {
            let sns = match sns {
                Some(read) => read,
                None => parse_sns(payload)?,
            };
            let mut alarms = Vec::new();
            let mut rejected = Vec::new();
            for (i, record) in sns.records.iter().enumerate() {
                match parse_classic(&record.sns.message) {
                    Ok(mut m) => {
                        m.derive_missing(&record.sns.topic_arn);
                        alarms.push(alarm::from_classic(&record.sns.message_id, m))
                    }
                    Err(mut e) => {
                        e.event = format!("{} (SNS record {i}, message {})", e.event, record.sns.message_id);
                        rejected.push(e);
                    }
                }
            }
            (alarms, rejected)
        }
        other => {
            return Err(EventError::new(
                "alarm-fanout input",
                "source",
                format!(
                    "not a CloudWatch alarm state change, alarm action or SNS alarm message (looks like {other:?})"
                ),
            ))
        }
    };
    Ok(Input::Transitions(alarms, rejected))
}

fn memory_key_of(alarm: &AlarmTransition) -> String {
    AlarmMemory::key(&alarm.account, &alarm.region, &alarm.subject())
}

/// The plan for one transition after its memory was consulted.
struct Plan {
    alarm: AlarmTransition,
    memory_key: String,
    verdict: Verdict,
    claimed: Vec<Target>,
    /// Topics not to send to yet: an older transition is being sent there by another invocation.
    waiting: Vec<Target>,
    deployment: Option<InFlight>,
    /// The memory and its ETag as this invocation's claim left it.
    known: Option<(AlarmMemory, String)>,
    /// What its deliveries are recorded under: the transition's key, or a reminder's.
    delivery: String,
    /// Until when what holds it back holds (a silence's end), when it is held.
    hold_until: Option<DateTime<Utc>>,
    /// Its memory keeps it as held back (an ALARM a silence or a quiet route held): a timer is to
    /// look at it again when the hold ends.
    held: bool,
}

struct Sent {
    plan: usize,
    target: Target,
    result: Result<String, PortError>,
}

impl<P: Publisher, S: ObjectStore, T: AlarmTagSource, D: DeploymentLister, R: Timers> Fanout<P, S, T, D, R> {
    pub async fn handle(&self, payload: impl Document, token: &str, now: DateTime<Utc>) -> Result<Value, FanoutError> {
        let (mut alarms, rejected) = match read_input(payload) {
            Ok(Input::Transitions(alarms, rejected)) => (alarms, rejected),
            Ok(Input::Timer(timer)) => {
                // The schedule's name is the timer's id.
                let id = Timer::new(timer.clone()).name;
                let span = info_span!("timer", event_id = %id, kind = ?timer.kind, transition = %timer.transition, reminder = timer.reminder);
                return self.timer(timer, token, now).instrument(span).await;
            }
            Err(e) => {
                error!(error = %e, event = %e.event, field = %e.field, "bad event acknowledged without retry");
                return Ok(json!({ "ignored": e.to_string() }));
            }
        };
        for e in &rejected {
            error!(error = %e, event = %e.event, field = %e.field, "unreadable alarm record skipped");
        }
        // Independent: the tag lookups and the silences (read at most once a minute) at once.
        let (_, silences) = tokio::join!(self.add_tags(&mut alarms), self.silences.get(&self.store, now));
        let silences = match silences {
            Ok(silences) => silences,
            Err(e) => {
                // Sent rather than held back: a silence unread must not lose an alarm.
                warn!(error = %e, "silences not read: nothing is silenced this time");
                Vec::new()
            }
        };

        let mut plans: Vec<Plan> = Vec::new();
        let mut asked = Asked::new();
        let mut firing = None;
        for mut alarm in alarms {
            let span =
                info_span!("alarm", event_id = %alarm.source_id, alarm = %alarm.alarm_name, state = %alarm.state);
            let at = alarm.state_time.unwrap_or(now);
            let hold = match self.hold(&alarm, &silences, at, &mut asked, &mut firing).instrument(span.clone()).await {
                Ok(hold) => hold,
                Err(e) => {
                    // Sent rather than held back: an inhibition unknown must not lose an alarm.
                    span.in_scope(|| warn!(error = %e, "alarms in ALARM unknown: nothing is inhibited this time"));
                    None
                }
            };
            let hold_until = hold.as_ref().and_then(|h| h.until);
            alarm.silenced = hold.map(|h| h.reason);
            // The same transition twice in one event (an SNS batch can repeat a record) is sent once:
            // both records carry this invocation's token, so the claim alone would not stop the second.
            let same = |p: &Plan| p.alarm.key() == alarm.key() && p.memory_key == memory_key_of(&alarm);
            if plans.iter().any(same) {
                let reason = "the same transition as an earlier record of this event".to_string();
                span.in_scope(|| info!(reason = %reason, "not sent: suppressed"));
                let memory_key = memory_key_of(&alarm);
                plans.push(Plan {
                    alarm,
                    memory_key,
                    verdict: Verdict::Suppress(reason),
                    claimed: vec![],
                    waiting: vec![],
                    deployment: None,
                    known: None,
                    delivery: String::new(),
                    hold_until: None,
                    held: false,
                });
                continue;
            }
            let mut plan = self.plan(alarm, token, now, &mut asked, false).instrument(span).await?;
            plan.hold_until = hold_until;
            plans.push(plan);
        }

        // Targets whose route groups are handed to their group; the others are published now.
        let grouped = self.hand_to_groups(&mut plans, now).await;
        let mut sent = self.publish(&plans).await;
        sent.extend(grouped);
        let (mut failed, mut retryable) = self.settle(&mut plans, &sent, token, now).await;
        for plan in &plans {
            let span = info_span!("alarm", event_id = %plan.alarm.source_id, alarm = %plan.alarm.alarm_name);
            let wanted = self.timers_for(plan, now);
            if !wanted.is_empty() {
                let (timer_failures, timer_retry) = self.set_timers(&wanted).instrument(span.clone()).await;
                failed.extend(timer_failures);
                retryable |= timer_retry;
            }
            // An inhibit rule's source that left ALARM: what it held is looked at again within a
            // minute, not at its next look. Best effort: those looks come anyway.
            if plan.alarm.state != AlarmStateValue::Alarm {
                let looks = self.held_by(&plan.alarm, &mut firing, now).instrument(span.clone()).await;
                let (timer_failures, _) = self.set_timers(&looks).instrument(span.clone()).await;
                for f in timer_failures {
                    span.in_scope(|| warn!(failure = %f, "what the cleared alarm held is looked at again later"));
                }
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
            return Err(FanoutError::Delivery { failed: failed.join("; "), retryable });
        }
        Ok(json!({ "alarms": summary, "rejected": rejected.iter().map(|e| e.to_string()).collect::<Vec<_>>() }))
    }

    /// What holds `alarm` back at `at`, if anything: a silence, an inhibit rule whose source is in
    /// ALARM now, or a route quiet while its application's deployment is in flight. Never an OK (an
    /// ALARM that was sent gets its OK). An error when which alarms are in ALARM is unknown (read
    /// once per invocation into `firing`, when an inhibit rule's target matches).
    async fn hold(
        &self,
        alarm: &AlarmTransition,
        silences: &[ActiveSilence],
        at: DateTime<Utc>,
        asked: &mut Asked,
        firing: &mut Option<Vec<(String, Labels)>>,
    ) -> Result<Option<Hold>, PortError> {
        if alarm.state == AlarmStateValue::Ok {
            return Ok(None);
        }
        if !silences.is_empty() || !self.rules.inhibit.is_empty() {
            let labels = silences::labels(alarm, &self.rules.targets(alarm), self.rules.application(alarm).as_deref());
            if let Some(s) = silences::silencing(silences, alarm, &labels, at) {
                return Ok(Some(Hold { reason: s.reason(), until: Some(s.silence.ends_at) }));
            }
            if self.rules.inhibit.iter().any(|r| silences::all_match(&r.target, &labels)) {
                if firing.is_none() {
                    *firing = Some(self.firing().await?);
                }
                let sources = firing.as_deref().unwrap_or_default();
                if let Some((rule, source)) =
                    inhibit::inhibiting(&self.rules.inhibit, &alarm.alarm_name, &labels, sources)
                {
                    let reason = format!("inhibited while {source} is in ALARM (inhibit rule {})", rule.name);
                    return Ok(Some(Hold { reason, until: None }));
                }
            }
        }
        if !self.rules.quiet_during_deployments(alarm) {
            return Ok(None);
        }
        let Some(d) = self.deployment(alarm, at, asked).await else { return Ok(None) };
        // In flight, not merely ended a moment ago.
        Ok(d.finished_at.is_none_or(|f| at <= f).then(|| Hold { reason: quiet_reason(&d), until: None }))
    }

    /// Timers to look again, within a minute, at the alarms `source` (no longer in ALARM) held back
    /// by an inhibit rule: those in ALARM now that a rule with `source` as its source targets, whose
    /// memory keeps an ALARM held back (at most [`HELD_LOOKS`]; the others' own looks come later).
    async fn held_by(
        &self,
        source: &AlarmTransition,
        firing: &mut Option<Vec<(String, Labels)>>,
        now: DateTime<Utc>,
    ) -> Vec<Timer> {
        if !self.timers.enabled() || self.rules.inhibit.is_empty() {
            return Vec::new();
        }
        let mut labels =
            silences::labels(source, &self.rules.targets(source), self.rules.application(source).as_deref());
        // As a source it was in ALARM: matchers on its state must read it so.
        labels.insert("state".into(), "ALARM".into());
        let rules: Vec<&inhibit::Inhibit> =
            self.rules.inhibit.iter().filter(|r| silences::all_match(&r.source, &labels)).collect();
        if rules.is_empty() {
            return Vec::new();
        }
        if firing.is_none() {
            match self.firing().await {
                Ok(found) => *firing = Some(found),
                Err(e) => {
                    warn!(error = %e, "alarms in ALARM unknown: what this alarm held is looked at again later");
                    return Vec::new();
                }
            }
        }
        let subject = source.alarm_name.clone();
        let held: Vec<&Labels> = firing
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|(name, target)| {
                *name != subject
                    && rules.iter().any(|r| silences::all_match(&r.target, target) && r.equal_labels(&labels, target))
            })
            .map(|(_, target)| target)
            .take(HELD_LOOKS)
            .collect();
        let reads = held.iter().filter_map(|target| {
            let key = AlarmMemory::key(target.get("account")?, target.get("region")?, target.get("alarmName")?);
            Some(async move {
                let read = ledger::update(&self.store, &key, None, AlarmMemory::default, |_| None::<()>).await;
                (key, read)
            })
        });
        let mut timers = Vec::new();
        for (key, read) in join_all(reads).await {
            let kept = match read {
                Ok(read) => read.document.kept.filter(|k| k.held.is_some()),
                Err(e) => {
                    warn!(memory = %key, error = %e, "memory not read: its own look comes later");
                    None
                }
            };
            if let Some(kept) = kept {
                timers.push(Timer::new(TimerDetail {
                    kind: TimerKind::Release,
                    memory_key: key,
                    transition: kept.transition.key(),
                    reminder: 0,
                    due: not_before_now(now, now),
                }));
            }
        }
        timers
    }

    /// The alarms in ALARM now (CloudWatch's word), each with its labels; their tags looked up
    /// (kept per container) only when an inhibit rule needs them.
    async fn firing(&self) -> Result<Vec<(String, Labels)>, PortError> {
        let mut alarms = self.tags.in_alarm().await?;
        if self.rules.inhibit.iter().any(|r| r.needs_tags()) {
            self.add_tags(&mut alarms).await;
        }
        Ok(alarms
            .iter()
            .map(|a| (a.subject(), silences::labels(a, &self.rules.targets(a), self.rules.application(a).as_deref())))
            .collect())
    }

    /// The timers a transition's plan asks for: a look again at an ALARM held back when its hold
    /// ends, the first reminder of an ALARM sent on a route that repeats. None when no scheduler
    /// is configured.
    fn timers_for(&self, plan: &Plan, now: DateTime<Utc>) -> Vec<Timer> {
        if !self.timers.enabled() || plan.alarm.state != AlarmStateValue::Alarm || plan.delivery != plan.alarm.key() {
            return Vec::new();
        }
        let transition = plan.alarm.key();
        let detail = |kind, reminder, due| TimerDetail {
            kind,
            memory_key: plan.memory_key.clone(),
            transition: transition.clone(),
            reminder,
            due,
        };
        // From the memory, not from this invocation's reading of the holds: a retry whose reading
        // differs (a silence extended since, a deployment lookup that failed) still sets the timer.
        if plan.held {
            let due =
                plan.hold_until.map(|until| until + chrono::Duration::seconds(1)).unwrap_or_else(|| recheck_at(now));
            return vec![Timer::new(detail(TimerKind::Release, 0, not_before_now(due, now)))];
        }
        match &plan.verdict {
            Verdict::Suppress(_) => Vec::new(),
            Verdict::Send if plan.waiting.is_empty() => match self.rules.reminders(&plan.alarm) {
                Some((every, targets)) if !targets.is_empty() => {
                    let due = plan.alarm.state_time.unwrap_or(now) + every;
                    vec![Timer::new(detail(TimerKind::Remind, 1, not_before_now(due, now)))]
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Sets timers, all at once; what failed, for the invocation's error (a retry sets them again:
    /// a timer set twice is set once).
    async fn set_timers(&self, wanted: &[Timer]) -> (Vec<String>, bool) {
        let results = join_all(wanted.iter().map(|t| self.timers.set(t))).await;
        let mut failed = Vec::new();
        let mut retryable = false;
        for (timer, result) in wanted.iter().zip(results) {
            match result {
                Ok(()) => {
                    info!(timer = %timer.name, kind = ?timer.detail.kind, due = %timer.at.to_rfc3339(), transition = %timer.detail.transition, "timer set")
                }
                Err(e) => {
                    error!(timer = %timer.name, error = %e, "timer not set");
                    retryable |= e.is_retryable();
                    failed.push(format!(
                        "timer {} ({:?} of {}): {e}",
                        timer.name, timer.detail.kind, timer.detail.transition
                    ));
                }
            }
        }
        (failed, retryable)
    }

    /// A timer went off: a reminder, or a look again at an ALARM held back.
    async fn timer(&self, timer: TimerDetail, token: &str, now: DateTime<Utc>) -> Result<Value, FanoutError> {
        if timer.kind == TimerKind::Flush {
            return self.flush(&timer, token, now).await;
        }
        if !timer.memory_key.starts_with("alarm-fanout/alarms/") || !timer.memory_key.ends_with(".json") {
            let e = EventError::new(
                "alarm-fanout timer",
                "detail.memoryKey",
                "not an alarm's memory (alarm-fanout/alarms/...json)",
            );
            error!(error = %e, event = %e.event, field = %e.field, "bad event acknowledged without retry");
            return Ok(json!({ "ignored": e.to_string() }));
        }
        let read = ledger::update(&self.store, &timer.memory_key, None, AlarmMemory::default, |_| None::<()>)
            .await
            .map_err(|source| FanoutError::Ledger { alarm: timer.memory_key.clone(), source })?;
        let memory = read.document;
        // Unlike a transition (sent rather than lost), a timer waits for the silences: what they
        // held stays held until they read (Lambda's retry), not released while perhaps still silenced.
        let silences = self.silences.get(&self.store, now).await.map_err(|e| FanoutError::Delivery {
            failed: format!("timer {:?} of {}: silences not read ({e})", timer.kind, timer.transition),
            retryable: true,
        })?;
        let mut asked = Asked::new();
        let mut firing = None;
        // Whether an inhibit rule holds it cannot be read: held, and looked at again later (a
        // timer's look never releases what may still be held, nor fails into the DLQ for it).
        let unknown = |e: PortError| {
            warn!(error = %e, "alarms in ALARM unknown: taken as still held");
            Some(Hold { reason: format!("whether an inhibit rule holds it is unknown ({e})"), until: None })
        };
        let done = |what: &str| {
            info!(outcome = what, "timer done");
            Ok(
                json!({ "timer": format!("{:?}", timer.kind).to_lowercase(), "transition": timer.transition, "outcome": what }),
            )
        };
        let plan = match timer.kind {
            TimerKind::Flush => return self.flush(&timer, token, now).await,
            TimerKind::Release => {
                let Some(kept) = memory.kept.as_ref().filter(|k| k.transition.key() == timer.transition) else {
                    return done("nothing to send: the alarm changed state since");
                };
                let mut alarm = kept.transition.clone();
                alarm.silenced = None;
                if kept.held.is_some() {
                    if let Some(hold) =
                        self.hold(&alarm, &silences, now, &mut asked, &mut firing).await.unwrap_or_else(unknown)
                    {
                        info!(reason = %hold.reason, "still held back");
                        let due =
                            hold.until.map(|u| u + chrono::Duration::seconds(1)).unwrap_or_else(|| recheck_at(now));
                        let again = Timer::new(TimerDetail { due: not_before_now(due, now), ..timer.clone() });
                        let (failed, retryable) = self.set_timers(std::slice::from_ref(&again)).await;
                        if !failed.is_empty() {
                            return Err(FanoutError::Delivery { failed: failed.join("; "), retryable });
                        }
                        return done("still held back: looked at again later");
                    }
                }
                let reason = kept.held.as_ref().or(kept.released_from.as_ref()).cloned().unwrap_or_default();
                let since = alarm.state_time.unwrap_or(now).format("%Y-%m-%d %H:%M UTC");
                alarm.note = Some(Note {
                    tag: "held back".into(),
                    text: format!("Held back since {since} ({reason}); still in ALARM when that ended."),
                });
                self.plan(alarm, token, now, &mut asked, true).await?
            }
            TimerKind::Remind => {
                let Some(kept) = memory.remindable(&timer.transition) else {
                    return done("no reminder: resolved, or no longer the alarm's state");
                };
                let mut alarm = kept.clone();
                let Some((every, targets)) = self.rules.reminders(&alarm).filter(|(_, t)| !t.is_empty()) else {
                    return done("no reminder: no route of the alarm repeats now");
                };
                let next = Timer::new(TimerDetail {
                    reminder: timer.reminder + 1,
                    due: not_before_now(timer.due + every, now),
                    ..timer.clone()
                });
                if let Some(hold) =
                    self.hold(&alarm, &silences, now, &mut asked, &mut firing).await.unwrap_or_else(unknown)
                {
                    info!(reason = %hold.reason, "reminder not sent: held back");
                    let (failed, retryable) = self.set_timers(std::slice::from_ref(&next)).await;
                    if !failed.is_empty() {
                        return Err(FanoutError::Delivery { failed: failed.join("; "), retryable });
                    }
                    return done("reminder held back; the next one is set");
                }
                let since = alarm.state_time.unwrap_or(now);
                let minutes = (now - since).num_minutes();
                alarm.note = Some(Note {
                    tag: format!("reminder {}", timer.reminder),
                    text: format!(
                        "Reminder {}: still in ALARM, since {} ({}h{:02}m ago).",
                        timer.reminder,
                        since.format("%Y-%m-%d %H:%M UTC"),
                        minutes / 60,
                        minutes % 60
                    ),
                });
                let delivery = memory::reminder_key(&timer.transition, timer.reminder).unwrap_or_default();
                let mut claimed = Vec::new();
                let updated = ledger::update(
                    &self.store,
                    &timer.memory_key,
                    None,
                    AlarmMemory::default,
                    |m: &mut AlarmMemory| {
                        let c = m.claim_reminder(
                            &timer.transition,
                            timer.reminder,
                            &targets,
                            token,
                            now,
                            self.config.claim_ttl,
                        );
                        claimed = c.clone().unwrap_or_default();
                        c
                    },
                )
                .await
                .map_err(|source| FanoutError::Ledger { alarm: alarm.alarm_name.clone(), source })?;
                let deployment = if claimed.is_empty() { None } else { self.deployment(&alarm, now, &mut asked).await };
                let known = if claimed.is_empty() { None } else { updated.etag.map(|e| (updated.document, e)) };
                let plan = Plan {
                    alarm: alarm.clone(),
                    memory_key: timer.memory_key.clone(),
                    verdict: Verdict::Send,
                    claimed,
                    waiting: vec![],
                    deployment,
                    known,
                    delivery,
                    hold_until: None,
                    held: false,
                };
                let mut plans = vec![plan];
                let sent = self.publish(&plans).await;
                let (mut failed, mut retryable) = self.settle(&mut plans, &sent, token, now).await;
                let (timer_failed, timer_retry) = self.set_timers(std::slice::from_ref(&next)).await;
                failed.extend(timer_failed);
                retryable |= timer_retry;
                if !failed.is_empty() {
                    return Err(FanoutError::Delivery { failed: failed.join("; "), retryable });
                }
                let topics: Vec<&str> =
                    sent.iter().filter(|s| s.result.is_ok()).map(|s| s.target.topic_arn.as_str()).collect();
                info!(topics = topics.len(), "reminder sent");
                return Ok(
                    json!({ "timer": "remind", "transition": timer.transition, "reminder": timer.reminder, "sentTo": topics }),
                );
            }
        };
        // A release: the ALARM goes where its routes send it now, as a transition would.
        let mut plans = vec![plan];
        let grouped = self.hand_to_groups(&mut plans, now).await;
        let mut sent = self.publish(&plans).await;
        sent.extend(grouped);
        let (mut failed, mut retryable) = self.settle(&mut plans, &sent, token, now).await;
        let wanted: Vec<Timer> = plans.iter().flat_map(|p| self.timers_for(p, now)).collect();
        let (timer_failed, timer_retry) = self.set_timers(&wanted).await;
        failed.extend(timer_failed);
        retryable |= timer_retry;
        if !failed.is_empty() {
            return Err(FanoutError::Delivery { failed: failed.join("; "), retryable });
        }
        let topics: Vec<&str> = sent.iter().filter(|s| s.result.is_ok()).map(|s| s.target.topic_arn.as_str()).collect();
        if plans[0].verdict != Verdict::Send {
            return done("nothing to send: the alarm changed state since");
        }
        info!(topics = topics.len(), "held-back ALARM sent");
        Ok(json!({ "timer": "release", "transition": timer.transition, "sentTo": topics }))
    }

    /// Hands each plan's claimed targets whose route groups to their group (one conditional write
    /// per group), taking them out of the plan: what became of each, as a send (`group:<key>` when
    /// handed, so the alarm's memory records the topic as told and its OK follows it there), and
    /// the flush timers to set.
    async fn hand_to_groups(&self, plans: &mut [Plan], now: DateTime<Utc>) -> Vec<Sent> {
        use crate::groups::{self, Entry, Group};
        if !self.rules.groups() {
            return Vec::new();
        }
        let mut by_group: BTreeMap<String, Members> = BTreeMap::new();
        for (i, plan) in plans.iter_mut().enumerate() {
            if plan.verdict != Verdict::Send || plan.claimed.is_empty() {
                continue;
            }
            let targets = self.rules.targets(&plan.alarm);
            let labels = silences::labels(&plan.alarm, &targets, self.rules.application(&plan.alarm).as_deref());
            let (grouped, direct): (Vec<Target>, Vec<Target>) =
                std::mem::take(&mut plan.claimed).into_iter().partition(|t| self.rules.grouping(&t.rule).is_some());
            plan.claimed = direct;
            for target in grouped {
                let Some(grouping) = self.rules.grouping(&target.rule) else { continue };
                let values: BTreeMap<String, String> =
                    grouping.by.iter().map(|l| (l.clone(), labels.get(l).cloned().unwrap_or_default())).collect();
                let key = groups::key(&target.rule, &values);
                by_group
                    .entry(key)
                    .or_insert_with(|| Members {
                        rule: target.rule.clone(),
                        labels: values,
                        grouping: grouping.clone(),
                        members: Vec::new(),
                    })
                    .members
                    .push((i, target));
            }
        }
        let writes = by_group.into_iter().map(|(key, Members { rule, labels, grouping, members })| {
            let plans = &*plans;
            async move {
                let mut due = None;
                let fresh = || Group { rule: rule.clone(), labels: labels.clone(), ..Group::default() };
                let written = ledger::update(&self.store, &key, None, fresh, |group: &mut Group| {
                    due = None;
                    let mut changed = false;
                    for (i, target) in &members {
                        let plan = &plans[*i];
                        let entry = Entry {
                            transition: plan.alarm.clone(),
                            key: plan.alarm.key(),
                            targets: vec![target.clone()],
                            changes: 1,
                            was: plan.alarm.previous.as_ref().map(|p| p.to_string()),
                        };
                        let before = group.clone();
                        due = group.add(entry, now, &grouping).or(due);
                        // The same transition to a second topic of the group: its topic joins the entry.
                        if *group == before {
                            if let Some(e) = group.pending.iter_mut().find(|e| e.key == plan.alarm.key()) {
                                if !e.targets.contains(target) {
                                    e.targets.push(target.clone());
                                }
                            }
                        }
                        changed |= *group != before;
                    }
                    changed.then_some(())
                })
                .await;
                (key, members, written.map(|_| due))
            }
        });
        let mut sent = Vec::new();
        for (key, members, written) in join_all(writes).await {
            // The flush timer is set before the alarms' memories record the topics as told: if it
            // cannot be, they are not, and Lambda's retry hands them again (once) and sets it.
            let handed = match written {
                Ok(Some(due)) => {
                    let timer = Timer::flush(&key, not_before_now(due, now));
                    match self.timers.set(&timer).await {
                        Ok(()) => {
                            info!(timer = %timer.name, group = %key, due = %timer.at.to_rfc3339(), "group flush timer set");
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(None) => Ok(()),
                // The store's own failure (a timeout may have written the group: uncertain).
                Err(LedgerError::Store { source, .. }) => Err(source),
                Err(e) => Err(PortError::new(
                    "S3",
                    "PutObject",
                    pipewarden_shared::ports::FailureKind::ServerError,
                    format!("group {key}: {e}"),
                )),
            };
            for (plan, target) in members {
                let result = match &handed {
                    Ok(()) => Ok(format!("group:{key}")),
                    Err(e) => Err(e.clone()),
                };
                sent.push(Sent { plan, target, result });
            }
        }
        sent
    }

    /// A group's flush timer went off: what it has pending goes as one message per topic, once.
    async fn flush(&self, timer: &TimerDetail, token: &str, now: DateTime<Utc>) -> Result<Value, FanoutError> {
        use crate::groups::{Group, Grouping};
        if !timer.memory_key.starts_with("alarm-fanout/groups/") || !timer.memory_key.ends_with(".json") {
            let e =
                EventError::new("alarm-fanout timer", "detail.memoryKey", "not a group (alarm-fanout/groups/...json)");
            error!(error = %e, event = %e.event, field = %e.field, "bad event acknowledged without retry");
            return Ok(json!({ "ignored": e.to_string() }));
        }
        let key = &timer.memory_key;
        let ledger_error = |source| FanoutError::Ledger { alarm: key.clone(), source };
        let mut started = None;
        let ttl = self.config.claim_ttl;
        let written = ledger::update(&self.store, key, None, Group::default, |group: &mut Group| {
            started = group.start_flush(token, now, ttl);
            started.as_ref().map(|_| ())
        })
        .await
        .map_err(ledger_error)?;
        let group = written.document;
        // The rules may have changed since: the group still goes, at the default pace.
        let grouping = self.rules.grouping(&group.rule).cloned().unwrap_or(Grouping {
            by: group.labels.keys().cloned().collect(),
            wait: chrono::Duration::seconds(30),
            interval: chrono::Duration::minutes(5),
        });
        let Some((flush, claimed)) = started else {
            // Not due yet (an early or a duplicate timer): its own timer is set again, by name
            // once, so a timer lost or used up early does not leave the group waiting for ever.
            if let Some(due) = group.due.filter(|_| !group.pending.is_empty()) {
                let again = Timer::new(TimerDetail { due: not_before_now(due, now), ..timer.clone() });
                let (failed, retryable) = self.set_timers(std::slice::from_ref(&again)).await;
                if !failed.is_empty() {
                    return Err(FanoutError::Delivery { failed: failed.join("; "), retryable });
                }
            }
            info!(group = %key, "nothing to send: the group has nothing pending, or not yet");
            return Ok(json!({ "timer": "flush", "group": key, "outcome": "nothing to send" }));
        };
        let publishes = claimed.iter().map(|target| {
            let entries: Vec<&crate::groups::Entry> =
                flush.entries.iter().filter(|e| e.targets.iter().any(|t| t.topic_arn == target.topic_arn)).collect();
            let message = format::group_message(&group.rule, &group.labels, &entries, target);
            async move { (target, self.publisher.publish(&target.topic_arn, &message).await) }
        });
        let results = join_all(publishes).await;
        let mut failed = Vec::new();
        let mut retryable = false;
        let mut outcomes = Vec::new();
        for (target, result) in &results {
            match result {
                Ok(id) => {
                    info!(group = %key, flush = flush.n, alarms = flush.entries.len(), topic = %target.topic_arn, message_id = %id, "group sent");
                    outcomes.push((target.topic_arn.clone(), Some(id.clone())));
                }
                Err(e) if !e.is_retryable() && !e.may_have_taken_effect() => {
                    // SNS refused it for what it is: no retry changes that. Given up for this topic
                    // (said), so the group goes on to its next message.
                    error!(group = %key, topic = %target.topic_arn, error = %e, "group refused by SNS: given up for this topic");
                    outcomes.push((target.topic_arn.clone(), Some(format!("refused: {e}"))));
                }
                Err(e) => {
                    error!(group = %key, topic = %target.topic_arn, error = %e, "group not sent");
                    failed.push(format!("group {key} -> {} ({e})", target.topic_arn));
                    retryable = true;
                    outcomes.push((target.topic_arn.clone(), None));
                }
            }
        }
        let mut next = None;
        let settle = ledger::update(
            &self.store,
            key,
            written.etag.map(|etag| (group.clone(), etag)),
            Group::default,
            |g: &mut Group| {
                next = g.settle_flush(flush.n, &outcomes, token, now, &grouping);
                Some(())
            },
        );
        // The flush's next look: the next flush when this one is over; when it is not (a topic
        // still to send, claimed by another invocation or failed; or its record not written), a
        // look once the claims have expired, which takes it over. Never no timer at all.
        let takeover = now + self.config.claim_ttl + chrono::Duration::minutes(1);
        match deadline::settling(Box::pin(settle)).await {
            Ok(settled) if settled.document.flushing.is_none() => {}
            Ok(_) => next = Some(next.map_or(takeover, |n| n.min(takeover))),
            Err(e) => {
                // As for an alarm's settle: said, not retried. If the write landed, the look finds
                // the next flush not yet due and sets its timer; if not, it takes the flush over
                // (SNS may then get it twice: the documented duplicate).
                error!(group = %key, error = %e, "could not record what the group sent");
                next = Some(takeover);
            }
        }
        if let Some(due) = next {
            let again = Timer::flush(key, not_before_now(due, now));
            let (timer_failed, timer_retry) = self.set_timers(std::slice::from_ref(&again)).await;
            failed.extend(timer_failed);
            retryable |= timer_retry;
        }
        if !failed.is_empty() {
            return Err(FanoutError::Delivery { failed: failed.join("; "), retryable });
        }
        let topics: Vec<&str> = claimed.iter().map(|t| t.topic_arn.as_str()).collect();
        Ok(json!({ "timer": "flush", "group": key, "flush": flush.n, "alarms": flush.entries.len(), "sentTo": topics }))
    }

    /// Records what each plan's sends became (in the time reserved for settling); what failed,
    /// for the invocation's error.
    async fn settle(&self, plans: &mut [Plan], sent: &[Sent], token: &str, now: DateTime<Utc>) -> (Vec<String>, bool) {
        let mut failed = Vec::new();
        let mut retryable = false;
        for (i, plan) in plans.iter_mut().enumerate() {
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
                        retryable |= e.is_retryable();
                    }
                }
            }
            for target in &plan.waiting {
                retryable = true;
                failed.push(format!(
                    "{} -> {} (waits for an older transition still being sent there)",
                    plan.alarm.alarm_name, target.topic_arn
                ));
            }
            if results.is_empty() {
                continue;
            }
            let transition = plan.delivery.clone();
            // In the time reserved for settling: a publish that hung used all of the work's.
            let outcomes: Vec<(String, Option<String>)> = results
                .iter()
                .map(|s| (delivery_key(&transition, &s.target.topic_arn), s.result.as_ref().ok().cloned()))
                .collect();
            // A publish whose answer never came may have reached the topic: its OK goes there.
            let uncertain: Vec<String> = results
                .iter()
                .filter(|s| s.result.as_ref().is_err_and(|e| e.may_have_taken_effect()))
                .map(|s| delivery_key(&transition, &s.target.topic_arn))
                .collect();
            let settle = ledger::update(
                &self.store,
                &plan.memory_key,
                plan.known.take(),
                || AlarmMemory { subject: plan.alarm.subject(), ..AlarmMemory::default() },
                |memory: &mut AlarmMemory| {
                    memory.settle(&outcomes, &uncertain, token, now);
                    Some(())
                },
            );
            let settled = deadline::settling(Box::pin(settle)).await.map(|_| ());
            if let Err(e) = settled {
                error!(error = %e, "could not record what was sent");
            }
        }
        (failed, retryable)
    }

    /// Gives each alarm whose event did not carry all its tags the tags CloudWatch has for it, one
    /// lookup per alarm, all at once. An alarm whose tags cannot be had keeps those it came with.
    async fn add_tags(&self, alarms: &mut [AlarmTransition]) {
        let mut wanted: Vec<(String, &AlarmTransition)> = Vec::new();
        for alarm in alarms.iter().filter(|a| !a.tags_known) {
            match &alarm.alarm_arn {
                Some(arn) if !wanted.iter().any(|(w, _)| w == arn) => wanted.push((arn.clone(), alarm)),
                Some(_) => {}
                None => {
                    let span = info_span!("alarm", event_id = %alarm.source_id, alarm = %alarm.alarm_name);
                    span.in_scope(|| warn!("alarm tags unknown: the event names no alarm ARN to look them up"));
                }
            }
        }
        let lookups = wanted.into_iter().map(|(arn, alarm)| {
            let span = info_span!("alarm", event_id = %alarm.source_id, alarm = %alarm.alarm_name, state = %alarm.state);
            async move {
                let found = self.tags.get(&arn).await;
                if let Err(e) = &found {
                    warn!(alarm_arn = %arn, error = %e, "alarm tags unavailable: routed with the tags the event carried");
                }
                (arn, found)
            }
            .instrument(span)
        });
        let found: Vec<(String, Result<_, PortError>)> = join_all(lookups).await;
        for alarm in alarms.iter_mut().filter(|a| !a.tags_known) {
            let tags =
                found.iter().find(|(arn, _)| Some(arn) == alarm.alarm_arn.as_ref()).and_then(|(_, r)| r.as_ref().ok());
            if let Some(tags) = tags {
                alarm.tags = tags.clone();
                alarm.tags_known = true;
            }
        }
    }

    /// Decides (or recalls) the verdict and claims the targets not yet sent.
    async fn plan(
        &self,
        alarm: AlarmTransition,
        token: &str,
        now: DateTime<Utc>,
        asked: &mut Asked,
        release: bool,
    ) -> Result<Plan, FanoutError> {
        let targets = self.rules.targets(&alarm);
        let memory_key = memory_key_of(&alarm);
        let transition = alarm.key();
        // While another live invocation sends an older transition to a target, look again (it
        // settles within milliseconds), within a small budget; then the invocation fails for those
        // targets and Lambda's retry sends them.
        let mut looks = ledger::LookAgain::new();
        let (memory, etag, Claims { claimed, waiting, .. }) = loop {
            let mut planned = Claims::default();
            let ledger::Updated { document, etag, .. } = ledger::update(
                &self.store,
                &memory_key,
                None,
                || AlarmMemory { subject: alarm.subject(), ..AlarmMemory::default() },
                |memory| {
                    // A timer's release: the held-back ALARM is to be sent, if still the newest word.
                    let released = release && memory.release(&transition);
                    let claims =
                        memory.plan(&alarm, &targets, token, now, self.config.flap_window, self.config.claim_ttl);
                    let claims = match claims {
                        Some(mut c) if released => {
                            c.changed = true;
                            Some(c)
                        }
                        None if released => Some(Claims { changed: true, ..Claims::default() }),
                        other => other,
                    };
                    planned = claims.clone().unwrap_or_default();
                    claims.filter(|c| c.changed)
                },
            )
            .await
            .map_err(|source| FanoutError::Ledger { alarm: alarm.alarm_name.clone(), source })?;
            if planned.waiting.is_empty() {
                break (document, etag, planned);
            }
            for target in &planned.waiting {
                info!(topic = %target.topic_arn, "waits: an older transition is being sent to this topic now");
            }
            if !looks.pause().await {
                break (document, etag, planned);
            }
        };
        for target in &waiting {
            info!(topic = %target.topic_arn, "still waiting for an older transition being sent to this topic: left to Lambda's retry");
        }
        let verdict =
            memory.decided.iter().find(|(k, _)| *k == transition).map(|(_, v)| v.clone()).unwrap_or(Verdict::Send);
        match &verdict {
            Verdict::Suppress(reason) => info!(reason = %reason, "not sent: suppressed"),
            Verdict::Send if claimed.is_empty() && waiting.is_empty() => info!("already sent to every target"),
            Verdict::Send => {}
        }
        let held = memory.kept.as_ref().is_some_and(|k| k.held.is_some() && k.transition.key() == transition);
        let at = alarm.state_time.unwrap_or(now);
        let deployment = if claimed.is_empty() { None } else { self.deployment(&alarm, at, asked).await };
        // The memory as the claim wrote it, for the settle (see `ledger::update`).
        let known = if claimed.is_empty() { None } else { etag.map(|etag| (memory, etag)) };
        Ok(Plan {
            alarm,
            memory_key,
            verdict,
            claimed,
            waiting,
            deployment,
            known,
            delivery: transition,
            hold_until: None,
            held,
        })
    }

    /// The deployment in flight at `at` for the alarm's application, if one is recorded; named by
    /// CodeDeploy when the record has its deployment group but no deployment (an EC2/on-premises
    /// release).
    async fn deployment(&self, alarm: &AlarmTransition, at: DateTime<Utc>, asked: &mut Asked) -> Option<InFlight> {
        let application = self.rules.application(alarm)?;
        match deploy_context::read(&self.store, &application).await {
            Ok(Some(d))
                if d.covers(at, chrono::Duration::minutes(15))
                    && at - d.started_at < self.config.deploy_context_max_age =>
            {
                Some(self.name_deployment(d, asked).await)
            }
            Ok(_) => None,
            Err(e) => {
                warn!(error = %e, "deployment context unreadable");
                None
            }
        }
    }

    /// The context with its CodeDeploy deployment, if it needs one and CodeDeploy lists exactly one
    /// in flight for its group (asked once per invocation). A lookup that fails or runs out of its
    /// time leaves the context as it was.
    async fn name_deployment(&self, mut context: InFlight, asked: &mut Asked) -> InFlight {
        let Some(query) = deployments::query_for(&context) else {
            return context;
        };
        let listed = match asked.get(&query) {
            Some(listed) => listed.clone(),
            None => {
                let lookup = self.deployments.in_flight(&query);
                let listed = match bounded_optional("CodeDeploy", "ListDeployments", deployments::LOOKUP_CAP, lookup)
                    .await
                {
                    Ok(ids) => Some(ids),
                    Err(e) => {
                        warn!(error = %e, application = %query.application, deployment_group = %query.deployment_group, "deployment in flight unknown; the message names the release without it");
                        None
                    }
                };
                asked.insert(query.clone(), listed.clone());
                listed
            }
        };
        let listed = listed.unwrap_or_default();
        match deployments::the_deployment(&listed) {
            Some(id) => context.deployment_id = Some(id.to_string()),
            None if listed.len() > 1 => {
                warn!(deployments = ?listed, deployment_group = %query.deployment_group, "several deployments in flight for one group; none named")
            }
            None => {}
        }
        context
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
