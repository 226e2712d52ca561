//! Where an execution's time went: each stage's and action's duration from the timeline's
//! STARTED and final events, and which stages took much longer than usual for the pipeline (its
//! recent durations, kept in the pipeline's health object: a bounded read, never a listing of
//! timelines).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pipewarden_shared::events::codepipeline::Level;
use pipewarden_shared::events::parse_time;

use crate::timeline::Timeline;

/// Recent durations kept per stage.
pub const RECENT: usize = 20;
/// A stage is compared with its median once the pipeline has this many recent durations of it.
pub const MIN_HISTORY: usize = 5;

/// How long one stage (or action) took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub name: String,
    pub seconds: i64,
    /// For a stage: its usual duration (the median of recent executions), when this one took much
    /// longer (more than 1.5 times it, and a minute more).
    pub slow_against: Option<i64>,
}

/// An execution's stages in the order they started, and its slowest actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timings {
    pub stages: Vec<Span>,
    /// The stages that succeeded: what a successful execution adds to the pipeline's history.
    pub succeeded: Vec<String>,
    /// At most three, longest first, named `stage/action`.
    pub slowest_actions: Vec<Span>,
}

fn final_state(state: &str) -> bool {
    matches!(state, "SUCCEEDED" | "FAILED" | "STOPPED" | "CANCELED" | "ABANDONED" | "SUPERSEDED")
}

/// A finished span: its name, start, seconds and final state.
struct Run {
    name: String,
    start: DateTime<Utc>,
    seconds: i64,
    state: String,
}

/// The latest run of each name at `level` (a stage re-run by "Retry" counts from its last start),
/// in the order they started. One without its final event yet (the pipeline's own final event can
/// arrive first) runs until `ended_at`, the pipeline's end.
fn runs(
    timeline: &Timeline,
    level: Level,
    ended_at: Option<DateTime<Utc>>,
    name: impl Fn(&crate::timeline::Entry) -> Option<String>,
) -> Vec<Run> {
    let mut entries: Vec<(String, DateTime<Utc>, &str)> = timeline
        .entries
        .iter()
        .filter(|e| e.level == level)
        .filter_map(|e| Some((name(e)?, parse_time(e.time.as_deref())?, e.state.as_str())))
        .collect();
    entries.sort_by_key(|e| e.1);
    // Per name: the latest start, and the first end after it with its state.
    type Latest = (DateTime<Utc>, Option<(DateTime<Utc>, String)>);
    let mut latest: BTreeMap<String, Latest> = BTreeMap::new();
    for (key, at, state) in entries {
        if state == "STARTED" {
            latest.insert(key, (at, None));
        } else if final_state(state) {
            if let Some((_, end @ None)) = latest.get_mut(&key) {
                *end = Some((at, state.to_string()));
            }
        }
    }
    let mut out: Vec<Run> = latest
        .into_iter()
        .filter_map(|(name, (start, end))| {
            let (end, state) = match end {
                Some(end) => end,
                None => (ended_at.filter(|e| *e >= start)?, "UNFINISHED".to_string()),
            };
            Some(Run { name, start, seconds: (end - start).num_seconds(), state })
        })
        .collect();
    out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.name.cmp(&b.name)));
    out
}

/// The median of recent durations.
fn median(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    (n > 0).then(|| if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2 })
}

/// The execution's timings, each stage judged against the pipeline's `recent` durations of it;
/// `ended_at` is when the pipeline ended.
pub fn of(timeline: &Timeline, recent: &BTreeMap<String, Vec<i64>>, ended_at: Option<DateTime<Utc>>) -> Timings {
    let stage_runs = runs(timeline, Level::Stage, ended_at, |e| e.stage.clone());
    let succeeded = stage_runs.iter().filter(|r| r.state == "SUCCEEDED").map(|r| r.name.clone()).collect();
    let stages = stage_runs
        .into_iter()
        .map(|Run { name, seconds, .. }| {
            let usual = recent.get(&name).filter(|r| r.len() >= MIN_HISTORY).and_then(|r| median(r));
            let slow_against = usual.filter(|m| seconds * 2 > m * 3 && seconds - m > 60);
            Span { name, seconds, slow_against }
        })
        .collect();
    let mut actions: Vec<Span> =
        runs(timeline, Level::Action, ended_at, |e| Some(format!("{}/{}", e.stage.as_deref()?, e.action.as_deref()?)))
            .into_iter()
            .map(|Run { name, seconds, .. }| Span { name, seconds, slow_against: None })
            .collect();
    actions.sort_by(|a, b| b.seconds.cmp(&a.seconds).then_with(|| a.name.cmp(&b.name)));
    actions.truncate(3);
    Timings { stages, succeeded, slowest_actions: actions }
}

/// Stage names kept in the history at most: a renamed or removed stage leaves when there are more.
pub const MAX_STAGES: usize = 50;

/// The pipeline's recent durations with a successful execution's succeeded stages added (the
/// newest [`RECENT`] of each stage; at most [`MAX_STAGES`] stages, this execution's kept).
pub fn remember(recent: &BTreeMap<String, Vec<i64>>, timings: &Timings) -> BTreeMap<String, Vec<i64>> {
    let mut next = recent.clone();
    for stage in timings.stages.iter().filter(|s| timings.succeeded.contains(&s.name)) {
        let kept = next.entry(stage.name.clone()).or_default();
        kept.push(stage.seconds);
        let extra = kept.len().saturating_sub(RECENT);
        kept.drain(..extra);
    }
    if next.len() > MAX_STAGES {
        let stale: Vec<String> =
            next.keys().filter(|k| !timings.succeeded.contains(k)).take(next.len() - MAX_STAGES).cloned().collect();
        for key in stale {
            next.remove(&key);
        }
    }
    next
}

