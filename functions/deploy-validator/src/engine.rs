//! The validation engine: runs a spec's checks against the new release within a deadline.
//! Shared by the Lambda hook and the `pipewarden-validate` CLI.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::FutureExt;
use serde::Serialize;

use crate::canary::{self, CanaryFacts, MetricJudgement};
use crate::function_scope::FunctionScope;
use crate::probes::{AlarmGate, FunctionInvoker, HttpProbe, HttpRequest, HttpResponse, MetricSource};
use crate::spec::{AlarmCheck, Baseline, CanaryCheck, Check, HttpCheck, JsonFieldMatch, LambdaCheck, Spec};

/// What a check saw on one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub kind: String,
    pub passed: bool,
    /// One line a person can act on.
    pub detail: String,
    pub duration_ms: u64,
    // Left out when empty (alarm and Lambda checks), so read back as empty: a retried invocation
    // must read the decision it finds, not decide afresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// A canary check's evidence, metric by metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricJudgement>,
}

/// What the checks may know about the deployment under validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    pub deployment_id: Option<String>,
    /// `function:qualifier` of the new Lambda version or alias, for Lambda deployments.
    pub lambda_target: Option<String>,
    /// What the canary check compares.
    pub canary: CanaryFacts,
}

pub struct Probes<H, A, F> {
    pub http: H,
    /// CloudWatch: alarm states for the alarms check, metrics for the canary check.
    pub alarms: A,
    pub functions: F,
    /// The functions the Lambda check may invoke.
    pub function_scope: FunctionScope,
}

/// Runs every check concurrently; each stops by `deadline`. A check that panics fails.
pub async fn run<H: HttpProbe, A: AlarmGate + MetricSource, F: FunctionInvoker>(
    spec: &Spec,
    checks: &[Check],
    release: &Release,
    probes: &Probes<H, A, F>,
    deadline: Instant,
) -> Vec<CheckResult> {
    let runs = checks.iter().map(|check| async move {
        let started = Instant::now();
        let outcome = AssertUnwindSafe(run_one(spec, check, release, probes, deadline)).catch_unwind().await;
        let mut result = outcome.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            failed(check, format!("the check panicked: {message}"), Vec::new())
        });
        result.duration_ms = started.elapsed().as_millis() as u64;
        result
    });
    join_all(runs).await
}

pub fn all_passed(results: &[CheckResult]) -> bool {
    !results.is_empty() && results.iter().all(|r| r.passed)
}

fn failed(check: &Check, detail: String, attempts: Vec<Attempt>) -> CheckResult {
    CheckResult {
        name: check.name().to_string(),
        kind: check.kind().to_string(),
        passed: false,
        detail,
        duration_ms: 0,
        attempts,
        metrics: Vec::new(),
    }
}

fn passed(check: &Check, detail: String, attempts: Vec<Attempt>) -> CheckResult {
    CheckResult { passed: true, ..failed(check, detail, attempts) }
}

async fn run_one<H: HttpProbe, A: AlarmGate + MetricSource, F: FunctionInvoker>(
    spec: &Spec,
    check: &Check,
    release: &Release,
    probes: &Probes<H, A, F>,
    deadline: Instant,
) -> CheckResult {
    match check {
        Check::Http(http) => run_http(spec, check, http, release, &probes.http, deadline).await,
        Check::Alarms(alarms) => run_alarms(check, alarms, &probes.alarms, deadline).await,
        Check::Lambda(lambda) => run_lambda(check, lambda, release, probes, deadline).await,
        Check::Canary(canary) => run_canary(check, canary, release, &probes.alarms, deadline).await,
    }
}

/// The check's URL with `{deploymentId}` filled in, percent-encoded so event data can never
/// change the host; and refused unless its host is allowed.
pub fn resolve_url(spec: &Spec, http: &HttpCheck, release: &Release) -> Result<String, String> {
    let deployment = release.deployment_id.as_deref().unwrap_or("");
    let filled = http.url.replace("{deploymentId}", &pipewarden_shared::links::encode(deployment));
    let url = reqwest::Url::parse(&filled).map_err(|e| format!("not a URL after filling placeholders: {e}"))?;
    spec.host_allowed(&url).map_err(|problem| format!("{problem}; not called"))?;
    Ok(filled)
}

