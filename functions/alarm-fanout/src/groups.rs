//! Grouping: a route with `groupBy` sends the transitions of one group (the same values of those
//! labels) as one message: the first waits `groupWait` for the others, later changes wait at
//! least `groupInterval` after the group's last message. A group is an object in the audit bucket
//! (`alarm-fanout/groups/<rule>/<hash>.json`) changed with conditional writes, and its flush is an
//! EventBridge Scheduler timer (see [`crate::timers`]).
//!
//! Exactly once, as every delivery here: a transition handed to a group is recorded there once
//! (its key), a flush takes what is pending as flush `n`, claims each topic for it, sends, and
//! settles; a flush that died is taken over by the next look (its claims expire), and what came
//! meanwhile waits for the flush after.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use pipewarden_shared::ledger::{self, claim, Deliveries, Delivery};
use serde::{Deserialize, Serialize};

use crate::alarm::AlarmTransition;
use crate::rules::Target;

/// How many transition keys a group remembers after sending them (a retry handing one again is
/// recognised).
const REMEMBERED: usize = 500;
/// A flush this long overdue had its timer lost: the next transition handed sets another.
const LOST_AFTER: Duration = Duration::minutes(10);
/// A group message lists at most this many alarms; the rest are counted.
pub const LISTED: usize = 50;

/// A route's grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub by: Vec<String>,
    pub wait: Duration,
    pub interval: Duration,
}

/// One alarm's part of a group message: its newest transition handed to the group, and how many
/// it had since the group's last message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub transition: AlarmTransition,
    pub key: String,
    /// The topics it goes to (as its routes chose).
    pub targets: Vec<Target>,
    /// Transitions of this alarm folded into this entry (1: this one only).
    pub changes: u32,
    /// The state it was in before the first of them.
    pub was: Option<String>,
}

/// A flush under way: what it sends, and to which topics it was sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flush {
    pub n: u64,
    pub entries: Vec<Entry>,
    pub deliveries: Deliveries,
}

/// A group as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub rule: String,
    /// The values of the `groupBy` labels that make this group.
    pub labels: BTreeMap<String, String>,
    pub pending: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flushing: Option<Flush>,
    #[serde(default)]
    pub flushes: u64,
    #[serde(default)]
    pub last_flush: Option<DateTime<Utc>>,
    /// When the next flush is due (a timer is set for it).
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
    /// Keys of transitions handed to this group, newest last.
    #[serde(default)]
    pub seen: Vec<String>,
}

/// Target Ord derives; targets are kept in Serialize form here.
impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.topic_arn, self.chat, self.severity.as_str(), &self.rule).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (topic_arn, chat, severity, rule): (String, bool, crate::rules::Severity, String) =
            Deserialize::deserialize(d)?;
        Ok(Target { topic_arn, chat, severity, rule })
    }
}

/// The object a group is kept in: by rule and a hash of its label values (stable across
/// processes: FNV-1a).
pub fn key(rule: &str, labels: &BTreeMap<String, String>) -> String {
    // The rule as written is hashed too: `a b` and `a_b` read the same in the key's path.
    let text: String =
        std::iter::once(format!("{rule}\u{1e}")).chain(labels.iter().map(|(k, v)| format!("{k}={v}\u{1f}"))).collect();
    let hash = crate::timers::fnv1a(&text);
    let rule: String = rule.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("alarm-fanout/groups/{rule}/{hash:016x}.json")
}

