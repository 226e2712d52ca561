//! The canary check's decisions, over plain data: which CloudWatch series to read for the new and
//! the old release ([`plan`]), and what they say ([`judge`]). Reading the series is the
//! [`crate::probes::MetricSource`]'s; the engine only joins the two.
//!
//! The sides: for a Lambda deployment, the alias's metrics per `ExecutedVersion` (the AppSpec's
//! TargetVersion against its CurrentVersion); for an ECS blue/green deployment, the green target
//! group's ALB metrics against the blue one's (CodeDeploy's task sets say which is which).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::spec::{Baseline, CanaryCheck, CustomMetric, NoData};
use crate::stats::{self, TestOutcome};

/// The versions a Lambda deployment shifts traffic between, from its AppSpec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaShift {
    pub function: String,
    pub alias: String,
    pub current_version: String,
    pub target_version: String,
}

/// One task set of an ECS blue/green deployment, as BatchGetDeploymentTargets describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSet {
    /// `Blue` (the original) or `Green` (the replacement).
    pub label: String,
    /// The target group's name (not its ARN).
    pub target_group: String,
}

/// What the canary check knows of the deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryFacts {
    pub lambda: Option<LambdaShift>,
    pub task_sets: Vec<TaskSet>,
    /// When CodeDeploy created the deployment: the new release served nothing before.
    pub deployment_created: Option<DateTime<Utc>>,
}

/// One series to read: a metric, a statistic and a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    /// GetMetricData's query id: a lowercase letter, then letters, digits and underscores.
    pub id: String,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    pub stat: String,
    pub period_seconds: u32,
}

/// A time range; CloudWatch's end is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
enum Comparison {
    /// Errors over requests, summed over the window.
    Rate { errors: [String; 2], totals: [String; 2] },
    /// Per-period values, compared as distributions.
    Distribution { values: [String; 2], higher_is_worse: bool, max_increase: f64 },
}

/// One metric to judge; index 0 of each pair is the new side, 1 the old.
#[derive(Debug, Clone, PartialEq)]
struct Planned {
    name: String,
    comparison: Comparison,
    /// The queries the console link graphs (the errors, or the values), new then old.
    graphed: [MetricQuery; 2],
}

/// What to read: the queries per window (one GetMetricData each), and how to judge them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub reads: BTreeMap<Window, Vec<MetricQuery>>,
    /// The new side's window and the old side's.
    pub windows: [Window; 2],
    pub sides: [String; 2],
    /// `concurrent` or `previous`: what the old side's window is.
    pub baseline: Baseline,
    metrics: Vec<Planned>,
}

/// The series read, by query id: the values in any order.
pub type Series = BTreeMap<String, Vec<f64>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    Pass,
    Fail,
    NoData,
}

/// One side of a metric as read: a rate's counts or a distribution's periods and median.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SideValue {
    /// `flask-api:7` (a Lambda version) or `targetgroup/green/...` (an ECS target group).
    pub side: String,
    /// The window read, `start/end` (ISO 8601, end exclusive).
    #[serde(default)]
    pub window: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub periods: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
}

/// A metric's evidence: both sides, the test, its p-value and effect, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricJudgement {
    pub metric: String,
    pub new: SideValue,
    pub old: SideValue,
    pub test: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The rate's increase in percentage points, or the median's relative change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
    pub verdict: Verdict,
    /// One line: why this verdict.
    pub reason: String,
    /// The CloudWatch console graphing both sides over the window (empty for a region AWS does
    /// not have).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub graph: String,
}

const LAMBDA: &str = "AWS/Lambda";
const ALB: &str = "AWS/ApplicationELB";
const RATE_TEST: &str = "two-proportion z-test, one-sided";
const RANK_TEST: &str = "Mann-Whitney U on per-period values, one-sided";

/// The two sides, new first: their metrics' dimensions and their names.
struct Sides {
    kind: Kind,
    dimensions: [Vec<(String, String)>; 2],
    names: [String; 2],
}

