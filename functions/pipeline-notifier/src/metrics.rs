//! Delivery metrics as CloudWatch Embedded Metric Format lines on stdout (no API call on the hot
//! path): executions by state, duration, and the DORA measures where the data allows.
//!
//! - Deployment frequency: `Deployments` (1 per SUCCEEDED execution), summed over a period.
//! - Lead time for changes: `LeadTimeSeconds`, commit created -> execution SUCCEEDED, from the
//!   source revision `GetPipelineExecution` names (V1 and V2 pipelines); the trigger's commit time
//!   when that lookup failed and the trigger carries one.
//! - Change failure rate: `ChangeFailures` / (`Deployments` + `ChangeFailures`), with metric math.
//! - Time to restore: `TimeToRestoreSeconds`, first failure -> next success of the pipeline.

use chrono::{DateTime, Utc};
use pipewarden_shared::events::codepipeline::ExecutionState;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::decide::Report;
use pipewarden_shared::events::parse_time;

pub const NAMESPACE: &str = "Pipewarden/Pipelines";

/// Writes one EMF document.
pub trait MetricSink: Send + Sync {
    fn emit(&self, document: &Value);
}

/// Lambda sends stdout to CloudWatch Logs, which extracts EMF metrics from it.
pub struct StdoutMetrics;

impl MetricSink for StdoutMetrics {
    fn emit(&self, document: &Value) {
        println!("{document}");
    }
}

/// What must be remembered across executions of a pipeline for time-to-restore, and for the
/// success that ends a failing streak to say so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineHealth {
    /// The first failure since the last success, if the pipeline is currently failing.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// The last success that ended a failing streak. The invocation that sends its notification
    /// updates the health even when the send fails, so the retry finds the streak already ended:
    /// this keeps what it ended. (Absent from objects written before it existed.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore: Option<Restore>,
    /// The failed executions not yet ended by a success, oldest first: the current streak's, and
    /// any that happened after a success delivered later (at most [`MAX_FAILED`]). Each execution
    /// once, whatever the retries and the order of delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedRun>,
    /// The current streak began before its failures were counted (an object written before they
    /// were, or more than [`MAX_FAILED`] of them): its count is not said.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncounted: bool,
    /// Each stage's recent durations in seconds over successful executions, oldest first (at
    /// most [`crate::timings::RECENT`] a stage): what "much longer than usual" is judged against.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub recent_stages: std::collections::BTreeMap<String, Vec<i64>>,
    /// The execution whose stages were added last: an execution's stages are added once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages_of: Option<String>,
    /// Each ended attempt of the last [`RUNS_KEPT_DAYS`] days (at most [`MAX_RUNS`]), oldest first:
    /// what the digest counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
    /// When the first of `runs` was recorded: a digest over a period before says it is partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_since: Option<DateTime<Utc>>,
}

/// Ended attempts kept at most (about 200 bytes each, as stored): a pipeline that runs more than this in
/// [`RUNS_KEPT_DAYS`] days has its digest counted over its latest runs only, and says so.
pub const MAX_RUNS: usize = 1000;
/// How far back runs are kept: a weekly digest compares two weeks.
pub const RUNS_KEPT_DAYS: i64 = 15;

/// One ended attempt of an execution, as the digest counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub execution: String,
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    pub attempt: u64,
    /// `SUCCEEDED`, `FAILED`, `STOPPED` or `SUPERSEDED`.
    pub state: String,
    pub ended: DateTime<Utc>,
    /// Start to end, where the start is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
    /// Lead time for changes of a success, where the commit's time is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<i64>,
    /// Time to restore, for the success that ended a failing streak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<i64>,
}

fn first_attempt() -> u64 {
    1
}

fn is_first_attempt(attempt: &u64) -> bool {
    *attempt == 1
}

impl PipelineHealth {
    /// The runs with `run` added (once per attempt: a retried delivery adds nothing), those older
    /// than [`RUNS_KEPT_DAYS`] before the newest dropped, at most [`MAX_RUNS`] kept.
    pub fn with_run(&self, run: Run) -> Vec<Run> {
        let mut runs = self.runs.clone();
        if runs.iter().any(|r| r.execution == run.execution && r.attempt == run.attempt) {
            return runs;
        }
        runs.push(run);
        runs.sort_by(|a, b| a.ended.cmp(&b.ended).then_with(|| a.execution.cmp(&b.execution)));
        if let Some(newest) = runs.last().map(|r| r.ended) {
            let horizon = newest - chrono::Duration::days(RUNS_KEPT_DAYS);
            runs.retain(|r| r.ended >= horizon);
        }
        let excess = runs.len().saturating_sub(MAX_RUNS);
        runs.drain(..excess);
        runs
    }
}

