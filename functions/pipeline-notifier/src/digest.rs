//! The DORA digest: on a schedule, each pipeline's delivery over the last day or week beside the
//! period before, from the runs kept in the pipeline's health object. Pure functions over plain data.
//!
//! Definitions (each over the runs that ended in the period):
//! - executions: distinct executions (an execution retried counts once);
//! - success rate: executions whose last attempt succeeded, over those that succeeded or failed
//!   (stopped and superseded ones are neither);
//! - duration: median and 90th percentile of successful attempts, start to end;
//! - deployment frequency: successful attempts, and per day;
//! - lead time: median of successful attempts' lead times (commit to success);
//! - change failure rate: failed attempts over failed and successful ones (what the dashboard
//!   graphs);
//! - time to restore: median of the restores (first failure to the success that ended the streak).
//!
//! Percentiles interpolate linearly between ranks (numpy's default, Excel's PERCENTILE.INC): the
//! median of an even count is the mean of the two middle values.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::metrics::Run;

/// How often the digest goes out, and the length of the period it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
}

impl Period {
    pub fn parse(text: &str) -> Result<Period, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "daily" => Ok(Period::Daily),
            "weekly" => Ok(Period::Weekly),
            other => Err(format!("{other:?} is not daily or weekly")),
        }
    }

    pub fn days(self) -> i64 {
        match self {
            Period::Daily => 1,
            Period::Weekly => 7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
        }
    }

    /// "day" or "week".
    pub fn noun(self) -> &'static str {
        match self {
            Period::Daily => "day",
            Period::Weekly => "week",
        }
    }
}

/// One digest message per pipeline, or one for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    EachPipeline,
    AllPipelines,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "each" | "per-pipeline" => Ok(Scope::EachPipeline),
            "all" => Ok(Scope::AllPipelines),
            other => Err(format!("{other:?} is not each or all")),
        }
    }
}

/// A period's figures. `None`: nothing to measure it on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub executions: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// 0 to 1.
    pub success_rate: Option<f64>,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    /// Successful attempts.
    pub deployments: usize,
    pub deployments_per_day: f64,
    pub median_lead_seconds: Option<f64>,
    /// 0 to 1.
    pub change_failure_rate: Option<f64>,
    pub median_restore_seconds: Option<f64>,
    pub restores: usize,
}

/// The figures of the runs that ended in `[from, to)`, a period of `days` days.
pub fn figures<'a>(
    runs: impl IntoIterator<Item = &'a Run>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    days: i64,
) -> Figures {
    let runs: Vec<&Run> = runs.into_iter().filter(|r| r.ended >= from && r.ended < to).collect();
    // Each execution's last attempt (the latest to end), for executions and the success rate.
    let mut last: std::collections::BTreeMap<&str, &Run> = std::collections::BTreeMap::new();
    for run in &runs {
        let entry = last.entry(run.execution.as_str()).or_insert(run);
        if (run.ended, run.attempt) > (entry.ended, entry.attempt) {
            *entry = run;
        }
    }
    let succeeded = last.values().filter(|r| r.state == "SUCCEEDED").count();
    let failed = last.values().filter(|r| r.state == "FAILED").count();
    let successes: Vec<&&Run> = runs.iter().filter(|r| r.state == "SUCCEEDED").collect();
    let failures = runs.iter().filter(|r| r.state == "FAILED").count();
    let durations: Vec<i64> = successes.iter().filter_map(|r| r.seconds).collect();
    let leads: Vec<i64> = successes.iter().filter_map(|r| r.lead).collect();
    let restores: Vec<i64> = successes.iter().filter_map(|r| r.restore).collect();
    Figures {
        executions: last.len(),
        succeeded,
        failed,
        success_rate: ratio(succeeded, succeeded + failed),
        median_seconds: percentile(&durations, 50.0),
        p90_seconds: percentile(&durations, 90.0),
        deployments: successes.len(),
        deployments_per_day: successes.len() as f64 / days.max(1) as f64,
        median_lead_seconds: percentile(&leads, 50.0),
        change_failure_rate: ratio(failures, failures + successes.len()),
        median_restore_seconds: percentile(&restores, 50.0),
        restores: restores.len(),
    }
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The `p`th percentile (0 to 100), interpolating linearly between ranks.
pub fn percentile(values: &[i64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let (a, b) = (sorted[low] as f64, sorted[high] as f64);
    Some(a + (b - a) * (rank - low as f64))
}

/// One digest: a pipeline's (or all pipelines') figures for the period ending at `to`, beside the
/// period before.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// `None`: all pipelines together.
    pub pipeline: Option<String>,
    pub period: Period,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub current: Figures,
    pub previous: Figures,
    /// For all pipelines: each pipeline's executions and success rate this period, by name.
    pub pipelines: Vec<(String, Figures)>,
    /// The runs kept begin after the previous period's start (recording began within it, or a
    /// pipeline ran more than [`crate::metrics::MAX_RUNS`] times since): since when, if so.
    pub partial: Option<DateTime<Utc>>,
}

/// The digest of the runs for the period of `period` ending at `to`.
pub fn digest(
    pipeline: Option<String>,
    runs: &[Run],
    period: Period,
    to: DateTime<Utc>,
    complete_since: Option<DateTime<Utc>>,
) -> Digest {
    let days = period.days();
    let from = to - Duration::days(days);
    let before = from - Duration::days(days);
    Digest {
        pipeline,
        period,
        from,
        to,
        current: figures(runs, from, to, days),
        previous: figures(runs, before, from, days),
        pipelines: Vec::new(),
        partial: complete_since.filter(|since| *since > before),
    }
}

/// One pipeline's runs, as the digest reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRuns {
    pub name: String,
    pub runs: Vec<Run>,
    /// See [`complete_since`].
    pub complete_since: Option<DateTime<Utc>>,
}