fn sides(check: &CanaryCheck, facts: &CanaryFacts) -> Result<Sides, String> {
    if let Some(shift) = &facts.lambda {
        let resource = format!("{}:{}", shift.function, shift.alias);
        let side = |version: &str| {
            vec![
                ("FunctionName".to_string(), shift.function.clone()),
                ("Resource".to_string(), resource.clone()),
                ("ExecutedVersion".to_string(), version.to_string()),
            ]
        };
        return Ok(Sides {
            kind: Kind::Lambda,
            dimensions: [side(&shift.target_version), side(&shift.current_version)],
            names: [
                format!("{}:{}", shift.function, shift.target_version),
                format!("{}:{}", shift.function, shift.current_version),
            ],
        });
    }
    if facts.task_sets.is_empty() {
        return Err("a canary check needs a Lambda deployment (an AppSpec with CurrentVersion and TargetVersion) \
                    or an ECS blue/green deployment (CodeDeploy's task sets); this deployment has neither"
            .to_string());
    }
    let group = |label: &str| {
        facts
            .task_sets
            .iter()
            .find(|t| t.label.eq_ignore_ascii_case(label))
            .map(|t| t.target_group.clone())
            .ok_or_else(|| format!("the deployment has no {label} task set"))
    };
    let (green, blue) = (group("Green")?, group("Blue")?);
    let Some(load_balancer) = check.load_balancer.clone() else {
        return Err("an ECS deployment's canary check needs loadBalancer (app/<name>/<id>)".to_string());
    };
    let dimension_of = |name: &str| {
        check.target_groups.iter().find(|tg| tg.split('/').nth(1) == Some(name)).cloned().ok_or_else(|| {
            format!(
                "target group {name} (from CodeDeploy's task sets) is not in targetGroups (targetgroup/{name}/<id>)"
            )
        })
    };
    let (green, blue) = (dimension_of(&green)?, dimension_of(&blue)?);
    let side = |tg: &str| {
        vec![("LoadBalancer".to_string(), load_balancer.clone()), ("TargetGroup".to_string(), tg.to_string())]
    };
    Ok(Sides { kind: Kind::Ecs, dimensions: [side(&green), side(&blue)], names: [green, blue] })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lambda,
    Ecs,
}

/// The two windows, new then old: the same one (`concurrent`), or for `previous` the new side
/// since the deployment began and the old side over as long before it.
fn windows(
    check: &CanaryCheck,
    facts: &CanaryFacts,
    now: DateTime<Utc>,
    baseline: Baseline,
) -> Result<[Window; 2], String> {
    let window = Duration::minutes(i64::from(check.window_minutes));
    // The last whole period: the one in progress is still being published (and would weigh
    // less on the side that has it). Starts on a minute, as CloudWatch rounds them.
    let period = i64::from(check.period_seconds);
    let floor =
        |t: DateTime<Utc>, step: i64| DateTime::from_timestamp(t.timestamp().div_euclid(step) * step, 0).unwrap_or(t);
    let end = floor(now, period);
    let since = facts.deployment_created.map_or(end - window, |created| created.max(end - window));
    let new = Window { start: floor(since, 60).min(end), end };
    match baseline {
        Baseline::Auto | Baseline::Concurrent => Ok([new, new]),
        Baseline::Previous => {
            let created = facts
                .deployment_created
                .ok_or("baseline previous needs the deployment's creation time, which CodeDeploy did not give")?;
            let created = floor(created, 60);
            Ok([new, Window { start: created - window, end: created }])
        }
    }
}

/// `{version}` (the side's version or target group), `{function}` and `{alias}` filled in; a
/// placeholder the deployment cannot fill (`{function}` in an ECS deployment) is an error.
fn fill(template: &str, side: &str, facts: &CanaryFacts, kind: Kind) -> Result<String, String> {
    let version = match (kind, &facts.lambda) {
        (Kind::Lambda, Some(_)) => side.rsplit(':').next().unwrap_or(side),
        _ => side,
    };
    let mut out = template.replace("{version}", version);
    if let Some(shift) = &facts.lambda {
        out = out.replace("{function}", &shift.function).replace("{alias}", &shift.alias);
    }
    match ["{function}", "{alias}"].iter().find(|p| out.contains(**p)) {
        Some(left) => Err(format!("{left} in {template:?} names a Lambda function, and this deployment is ECS")),
        None => Ok(out),
    }
}