fn backoff(http: &HttpCheck, failures: u32) -> Duration {
    let ceiling = http.initial_backoff_ms.saturating_mul(1u64 << failures.min(16)).min(http.max_backoff_ms);
    // Full jitter: anywhere between nothing and the ceiling.
    Duration::from_millis(fastrand::u64(0..=ceiling.max(1)))
}

async fn run_http<H: HttpProbe>(
    spec: &Spec,
    check: &Check,
    http: &HttpCheck,
    release: &Release,
    probe: &H,
    deadline: Instant,
) -> CheckResult {
    let url = match resolve_url(spec, http, release) {
        Ok(url) => url,
        Err(problem) => return failed(check, problem, Vec::new()),
    };
    let mut attempts = Vec::new();
    let mut in_a_row = 0;
    let mut failures = 0;
    let mut body_cut = false;
    for number in 1..=http.max_attempts {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return failed(check, out_of_time(&attempts), attempts);
        }
        let request = HttpRequest {
            method: http.method.to_ascii_uppercase(),
            url: url.clone(),
            headers: http.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            secret_headers: http.secret_headers.clone(),
            body: http.body.clone(),
            timeout: Duration::from_millis(http.request_timeout_ms).min(remaining),
            max_body_bytes: usize::try_from(http.max_body_bytes).unwrap_or(usize::MAX),
        };
        let started = Instant::now();
        let attempt = match probe.send(&request).await {
            Ok(response) => {
                body_cut |= response.body_cut;
                judge_http(http, &response)
            }
            Err(problem) => Attempt {
                status: None,
                latency_ms: started.elapsed().as_millis() as u64,
                passed: false,
                problem: Some(problem),
            },
        };
        let ok = attempt.passed;
        attempts.push(attempt);
        if ok {
            in_a_row += 1;
            if in_a_row >= http.consecutive_successes {
                let detail = format!(
                    "{} {} passed {in_a_row} time(s) in a row",
                    http.method.to_ascii_uppercase(),
                    redact(http, &url)
                );
                return passed(check, note_cut(detail, body_cut, http), attempts);
            }
        } else {
            in_a_row = 0;
            failures += 1;
        }
        let attempts_left = http.max_attempts - number;
        if attempts_left + in_a_row < http.consecutive_successes {
            break;
        }
        let pause = if ok { Duration::from_millis(http.initial_backoff_ms) } else { backoff(http, failures - 1) };
        if pause >= deadline.saturating_duration_since(Instant::now()) {
            return failed(check, note_cut(out_of_time(&attempts), body_cut, http), attempts);
        }
        tokio::time::sleep(pause).await;
    }
    let detail = format!(
        "{} {} did not pass {} time(s) in a row in {} attempt(s); last: {}",
        http.method.to_ascii_uppercase(),
        redact(http, &url),
        http.consecutive_successes,
        attempts.len(),
        last_problem(&attempts).unwrap_or_else(|| "no answer".to_string())
    );
    failed(check, note_cut(detail, body_cut, http), attempts)
}

fn cut_at(http: &HttpCheck) -> String {
    format!("body cut at {} bytes (maxBodyBytes)", http.max_body_bytes)
}

/// Says in the check's result that a body was cut, unless the detail already says so.
fn note_cut(detail: String, body_cut: bool, http: &HttpCheck) -> String {
    if body_cut && !detail.contains("body cut at") {
        format!("{detail}; {}", cut_at(http))
    } else {
        detail
    }
}

/// "ran out of time after N attempt(s); last: <what the last failing attempt saw>".
fn out_of_time(attempts: &[Attempt]) -> String {
    let detail = format!("ran out of time after {} attempt(s)", attempts.len());
    last_problem(attempts).map(|p| format!("{detail}; last: {p}")).unwrap_or(detail)
}

fn last_problem(attempts: &[Attempt]) -> Option<String> {
    attempts.iter().rev().find_map(|a| a.problem.clone())
}

/// The URL as a result may quote it: without user info, query values or the check's secret path
/// segments.
fn redact(http: &HttpCheck, url: &str) -> String {
    // The URL as it is requested (`..` resolved), whose path segments the spec's positions count.
    match reqwest::Url::parse(url) {
        Ok(parsed) => pipewarden_shared::logging::redact_url_with(parsed.as_str(), &http.secret_path_segments),
        Err(_) => pipewarden_shared::logging::redact_url_with(url, &http.secret_path_segments),
    }
}

