//! What alarm-fanout remembers per alarm (in S3, not in RAM): which transitions it decided to send
//! or suppress, what it sent where, whether an ALARM is open, when INSUFFICIENT_DATA was last sent.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use pipewarden_shared::events::cloudwatch::AlarmStateValue;
use pipewarden_shared::ledger::{self, claim, delivery_key, Deliveries, Delivery};
use serde::{Deserialize, Serialize};

use crate::alarm::AlarmTransition;
use crate::rules::Target;

/// How many decided transitions an alarm's memory keeps (older ones are forgotten with their deliveries).
const REMEMBERED: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmMemory {
    pub subject: String,
    /// The ALARM transition that was sent and not yet followed by a sent OK.
    #[serde(default)]
    pub open_alarm: Option<String>,
    #[serde(default)]
    pub last_insufficient_sent: Option<DateTime<Utc>>,
    /// When the newest transition this memory decided on happened (CloudWatch's state time), sent
    /// or suppressed: an older one is recorded, never sent after it, neither when it arrives late
    /// nor when a retry claims it again.
    #[serde(default)]
    pub latest_at: Option<DateTime<Utc>>,
    /// The last OK decided to be sent, and the ALARM it resolves: per topic, it goes only where
    /// that ALARM went.
    #[serde(default)]
    pub resolved: Option<(String, String)>,
    /// Decisions, oldest first: transition key and verdict.
    #[serde(default)]
    pub decided: Vec<(String, Verdict)>,
    #[serde(default)]
    pub deliveries: Deliveries,
    /// Deliveries (`transition|topic`) whose publish failed in a way that may have taken effect
    /// (no answer: the connection dropped, or the time ran out after the request went): the topic
    /// may have the message. An OK is sent where its ALARM may have gone, never withheld there.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub uncertain: BTreeSet<String>,
    /// The newest ALARM decided on, whole, while it is the alarm's state: for the timers (a
    /// reminder while it stays, the ALARM itself once what held it back ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

/// See [`AlarmMemory::kept`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kept {
    pub transition: AlarmTransition,
    /// Why it is held back (a silence, a quiet route) while it is; `None` once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// What held it back before it was sent, for its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_from: Option<String>,
}