/// Which series to read for `check` over this deployment, at `now`, against `baseline` (`auto`
/// plans `concurrent` first: see [`old_side_served`]).
pub fn plan(check: &CanaryCheck, facts: &CanaryFacts, now: DateTime<Utc>, baseline: Baseline) -> Result<Plan, String> {
    let Sides { kind, dimensions, names } = sides(check, facts)?;
    let windows = windows(check, facts, now, baseline)?;
    let period = check.period_seconds;
    let query = |id: String, namespace: &str, metric: &str, side: usize, stat: &str| MetricQuery {
        id,
        namespace: namespace.to_string(),
        metric_name: metric.to_string(),
        dimensions: dimensions[side].clone(),
        stat: stat.to_string(),
        period_seconds: period,
    };
    let pair = |prefix: &str, namespace: &str, metric: &str, stat: &str| {
        [
            query(format!("{prefix}_new"), namespace, metric, 0, stat),
            query(format!("{prefix}_old"), namespace, metric, 1, stat),
        ]
    };
    let mut metrics = Vec::new();
    // Every pair read: what is graphed, and the request counts.
    let mut read: Vec<[MetricQuery; 2]> = Vec::new();
    if check.built_in {
        let (namespace, errors, requests, latency) = match kind {
            Kind::Lambda => (LAMBDA, "Errors", "Invocations", "Duration"),
            Kind::Ecs => (ALB, "HTTPCode_Target_5XX_Count", "RequestCount", "TargetResponseTime"),
        };
        let errors = pair("errors", namespace, errors, "Sum");
        let totals = pair("requests", namespace, requests, "Sum");
        metrics.push(Planned {
            name: "error rate".to_string(),
            comparison: Comparison::Rate {
                errors: [errors[0].id.clone(), errors[1].id.clone()],
                totals: [totals[0].id.clone(), totals[1].id.clone()],
            },
            graphed: errors.clone(),
        });
        read.push(errors);
        read.push(totals);
        let latency = pair("latency", namespace, latency, "Average");
        read.push(latency.clone());
        metrics.push(Planned {
            name: "latency".to_string(),
            comparison: Comparison::Distribution {
                values: [latency[0].id.clone(), latency[1].id.clone()],
                higher_is_worse: true,
                max_increase: check.max_latency_increase,
            },
            graphed: latency,
        });
    }
    for (i, custom) in check.metrics.iter().enumerate() {
        let side_query = |side: usize| -> Result<MetricQuery, String> {
            let CustomMetric { namespace, metric_name, dimensions: wanted, stat, .. } = custom;
            Ok(MetricQuery {
                id: format!("custom{i}_{}", if side == 0 { "new" } else { "old" }),
                namespace: namespace.clone(),
                metric_name: metric_name.clone(),
                dimensions: wanted
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), fill(v, &names[side], facts, kind)?)))
                    .collect::<Result<_, String>>()
                    .map_err(|e| format!("metrics[{i}] ({:?}): {e}", custom.name))?,
                stat: stat.clone(),
                period_seconds: period,
            })
        };
        let graphed = [side_query(0)?, side_query(1)?];
        read.push(graphed.clone());
        metrics.push(Planned {
            name: custom.name.clone(),
            comparison: Comparison::Distribution {
                values: [graphed[0].id.clone(), graphed[1].id.clone()],
                higher_is_worse: custom.higher_is_worse,
                max_increase: custom.max_increase.unwrap_or(check.max_latency_increase),
            },
            graphed,
        });
    }
    let mut reads: BTreeMap<Window, Vec<MetricQuery>> = BTreeMap::new();
    for pair in read {
        for (side, query) in pair.into_iter().enumerate() {
            // A window shorter than a period holds no data point (and CloudWatch refuses an
            // empty one): not read, judged as no data.
            if windows[side].end - windows[side].start >= Duration::seconds(i64::from(period)) {
                reads.entry(windows[side]).or_default().push(query);
            }
        }
    }
    Ok(Plan { reads, windows, sides: names, metrics, baseline })
}

/// Whether the old release served alongside the new one in a `concurrent` plan's window: enough
/// requests for the error rate, or (custom metrics only) enough periods for each metric. An
/// `auto` baseline falls back to `previous` when it did not.
pub fn old_side_served(check: &CanaryCheck, plan: &Plan, series: &Series) -> bool {
    plan.metrics.iter().all(|m| match &m.comparison {
        Comparison::Rate { totals, .. } => sum(values(series, &totals[1])).unwrap_or(0.0) >= check.min_requests as f64,
        Comparison::Distribution { values: ids, .. } if !check.built_in => {
            values(series, &ids[1]).len() >= check.min_periods
        }
        // The built-in latency follows the built-in error rate's requests.
        Comparison::Distribution { .. } => true,
    })
}

/// The values read for one query (none when CloudWatch had no data points).
fn values<'a>(series: &'a Series, id: &str) -> &'a [f64] {
    series.get(id).map(Vec::as_slice).unwrap_or(&[])
}

fn sum(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().filter(|v| v.is_finite()).sum())
}