/// The digest of several pipelines together.
pub fn digest_all(pipelines: &[PipelineRuns], period: Period, to: DateTime<Utc>) -> Digest {
    // Executions are unique per pipeline only.
    let all: Vec<Run> = pipelines
        .iter()
        .flat_map(|p| p.runs.iter().map(move |r| Run { execution: format!("{}/{}", p.name, r.execution), ..r.clone() }))
        .collect();
    let mut digest = digest(None, &all, period, to, None);
    let before = to - Duration::days(2 * period.days());
    digest.partial = pipelines.iter().filter_map(|p| p.complete_since).filter(|s| *s > before).max();
    digest.pipelines = pipelines
        .iter()
        .map(|p| (p.name.clone(), figures(&p.runs, digest.from, digest.to, period.days())))
        .filter(|(_, f)| f.executions > 0)
        .collect();
    digest
}

/// Since when a pipeline's runs are complete: the later of when the notifier began recording them
/// (`runs_since`) and, once the cap dropped older ones, the oldest run kept.
pub fn complete_since(runs_since: Option<DateTime<Utc>>, runs: &[Run]) -> Option<DateTime<Utc>> {
    let capped = (runs.len() >= crate::metrics::MAX_RUNS).then(|| runs.first().map(|r| r.ended)).flatten();
    runs_since.max(capped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn run(
        execution: &str,
        attempt: u64,
        state: &str,
        ended: &str,
        seconds: Option<i64>,
        lead: Option<i64>,
        restore: Option<i64>,
    ) -> Run {
        Run { execution: execution.into(), attempt, state: state.into(), ended: at(ended), seconds, lead, restore }
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 90.0), Some(7.0));
        assert_eq!(percentile(&[4, 1, 3, 2], 50.0), Some(2.5));
        // numpy.percentile([10, 20, 30, 40, 50], 90) == 46.0
        assert_eq!(percentile(&[50, 10, 40, 20, 30], 90.0), Some(46.0));
    }

    /// The README's worked example, computed by hand there.
    #[test]
    fn a_week_by_hand() {
        let runs = vec![
            // The week before: two successes, one failure.
            run("p1", 1, "SUCCEEDED", "2026-11-16T10:00:00Z", Some(300), Some(3600), None),
            run("p2", 1, "FAILED", "2026-11-17T10:00:00Z", Some(100), None, None),
            run("p3", 1, "SUCCEEDED", "2026-11-18T10:00:00Z", Some(500), Some(7200), Some(86400)),
            // This week.
            run("e1", 1, "SUCCEEDED", "2026-11-23T09:00:00Z", Some(400), Some(1800), None),
            run("e2", 1, "FAILED", "2026-11-24T09:00:00Z", Some(120), None, None),
            run("e2", 2, "SUCCEEDED", "2026-11-24T10:00:00Z", Some(600), Some(5400), Some(3600)),
            run("e3", 1, "STOPPED", "2026-11-25T09:00:00Z", None, None, None),
            run("e4", 1, "SUCCEEDED", "2026-11-26T09:00:00Z", Some(200), None, None),
            run("e5", 1, "FAILED", "2026-11-27T07:00:00Z", Some(90), None, None),
            // After the period's end: not counted.
            run("e6", 1, "SUCCEEDED", "2026-11-27T08:00:00Z", Some(999), Some(1), None),
        ];
        let d = digest(Some("web".into()), &runs, Period::Weekly, at("2026-11-27T08:00:00Z"), None);
        assert_eq!(d.from, at("2026-11-20T08:00:00Z"));
        let c = &d.current;
        assert_eq!(c.executions, 5, "e1..e5, e2 once");
        assert_eq!((c.succeeded, c.failed), (3, 1), "e2's last attempt succeeded; e3 stopped");
        assert_eq!(c.success_rate, Some(0.75));
        // Successful attempts' durations 400, 600, 200: median 400, p90 = 400 + 0.8 * 200 = 560.
        assert_eq!(c.median_seconds, Some(400.0));
        assert_eq!(c.p90_seconds, Some(560.0));
        assert_eq!(c.deployments, 3);
        assert!((c.deployments_per_day - 3.0 / 7.0).abs() < 1e-12);
        assert_eq!(c.median_lead_seconds, Some(3600.0), "median of 1800 and 5400");
        // Attempts: 3 succeeded, 2 failed (e2's first, e5).
        assert_eq!(c.change_failure_rate, Some(0.4));
        assert_eq!((c.median_restore_seconds, c.restores), (Some(3600.0), 1));
        let p = &d.previous;
        assert_eq!((p.executions, p.succeeded, p.failed, p.deployments), (3, 2, 1, 2));
        assert_eq!(p.median_seconds, Some(400.0), "300 and 500");
        assert_eq!(p.median_lead_seconds, Some(5400.0));
        assert!((p.change_failure_rate.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(p.median_restore_seconds, Some(86400.0));
        assert_eq!(d.partial, None);
        let recorded_since = digest(
            Some("web".into()),
            &runs,
            Period::Weekly,
            at("2026-11-27T08:00:00Z"),
            Some(at("2026-11-16T10:00:00Z")),
        );
        assert_eq!(recorded_since.partial, Some(at("2026-11-16T10:00:00Z")), "recording began within the week before");
    }

    #[test]
    fn an_empty_period_has_no_rates() {
        let d = digest(Some("quiet".into()), &[], Period::Daily, at("2026-11-27T08:00:00Z"), None);
        assert_eq!(d.current.executions, 0);
        assert_eq!(d.current.success_rate, None);
        assert_eq!(d.current.change_failure_rate, None);
        assert_eq!(d.current.median_seconds, None);
        assert_eq!(d.from, at("2026-11-26T08:00:00Z"));
    }

    #[test]
    fn all_pipelines_keep_executions_apart() {
        let to = at("2026-11-27T08:00:00Z");
        let same_id = |state: &str| vec![run("x", 1, state, "2026-11-26T08:00:00Z", Some(60), None, None)];
        let runs =
            |name: &str, state: &str| PipelineRuns { name: name.into(), runs: same_id(state), complete_since: None };
        let d = digest_all(&[runs("a", "SUCCEEDED"), runs("b", "FAILED")], Period::Daily, to);
        assert_eq!((d.current.executions, d.current.succeeded, d.current.failed), (2, 1, 1));
        assert_eq!(d.pipelines.len(), 2);
        assert_eq!(d.pipelines[1].1.failed, 1);
    }

    #[test]
    fn periods_and_scopes_read_from_configuration() {
        assert_eq!(Period::parse("Weekly"), Ok(Period::Weekly));
        assert!(Period::parse("hourly").unwrap_err().contains("hourly"));
        assert_eq!(Scope::parse("all"), Ok(Scope::AllPipelines));
        assert_eq!(Scope::parse("each"), Ok(Scope::EachPipeline));
    }
}