impl Group {
    /// Hands a transition to the group (once: a transition already handed is not added again).
    /// The newest transition of an alarm replaces its entry, counting the changes. Returns when a
    /// flush is due if a timer is to be set for it: one newly due, or, for a transition handed
    /// again (a retry, whose first try may have failed to set it), the one due now.
    pub fn add(&mut self, entry: Entry, now: DateTime<Utc>, grouping: &Grouping) -> Option<DateTime<Utc>> {
        if self.seen.contains(&entry.key) {
            return self.due;
        }
        self.seen.push(entry.key.clone());
        if self.seen.len() > REMEMBERED {
            self.seen.drain(..self.seen.len() - REMEMBERED);
        }
        // One entry per alarm: its account, region and name (and contributor).
        let same = |a: &AlarmTransition, b: &AlarmTransition| {
            a.account == b.account && a.region == b.region && a.subject() == b.subject()
        };
        match self.pending.iter_mut().find(|e| same(&e.transition, &entry.transition)) {
            // The newer of the two by CloudWatch's time stays (a late one only counts).
            Some(e) => {
                let newer = match (entry.transition.state_time, e.transition.state_time) {
                    (Some(a), Some(b)) => a >= b,
                    _ => true,
                };
                e.changes += 1;
                if newer {
                    e.transition = entry.transition;
                    e.key = entry.key;
                    for t in entry.targets {
                        if !e.targets.contains(&t) {
                            e.targets.push(t);
                        }
                    }
                }
            }
            None => self.pending.push(entry),
        }
        // A timer is set for the flush, unless it is long overdue: lost (its invocation went to the
        // dead-letter queue, say); then it is set again.
        if self.due.is_some_and(|due| now < due + LOST_AFTER) {
            return None;
        }
        let due = match self.last_flush {
            Some(last) => (now + grouping.wait).max(last + grouping.interval),
            None => now + grouping.wait,
        };
        self.due = Some(due);
        Some(due)
    }

    /// Starts (or takes over) a flush for `token` at `now`: what is pending becomes flush `n`
    /// unless one is under way; claims its topics not yet sent. The flush and the targets this
    /// invocation sends to; `None` when there is nothing to send (or it is not due yet).
    pub fn start_flush(&mut self, token: &str, now: DateTime<Utc>, ttl: Duration) -> Option<(Flush, Vec<Target>)> {
        if self.flushing.is_none() {
            // A timer early (a duplicate of an earlier one, say) waits for its own. Scheduler fires
            // within the minute after its time, never before it.
            if self.pending.is_empty() || self.due.is_some_and(|due| now + Duration::seconds(5) < due) {
                return None;
            }
            self.flushes += 1;
            self.flushing = Some(Flush {
                n: self.flushes,
                entries: std::mem::take(&mut self.pending),
                deliveries: Deliveries::new(),
            });
            self.due = None;
        }
        let flush = self.flushing.as_mut()?;
        let mut targets: Vec<Target> = Vec::new();
        for e in &flush.entries {
            for t in &e.targets {
                if !targets.contains(t) {
                    targets.push(t.clone());
                }
            }
        }
        let claimed: Vec<Target> =
            targets.into_iter().filter(|t| claim(&mut flush.deliveries, &t.topic_arn, token, now, ttl)).collect();
        Some((flush.clone(), claimed))
    }