fn judge_http(http: &HttpCheck, response: &HttpResponse) -> Attempt {
    let latency_ms = response.latency.as_millis() as u64;
    let problem = if !http.expect_status.contains(&response.status) {
        Some(format!("status {} (expected {:?})", response.status, http.expect_status))
    } else if let Some(budget) = http.latency_budget_ms.filter(|b| latency_ms > *b) {
        Some(format!("took {latency_ms} ms (budget {budget} ms)"))
    } else if let Some(needle) = http.body_contains.as_ref().filter(|n| !response.body.contains(n.as_str())) {
        Some(match response.body_cut {
            true => format!("body does not contain {needle:?} in what was read; {}", cut_at(http)),
            false => format!("body does not contain {needle:?}"),
        })
    } else if let Some(field) = http.json_field.as_ref() {
        match response.body_cut {
            true => Some(format!("jsonField {} cannot be judged: {}", field.pointer, cut_at(http))),
            false => json_mismatch(field, &response.body),
        }
    } else {
        None
    };
    Attempt { status: Some(response.status), latency_ms, passed: problem.is_none(), problem }
}

fn json_mismatch(field: &JsonFieldMatch, body: &str) -> Option<String> {
    let Ok(document) = serde_json::from_str::<serde_json::Value>(body) else {
        return Some("body is not JSON".to_string());
    };
    match document.pointer(&field.pointer) {
        Some(value) if *value == field.equals => None,
        Some(value) => Some(format!("{} is {value}, expected {}", field.pointer, field.equals)),
        None => Some(format!("{} is missing", field.pointer)),
    }
}

async fn run_alarms<A: AlarmGate>(check: &Check, alarms: &AlarmCheck, gate: &A, deadline: Instant) -> CheckResult {
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(
        remaining,
        gate.alarms_in_alarm(&alarms.alarm_names, alarms.alarm_name_prefix.as_deref()),
    )
    .await
    {
        Err(_) => failed(check, "ran out of time asking CloudWatch".to_string(), Vec::new()),
        Ok(Err(e)) => failed(check, format!("could not read alarm states: {e}"), Vec::new()),
        Ok(Ok(firing)) if firing.is_empty() => passed(check, "no watched alarm is in ALARM".to_string(), Vec::new()),
        Ok(Ok(firing)) => failed(check, format!("in ALARM: {}", firing.join(", ")), Vec::new()),
    }
}

/// Reads both sides' metrics (one GetMetricData per window, every page) and judges them. Out of
/// time, it fails saying the analysis could not finish.
async fn run_canary<A: MetricSource>(
    check: &Check,
    canary: &CanaryCheck,
    release: &Release,
    source: &A,
    deadline: Instant,
) -> CheckResult {
    let now = chrono::Utc::now();
    // The reads stop a little before the checks' deadline, so that running out of time is said
    // by this check (what could not finish) rather than by the hook's bound on all checks.
    let reads_deadline = deadline.checked_sub(Duration::from_millis(200)).unwrap_or(deadline);
    let read = |plan: canary::Plan| async move {
        let reads = plan.reads.iter().map(|(window, queries)| source.metric_data(queries, *window));
        let remaining = reads_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, futures_util::future::try_join_all(reads)).await {
            Err(_) => Err("the analysis could not finish: ran out of time reading CloudWatch metrics".to_string()),
            Ok(Err(e)) => Err(format!("the analysis could not finish: {e}")),
            Ok(Ok(pages)) => Ok((plan, pages.into_iter().flatten().collect::<canary::Series>())),
        }
    };
    let first = match canary.baseline {
        Baseline::Previous => Baseline::Previous,
        Baseline::Auto | Baseline::Concurrent => Baseline::Concurrent,
    };
    let mut outcome = match canary::plan(canary, &release.canary, now, first) {
        Ok(plan) => read(plan).await,
        Err(problem) => Err(problem),
    };
    // An all-at-once deployment: the old release served nothing alongside the new one.
    if let Ok((plan, series)) = &outcome {
        if canary.baseline == Baseline::Auto && !canary::old_side_served(canary, plan, series) {
            outcome = match canary::plan(canary, &release.canary, now, Baseline::Previous) {
                Ok(plan) => read(plan).await,
                Err(problem) => Err(problem),
            };
        }
    }
    let (plan, series) = match outcome {
        Ok(read) => read,
        Err(problem) => return failed(check, problem, Vec::new()),
    };
    let judgements = canary::judge(canary, &plan, &series, &source.region());
    let (ok, detail) = canary::outcome(canary, &judgements);
    let against = match plan.baseline {
        Baseline::Previous => " before the deployment",
        _ => "",
    };
    let detail = format!("{} against {}{against}: {detail}", plan.sides[0], plan.sides[1]);
    let mut result = if ok { passed(check, detail, Vec::new()) } else { failed(check, detail, Vec::new()) };
    result.metrics = judgements;
    result
}