/// `4m 05s`, `1h 02m`, `12s`.
pub fn words(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m {s:02}s"),
        (h, m) => format!("{h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(level: Level, stage: &str, action: Option<&str>, state: &str, time: &str) -> serde_json::Value {
        serde_json::json!({
            "event_id": format!("{stage}-{}-{state}", action.unwrap_or("")),
            "level": level,
            "state": state,
            "time": time,
            "attempt": 1,
            "stage": stage,
            "action": action,
        })
    }

    fn timeline() -> Timeline {
        let entries = vec![
            entry(Level::Stage, "Source", None, "STARTED", "2026-11-27T10:00:00Z"),
            entry(Level::Stage, "Source", None, "SUCCEEDED", "2026-11-27T10:00:12Z"),
            entry(Level::Stage, "Build", None, "STARTED", "2026-11-27T10:00:13Z"),
            entry(Level::Action, "Build", Some("CodeBuild"), "STARTED", "2026-11-27T10:00:14Z"),
            entry(Level::Action, "Build", Some("CodeBuild"), "SUCCEEDED", "2026-11-27T10:06:14Z"),
            entry(Level::Stage, "Build", None, "SUCCEEDED", "2026-11-27T10:06:20Z"),
            entry(Level::Stage, "Deploy", None, "STARTED", "2026-11-27T10:06:21Z"),
            entry(Level::Action, "Deploy", Some("CodeDeploy"), "STARTED", "2026-11-27T10:06:22Z"),
            entry(Level::Action, "Deploy", Some("CodeDeploy"), "FAILED", "2026-11-27T10:08:22Z"),
            entry(Level::Stage, "Deploy", None, "FAILED", "2026-11-27T10:08:30Z"),
        ];
        serde_json::from_value(serde_json::json!({
            "pipeline": "p", "execution_id": "e", "account": "1", "region": "us-east-1", "entries": entries
        }))
        .expect("a timeline")
    }

    #[test]
    fn stages_in_the_order_they_ran_and_the_slowest_actions_first() {
        let timings = of(&timeline(), &BTreeMap::new(), None);
        let stages: Vec<(&str, i64)> = timings.stages.iter().map(|s| (s.name.as_str(), s.seconds)).collect();
        assert_eq!(stages, vec![("Source", 12), ("Build", 367), ("Deploy", 129)]);
        let actions: Vec<(&str, i64)> = timings.slowest_actions.iter().map(|s| (s.name.as_str(), s.seconds)).collect();
        assert_eq!(actions, vec![("Build/CodeBuild", 360), ("Deploy/CodeDeploy", 120)]);
        assert!(timings.stages.iter().all(|s| s.slow_against.is_none()), "no history, no judgement");
    }

    #[test]
    fn a_stage_much_slower_than_its_median_is_flagged_once_there_is_history() {
        let build_history =
            |n: usize| BTreeMap::from([("Build".to_string(), vec![120; n]), ("Source".to_string(), vec![10; n])]);
        let timings = of(&timeline(), &build_history(MIN_HISTORY), None);
        assert_eq!(timings.stages[1].slow_against, Some(120), "6m 07s against a usual 2m");
        assert_eq!(timings.stages[0].slow_against, None, "12s against 10s: not much longer");
        assert_eq!(of(&timeline(), &build_history(MIN_HISTORY - 1), None).stages[1].slow_against, None);
        // Remembered: this execution's stages join the history, the newest RECENT kept.
        let long = BTreeMap::from([("Build".to_string(), (0..RECENT as i64).collect::<Vec<_>>())]);
        let next = remember(&long, &timings);
        assert_eq!(next["Build"].len(), RECENT);
        assert_eq!((next["Build"][0], *next["Build"].last().unwrap()), (1, 367));
        assert!(!next.contains_key("Deploy"), "a failed stage's time is not what usual means: {next:?}");
    }

    #[test]
    fn a_retried_stage_counts_from_its_last_start_and_an_unfinished_one_until_the_pipeline_ended() {
        let mut timeline = timeline();
        // Deploy failed at 10:08:30, was retried at 10:20:00 and succeeded at 10:22:00.
        let extra: Vec<crate::timeline::Entry> = [
            entry(Level::Stage, "Deploy", None, "STARTED", "2026-11-27T10:20:00Z"),
            entry(Level::Stage, "Deploy", None, "SUCCEEDED", "2026-11-27T10:22:00Z"),
            entry(Level::Stage, "Verify", None, "STARTED", "2026-11-27T10:22:01Z"),
        ]
        .into_iter()
        .map(|e| serde_json::from_value(e).unwrap())
        .collect();
        timeline.entries.extend(extra);
        let timings = of(&timeline, &BTreeMap::new(), Some(at("2026-11-27T10:23:01Z")));
        let stages: Vec<(&str, i64)> = timings.stages.iter().map(|s| (s.name.as_str(), s.seconds)).collect();
        // Verify's own final event has not arrived: it ran until the pipeline ended.
        assert_eq!(stages, vec![("Source", 12), ("Build", 367), ("Deploy", 120), ("Verify", 60)]);
        assert_eq!(timings.succeeded, vec!["Source", "Build", "Deploy"]);
        assert_eq!(of(&timeline, &BTreeMap::new(), None).stages.len(), 3, "no end known: left out");
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(words(12), "12s");
        assert_eq!(words(245), "4m 05s");
        assert_eq!(words(3720), "1h 02m");
    }
}