    /// Records what the flush's sends became (`Some(id)` sent, or given up: SNS refused it for what
    /// it is, which no retry changes; `None` to try again); once every topic has it, the flush is over and, if
    /// more is pending, the next is due `interval` later (returned: a timer is to be set).
    pub fn settle_flush(
        &mut self,
        n: u64,
        outcomes: &[(String, Option<String>)],
        token: &str,
        now: DateTime<Utc>,
        grouping: &Grouping,
    ) -> Option<DateTime<Utc>> {
        let flush = self.flushing.as_mut().filter(|f| f.n == n)?;
        for (topic, sent) in outcomes {
            ledger::settle(&mut flush.deliveries, topic, token, sent.as_deref(), now);
        }
        let topics: Vec<&str> =
            flush.entries.iter().flat_map(|e| e.targets.iter().map(|t| t.topic_arn.as_str())).collect();
        let done = topics.iter().all(|t| matches!(flush.deliveries.get(*t), Some(Delivery::Sent { .. })));
        if !done {
            return None;
        }
        self.flushing = None;
        self.last_flush = Some(now);
        if self.pending.is_empty() {
            return None;
        }
        // What came during the flush waits its interval after it (a timer set for earlier, while
        // the flush was under way, finds it not yet due).
        let due = now + grouping.interval;
        if self.due.is_some_and(|d| d >= due) {
            return None;
        }
        self.due = Some(due);
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::Watched;
    use crate::rules::Severity;
    use pipewarden_shared::events::cloudwatch::AlarmStateValue;

    fn t(name: &str, state: AlarmStateValue, second: i64) -> AlarmTransition {
        AlarmTransition {
            source_id: format!("{name}{second}"),
            alarm_name: name.into(),
            alarm_arn: None,
            account: "1".into(),
            region: "r".into(),
            state,
            previous: None,
            reason: None,
            state_time: DateTime::from_timestamp(1_800_000_000 + second, 0),
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

    fn topic(arn: &str) -> Target {
        Target { topic_arn: arn.into(), chat: false, severity: Severity::Critical, rule: "r".into() }
    }

    fn entry(a: AlarmTransition, topics: &[&str]) -> Entry {
        Entry { key: a.key(), transition: a, targets: topics.iter().map(|t| topic(t)).collect(), changes: 1, was: None }
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    const G: fn() -> Grouping =
        || Grouping { by: vec!["application".into()], wait: Duration::seconds(30), interval: Duration::minutes(5) };

    proptest::proptest! {
        /// Over random sequences of transitions handed to a group (again, late), flush timers
        /// (early, late, twice, lost and found again by a later add) and flushes that die before
        /// settling: every transition handed reaches every topic of its entry in exactly one
        /// flush (an alarm's later transitions folded into its entry), no flush is sent twice to
        /// a topic, and flushes are at least `groupInterval` apart.
        #[test]
        fn every_transition_handed_is_sent_once_and_flushes_keep_their_interval(
            steps in proptest::collection::vec((0u8..5, 0usize..6, proptest::bool::ANY), 1..80),
        ) {
            let g = G();
            let ttl = Duration::seconds(120);
            let mut group = Group::default();
            let mut handed: Vec<(String, String)> = Vec::new(); // (subject, key)
            let mut sent: Vec<(u64, String, Vec<String>)> = Vec::new(); // (flush, topic, keys)
            // Per flush: when its first and its last topic were sent.
            let mut flush_times: BTreeMap<u64, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
            let mut second = 0i64;
            // The timers the handler would have set (each fires at its whole minute or later).
            let mut timers: Vec<DateTime<Utc>> = Vec::new();
            // What the handler does after a flush look: the next flush, or a takeover once claims expire.
            let after_look = |group: &Group, next: Option<DateTime<Utc>>, now: DateTime<Utc>, timers: &mut Vec<DateTime<Utc>>| {
                if let Some(n) = next {
                    timers.push(n);
                } else if group.flushing.is_some() {
                    timers.push(now + ttl + Duration::minutes(1));
                } else if let Some(due) = group.due.filter(|_| !group.pending.is_empty()) {
                    timers.push(due);
                }
            };
            for (i, (action, pick, flag)) in steps.into_iter().enumerate() {
                second += 7;
                let now = at(second);
                let token = format!("t{i}");
                match action {
                    0 | 1 => {
                        let name = format!("a{}", pick % 4);
                        let state = if flag { AlarmStateValue::Alarm } else { AlarmStateValue::Ok };
                        let e = entry(t(&name, state, second), if pick % 2 == 0 { &["x"] } else { &["x", "y"] });
                        timers.extend(group.add(e.clone(), now, &g));
                        if !handed.iter().any(|(_, k)| *k == e.key) {
                            handed.push((name, e.key.clone()));
                        }
                        // Handed twice (a retry): its timer set again, nothing more.
                        timers.extend(group.add(e, now, &g));
                    }
                    _ => {
                        // A flush timer, whenever it comes (a duplicate, early); `flag`: it dies before settling.
                        let Some((flush, claimed)) = group.start_flush(&token, now, ttl) else {
                            after_look(&group, None, now, &mut timers);
                            continue;
                        };
                        if flag {
                            continue;
                        }
                        let outcomes: Vec<(String, Option<String>)> = claimed.iter().map(|t| (t.topic_arn.clone(), Some("m".into()))).collect();
                        for t in &claimed {
                            let keys = flush.entries.iter().filter(|e| e.targets.contains(t)).map(|e| e.key.clone()).collect();
                            sent.push((flush.n, t.topic_arn.clone(), keys));
                        }
                        if !claimed.is_empty() {
                            flush_times.entry(flush.n).and_modify(|(_, last)| *last = now).or_insert((now, now));
                        }
                        let next = group.settle_flush(flush.n, &outcomes, &token, now, &g);
                        after_look(&group, next, now, &mut timers);
                    }
                }
            }
            // The quiet phase: only the timers set go off, each at its time, until none is left.
            // (A flush that died in the random phase has no timer of its own there: its Lambda
            // retry would take it over; here the takeover after it, as the handler sets, does.)
            if group.flushing.is_some() {
                timers.push(at(second) + ttl + Duration::minutes(1));
            }
            let mut round = 0;
            loop {
                // A timer set twice (one name per due time) is one schedule; the earliest goes off.
                timers.sort();
                timers.dedup();
                if timers.is_empty() {
                    break;
                }
                round += 1;
                proptest::prop_assert!(round < 1000, "timers without end: {:?}", group);
                let when = crate::timers::whole_minute_after(timers.remove(0)).max(at(second));
                second = when.timestamp() - 1_800_000_000;
                let token = format!("q{round}");
                match group.start_flush(&token, when, ttl) {
                    Some((flush, claimed)) => {
                        let outcomes: Vec<(String, Option<String>)> = claimed.iter().map(|t| (t.topic_arn.clone(), Some("m".into()))).collect();
                        for t in &claimed {
                            let keys = flush.entries.iter().filter(|e| e.targets.contains(t)).map(|e| e.key.clone()).collect();
                            sent.push((flush.n, t.topic_arn.clone(), keys));
                        }
                        if !claimed.is_empty() {
                            flush_times.entry(flush.n).and_modify(|(_, last)| *last = when).or_insert((when, when));
                        }
                        let next = group.settle_flush(flush.n, &outcomes, &token, when, &g);
                        after_look(&group, next, when, &mut timers);
                    }
                    None => after_look(&group, None, when, &mut timers),
                }
                // Timers of the past that found nothing to do are spent.
                timers.retain(|t| *t > when || !group.pending.is_empty() || group.flushing.is_some());
            }
            proptest::prop_assert!(group.pending.is_empty() && group.flushing.is_none(), "{:?}", group);
            let mut pairs: Vec<(u64, &str)> = sent.iter().map(|(n, t, _)| (*n, t.as_str())).collect();
            let before = pairs.len();
            pairs.sort();
            pairs.dedup();
            proptest::prop_assert_eq!(pairs.len(), before, "a flush sent twice to a topic");
            // Each alarm's last transition handed reaches topic x (earlier ones may be folded into
            // a later one of the same flush, never lost from the alarm's last word).
            let subjects: std::collections::BTreeSet<&String> = handed.iter().map(|(s, _)| s).collect();
            for subject in subjects {
                let last = &handed.iter().rev().find(|(s, _)| s == subject).unwrap().1;
                let in_x = sent.iter().filter(|(_, t, _)| t == "x").any(|(_, _, keys)| keys.contains(last));
                proptest::prop_assert!(in_x, "{} never sent", last);
            }
            // A flush starts at least groupInterval after the one before ended.
            let times: Vec<(DateTime<Utc>, DateTime<Utc>)> = flush_times.values().copied().collect();
            for w in times.windows(2) {
                proptest::prop_assert!(w[1].0 - w[0].1 >= g.interval - Duration::seconds(5), "{:?}", flush_times);
            }
        }
    }

    #[test]
    fn the_first_waits_group_wait_later_ones_group_interval() {
        let g = G();
        let mut group = Group::default();
        assert_eq!(group.add(entry(t("a", AlarmStateValue::Alarm, 0), &["x"]), at(0), &g), Some(at(30)));
        assert_eq!(group.add(entry(t("b", AlarmStateValue::Alarm, 5), &["x"]), at(5), &g), None, "timer set");
        assert!(group.start_flush("t", at(10), Duration::seconds(120)).is_none(), "not due");
        let (flush, claimed) = group.start_flush("t", at(30), Duration::seconds(120)).unwrap();
        assert_eq!((flush.entries.len(), claimed.len()), (2, 1));
        assert_eq!(group.settle_flush(1, &[("x".into(), Some("m".into()))], "t", at(31), &g), None);
        assert_eq!(
            group.add(entry(t("a", AlarmStateValue::Ok, 40), &["x"]), at(40), &g),
            Some(at(31) + Duration::minutes(5))
        );
        assert!(group.start_flush("t2", at(40), Duration::seconds(120)).is_none(), "waits its interval");
        // Its timer is lost: a transition handed long after sets another.
        let late = at(31) + Duration::minutes(16);
        assert_eq!(
            group.add(entry(t("c", AlarmStateValue::Alarm, 1000), &["x"]), late, &g),
            Some(late + Duration::seconds(30))
        );
    }
}