/// What the series say about each planned metric.
pub fn judge(check: &CanaryCheck, plan: &Plan, series: &Series, region: &str) -> Vec<MetricJudgement> {
    let period = Duration::seconds(i64::from(check.period_seconds));
    let short = ["new", "old"].iter().zip(plan.windows).find(|(_, w)| w.end - w.start < period).map(|(side, w)| {
        format!(
            "no data yet: the {side} side's window is {} s, shorter than one period ({} s)",
            (w.end - w.start).num_seconds().max(0),
            check.period_seconds
        )
    });
    plan.metrics
        .iter()
        .map(|planned| {
            let graph = console_link(region, &planned.graphed, plan.windows);
            let side = |i: usize| SideValue {
                side: plan.sides[i].clone(),
                window: format!(
                    "{}/{}",
                    plan.windows[i].start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    plan.windows[i].end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                errors: None,
                requests: None,
                rate: None,
                periods: None,
                median: None,
            };
            let (mut new, mut old) = (side(0), side(1));
            match &planned.comparison {
                Comparison::Rate { errors, totals } => {
                    let counts = |i: usize| (sum(values(series, &errors[i])), sum(values(series, &totals[i])));
                    let ((e1, n1), (e0, n0)) = (counts(0), counts(1));
                    for (value, (e, n)) in [(&mut new, (e1, n1)), (&mut old, (e0, n0))] {
                        // No error data points in periods with requests means no errors.
                        value.requests = n;
                        value.errors = n.map(|_| e.unwrap_or(0.0));
                        value.rate = n.filter(|n| *n > 0.0).map(|n| e.unwrap_or(0.0).clamp(0.0, n) / n);
                    }
                    let (n1, n0) = (n1.unwrap_or(0.0), n0.unwrap_or(0.0));
                    let minimum = check.min_requests as f64;
                    let judged = if n1 < minimum || n0 < minimum {
                        Err(format!(
                            "too few requests to judge: {} new, {} old (minRequests {})",
                            n1, n0, check.min_requests
                        ))
                    } else {
                        stats::proportion_greater(e1.unwrap_or(0.0), n1, e0.unwrap_or(0.0), n0)
                            .ok_or_else(|| "no requests".to_string())
                    };
                    let effect = new.rate.zip(old.rate).map(|(a, b)| a - b);
                    verdict(
                        check,
                        planned,
                        new,
                        old,
                        RATE_TEST,
                        judged,
                        effect,
                        check.max_error_rate_increase,
                        |e| format!("{:+.2} percentage points", e * 100.0),
                        graph,
                        &short,
                    )
                }
                Comparison::Distribution { values: ids, higher_is_worse, max_increase } => {
                    let (a, b) = (values(series, &ids[0]), values(series, &ids[1]));
                    new.periods = Some(a.len());
                    old.periods = Some(b.len());
                    new.median = stats::median(a);
                    old.median = stats::median(b);
                    let judged = if a.len() < check.min_periods || b.len() < check.min_periods {
                        Err(format!(
                            "too few periods with data to judge: {} new, {} old (minPeriods {})",
                            a.len(),
                            b.len(),
                            check.min_periods
                        ))
                    } else if *higher_is_worse {
                        stats::mann_whitney_greater(a, b).ok_or_else(|| "no values".to_string())
                    } else {
                        stats::mann_whitney_greater(b, a).ok_or_else(|| "no values".to_string())
                    };
                    // The median's relative change, signed so that worse is positive. From a median
                    // of 0, any worsening is more than any tolerance (there is no ratio to give).
                    let sign = if *higher_is_worse { 1.0 } else { -1.0 };
                    let effect = new.median.zip(old.median).map(|(m1, m0)| match m0 == 0.0 {
                        false => sign * (m1 - m0) / m0.abs(),
                        true if sign * m1 > 0.0 => f64::MAX,
                        true => 0.0,
                    });
                    verdict(
                        check,
                        planned,
                        new,
                        old,
                        RANK_TEST,
                        judged,
                        effect,
                        *max_increase,
                        |e| match e {
                            f64::MAX => "median worse than the old side's 0".to_string(),
                            e if e >= 0.0 => format!("median {:.1}% worse", e * 100.0),
                            e => format!("median {:.1}% better", -e * 100.0),
                        },
                        graph,
                        &short,
                    )
                }
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn verdict(
    check: &CanaryCheck,
    planned: &Planned,
    new: SideValue,
    old: SideValue,
    test: &str,
    judged: Result<TestOutcome, String>,
    effect: Option<f64>,
    tolerance: f64,
    effect_words: impl Fn(f64) -> String,
    graph: String,
    short: &Option<String>,
) -> MetricJudgement {
    let (verdict, p_value, reason) = match judged {
        Err(problem) => (Verdict::NoData, None, short.clone().unwrap_or(problem)),
        Ok(outcome) => {
            let effect = effect.unwrap_or(0.0);
            let significant = outcome.p_value < check.alpha;
            let large = effect > tolerance;
            let words = format!("{}, p = {:.4} (alpha {})", effect_words(effect), outcome.p_value, check.alpha);
            match (significant, large) {
                (true, true) => (Verdict::Fail, Some(outcome.p_value), format!("worse: {words}")),
                (true, false) => {
                    (Verdict::Pass, Some(outcome.p_value), format!("within tolerance {tolerance}: {words}"))
                }
                (false, _) => (Verdict::Pass, Some(outcome.p_value), format!("not significantly worse: {words}")),
            }
        }
    };
    MetricJudgement {
        metric: planned.name.clone(),
        new,
        old,
        test: test.to_string(),
        p_value,
        // A worsening from 0 has no ratio to record.
        effect: effect.filter(|e| *e < f64::MAX),
        verdict,
        reason,
        graph,
    }
}

/// Whether the check passes: no metric worse, and no metric without data unless the spec says
/// that passes. With the one line a person reads.
pub fn outcome(check: &CanaryCheck, judgements: &[MetricJudgement]) -> (bool, String) {
    let failed: Vec<String> = judgements
        .iter()
        .filter(|j| j.verdict == Verdict::Fail || (j.verdict == Verdict::NoData && check.no_data == NoData::Fail))
        .map(|j| format!("{}: {}", j.metric, j.reason))
        .collect();
    if !failed.is_empty() {
        let mut line = failed.join("; ");
        if judgements.iter().any(|j| j.verdict == Verdict::NoData) && check.no_data == NoData::Fail {
            line.push_str(" (noData: fail)");
        }
        return (false, line);
    }
    let line = judgements.iter().map(|j| format!("{}: {}", j.metric, j.reason)).collect::<Vec<_>>().join("; ");
    (true, if line.is_empty() { "no metric to judge".to_string() } else { line })
}

/// A metric's evidence for a person: the verdict, both sides, the test with its p-value and
/// effect, and where to see the graph.
pub fn describe(judgement: &MetricJudgement) -> String {
    let side = |role: &str, v: &SideValue| match (v.rate, v.requests, v.periods) {
        (Some(rate), Some(requests), _) => format!(
            "{role} {} {:.2}% ({} errors in {} requests)",
            v.side,
            rate * 100.0,
            v.errors.unwrap_or(0.0),
            requests
        ),
        (None, Some(requests), _) => format!("{role} {} {requests} requests", v.side),
        (_, _, Some(periods)) => match v.median {
            Some(median) => format!("{role} {} median {median:.4} over {periods} periods", v.side),
            None => format!("{role} {} no data", v.side),
        },
        _ => format!("{role} {} no data", v.side),
    };
    let verdict = match judgement.verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::NoData => "NO DATA",
    };
    let mut line = format!(
        "{} [{verdict}]: {}; {}; {}",
        judgement.metric,
        side("new", &judgement.new),
        side("old", &judgement.old),
        judgement.test
    );
    if let Some(p) = judgement.p_value {
        line.push_str(&format!(", p = {p:.4}"));
    }
    line.push_str(&format!("; {}", judgement.reason));
    if !judgement.graph.is_empty() {
        line.push_str(&format!("\n    graph: {}", judgement.graph));
    }
    line
}

/// The CloudWatch console graphing the two queries over both windows.
pub fn console_link(region: &str, graphed: &[MetricQuery; 2], windows: [Window; 2]) -> String {
    let start = windows[0].start.min(windows[1].start);
    let end = windows[0].end.max(windows[1].end);
    let metrics: Vec<serde_json::Value> = graphed
        .iter()
        .zip(["new", "old"])
        .map(|(q, label)| {
            let mut row = vec![serde_json::Value::from(q.namespace.clone()), q.metric_name.clone().into()];
            for (k, v) in &q.dimensions {
                row.push(k.clone().into());
                row.push(v.clone().into());
            }
            row.push(serde_json::json!({"label": label, "stat": q.stat, "period": q.period_seconds}));
            serde_json::Value::Array(row)
        })
        .collect();
    let graph = serde_json::json!({
        "view": "timeSeries",
        "stacked": false,
        "region": region,
        "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "metrics": metrics,
    });
    pipewarden_shared::links::metrics_graph(region, &graph.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Check, Spec};

    /// A canary check with these fields (YAML lines, indented alike), where a spec puts it.
    fn check(extra: &str) -> CanaryCheck {
        let indent = extra.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min();
        let extra: String =
            extra.lines().map(|l| format!("        {}\n", &l[indent.unwrap_or(0).min(l.len())..])).collect();
        let text =
            format!("hooks:\n  AfterAllowTraffic:\n    checks:\n      - name: judge\n        type: canary\n{extra}");
        let spec = Spec::parse(&text, "test").unwrap();
        let Check::Canary(canary) = spec.hooks["AfterAllowTraffic"].checks[0].clone() else { panic!("a canary check") };
        canary
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn lambda_facts() -> CanaryFacts {
        CanaryFacts {
            lambda: Some(LambdaShift {
                function: "flask-api".into(),
                alias: "live".into(),
                current_version: "6".into(),
                target_version: "7".into(),
            }),
            task_sets: Vec::new(),
            deployment_created: Some(at("2026-11-27T10:00:00Z")),
        }
    }

    fn ids(plan: &Plan) -> Vec<String> {
        plan.reads.values().flatten().map(|q| q.id.clone()).collect()
    }

    #[test]
    fn a_lambda_deployment_reads_the_alias_metrics_of_each_executed_version_since_it_began() {
        let plan = plan(&check(""), &lambda_facts(), at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap();
        // Concurrent: one window, the last 10 minutes, both sides in one GetMetricData.
        let window = Window { start: at("2026-11-27T10:20:00Z"), end: at("2026-11-27T10:30:00Z") };
        assert_eq!(plan.reads.keys().copied().collect::<Vec<_>>(), vec![window]);
        let errors_new = plan.reads[&window].iter().find(|q| q.id == "errors_new").unwrap();
        assert_eq!((errors_new.namespace.as_str(), errors_new.metric_name.as_str()), ("AWS/Lambda", "Errors"));
        assert_eq!(
            errors_new.dimensions,
            vec![
                ("FunctionName".to_string(), "flask-api".to_string()),
                ("Resource".to_string(), "flask-api:live".to_string()),
                ("ExecutedVersion".to_string(), "7".to_string()),
            ]
        );
        assert_eq!(plan.sides, ["flask-api:7".to_string(), "flask-api:6".to_string()]);
        assert_eq!(ids(&plan).len(), 6);
        // Five minutes in: the new side never looks before the deployment began.
        let early = super::plan(&check(""), &lambda_facts(), at("2026-11-27T10:05:00Z"), Baseline::Auto).unwrap();
        assert_eq!(early.windows[0].start, at("2026-11-27T10:00:00Z"));
        // Previous: the old version over the window before the deployment.
        let previous = super::plan(
            &check("    baseline: previous\n"),
            &lambda_facts(),
            at("2026-11-27T10:30:00Z"),
            Baseline::Previous,
        )
        .unwrap();
        assert_eq!(previous.windows[1], Window { start: at("2026-11-27T09:50:00Z"), end: at("2026-11-27T10:00:00Z") });
        assert_eq!(previous.reads.len(), 2);
    }

    #[test]
    fn an_ecs_deployment_compares_the_green_target_group_with_the_blue_one() {
        let facts = CanaryFacts {
            task_sets: vec![
                TaskSet { label: "Blue".into(), target_group: "flask-blue".into() },
                TaskSet { label: "Green".into(), target_group: "flask-green".into() },
            ],
            ..CanaryFacts::default()
        };
        let spec = "    loadBalancer: app/flask-alb/50dc6c495c0c9188\n    targetGroups: [targetgroup/flask-blue/aaa, targetgroup/flask-green/bbb]\n";
        let plan = plan(&check(spec), &facts, at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap();
        assert_eq!(plan.sides, ["targetgroup/flask-green/bbb".to_string(), "targetgroup/flask-blue/aaa".to_string()]);
        let five_xx = plan.reads.values().flatten().find(|q| q.id == "errors_new").unwrap();
        assert_eq!(five_xx.metric_name, "HTTPCode_Target_5XX_Count");
        assert!(five_xx.dimensions.contains(&("TargetGroup".to_string(), "targetgroup/flask-green/bbb".to_string())));
        let unknown = "    loadBalancer: app/flask-alb/1\n    targetGroups: [targetgroup/other/aaa]\n";
        let problem = super::plan(&check(unknown), &facts, at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap_err();
        assert!(problem.contains("flask-green"), "{problem}");
        let none =
            super::plan(&check(""), &CanaryFacts::default(), at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap_err();
        assert!(none.contains("neither"), "{none}");
    }

    #[test]
    fn a_deployment_younger_than_a_period_is_not_read_and_has_no_data_yet() {
        let check = check("");
        let facts = CanaryFacts { deployment_created: Some(at("2026-11-27T10:29:30Z")), ..lambda_facts() };
        // Twenty seconds in: the last whole period ended before the deployment began.
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:29:50.750Z").unwrap().with_timezone(&Utc);
        let plan = plan(&check, &facts, now, Baseline::Auto).unwrap();
        assert!(plan.reads.is_empty(), "{:?}", plan.reads);
        assert_eq!(plan.windows[0].end, at("2026-11-27T10:29:00Z"), "the last whole period");
        let judged = judge(&check, &plan, &Series::new(), "us-east-1");
        assert_eq!(judged[0].verdict, Verdict::NoData);
        assert!(judged[0].reason.contains("window is 0 s, shorter than one period (60 s)"), "{}", judged[0].reason);
    }

    #[test]
    fn a_custom_metric_names_each_side_through_the_version_placeholder() {
        let spec = "    builtIn: false\n    metrics:\n      - {name: checkout, namespace: Shop, metricName: CheckoutMs, dimensions: {Version: '{function}@{version}'}, stat: p90}\n";
        let plan = plan(&check(spec), &lambda_facts(), at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap();
        let queries: Vec<&MetricQuery> = plan.reads.values().flatten().collect();
        assert_eq!(queries.len(), 2);
        assert_eq!(queries[0].dimensions, vec![("Version".to_string(), "flask-api@7".to_string())]);
        assert_eq!(queries[1].dimensions, vec![("Version".to_string(), "flask-api@6".to_string())]);
        assert_eq!(queries[0].stat, "p90");
    }

    fn series(pairs: &[(&str, Vec<f64>)]) -> Series {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn a_release_that_doubles_its_errors_fails_and_one_that_does_not_passes() {
        let check = check("");
        let plan = plan(&check, &lambda_facts(), at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap();
        let latency = |new: f64| {
            [("latency_new", vec![new, new + 1.0, new + 2.0, new + 3.0]), ("latency_old", vec![50.0, 51.0, 52.0, 53.0])]
        };
        let mut worse = series(&[
            ("errors_new", vec![30.0, 30.0]),
            ("requests_new", vec![500.0, 500.0]),
            ("errors_old", vec![5.0, 5.0]),
            ("requests_old", vec![500.0, 500.0]),
        ]);
        worse.extend(series(&latency(50.0)));
        let judged = judge(&check, &plan, &worse, "eu-west-1");
        assert_eq!(judged[0].metric, "error rate");
        assert_eq!(judged[0].verdict, Verdict::Fail, "{:?}", judged[0]);
        assert_eq!(judged[0].new.rate, Some(0.06));
        assert!(judged[0].graph.starts_with(
            "https://eu-west-1.console.aws.amazon.com/cloudwatch/deeplink.js?region=eu-west-1#metricsV2:graph="
        ));
        assert_eq!(judged[1].verdict, Verdict::Pass, "{:?}", judged[1]);
        let (ok, line) = outcome(&check, &judged);
        assert!(!ok && line.starts_with("error rate: worse: +5.00 percentage points"), "{line}");

        // Twice as slow on every period, and significant: latency fails too.
        let mut slower = worse.clone();
        slower.extend(series(&latency(110.0)));
        assert_eq!(judge(&check, &plan, &slower, "eu-west-1")[1].verdict, Verdict::Fail);

        // Errors without requests data on the new side: no data, and noData decides.
        let quiet = series(&[("errors_old", vec![1.0]), ("requests_old", vec![500.0])]);
        let judged = judge(&check, &plan, &quiet, "eu-west-1");
        assert!(judged.iter().all(|j| j.verdict == Verdict::NoData), "{judged:?}");
        assert!(!outcome(&check, &judged).0);
        let lenient = super::tests::check("    noData: pass\n");
        assert!(outcome(&lenient, &judge(&lenient, &plan, &quiet, "eu-west-1")).0);
    }

    #[test]
    fn a_significant_but_tiny_increase_passes() {
        let check = check("    maxErrorRateIncrease: 0.01\n");
        let plan = plan(&check, &lambda_facts(), at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap();
        // 1.2% against 1.0% over a million requests each: significant, but 0.2 points.
        let data = series(&[
            ("errors_new", vec![12_000.0]),
            ("requests_new", vec![1_000_000.0]),
            ("errors_old", vec![10_000.0]),
            ("requests_old", vec![1_000_000.0]),
        ]);
        let judged = judge(&check, &plan, &data, "us-east-1");
        assert!(judged[0].p_value.unwrap() < 0.001);
        assert_eq!(judged[0].verdict, Verdict::Pass, "{:?}", judged[0]);
    }

    #[test]
    fn the_next_deployment_swaps_blue_and_green_and_the_comparison_follows() {
        let spec = "loadBalancer: app/flask-alb/1\ntargetGroups: [targetgroup/tg-a/1, targetgroup/tg-b/2]\n";
        let facts = |green: &str, blue: &str| CanaryFacts {
            task_sets: vec![
                TaskSet { label: "Green".into(), target_group: green.into() },
                TaskSet { label: "Blue".into(), target_group: blue.into() },
            ],
            ..CanaryFacts::default()
        };
        let now = at("2026-11-27T10:30:00Z");
        let first = plan(&check(spec), &facts("tg-b", "tg-a"), now, Baseline::Auto).unwrap();
        assert_eq!(first.sides, ["targetgroup/tg-b/2".to_string(), "targetgroup/tg-a/1".to_string()]);
        let next = plan(&check(spec), &facts("tg-a", "tg-b"), now, Baseline::Auto).unwrap();
        assert_eq!(next.sides, ["targetgroup/tg-a/1".to_string(), "targetgroup/tg-b/2".to_string()]);
        // {function} means nothing in an ECS deployment: said, not read as a literal.
        let custom =
            format!("{spec}metrics: [{{name: m, namespace: N, metricName: M, dimensions: {{F: '{{function}}'}}}}]\n");
        let problem = plan(&check(&custom), &facts("tg-a", "tg-b"), now, Baseline::Auto).unwrap_err();
        assert!(problem.contains("{function}") && problem.contains("ECS"), "{problem}");
    }

    #[test]
    fn lower_is_worse_metrics_and_medians_of_zero_are_judged_the_right_way_round() {
        let spec = "builtIn: false\nmetrics:\n  - {name: hit rate, namespace: N, metricName: Hits, dimensions: {V: '{version}'}, higherIsWorse: false, maxIncrease: 0.1}\n  - {name: queue, namespace: N, metricName: Queued, dimensions: {V: '{version}'}}\n";
        let check = check(spec);
        let plan = plan(&check, &lambda_facts(), at("2026-11-27T10:30:00Z"), Baseline::Auto).unwrap();
        // The hit rate fell by half (worse, as lower is worse); the queue went from empty to busy.
        let data = series(&[
            ("custom0_new", vec![0.40, 0.41, 0.42, 0.43, 0.44]),
            ("custom0_old", vec![0.80, 0.81, 0.82, 0.83, 0.84]),
            ("custom1_new", vec![5.0, 6.0, 7.0, 8.0, 9.0]),
            ("custom1_old", vec![0.0, 0.0, 0.0, 0.0, 0.0]),
        ]);
        let judged = judge(&check, &plan, &data, "us-east-1");
        assert_eq!(judged[0].verdict, Verdict::Fail, "{:?}", judged[0]);
        assert!(
            (judged[0].effect.unwrap() - 0.40 / 0.82).abs() < 1e-9,
            "medians 0.42 against 0.82: {:?}",
            judged[0].effect
        );
        assert_eq!(judged[1].verdict, Verdict::Fail, "{:?}", judged[1]);
        assert_eq!(judged[1].effect, None, "no ratio from 0");
        assert!(judged[1].reason.contains("worse than the old side's 0"), "{}", judged[1].reason);
        // The other way round both pass: a higher hit rate, an emptier queue.
        let better = series(&[
            ("custom0_new", vec![0.80, 0.81, 0.82, 0.83, 0.84]),
            ("custom0_old", vec![0.40, 0.41, 0.42, 0.43, 0.44]),
            ("custom1_new", vec![0.0, 0.0, 0.0, 0.0, 0.0]),
            ("custom1_old", vec![5.0, 6.0, 7.0, 8.0, 9.0]),
        ]);
        assert!(judge(&check, &plan, &better, "us-east-1").iter().all(|j| j.verdict == Verdict::Pass));
    }

    #[test]
    fn an_auto_baseline_falls_back_when_the_old_release_served_nothing_alongside() {
        let check = check("");
        let plan = plan(&check, &lambda_facts(), at("2026-11-27T10:30:00Z"), Baseline::Concurrent).unwrap();
        let served = |old: f64| series(&[("requests_new", vec![500.0]), ("requests_old", vec![old])]);
        assert!(old_side_served(&check, &plan, &served(100.0)));
        assert!(!old_side_served(&check, &plan, &served(99.0)));
        assert!(!old_side_served(&check, &plan, &Series::new()));
    }
}