async fn run_lambda<H, A, F: FunctionInvoker>(
    check: &Check,
    lambda: &LambdaCheck,
    release: &Release,
    probes: &Probes<H, A, F>,
    deadline: Instant,
) -> CheckResult {
    let invoker = &probes.functions;
    let Some(function) = lambda.function.clone().or_else(|| release.lambda_target.clone()) else {
        return failed(
            check,
            "no function to invoke: the deployment has no Lambda target and the check names none".to_string(),
            Vec::new(),
        );
    };
    if let Err(refused) = probes.function_scope.permits(&function) {
        return failed(check, refused, Vec::new());
    }
    let remaining = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(lambda.timeout_ms));
    let payload = serde_json::to_vec(&lambda.payload).unwrap_or_default();
    let started = Instant::now();
    let outcome = tokio::time::timeout(remaining, invoker.invoke(&function, payload)).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (ok, detail) = match outcome {
        Err(_) => (false, format!("invoking {function} took longer than {} ms", remaining.as_millis())),
        Ok(Err(e)) => (false, format!("could not invoke {function}: {e}")),
        Ok(Ok(invocation)) => match &invocation.function_error {
            Some(kind) => (
                false,
                format!(
                    "{function} failed ({kind}): {}",
                    pipewarden_shared::format::clean_text(&invocation.payload, 300)
                ),
            ),
            None => {
                let problem = lambda
                    .response_contains
                    .as_ref()
                    .filter(|n| !invocation.payload.contains(n.as_str()))
                    .map(|n| format!("response does not contain {n:?}"))
                    .or_else(|| lambda.json_field.as_ref().and_then(|f| json_mismatch(f, &invocation.payload)));
                match problem {
                    None => (true, format!("{function} answered as expected")),
                    Some(p) => (false, format!("{function}: {p}")),
                }
            }
        },
    };
    let attempt = Attempt { status: None, latency_ms, passed: ok, problem: (!ok).then(|| detail.clone()) };
    if ok {
        passed(check, detail, vec![attempt])
    } else {
        failed(check, detail, vec![attempt])
    }
}

/// A readable report of results, for the CLI and logs.
pub fn report_text(results: &[CheckResult]) -> String {
    let mut out = Vec::new();
    for r in results {
        out.push(format!(
            "{} {} ({}, {} ms): {}",
            if r.passed { "PASS" } else { "FAIL" },
            r.name,
            r.kind,
            r.duration_ms,
            r.detail
        ));
        for metric in &r.metrics {
            out.push(format!("  {}", canary::describe(metric)));
        }
    }
    let verdict = if all_passed(results) { "PASSED" } else { "FAILED" };
    out.push(format!(
        "validation {verdict}: {} of {} checks passed",
        results.iter().filter(|r| r.passed).count(),
        results.len()
    ));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use crate::spec::{Check, Spec};

    /// The spec counts secret segments on the URL as requested (`..` resolved); so does the redaction.
    #[test]
    fn a_secret_segment_is_hidden_in_the_url_as_requested() {
        let text = "allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://a/x/../keys/SECRET/h?t=1', secretPathSegments: [2]}]";
        let spec = Spec::parse(text, "t").unwrap();
        let Check::Http(http) = &spec.checks[0] else { panic!("an http check") };
        let shown = super::redact(http, &http.url);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.starts_with("http://a/keys/"), "{shown}");
    }
}