/// Failed executions remembered at most.
pub const MAX_FAILED: usize = 100;

/// One failed execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRun {
    pub execution: String,
    pub at: DateTime<Utc>,
}

/// What an outcome's notification says of the pipeline's streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streak {
    /// A success that ended a failing streak: its first failure and how many executions failed
    /// (0: not counted).
    Restored { since: DateTime<Utc>, failures: u32 },
    /// A failure that continues a streak: its first failure, and this one's number in it (2 or
    /// more; 0: not counted).
    StillFailing { since: DateTime<Utc>, failures: u32 },
}

/// A success that ended a failing streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// The success.
    pub at: DateTime<Utc>,
    /// The first failure of the streak it ended.
    pub failing_since: DateTime<Utc>,
    /// The failed executions of that streak (0: not counted, as in objects written before).
    #[serde(default)]
    pub failures: u32,
}

impl PipelineHealth {
    pub fn key(pipeline: &str) -> String {
        format!("pipeline-notifier/pipelines/{pipeline}.json")
    }

    /// The health after execution `execution`'s outcome at `at`, and the time to restore if it
    /// restored the pipeline.
    pub fn after(&self, state: &ExecutionState, at: DateTime<Utc>, execution: &str) -> (PipelineHealth, Option<i64>) {
        match state {
            ExecutionState::Failed => {
                let known = self.failed.iter().any(|f| f.execution == execution);
                // A failure older than the last success, delivered late: not in any streak.
                let before_success = self.last_success.is_some_and(|s| s > at);
                if known || before_success {
                    return (self.clone(), None);
                }
                let mut next = self.clone();
                next.uncounted |= self.legacy_streak();
                next.failed.push(FailedRun { execution: execution.to_string(), at });
                next.failed.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.execution.cmp(&b.execution)));
                if next.failed.len() > MAX_FAILED {
                    next.failed.remove(0);
                    next.uncounted = true;
                }
                next.failing_since = Some(self.failing_since.map_or(at, |since| since.min(at)));
                (next, None)
            }
            ExecutionState::Succeeded => {
                let ended = self.failing_since.filter(|since| *since <= at);
                // Failures after this success (delivered before it) are the next streak.
                let later: Vec<FailedRun> = self.failed.iter().filter(|f| f.at > at).cloned().collect();
                let mut next = self.clone();
                next.last_success = Some(self.last_success.map_or(at, |s| s.max(at)));
                if let Some(since) = ended {
                    next.last_restore = Some(Restore { at, failing_since: since, failures: self.count_until(at) });
                    next.failing_since = later.first().map(|f| f.at);
                    next.failed = later;
                    next.uncounted = false;
                }
                (next, ended.map(|since| (at - since).num_seconds()))
            }
            _ => (self.clone(), None),
        }
    }

    /// A streak recorded before failures were counted: a first failure, none counted.
    fn legacy_streak(&self) -> bool {
        self.failing_since.is_some() && self.failed.is_empty()
    }

    /// The failures of the current streak up to `at` (0 when they were not counted).
    fn count_until(&self, at: DateTime<Utc>) -> u32 {
        if self.uncounted || self.legacy_streak() {
            return 0;
        }
        self.failed.iter().filter(|f| f.at <= at).count() as u32
    }

    /// What execution `execution`'s outcome at `at` says of the streak: a success that ends one, or
    /// a failure that continues one. Read before the outcome updates the health or after (a
    /// retry), it gives the same answer.
    pub fn streak(&self, state: &ExecutionState, at: DateTime<Utc>, execution: &str) -> Option<Streak> {
        match state {
            ExecutionState::Succeeded => {
                self.restored_from(at).map(|(since, failures)| Streak::Restored { since, failures })
            }
            ExecutionState::Failed => {
                if self.last_success.is_some_and(|s| s > at) {
                    return None;
                }
                let since = self.failing_since.filter(|since| *since < at)?;
                let counted = self.failed.iter().any(|f| f.execution == execution);
                let failures = match self.count_until(at) {
                    0 if self.uncounted || self.legacy_streak() => 0,
                    n if counted => n,
                    n => n + 1,
                };
                (failures != 1).then_some(Streak::StillFailing { since, failures })
            }
            _ => None,
        }
    }

    /// Since when the pipeline had been failing and how many executions failed (0: not counted),
    /// if a success at `at` ends (or, as recorded, ended) a failing streak: what its notification
    /// says. Read before the success updates the health, or after (a retry), it gives the same
    /// answer.
    pub fn restored_from(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, u32)> {
        match &self.last_restore {
            Some(restore) if restore.at == at => Some((restore.failing_since, restore.failures)),
            _ => self.failing_since.filter(|since| *since <= at).map(|since| (since, self.count_until(at))),
        }
    }
}