/// The delivery key of reminder `n` of the ALARM `transition` to a topic: `subject~reminderN:ALARM:millis`,
/// so that it reads as an ALARM of that time (an OK waits for a reminder being sent, as for its
/// ALARM) and is never taken for the ALARM itself.
pub fn reminder_key(transition: &str, n: u32) -> Option<String> {
    let (head, millis) = transition.rsplit_once(':')?;
    let (subject, state) = head.rsplit_once(':')?;
    Some(format!("{subject}~reminder{n}:{state}:{millis}"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    Send,
    Suppress(String),
}

impl AlarmMemory {
    pub fn key(account: &str, region: &str, subject: &str) -> String {
        format!("alarm-fanout/alarms/{account}/{region}/{}.json", subject.replace('/', "_"))
    }

    /// The verdict on a transition: the one already made, or a new one (remembered).
    pub fn decide(&mut self, alarm: &AlarmTransition, flap_window: Duration, now: DateTime<Utc>) -> Verdict {
        let key = alarm.key();
        if let Some((_, verdict)) = self.decided.iter().find(|(k, _)| *k == key) {
            return verdict.clone();
        }
        let verdict = verdict(self, alarm, flap_window, now);
        let newest = match (alarm.state_time, self.latest_at) {
            (Some(at), Some(latest)) => at >= latest,
            _ => true,
        };
        if newest {
            self.keep(alarm, &verdict, now);
        }
        if let Some(at) = alarm.state_time {
            self.latest_at = Some(self.latest_at.map_or(at, |latest| latest.max(at)));
        }
        if verdict == Verdict::Send {
            match alarm.state {
                AlarmStateValue::Alarm => self.open_alarm = Some(key.clone()),
                AlarmStateValue::Ok => self.resolved = self.open_alarm.take().map(|open| (key.clone(), open)),
                AlarmStateValue::InsufficientData => {
                    self.last_insufficient_sent = Some(alarm.state_time.unwrap_or(now))
                }
                _ => {}
            }
        }
        self.decided.push((key, verdict.clone()));
        if self.decided.len() > REMEMBERED {
            let forgotten: Vec<String> =
                self.decided.drain(..self.decided.len() - REMEMBERED).map(|(k, _)| k).collect();
            self.deliveries.retain(|k, _| !forgotten.iter().any(|f| k.starts_with(&format!("{f}|"))));
            self.uncertain.retain(|k| !forgotten.iter().any(|f| k.starts_with(&format!("{f}|"))));
        }
        verdict
    }

    /// Keeps the newest ALARM (sent, or held back by a silence or a quiet route) for the timers;
    /// any other newest word ends what was kept, and its reminders (their deliveries go, but for
    /// one being sent right now: an OK waits for it).
    fn keep(&mut self, alarm: &AlarmTransition, verdict: &Verdict, now: DateTime<Utc>) {
        let held = match verdict {
            Verdict::Send => Some(None),
            Verdict::Suppress(reason) if alarm.silenced.as_ref() == Some(reason) => Some(Some(reason.clone())),
            Verdict::Suppress(_) => None,
        };
        self.kept = match (&alarm.state, held) {
            (AlarmStateValue::Alarm, Some(held)) => Some(Kept { transition: alarm.clone(), held, released_from: None }),
            _ => None,
        };
        let live = |d: &Delivery| matches!(d, Delivery::Claimed { at, .. } if now - *at <= Duration::minutes(5));
        self.deliveries.retain(|k, d| !k.contains("~reminder") || live(d));
    }

    /// Releases the held-back ALARM `transition` (a timer found nothing holds it any more): if it
    /// is still the alarm's newest word, it is to be sent from now (its verdict becomes Send, it
    /// is the open ALARM whose OK goes where it went). `true` when it is (or was already)
    /// released; then [`AlarmMemory::plan`] claims its targets.
    pub fn release(&mut self, transition: &str) -> bool {
        let Some(kept) = self.kept.as_mut().filter(|k| k.transition.key() == transition) else {
            return false;
        };
        if let Some(reason) = kept.held.take() {
            kept.released_from = Some(reason);
            for (key, verdict) in self.decided.iter_mut() {
                if key == transition {
                    *verdict = Verdict::Send;
                }
            }
            self.open_alarm = Some(transition.to_string());
        }
        kept.released_from.is_some()
    }

    /// The ALARM a reminder of `transition` would repeat: the kept one, sent, still the alarm's
    /// newest word and its open ALARM. `None`: resolved, superseded or never sent.
    pub fn remindable(&self, transition: &str) -> Option<&AlarmTransition> {
        let kept = self.kept.as_ref().filter(|k| k.transition.key() == transition && k.held.is_none())?;
        (self.open_alarm.as_deref() == Some(transition)).then_some(&kept.transition)
    }

    /// Claims reminder `n` of `transition` on `targets` for `token` (those not yet sent), if it is
    /// still remindable. `None` when nothing changed.
    pub fn claim_reminder(
        &mut self,
        transition: &str,
        n: u32,
        targets: &[Target],
        token: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Option<Vec<Target>> {
        self.remindable(transition)?;
        let key = reminder_key(transition, n)?;
        // Only where the ALARM went (or may have gone): a reminder elsewhere would tell a topic of
        // an ALARM it never got, and its OK would not follow it there.
        let reached = |memory: &AlarmMemory, topic: &str| {
            let alarm = delivery_key(transition, topic);
            matches!(memory.deliveries.get(&alarm), Some(Delivery::Sent { .. })) || memory.uncertain.contains(&alarm)
        };
        let targets: Vec<&Target> = targets.iter().filter(|t| reached(self, &t.topic_arn)).collect();
        let claimed: Vec<Target> = targets
            .into_iter()
            .filter(|t| claim(&mut self.deliveries, &delivery_key(&key, &t.topic_arn), token, now, ttl))
            .cloned()
            .collect();
        (!claimed.is_empty()).then_some(claimed)
    }

    /// alarm-fanout's decision, a plain function over plain data: given this transition, this
    /// memory, the targets the rules chose and the time, decide (or recall) the verdict and claim
    /// the targets not yet sent for `token`. `None` when nothing changed, so nothing is stored.
    /// The handler only loads the memory, calls this, delivers and settles.
    pub fn plan(
        &mut self,
        alarm: &AlarmTransition,
        targets: &[Target],
        token: &str,
        now: DateTime<Utc>,
        flap_window: Duration,
        ttl: Duration,
    ) -> Option<Claims> {
        let transition = alarm.key();
        let fresh = !self.decided.iter().any(|(k, _)| *k == transition);
        let verdict = self.decide(alarm, flap_window, now);
        let before = self.deliveries.clone();
        let uncertain_before = self.uncertain.clone();
        let mut claims = Claims::default();
        // An OK overtaken only by transitions that were not to be sent (a later OK that found its
        // ALARM already resolved by this one, say) is still the alarm's last word: it is not
        // superseded, or no topic would ever hear that the alarm is OK.
        let overtaken = matches!((alarm.state_time, self.latest_at), (Some(at), Some(latest)) if at < latest)
            && !(alarm.state == AlarmStateValue::Ok && self.newest_sent_transition() == Some(transition.as_str()));
        if verdict == Verdict::Send && overtaken {
            // A newer transition was decided since this one (a retry comes late): whatever it did
            // not send yet it never sends, so no topic ends on a stale state.
            for target in targets {
                self.supersede(&delivery_key(&transition, &target.topic_arn), token, now, ttl);
            }
        } else if verdict == Verdict::Send {
            for target in targets {
                // A newer transition reached this topic, or may have (an OK still the alarm's
                // state, say, retried after a newer OK went): this one would leave it stale.
                if self.newer_on(&target.topic_arn, &transition) {
                    self.supersede(&delivery_key(&transition, &target.topic_arn), token, now, ttl);
                    continue;
                }
                // An older transition another invocation is sending to this topic right now could
                // reach SNS after this one: this one goes after it (a retry), never beside it.
                if self.older_in_flight(&target.topic_arn, &transition, token, now, ttl) {
                    claims.waiting.push(target.clone());
                    continue;
                }
                match self.ok_on_topic(&transition, &target.topic_arn, now, ttl) {
                    OkOnTopic::Withhold => {
                        // A claim on it from when the topic still showed an ALARM (an older OK has
                        // reached it since) is never to be sent: not left held.
                        let key = delivery_key(&transition, &target.topic_arn);
                        let dead_or_ours = matches!(self.deliveries.get(&key),
                            Some(Delivery::Claimed { token: other, at }) if other == token || now - *at > ttl);
                        if dead_or_ours {
                            let by = "the topic shows no ALARM any more".to_string();
                            self.deliveries.insert(key, Delivery::Superseded { by, at: now });
                        }
                    }
                    OkOnTopic::Wait => claims.waiting.push(target.clone()),
                    OkOnTopic::Send => {
                        let key = delivery_key(&transition, &target.topic_arn);
                        // Taking over the claim of an invocation that died, or of this request's
                        // earlier try (Lambda's retry keeps the request id): it may have sent it.
                        let dead = matches!(self.deliveries.get(&key),
                            Some(Delivery::Claimed { token: other, at }) if other == token || now - *at > ttl);
                        if dead {
                            self.uncertain.insert(key.clone());
                        }
                        if claim(&mut self.deliveries, &key, token, now, ttl) {
                            claims.claimed.push(target.clone());
                        }
                    }
                }
            }
        }
        // A transition waiting on one topic claims none: it goes to all its topics at once, later
        // (the invocation looks again, or Lambda's retry does). Claiming the others now would leave
        // claims that a later look of this same invocation could not tell from an earlier try's.
        if !claims.waiting.is_empty() {
            for target in std::mem::take(&mut claims.claimed) {
                let key = delivery_key(&transition, &target.topic_arn);
                match before.get(&key) {
                    Some(delivery) => self.deliveries.insert(key.clone(), delivery.clone()),
                    None => self.deliveries.remove(&key),
                };
                if !uncertain_before.contains(&key) {
                    self.uncertain.remove(&key);
                }
                claims.waiting.push(target);
            }
        }
        // Stored when something changed: a new decision, a claim, or an ALARM superseded. A claim
        // already ours (found after a write whose answer was lost) is still to send. Targets to
        // wait on are returned even when nothing changed (a retry that must wait again), or the
        // invocation would end well and its transition never be sent; waiting alone is not stored.
        claims.changed = fresh || !claims.claimed.is_empty() || self.deliveries != before;
        (claims.changed || !claims.waiting.is_empty()).then_some(claims)
    }

    /// What the sent OK `ok` may do on `topic`, given what became of the ALARM it resolves there.
    /// An ALARM the topic never got (its publish failed and awaits a retry) is superseded: neither
    /// it nor the OK is sent there, so the last message matches the alarm's state. An ALARM the
    /// topic may have (its publish got no answer, or its invocation died holding the claim) gets
    /// the OK. An ALARM being sent right now by another live invocation makes the OK wait for it.
    pub fn ok_on_topic(&mut self, ok: &str, topic: &str, now: DateTime<Utc>, ttl: Duration) -> OkOnTopic {
        let Some((_, alarm)) = self.resolved.as_ref().filter(|(k, _)| k == ok) else {
            return OkOnTopic::Send;
        };
        if !self.decided.iter().any(|(k, _)| k == alarm) {
            // Forgotten long ago: it was dealt with then.
            return OkOnTopic::Send;
        }
        let key = delivery_key(alarm, topic);
        let older = self.older_alarm_on(topic, ok, now, ttl);
        match self.deliveries.get(&key) {
            Some(Delivery::Sent { .. }) => OkOnTopic::Send,
            Some(Delivery::Claimed { at, .. }) if now - *at <= ttl => OkOnTopic::Wait,
            // Its invocation died holding the claim, perhaps after SNS took the ALARM: the topic may
            // have it. The ALARM is not sent again (the OK is newer), the OK goes.
            Some(Delivery::Claimed { .. }) => {
                self.uncertain.insert(key.clone());
                self.deliveries.insert(key, Delivery::Superseded { by: ok.to_string(), at: now });
                OkOnTopic::Send
            }
            // The topic may have the ALARM (its publish went, its answer did not come back), or it
            // still shows an older ALARM whose own OK never reached it: the OK goes.
            _ if self.uncertain.contains(&key) => OkOnTopic::Send,
            _ if older.is_some() => older.unwrap_or(OkOnTopic::Send),
            Some(Delivery::Superseded { .. }) => OkOnTopic::Withhold,
            None => {
                self.deliveries.insert(key, Delivery::Superseded { by: ok.to_string(), at: now });
                OkOnTopic::Withhold
            }
        }
    }

    /// What an older ALARM still on `topic` asks of the OK `ok`: going back from `ok`, through the
    /// transitions the topic perhaps got (claimed, or published without an answer) to the newest
    /// it surely got (sent), the first ALARM met may be what the topic shows, so the OK goes
    /// (`Send`), after it when another invocation is sending it right now (`Wait`). An OK perhaps
    /// sent (claimed, or published without an answer, and never sent since) does not close an older
    /// ALARM: it may never have arrived. `None` when the topic surely shows no older ALARM.
    fn older_alarm_on(&self, topic: &str, ok: &str, now: DateTime<Utc>, ttl: Duration) -> Option<OkOnTopic> {
        let (before, _) = transition_time_and_state(ok)?;
        let suffix = format!("|{topic}");
        let mut reached: Vec<(&str, i64, &str)> = self
            .deliveries
            .iter()
            .filter(|(key, d)| {
                matches!(d, Delivery::Sent { .. } | Delivery::Claimed { .. }) || self.uncertain.contains(*key)
            })
            .map(|(key, _)| key.as_str())
            .chain(self.uncertain.iter().map(String::as_str))
            .filter_map(|key| {
                let (millis, state) = transition_time_and_state(key.strip_suffix(&suffix)?)?;
                Some((key, millis, state))
            })
            .filter(|(_, millis, _)| *millis < before)
            .collect();
        reached.sort_by_key(|(_, millis, _)| std::cmp::Reverse(*millis));
        for (key, _, state) in reached {
            let delivery = self.deliveries.get(key);
            if state == "ALARM" {
                let live = matches!(delivery, Some(Delivery::Claimed { at, .. }) if now - *at <= ttl);
                return Some(if live { OkOnTopic::Wait } else { OkOnTopic::Send });
            }
            // Sent (SNS gave its message id, whatever was uncertain before): the topic has it.
            if matches!(delivery, Some(Delivery::Sent { .. })) {
                return None;
            }
        }
        None
    }
}

impl AlarmMemory {
    /// Records the delivery `key` superseded by a newer transition, unless it was sent or another
    /// live invocation holds it. A claim left by an invocation that died (or by this one's earlier
    /// try) may have reached SNS: the topic may have it, and its OK must go there.
    fn supersede(&mut self, key: &str, token: &str, now: DateTime<Utc>, ttl: Duration) {
        match self.deliveries.get(key) {
            Some(Delivery::Sent { .. } | Delivery::Superseded { .. }) => {}
            Some(Delivery::Claimed { token: other, at }) if other != token && now - *at <= ttl => {}
            held => {
                if matches!(held, Some(Delivery::Claimed { .. })) {
                    self.uncertain.insert(key.to_string());
                }
                self.deliveries
                    .insert(key.to_string(), Delivery::Superseded { by: "a newer transition".into(), at: now });
            }
        }
    }

    /// Whether `topic` got a transition newer than `transition`, or may have (claimed, or published
    /// without an answer).
    fn newer_on(&self, topic: &str, transition: &str) -> bool {
        let Some((after, _)) = transition_time_and_state(transition) else {
            return false;
        };
        let suffix = format!("|{topic}");
        let reached = self
            .deliveries
            .iter()
            .filter(|(_, d)| matches!(d, Delivery::Sent { .. } | Delivery::Claimed { .. }))
            .map(|(key, _)| key)
            .chain(self.uncertain.iter());
        reached
            .filter_map(|key| transition_time_and_state(key.strip_suffix(&suffix)?))
            .any(|(millis, _)| millis > after)
    }

    /// Whether another live invocation holds a claim on `topic` for a transition older than
    /// `transition` (by CloudWatch's time): it is being published now and may reach SNS later.
    fn older_in_flight(&self, topic: &str, transition: &str, token: &str, now: DateTime<Utc>, ttl: Duration) -> bool {
        let Some((before, _)) = transition_time_and_state(transition) else {
            return false;
        };
        let suffix = format!("|{topic}");
        self.deliveries.iter().any(|(key, delivery)| {
            matches!(delivery, Delivery::Claimed { token: other, at } if other != token && now - *at <= ttl)
                && key
                    .strip_suffix(&suffix)
                    .and_then(transition_time_and_state)
                    .is_some_and(|(millis, _)| millis < before)
        })
    }

    /// The newest transition decided to be sent, by CloudWatch's time (the keys are
    /// `name:STATE:millis`).
    fn newest_sent_transition(&self) -> Option<&str> {
        self.decided
            .iter()
            .filter(|(_, verdict)| *verdict == Verdict::Send)
            .filter_map(|(key, _)| Some((key.as_str(), transition_time_and_state(key)?.0)))
            .max_by_key(|(_, millis)| *millis)
            .map(|(key, _)| key)
    }

    /// Records what became of this invocation's sends: each sent (`Some(message id)`) or released
    /// (`None`); `uncertain` lists those whose failure may have taken effect.
    pub fn settle(
        &mut self,
        outcomes: &[(String, Option<String>)],
        uncertain: &[String],
        token: &str,
        now: DateTime<Utc>,
    ) {
        for (key, sent) in outcomes {
            ledger::settle(&mut self.deliveries, key, token, sent.as_deref(), now);
        }
        self.uncertain.extend(uncertain.iter().cloned());
    }
}

/// CloudWatch's time (epoch milliseconds) and the state of a transition key (`name:STATE:millis`).
fn transition_time_and_state(key: &str) -> Option<(i64, &str)> {
    let mut parts = key.rsplitn(3, ':');
    let millis = parts.next()?.parse().ok()?;
    Some((millis, parts.next()?))
}

/// What [`AlarmMemory::plan`] claimed for an invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// Targets this invocation sends to.
    pub claimed: Vec<Target>,
    /// Targets not to send to yet: an older transition (an OK's ALARM, say) is being sent there by
    /// another invocation.
    pub waiting: Vec<Target>,
    /// Whether the memory changed (a decision, a claim, a delivery superseded): only then is it
    /// written. Waiting alone writes nothing.
    pub changed: bool,
}

/// See [`AlarmMemory::ok_on_topic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OkOnTopic {
    Send,
    /// The topic never got the ALARM: nothing to resolve there.
    Withhold,
    /// The ALARM is being sent to the topic now: the OK goes after it (a retry).
    Wait,
}

fn verdict(memory: &AlarmMemory, alarm: &AlarmTransition, flap_window: Duration, now: DateTime<Utc>) -> Verdict {
    if let Some(by) = &alarm.suppressed {
        return Verdict::Suppress(format!("actions suppressed by CloudWatch ({by})"));
    }
    if let (Some(at), Some(latest)) = (alarm.state_time, memory.latest_at) {
        if at < latest {
            return Verdict::Suppress(format!(
                "older than the transition of {} already received (delivered late)",
                latest.to_rfc3339()
            ));
        }
    }
    // A silence never holds an OK: an ALARM that was sent gets its OK.
    if let Some(reason) = alarm.silenced.as_ref().filter(|_| alarm.state != AlarmStateValue::Ok) {
        return Verdict::Suppress(reason.clone());
    }
    match alarm.state {
        AlarmStateValue::Ok if memory.open_alarm.is_none() => {
            Verdict::Suppress("OK for an alarm whose ALARM was not sent".to_string())
        }
        AlarmStateValue::InsufficientData => {
            let at = alarm.state_time.unwrap_or(now);
            match memory.last_insufficient_sent {
                Some(last) if at >= last && at - last < flap_window => Verdict::Suppress(format!(
                    "INSUFFICIENT_DATA again within {} s (flapping)",
                    flap_window.num_seconds()
                )),
                _ => Verdict::Send,
            }
        }
        _ => Verdict::Send,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::Watched;
    use std::collections::BTreeMap;

    fn t(state: AlarmStateValue, minute: i64) -> AlarmTransition {
        AlarmTransition {
            source_id: format!("e{minute}"),
            alarm_name: "a".into(),
            alarm_arn: None,
            account: "1".into(),
            region: "r".into(),
            state,
            previous: None,
            reason: None,
            state_time: DateTime::from_timestamp(1_800_000_000 + minute * 60, 0),
            description: None,
            watched: Watched::Unknown,
            threshold: None,
            comparison: None,
            suppressed: None,
            silenced: None,
            note: None,
            contributor: None,
            tags: BTreeMap::new(),
            tags_known: false,
        }
    }

    proptest::proptest! {
        /// Silences over random sequences of transitions: an ALARM in a silence is never sent; the
        /// OK after a sent ALARM is always sent (a silence does not lose "resolved"); an OK is sent
        /// only after a sent ALARM (nothing resolves what was never told).
        #[test]
        fn silences_never_lose_a_resolved_and_never_send_what_they_hold(
            states in proptest::collection::vec(proptest::bool::ANY, 1..40),
            windows in proptest::collection::vec((0i64..80, 1i64..20), 0..4),
        ) {
            let silenced = |minute: i64| windows.iter().any(|(start, length)| (*start..start + length).contains(&minute));
            let mut memory = AlarmMemory::default();
            let mut told_alarm = false;
            // Alternating states as CloudWatch sends them (ALARM, OK, ALARM...), two minutes apart.
            let mut state = AlarmStateValue::Ok;
            for (i, flip) in states.iter().enumerate() {
                if !flip { continue; }
                state = if state == AlarmStateValue::Ok { AlarmStateValue::Alarm } else { AlarmStateValue::Ok };
                let minute = i as i64 * 2;
                let mut transition = t(state.clone(), minute);
                if silenced(minute) && state != AlarmStateValue::Ok {
                    transition.silenced = Some("silenced by test".into());
                }
                let now = transition.state_time.unwrap();
                let verdict = memory.decide(&transition, Duration::seconds(900), now);
                match state {
                    AlarmStateValue::Alarm => {
                        proptest::prop_assert_eq!(verdict == Verdict::Send, !silenced(minute));
                        told_alarm = verdict == Verdict::Send;
                    }
                    _ => {
                        proptest::prop_assert_eq!(verdict == Verdict::Send, told_alarm, "minute {}", minute);
                        told_alarm = false;
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Timers over random sequences (with one topic, every publish succeeding): transitions,
        /// some ALARMs held back; the release timer of a held ALARM fired once its hold ended, early,
        /// late or twice; reminders fired in any order, twice, or after the alarm resolved. Nothing
        /// is sent twice; a held ALARM is sent by its release only while it is the alarm's newest
        /// word; a reminder goes only while its ALARM, sent, is the newest word; an OK is sent
        /// exactly when the ALARM before it was sent (directly or released).
        #[test]
        fn timers_never_send_twice_and_never_lose_a_resolved(
            steps in proptest::collection::vec((0u8..4, proptest::bool::ANY, 0usize..6, 1u32..4), 1..60),
        ) {
            let topic = Target { topic_arn: "arn:aws:sns:r:1:t".into(), chat: false, severity: crate::rules::Severity::Critical, rule: "default".into() };
            let targets = vec![topic.clone()];
            let (w, ttl) = (Duration::seconds(900), Duration::seconds(120));
            let mut memory = AlarmMemory::default();
            let mut sent: Vec<String> = Vec::new();
            let mut alarms: Vec<AlarmTransition> = Vec::new();
            let mut state = AlarmStateValue::Ok;
            let mut minute = 0i64;
            let mut told_alarm = false;
            let send = |memory: &mut AlarmMemory, claimed: &[Target], key: &str, token: &str, now, sent: &mut Vec<String>| {
                let outcomes: Vec<(String, Option<String>)> =
                    claimed.iter().map(|t| (delivery_key(key, &t.topic_arn), Some(format!("m{}", sent.len())))).collect();
                sent.extend(outcomes.iter().map(|(k, _)| k.clone()));
                memory.settle(&outcomes, &[], token, now);
                !outcomes.is_empty()
            };
            for (i, (action, held, pick, n)) in steps.into_iter().enumerate() {
                let token = format!("t{i}");
                minute += 1;
                let now = DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap();
                let newest = memory.decided.iter().filter_map(|(k, _)| transition_time_and_state(k).map(|(m, _)| (m, k.clone()))).max().map(|(_, k)| k);
                match action {
                    // A transition, alternating as CloudWatch sends them.
                    0 | 1 => {
                        state = if state == AlarmStateValue::Ok { AlarmStateValue::Alarm } else { AlarmStateValue::Ok };
                        let mut transition = t(state.clone(), minute);
                        if held && state == AlarmStateValue::Alarm {
                            transition.silenced = Some("silenced by test".into());
                        }
                        let claims = memory.plan(&transition, &targets, &token, now, w, ttl).unwrap_or_default();
                        let went = send(&mut memory, &claims.claimed, &transition.key(), &token, now, &mut sent);
                        if state == AlarmStateValue::Alarm {
                            proptest::prop_assert_eq!(went, !held);
                            told_alarm = went;
                            alarms.push(transition);
                        } else {
                            proptest::prop_assert_eq!(went, told_alarm, "an OK goes exactly when its ALARM went");
                            told_alarm = false;
                        }
                    }
                    // The release timer of an ALARM (its hold ended).
                    2 => {
                        let Some(alarm) = alarms.get(pick % alarms.len().max(1)).cloned() else { continue };
                        let key = alarm.key();
                        let was_held = memory.kept.as_ref().is_some_and(|k| k.transition.key() == key && k.held.is_some());
                        let released = memory.release(&key);
                        proptest::prop_assert!(!released || newest.as_deref() == Some(key.as_str()), "released only while the newest word");
                        let claims = memory.plan(&alarm, &targets, &token, now, w, ttl).unwrap_or_default();
                        let went = send(&mut memory, &claims.claimed, &key, &token, now, &mut sent);
                        proptest::prop_assert_eq!(went, was_held && released, "a release sends what it held, once");
                        if went {
                            told_alarm = true;
                        }
                    }
                    // Reminder n of an ALARM.
                    _ => {
                        let Some(alarm) = alarms.get(pick % alarms.len().max(1)).cloned() else { continue };
                        let key = alarm.key();
                        let remindable = memory.remindable(&key).is_some();
                        proptest::prop_assert!(!remindable || (newest.as_deref() == Some(key.as_str()) && told_alarm));
                        let claimed = memory.claim_reminder(&key, n, &targets, &token, now, ttl).unwrap_or_default();
                        let reminder = reminder_key(&key, n).unwrap();
                        send(&mut memory, &claimed, &reminder, &token, now, &mut sent);
                        proptest::prop_assert!(claimed.is_empty() || remindable);
                    }
                }
            }
            let mut unique = sent.clone();
            unique.sort();
            unique.dedup();
            proptest::prop_assert_eq!(unique.len(), sent.len(), "nothing sent twice: {:?}", sent);
        }
    }

    #[test]
    fn a_reminder_goes_only_where_its_alarm_went() {
        let (w, ttl, now) = (Duration::minutes(15), Duration::seconds(120), Utc::now());
        let target = |topic: &str| Target {
            topic_arn: topic.into(),
            chat: false,
            severity: crate::rules::Severity::Critical,
            rule: "r".into(),
        };
        let targets = vec![target("sent"), target("failed"), target("added-since")];
        let mut m = AlarmMemory::default();
        let alarm = t(AlarmStateValue::Alarm, 1);
        let claims = m.plan(&alarm, &targets[..2], "t1", now, w, ttl).unwrap();
        assert_eq!(claims.claimed.len(), 2);
        let outcomes = vec![
            (delivery_key(&alarm.key(), "sent"), Some("m1".to_string())),
            (delivery_key(&alarm.key(), "failed"), None),
        ];
        m.settle(&outcomes, &[], "t1", now);
        let claimed = m.claim_reminder(&alarm.key(), 1, &targets, "t2", now, ttl).unwrap();
        assert_eq!(claimed, vec![target("sent")], "not where the ALARM never went");
        assert_eq!(m.claim_reminder(&alarm.key(), 1, &targets, "t3", now, ttl), None, "claimed once");
    }

    #[test]
    fn ok_is_sent_only_after_a_sent_alarm() {
        let mut m = AlarmMemory::default();
        let w = Duration::minutes(15);
        let now = Utc::now();
        assert!(matches!(m.decide(&t(AlarmStateValue::Ok, 0), w, now), Verdict::Suppress(_)));
        assert_eq!(m.decide(&t(AlarmStateValue::Alarm, 1), w, now), Verdict::Send);
        assert_eq!(m.decide(&t(AlarmStateValue::Ok, 2), w, now), Verdict::Send);
        assert!(matches!(m.decide(&t(AlarmStateValue::Ok, 3), w, now), Verdict::Suppress(_)));
        assert_eq!(m.decide(&t(AlarmStateValue::Ok, 2), w, now), Verdict::Send, "a redelivery keeps its verdict");
    }

    #[test]
    fn insufficient_data_flapping_is_suppressed_within_the_window() {
        let mut m = AlarmMemory::default();
        let w = Duration::minutes(15);
        let now = Utc::now();
        assert_eq!(m.decide(&t(AlarmStateValue::InsufficientData, 0), w, now), Verdict::Send);
        assert!(
            matches!(m.decide(&t(AlarmStateValue::InsufficientData, 5), w, now), Verdict::Suppress(r) if r.contains("flapping"))
        );
        assert_eq!(m.decide(&t(AlarmStateValue::InsufficientData, 20), w, now), Verdict::Send);
    }

    #[test]
    fn a_transition_older_than_the_latest_received_is_recorded_not_sent() {
        let mut m = AlarmMemory::default();
        let w = Duration::minutes(15);
        let now = Utc::now();
        assert_eq!(m.decide(&t(AlarmStateValue::Alarm, 5), w, now), Verdict::Send);
        assert_eq!(m.decide(&t(AlarmStateValue::Ok, 6), w, now), Verdict::Send);
        let late = m.decide(&t(AlarmStateValue::Alarm, 1), w, now);
        assert!(matches!(&late, Verdict::Suppress(r) if r.contains("older than")), "{late:?}");
        assert_eq!(m.open_alarm, None, "the late ALARM opens nothing");
    }

    #[test]
    fn an_ok_goes_only_where_its_alarm_went() {
        let mut m = AlarmMemory::default();
        let (w, ttl, now) = (Duration::minutes(15), Duration::seconds(120), Utc::now());
        let alarm = t(AlarmStateValue::Alarm, 1);
        m.decide(&alarm, w, now);
        m.deliveries.insert(delivery_key(&alarm.key(), "sent"), Delivery::Sent { message_id: "m".into(), at: now });
        m.deliveries
            .insert(delivery_key(&alarm.key(), "sending"), Delivery::Claimed { token: "other".into(), at: now });
        let ok = t(AlarmStateValue::Ok, 2);
        assert_eq!(m.decide(&ok, w, now), Verdict::Send);
        assert_eq!(m.ok_on_topic(&ok.key(), "sent", now, ttl), OkOnTopic::Send);
        assert_eq!(m.ok_on_topic(&ok.key(), "sending", now, ttl), OkOnTopic::Wait);
        assert_eq!(m.ok_on_topic(&ok.key(), "failed", now, ttl), OkOnTopic::Withhold);
        let retried_alarm = delivery_key(&alarm.key(), "failed");
        assert!(
            !pipewarden_shared::ledger::claim(&mut m.deliveries, &retried_alarm, "retry", now, ttl),
            "the ALARM's retry finds it superseded"
        );
        // The invocation sending it died holding the claim, perhaps after SNS took the ALARM: the OK
        // goes there, and the ALARM is not sent again.
        let later = now + ttl + Duration::seconds(1);
        assert_eq!(m.ok_on_topic(&ok.key(), "sending", later, ttl), OkOnTopic::Send);
        let sending = delivery_key(&alarm.key(), "sending");
        assert!(matches!(m.deliveries.get(&sending), Some(Delivery::Superseded { .. })), "{:?}", m.deliveries);
        assert_eq!(m.ok_on_topic(&ok.key(), "sending", later, ttl), OkOnTopic::Send, "and stays so");
    }

    /// Issue 15: an ALARM SNS took whose answer was lost may be on the topic: its OK goes there.
    #[test]
    fn an_ok_goes_where_its_alarm_may_have_gone() {
        let mut m = AlarmMemory::default();
        let (w, ttl, now) = (Duration::minutes(15), Duration::seconds(120), Utc::now());
        let alarm = t(AlarmStateValue::Alarm, 1);
        m.decide(&alarm, w, now);
        let key = delivery_key(&alarm.key(), "lost");
        m.deliveries.insert(key.clone(), Delivery::Claimed { token: "r1".into(), at: now });
        m.settle(&[(key.clone(), None)], std::slice::from_ref(&key), "r1", now);
        let ok = t(AlarmStateValue::Ok, 2);
        assert_eq!(m.decide(&ok, w, now), Verdict::Send);
        assert_eq!(m.ok_on_topic(&ok.key(), "lost", now, ttl), OkOnTopic::Send);
    }

    #[test]
    fn an_ok_that_arrived_first_keeps_its_late_alarm_from_being_sent() {
        let mut m = AlarmMemory::default();
        let (w, now) = (Duration::minutes(15), Utc::now());
        assert!(matches!(m.decide(&t(AlarmStateValue::Ok, 2), w, now), Verdict::Suppress(_)));
        let late = m.decide(&t(AlarmStateValue::Alarm, 1), w, now);
        assert!(matches!(&late, Verdict::Suppress(r) if r.contains("older than")), "{late:?}");
    }

    #[test]
    fn a_retry_overtaken_by_a_newer_transition_claims_nothing() {
        let mut m = AlarmMemory::default();
        let (w, ttl, now) = (Duration::minutes(15), Duration::seconds(120), Utc::now());
        let target = |topic: &str| Target {
            topic_arn: topic.to_string(),
            chat: false,
            severity: crate::rules::Severity::Critical,
            rule: "r".to_string(),
        };
        let targets = [target("a")];
        let ok = t(AlarmStateValue::Ok, 1);
        m.decide(&t(AlarmStateValue::Alarm, 0), w, now);
        assert!(m.plan(&ok, &targets, "first", now, w, ttl).is_some());
        // OK's publish failed and its claim was released; a newer ALARM is decided meanwhile.
        m.deliveries.remove(&delivery_key(&ok.key(), "a"));
        m.plan(&t(AlarmStateValue::Alarm, 2), &targets, "newer", now, w, ttl);
        let retry = m.plan(&ok, &targets, "first", now, w, ttl).unwrap_or_default();
        assert!(retry.claimed.is_empty(), "{retry:?}");
        assert!(matches!(m.deliveries.get(&delivery_key(&ok.key(), "a")), Some(Delivery::Superseded { .. })));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut m = AlarmMemory::default();
        for minute in 0..100 {
            m.decide(&t(AlarmStateValue::Alarm, minute), Duration::minutes(15), Utc::now());
        }
        assert_eq!(m.decided.len(), REMEMBERED);
    }
}