/// DORA lead time for changes of a successful execution: from the creation of the newest source
/// revision it ran (the change it delivers; an older revision of another source was delivered by an
/// earlier execution) to its success. Never negative (clocks differ).
pub fn lead_time_seconds(report: &Report) -> Option<i64> {
    if report.outcome.state != ExecutionState::Succeeded {
        return None;
    }
    let committed = report
        .revisions
        .iter()
        .filter_map(|r| r.created)
        .max()
        .or_else(|| report.trigger.as_ref().and_then(|t| parse_time(t.commit_time.as_deref())))?;
    Some((report.at? - committed).num_seconds().max(0))
}

/// The EMF document for a pipeline's final outcome.
pub fn outcome_document(report: &Report, time_to_restore: Option<i64>, now: DateTime<Utc>) -> Value {
    let state = report.outcome.state.as_str();
    let mut metrics = vec![json!({"Name": "Executions", "Unit": "Count"})];
    let mut values = Map::new();
    values.insert("Executions".into(), json!(1));
    if let Some(duration) = report.duration_seconds() {
        metrics.push(json!({"Name": "DurationSeconds", "Unit": "Seconds"}));
        values.insert("DurationSeconds".into(), json!(duration));
    }
    match report.outcome.state {
        ExecutionState::Succeeded => {
            metrics.push(json!({"Name": "Deployments", "Unit": "Count"}));
            values.insert("Deployments".into(), json!(1));
            metrics.push(json!({"Name": "ChangeFailures", "Unit": "Count"}));
            values.insert("ChangeFailures".into(), json!(0));
            if let Some(lead_time) = lead_time_seconds(report) {
                metrics.push(json!({"Name": "LeadTimeSeconds", "Unit": "Seconds"}));
                values.insert("LeadTimeSeconds".into(), json!(lead_time));
            }
            if let Some(restore) = time_to_restore {
                metrics.push(json!({"Name": "TimeToRestoreSeconds", "Unit": "Seconds"}));
                values.insert("TimeToRestoreSeconds".into(), json!(restore));
            }
        }
        ExecutionState::Failed => {
            metrics.push(json!({"Name": "ChangeFailures", "Unit": "Count"}));
            values.insert("ChangeFailures".into(), json!(1));
        }
        _ => {}
    }
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": report.at.unwrap_or(now).timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Pipeline"], ["Pipeline", "State"]],
                "Metrics": metrics,
            }]
        }),
    );
    document.insert("Pipeline".into(), json!(report.pipeline));
    document.insert("State".into(), json!(state));
    document.insert("executionId".into(), json!(report.execution_id));
    document.extend(values);
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Outcome;
    use crate::lookups::SourceRevision;
    use pipewarden_shared::events::codepipeline::Level;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn report(state: ExecutionState, at: &str, created: &[&str]) -> Report {
        Report {
            pipeline: "flask-web-app-legacy".into(),
            execution_id: "3b9e7d21-1111-4c2d-8e3f-dd44ee55ff66".into(),
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            outcome: Outcome {
                key: format!("pipeline:{}:attempt-1", state.as_str()),
                level: Level::Pipeline,
                state,
                stage: None,
                action: None,
                approval: false,
                attempt: 1,
            },
            started_at: None,
            at: Some(t(at)),
            trigger: None,
            revisions: created
                .iter()
                .map(|c| SourceRevision { created: Some(t(c)), ..SourceRevision::default() })
                .collect(),
            failure: None,
            execution_link: None,
            streak: None,
            timings: Default::default(),
            approval: None,
        }
    }

    #[test]
    fn lead_time_runs_from_the_newest_revision_to_success_only() {
        let succeeded = report(
            ExecutionState::Succeeded,
            "2026-11-20T10:12:30Z",
            &["2026-11-01T08:00:00Z", "2026-11-20T09:58:12Z"],
        );
        assert_eq!(lead_time_seconds(&succeeded), Some(858));
        let doc = outcome_document(&succeeded, None, Utc::now());
        assert_eq!(doc["LeadTimeSeconds"], 858);
        assert!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .contains(&json!({"Name": "LeadTimeSeconds", "Unit": "Seconds"})));

        let failed = report(ExecutionState::Failed, "2026-11-20T10:12:30Z", &["2026-11-20T09:58:12Z"]);
        assert_eq!(lead_time_seconds(&failed), None);
        assert_eq!(outcome_document(&failed, None, Utc::now())["LeadTimeSeconds"], Value::Null);
        let unknown = report(ExecutionState::Succeeded, "2026-11-20T10:12:30Z", &[]);
        assert_eq!(lead_time_seconds(&unknown), None);
        let skewed = report(ExecutionState::Succeeded, "2026-11-20T10:12:30Z", &["2026-11-20T10:13:00Z"]);
        assert_eq!(lead_time_seconds(&skewed), Some(0));
    }

    #[test]
    fn restore_time_runs_from_first_failure_to_next_success() {
        let healthy = PipelineHealth::default();
        let (failing, _) = healthy.after(&ExecutionState::Failed, t("2026-11-20T10:00:00Z"), "e1");
        let (still, _) = failing.after(&ExecutionState::Failed, t("2026-11-20T10:30:00Z"), "e2");
        assert_eq!(still.failing_since, Some(t("2026-11-20T10:00:00Z")));
        let (restored, seconds) = still.after(&ExecutionState::Succeeded, t("2026-11-20T11:00:00Z"), "e3");
        assert_eq!(seconds, Some(3600));
        assert_eq!(restored.failing_since, None);
        let (_, again) = restored.after(&ExecutionState::Succeeded, t("2026-11-20T12:00:00Z"), "e4");
        assert_eq!(again, None);
    }

    #[test]
    fn the_success_that_ends_a_streak_says_since_when_before_and_after_it_is_recorded() {
        let (failing, _) = PipelineHealth::default().after(&ExecutionState::Failed, t("2026-11-26T10:02:11Z"), "e5");
        let (failing, _) = failing.after(&ExecutionState::Failed, t("2026-11-26T10:20:00Z"), "e6");
        let success = t("2026-11-26T10:36:11Z");
        assert_eq!(failing.restored_from(success), Some((t("2026-11-26T10:02:11Z"), 2)));

        let (restored, seconds) = failing.after(&ExecutionState::Succeeded, success, "e7");
        assert_eq!(seconds, Some(34 * 60));
        assert_eq!(restored.failing_since, None);
        assert_eq!(
            restored.restored_from(success),
            Some((t("2026-11-26T10:02:11Z"), 2)),
            "a retry of the notification, after the first invocation recorded the success"
        );
        assert_eq!(
            restored.after(&ExecutionState::Succeeded, success, "e8").1,
            None,
            "one restore, one time to restore"
        );
        assert_eq!(restored.restored_from(t("2026-11-26T11:00:00Z")), None, "the next success restores nothing");

        let (failing_again, _) = restored.after(&ExecutionState::Failed, t("2026-11-26T12:00:00Z"), "e9");
        assert_eq!(failing_again.restored_from(success), Some((t("2026-11-26T10:02:11Z"), 2)), "still remembered");
        assert_eq!(failing_again.restored_from(t("2026-11-26T13:00:00Z")), Some((t("2026-11-26T12:00:00Z"), 1)));
        assert_eq!(failing_again.restored_from(t("2026-11-26T11:00:00Z")), None, "a success before the failure");
    }

    #[test]
    fn health_written_before_restores_were_remembered_still_loads() {
        let old: PipelineHealth = serde_json::from_value(json!({
            "failing_since": "2026-11-26T10:02:11Z",
            "last_success": "2026-11-25T09:00:00Z"
        }))
        .unwrap();
        assert_eq!(old.last_restore, None);
        assert_eq!(old.restored_from(t("2026-11-26T10:36:11Z")), Some((t("2026-11-26T10:02:11Z"), 0)));
        let healthy = serde_json::to_value(PipelineHealth::default()).unwrap();
        assert_eq!(healthy, json!({"failing_since": null, "last_success": null}), "nothing new to write");
    }

    #[test]
    fn failed_executions_are_counted_once_each_and_a_failure_that_continues_a_streak_says_so() {
        let failed = ExecutionState::Failed;
        let first = t("2026-11-26T10:02:11Z");
        // The first failure is no streak yet; its retry neither.
        let healthy = PipelineHealth::default();
        assert_eq!(healthy.streak(&failed, first, "a"), None);
        let (one, _) = healthy.after(&failed, first, "a");
        assert_eq!(one.streak(&failed, first, "a"), None);
        assert_eq!(one.after(&failed, first, "a").0, one, "a retried outcome is counted once");
        // The second says it continues, read before its update and after (a retry).
        let second = t("2026-11-26T10:20:00Z");
        let still = Some(Streak::StillFailing { since: first, failures: 2 });
        assert_eq!(one.streak(&failed, second, "b"), still);
        let (two, _) = one.after(&failed, second, "b");
        assert_eq!(two.streak(&failed, second, "b"), still);
        let (three, _) = two.after(&failed, t("2026-11-26T10:30:00Z"), "c");
        // A retry of an older execution's outcome, after a newer one: its own number, not one more.
        assert_eq!(three.streak(&failed, second, "b"), still);
        assert_eq!(three.after(&failed, second, "b").0, three);
        // The success ends it, saying how many failed, before and after it is recorded.
        let success = t("2026-11-26T10:36:11Z");
        let restored = Some(Streak::Restored { since: first, failures: 3 });
        assert_eq!(three.streak(&ExecutionState::Succeeded, success, "d"), restored);
        let (healthy, _) = three.after(&ExecutionState::Succeeded, success, "d");
        assert!(healthy.failed.is_empty() && healthy.failing_since.is_none(), "{healthy:?}");
        assert_eq!(healthy.streak(&ExecutionState::Succeeded, success, "d"), restored);
        // A failure from before the success, delivered late, starts nothing and counts nowhere.
        let (late, _) = healthy.after(&failed, t("2026-11-26T10:25:00Z"), "late");
        assert_eq!(late, healthy);
        assert_eq!(late.streak(&failed, t("2026-11-26T10:25:00Z"), "late"), None);
    }

    #[test]
    fn a_failure_delivered_before_the_earlier_success_starts_the_next_streak() {
        let failed = ExecutionState::Failed;
        let (h, _) = PipelineHealth::default().after(&failed, t("2026-11-26T10:00:00Z"), "a");
        let (h, _) = h.after(&failed, t("2026-11-26T10:20:00Z"), "b");
        // C failed at 10:40 and its event came before the success at 10:30.
        let (h, _) = h.after(&failed, t("2026-11-26T10:40:00Z"), "c");
        let (h, restore) = h.after(&ExecutionState::Succeeded, t("2026-11-26T10:30:00Z"), "s");
        assert_eq!(restore, Some(30 * 60));
        assert_eq!(h.last_restore.as_ref().map(|r| r.failures), Some(2), "A and B, not C");
        assert_eq!(h.failing_since, Some(t("2026-11-26T10:40:00Z")), "C's streak is kept");
        assert_eq!(h.failed.len(), 1);
        let (h, _) = h.after(&failed, t("2026-11-26T10:50:00Z"), "d");
        assert_eq!(
            h.streak(&failed, t("2026-11-26T10:50:00Z"), "d"),
            Some(Streak::StillFailing { since: t("2026-11-26T10:40:00Z"), failures: 2 })
        );
    }

    #[test]
    fn a_streak_begun_before_failures_were_counted_says_since_when_but_no_count() {
        let old: PipelineHealth =
            serde_json::from_value(json!({"failing_since": "2026-11-26T10:02:11Z", "last_success": null})).unwrap();
        let at = t("2026-11-26T10:30:00Z");
        assert_eq!(
            old.streak(&ExecutionState::Failed, at, "x"),
            Some(Streak::StillFailing { since: t("2026-11-26T10:02:11Z"), failures: 0 })
        );
        let (next, _) = old.after(&ExecutionState::Failed, at, "x");
        assert!(next.uncounted);
        assert_eq!(next.streak(&ExecutionState::Failed, at, "x"), old.streak(&ExecutionState::Failed, at, "x"));
        let success = t("2026-11-26T11:00:00Z");
        assert_eq!(next.restored_from(success), Some((t("2026-11-26T10:02:11Z"), 0)));
        let (healthy, _) = next.after(&ExecutionState::Succeeded, success, "y");
        assert!(!healthy.uncounted, "the next streak is counted");
    }
}
