//! The validation spec: which checks a release must pass, per deployment group.
//!
//! A JSON or YAML document (see the README for the format and an example for the Flask app behind
//! nginx). It is read and validated once per cold start; errors name the check and the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::probes::egress::AllowedHosts;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("validation spec from {origin}: {problem}")]
pub struct SpecError {
    pub origin: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub version: Option<u32>,
    /// The only origins HTTP checks may call (and be redirected to), each `scheme://host[:port]`
    /// (`https://app.internal`, `http://127.0.0.1:8080`) or a bare host (`app.internal`), which
    /// means http on 80 and https on 443 only. Loopback, link-local and metadata addresses and the
    /// Lambda Runtime API are reached only through IP literals (or `localhost`) named here, never
    /// through a name that resolves to them (see [`crate::probes::egress`]). Nothing from an event
    /// can add an entry.
    #[serde(default)]
    pub allowed_hosts: AllowedHosts,
    /// Checks for any deployment group without its own entry.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Checks for one lifecycle event (BeforeAllowTraffic, AfterAllowTraffic, ...) instead of
    /// `checks`, for any deployment group without its own entry.
    #[serde(default)]
    pub hooks: BTreeMap<String, HookChecks>,
    /// Checks per deployment group, keyed `application/group`, `application/*` or `*`.
    #[serde(default)]
    pub deployment_groups: BTreeMap<String, GroupChecks>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupChecks {
    /// The group's checks for any lifecycle event without its own entry in `hooks`.
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub hooks: BTreeMap<String, HookChecks>,
}

/// The checks for one lifecycle event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookChecks {
    pub checks: Vec<Check>,
}

/// The lifecycle events a spec may give checks of their own: those CodeDeploy runs a hook
/// function for (Lambda and ECS deployments), and ValidateService, where the reference EC2
/// deployment's appspec runs `pipewarden-validate`.
pub const SPEC_HOOK_EVENTS: [&str; 6] = [
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
    "ValidateService",
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Check {
    Http(HttpCheck),
    Lambda(LambdaCheck),
    Alarms(AlarmCheck),
    Canary(CanaryCheck),
}

impl Check {
    pub fn name(&self) -> &str {
        match self {
            Check::Http(c) => &c.name,
            Check::Lambda(c) => &c.name,
            Check::Alarms(c) => &c.name,
            Check::Canary(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http(_) => "http",
            Check::Lambda(_) => "lambda",
            Check::Alarms(_) => "alarms",
            Check::Canary(_) => "canary",
        }
    }
}

/// A JSON field that must have a value: `pointer` is a JSON Pointer (`/status`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonFieldMatch {
    pub pointer: String,
    pub equals: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    pub name: String,
    /// May contain `{deploymentId}`, filled in percent-encoded.
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "default_status")]
    pub expect_status: Vec<u16>,
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default)]
    pub json_field: Option<JsonFieldMatch>,
    /// A response slower than this fails the attempt.
    #[serde(default)]
    pub latency_budget_ms: Option<u64>,
    /// How many passing attempts in a row make the check pass.
    #[serde(default = "one")]
    pub consecutive_successes: u32,
    /// Attempts at most, passing or not; between them, exponential backoff with full jitter.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// At most this much of a response body is read; the rest is never fetched, so a release that
    /// answers with a huge body cannot run the validator out of memory.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Headers (names, any case) whose values are secrets, such as `X-Api-Key`. Like
    /// `Authorization`, `Cookie` and `Proxy-Authorization` (always treated so), and the URL's user
    /// info, they are not sent on when a redirect leaves the URL's origin (scheme, host and port).
    #[serde(default)]
    pub secret_headers: Vec<String>,
    /// Positions of `url`'s path segments that are secrets, counted from 1 (in
    /// `/keys/{key}/health`, the key is 2): shown as `***` wherever the URL is quoted (results,
    /// logs, evidence, notices), as user info and query values always are.
    #[serde(default)]
    pub secret_path_segments: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LambdaCheck {
    pub name: String,
    /// The function to invoke; default: the target version or alias of the deployment.
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
    #[serde(default)]
    pub response_contains: Option<String>,
    #[serde(default)]
    pub json_field: Option<JsonFieldMatch>,
    #[serde(default = "default_request_timeout")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlarmCheck {
    pub name: String,
    /// None of these alarms may be in ALARM.
    #[serde(default)]
    pub alarm_names: Vec<String>,
    /// Nor any alarm whose name starts with this.
    #[serde(default)]
    pub alarm_name_prefix: Option<String>,
}

/// What the canary check compares the new release with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// `concurrent` when the old release served alongside the new one (`minRequests`, or
    /// `minPeriods` for custom metrics only), else `previous`: an all-at-once deployment has no
    /// time when both served.
    #[default]
    Auto,
    /// The old release over the same window (a canary or linear deployment, while both serve).
    Concurrent,
    /// The old release's own window before the deployment began.
    Previous,
}

/// The lifecycle events after which the new release has served traffic: the only ones a canary
/// check can judge (ECS AfterAllowTestTraffic: the test listener's traffic).
pub const CANARY_EVENTS: [&str; 2] = ["AfterAllowTestTraffic", "AfterAllowTraffic"];

/// What a metric without enough data counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoData {
    #[default]
    Fail,
    Pass,
}

/// The new release judged against the old one on CloudWatch metrics (see [`crate::canary`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryCheck {
    pub name: String,
    #[serde(default)]
    pub baseline: Baseline,
    /// How far back the metrics are read (never before the deployment began, for the new side).
    #[serde(default = "default_window_minutes")]
    pub window_minutes: u32,
    /// CloudWatch's period: a multiple of 60.
    #[serde(default = "default_period_seconds")]
    pub period_seconds: u32,
    /// The significance level of each one-sided test.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Requests each side needs before its error rate is judged.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Periods with data each side needs before a distribution is judged.
    #[serde(default = "default_min_periods")]
    pub min_periods: usize,
    /// The largest increase of the error rate that passes, however significant (0.01: one point).
    #[serde(default = "default_max_error_rate_increase")]
    pub max_error_rate_increase: f64,
    /// The largest relative increase of the median latency that passes (0.2: 20% slower).
    #[serde(default = "default_max_latency_increase")]
    pub max_latency_increase: f64,
    #[serde(default)]
    pub no_data: NoData,
    /// ECS blue/green: the ALB's `LoadBalancer` dimension (`app/<name>/<id>`).
    #[serde(default)]
    pub load_balancer: Option<String>,
    /// ECS blue/green: both target groups' `TargetGroup` dimensions (`targetgroup/<name>/<id>`);
    /// which one is green comes from CodeDeploy's task sets.
    #[serde(default)]
    pub target_groups: Vec<String>,
    /// The error rate and latency of the platform's own metrics (AWS/Lambda or AWS/ApplicationELB).
    #[serde(default = "yes")]
    pub built_in: bool,
    #[serde(default)]
    pub metrics: Vec<CustomMetric>,
}

/// Any CloudWatch metric, compared between the sides as a distribution of per-period values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomMetric {
    pub name: String,
    pub namespace: String,
    pub metric_name: String,
    /// Values may hold `{version}` (the side's Lambda version, or its target group), `{function}`
    /// and `{alias}`.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default = "default_stat")]
    pub stat: String,
    #[serde(default = "yes")]
    pub higher_is_worse: bool,
    /// The largest relative worsening of the median that passes; default the check's
    /// maxLatencyIncrease.
    #[serde(default)]
    pub max_increase: Option<f64>,
}

fn default_window_minutes() -> u32 {
    10
}
fn default_period_seconds() -> u32 {
    60
}
fn default_alpha() -> f64 {
    0.05
}
fn default_min_requests() -> u64 {
    100
}
fn default_min_periods() -> usize {
    3
}
fn default_max_error_rate_increase() -> f64 {
    0.01
}
fn default_max_latency_increase() -> f64 {
    0.2
}
fn default_stat() -> String {
    "Average".to_string()
}
fn yes() -> bool {
    true
}

/// CloudWatch's statistics: the five plain ones and percentiles (`p99`, `p99.9`).
fn is_statistic(stat: &str) -> bool {
    matches!(stat, "SampleCount" | "Average" | "Sum" | "Minimum" | "Maximum")
        || stat.strip_prefix('p').is_some_and(|p| p.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v)))
}

fn validate_canary(canary: &CanaryCheck) -> Result<(), String> {
    if !(1..=1440).contains(&canary.window_minutes) {
        return Err(format!("windowMinutes {} must be between 1 and 1440 (a day)", canary.window_minutes));
    }
    if canary.period_seconds == 0 || canary.period_seconds % 60 != 0 || canary.period_seconds > 3600 {
        return Err(format!("periodSeconds {} must be a multiple of 60, at most 3600", canary.period_seconds));
    }
    if canary.period_seconds > canary.window_minutes * 60 {
        return Err(format!(
            "periodSeconds {} is longer than the window ({} minutes)",
            canary.period_seconds, canary.window_minutes
        ));
    }
    if !(canary.alpha > 0.0 && canary.alpha <= 0.5) {
        return Err(format!("alpha {} must be above 0 and at most 0.5", canary.alpha));
    }
    if canary.min_periods < 2 {
        return Err(format!("minPeriods {} must be at least 2", canary.min_periods));
    }
    for (field, value) in
        [("maxErrorRateIncrease", canary.max_error_rate_increase), ("maxLatencyIncrease", canary.max_latency_increase)]
    {
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!("{field} {value} must be 0 or more"));
        }
    }
    if let Some(lb) = canary.load_balancer.as_deref().filter(|lb| !lb.starts_with("app/") || lb.split('/').count() != 3)
    {
        return Err(format!("loadBalancer {lb:?} must be the ALB's dimension, app/<name>/<id>"));
    }
    if let Some(tg) =
        canary.target_groups.iter().find(|tg| !tg.starts_with("targetgroup/") || tg.split('/').count() != 3)
    {
        return Err(format!("targetGroups {tg:?} must be a target group's dimension, targetgroup/<name>/<id>"));
    }
    if !canary.built_in && canary.metrics.is_empty() {
        return Err("builtIn is false and metrics is empty: nothing to judge".to_string());
    }
    for (i, metric) in canary.metrics.iter().enumerate() {
        let at = format!("metrics[{i}] ({:?})", metric.name);
        if metric.name.trim().is_empty() || metric.namespace.is_empty() || metric.metric_name.is_empty() {
            return Err(format!("{at}: name, namespace and metricName must not be empty"));
        }
        if !is_statistic(&metric.stat) {
            return Err(format!("{at}: stat {:?} is not a CloudWatch statistic (Average, Sum, p99, ...)", metric.stat));
        }
        // While both serve, each side gets its share of the traffic: a sum or a count measures the
        // share, not the release.
        if matches!(metric.stat.as_str(), "Sum" | "SampleCount") && canary.baseline != Baseline::Previous {
            return Err(format!(
                "{at}: stat {} measures how much traffic a side served, and the sides serve different shares \
                 while both run: use Average or a percentile (or baseline: previous)",
                metric.stat
            ));
        }
        // CloudWatch's own limit on a metric's dimensions.
        if metric.dimensions.len() > 30 {
            return Err(format!("{at}: more than 30 dimensions"));
        }
        if let Some(bad) = metric.max_increase.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(format!("{at}: maxIncrease {bad} must be 0 or more"));
        }
    }
    Ok(())
}

fn default_method() -> String {
    "GET".to_string()
}
fn default_status() -> Vec<u16> {
    vec![200]
}
fn one() -> u32 {
    1
}
fn default_attempts() -> u32 {
    5
}
fn default_initial_backoff() -> u64 {
    200
}
fn default_max_backoff() -> u64 {
    2000
}
fn default_request_timeout() -> u64 {
    5000
}
fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// The longest any duration in a spec may be: an hour, CodeDeploy's own limit for a hook. Longer is
/// a mistake, and an unbounded value (up to `u64::MAX` ms) would overflow `Instant` arithmetic.
pub const MAX_DURATION_MS: u64 = 3_600_000;
/// What an HTTP check reads of a body unless it says otherwise: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// The most an HTTP check may ask to read: 16 MiB, well inside a 128 MB Lambda's memory.
pub const MAX_BODY_BYTES_LIMIT: u64 = 16 * 1024 * 1024;

/// `field` must be between 1 and [`MAX_DURATION_MS`] (0 too when `zero_allowed`).
fn bounded_ms(field: &str, value: u64, zero_allowed: bool) -> Result<(), String> {
    if value == 0 && !zero_allowed {
        return Err(format!("{field} must be above 0"));
    }
    if value > MAX_DURATION_MS {
        return Err(format!("{field} {value} is more than {MAX_DURATION_MS} (an hour)"));
    }
    Ok(())
}

impl Spec {
    /// Reads a spec from JSON or YAML text and validates it; `origin` names where it came from.
    pub fn parse(text: &str, origin: &str) -> Result<Spec, SpecError> {
        let error = |problem: String| SpecError { origin: origin.to_string(), problem };
        let spec: Spec = pipewarden_shared::document::parse_json_or_yaml(text).map_err(error)?;
        spec.validate().map_err(error)?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        let all_empty = |checks: &[Check], hooks: &BTreeMap<String, HookChecks>| {
            checks.is_empty() && hooks.values().all(|h| h.checks.is_empty())
        };
        if all_empty(&self.checks, &self.hooks)
            && self.deployment_groups.values().all(|g| all_empty(&g.checks, &g.hooks))
        {
            return Err("has no checks: a release would pass unvalidated".to_string());
        }
        let hook_maps = std::iter::once(("hooks".to_string(), &self.hooks))
            .chain(self.deployment_groups.iter().map(|(k, g)| (format!("deploymentGroups.{k}.hooks"), &g.hooks)));
        for (place, hooks) in hook_maps.clone() {
            if let Some(event) = hooks.keys().find(|e| !SPEC_HOOK_EVENTS.contains(&e.as_str())) {
                return Err(format!(
                    "{place}.{event}: not a lifecycle event with a hook (expected one of {})",
                    SPEC_HOOK_EVENTS.join(", ")
                ));
            }
        }
        if let Some(v) = self.version.filter(|v| *v != 1) {
            return Err(format!("version {v} is not supported (expected 1)"));
        }
        // Each list of checks, where it stands, and the lifecycle event it is for (none: any).
        let lists = std::iter::once(("checks".to_string(), None, &self.checks))
            .chain(
                self.deployment_groups.iter().map(|(k, g)| (format!("deploymentGroups.{k}.checks"), None, &g.checks)),
            )
            .chain(hook_maps.flat_map(|(place, hooks)| {
                hooks.iter().map(move |(event, h)| (format!("{place}.{event}.checks"), Some(event.as_str()), &h.checks))
            }));
        for (place, event, checks) in lists.clone() {
            if let Some((i, check)) = checks.iter().enumerate().find(|(_, c)| matches!(c, Check::Canary(_))) {
                if !event.is_some_and(|e| CANARY_EVENTS.contains(&e)) {
                    return Err(format!(
                        "{place}[{i}] ({:?}): a canary check judges traffic the new release has served: put it under \
                         hooks.AfterAllowTraffic (or, for ECS, hooks.AfterAllowTestTraffic), not where it would also run \
                         before any traffic",
                        check.name()
                    ));
                }
            }
        }
        for (place, _, checks) in lists {
            let mut seen = std::collections::BTreeSet::new();
            for (i, check) in checks.iter().enumerate() {
                let at = format!("{place}[{i}] ({:?})", check.name());
                if check.name().trim().is_empty() {
                    return Err(format!("{place}[{i}]: name is empty"));
                }
                if !seen.insert(check.name()) {
                    return Err(format!("{at}: name is used twice"));
                }
                match check {
                    Check::Http(http) => self.validate_http(http).map_err(|p| format!("{at}: {p}"))?,
                    Check::Lambda(l) => {
                        bounded_ms("timeoutMs", l.timeout_ms, false).map_err(|p| format!("{at}: {p}"))?
                    }
                    Check::Alarms(a) if a.alarm_names.is_empty() && a.alarm_name_prefix.is_none() => {
                        return Err(format!("{at}: needs alarmNames or alarmNamePrefix"))
                    }
                    Check::Canary(c) => validate_canary(c).map_err(|p| format!("{at}: {p}"))?,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn validate_http(&self, http: &HttpCheck) -> Result<(), String> {
        // Quoted only redacted: the URL may carry credentials, tokens and secret path segments.
        let shown = pipewarden_shared::logging::redact_url_with(&http.url, &http.secret_path_segments);
        let url = reqwest::Url::parse(&http.url.replace("{deploymentId}", "d-EXAMPLE"))
            .map_err(|e| format!("url {shown:?} is not a URL: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("url {shown:?} must be http or https"));
        }
        if http
            .url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?', '#']).next())
            .map(|a| a.contains('{'))
            .unwrap_or(false)
        {
            return Err("placeholders may only stand in the path or query, never the host".to_string());
        }
        self.host_allowed(&url)?;
        let segments = url.path_segments().map(|s| s.count()).unwrap_or(0);
        if let Some(bad) = http.secret_path_segments.iter().find(|p| **p == 0 || **p > segments) {
            return Err(format!(
                "secretPathSegments {bad} is not a segment of the url's path, which has {segments} (counted from 1)"
            ));
        }
        if let Some(bad) =
            http.secret_headers.iter().find(|h| reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err())
        {
            return Err(format!("secretHeaders {bad:?} is not a header name"));
        }
        if reqwest::Method::from_bytes(http.method.to_ascii_uppercase().as_bytes()).is_err() {
            return Err(format!("method {:?} is not an HTTP method", http.method));
        }
        if http.expect_status.is_empty() || http.expect_status.iter().any(|s| !(100..=599).contains(s)) {
            return Err(format!("expectStatus {:?} must list HTTP statuses (100-599)", http.expect_status));
        }
        if http.consecutive_successes == 0 {
            return Err("consecutiveSuccesses must be at least 1".to_string());
        }
        if http.max_attempts < http.consecutive_successes {
            return Err(format!(
                "maxAttempts ({}) is less than consecutiveSuccesses ({})",
                http.max_attempts, http.consecutive_successes
            ));
        }
        bounded_ms("requestTimeoutMs", http.request_timeout_ms, false)?;
        bounded_ms("initialBackoffMs", http.initial_backoff_ms, true)?;
        bounded_ms("maxBackoffMs", http.max_backoff_ms, true)?;
        if let Some(budget) = http.latency_budget_ms {
            bounded_ms("latencyBudgetMs", budget, false)?;
        }
        if !(1..=MAX_BODY_BYTES_LIMIT).contains(&http.max_body_bytes) {
            return Err(format!(
                "maxBodyBytes {} must be between 1 and {MAX_BODY_BYTES_LIMIT} (16 MiB)",
                http.max_body_bytes
            ));
        }
        if let Some(field) = &http.json_field {
            if !field.pointer.is_empty() && !field.pointer.starts_with('/') {
                return Err(format!("jsonField.pointer {:?} must be a JSON Pointer such as /status", field.pointer));
            }
        }
        Ok(())
    }

    /// Whether HTTP checks may call this URL: its scheme, host and port match an `allowedHosts`
    /// entry. The error quotes only the URL's origin and says which entry would allow it.
    pub fn host_allowed(&self, url: &reqwest::Url) -> Result<(), String> {
        self.allowed_hosts.permit(url)
    }

    /// The checks for a hook of a deployment group: the entry `application/group`, else
    /// `application/*`, else `*`, else the top level; in it, the lifecycle event's own `hooks`
    /// entry, else its `checks`. No checks at all for this hook is an error, never a pass: a spec
    /// says `hooks: {Event: {checks: []}}` to let an event pass unchecked.
    pub fn checks_for(&self, application: &str, group: &str, event: Option<&str>) -> Result<&[Check], String> {
        let entry = [format!("{application}/{group}"), format!("{application}/*"), "*".to_string()]
            .into_iter()
            .find_map(|key| self.deployment_groups.get(&key).map(|g| (key, &g.checks, &g.hooks)));
        let (place, checks, hooks) = match entry {
            Some((key, checks, hooks)) => (format!("deploymentGroups.{key}"), checks, hooks),
            None => ("the top level".to_string(), &self.checks, &self.hooks),
        };
        if let Some(own) = event.and_then(|e| hooks.get(e)) {
            return Ok(&own.checks);
        }
        // The event unknown where some event has checks of its own: running only the general
        // checks could pass a hook on weaker checks than its own, so nothing is guessed.
        if !checks.is_empty() && (event.is_some() || hooks.is_empty()) {
            return Ok(checks);
        }
        Err(match event {
            Some(event) => format!("the validation spec has no checks for {event} at {place} (hooks.{event} or checks)"),
            None => format!(
                "the lifecycle event of this hook could not be told (see the log) and the validation spec has per-event checks at {place}: no checks are guessed"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
version: 1
allowedHosts: ['http://127.0.0.1:8080', app.internal]
checks:
  - name: health
    type: http
    url: http://127.0.0.1:8080/health
    bodyContains: ok
deploymentGroups:
  flask-web-app/production:
    checks:
      - name: health
        type: http
        url: https://app.internal/health?deployment={deploymentId}
        expectStatus: [200, 204]
        consecutiveSuccesses: 3
        jsonField: {pointer: /status, equals: ok}
      - name: no-alarms
        type: alarms
        alarmNames: [flask-web-app-5xx]
"#;

    #[test]
    fn yaml_spec_with_groups_and_defaults() {
        let spec = Spec::parse(YAML, "test").unwrap();
        assert_eq!(spec.checks_for("flask-web-app", "production", None).unwrap().len(), 2);
        assert_eq!(spec.checks_for("other", "group", Some("AfterAllowTraffic")).unwrap().len(), 1);
        let Check::Http(http) = &spec.checks[0] else { panic!() };
        assert_eq!(http.method, "GET");
        assert_eq!(http.expect_status, vec![200]);
        assert_eq!(http.max_attempts, 5);
    }

    #[test]
    fn json_spec_is_accepted_too() {
        let json =
            r#"{"allowedHosts": ["127.0.0.1"], "checks": [{"name": "h", "type": "http", "url": "http://127.0.0.1/"}]}"#;
        assert_eq!(Spec::parse(json, "env").unwrap().checks.len(), 1);
    }

    fn problem(text: &str) -> String {
        Spec::parse(text, "VALIDATION_SPEC").unwrap_err().to_string()
    }

    #[test]
    fn bad_specs_are_explained() {
        assert!(problem("checks: []").contains("has no checks"));
        assert!(problem("allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://evil.example/'}]").contains(
            "http://evil.example is not in allowedHosts [\"a\"]: the entry \"http://evil.example\" would allow it"
        ));
        assert!(problem("allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://{deploymentId}.a/'}]")
            .contains("never the host"));
        assert!(problem("checks: [{name: h, type: http, url: 'http://a/', retries: 3}]")
            .contains("unknown field `retries`"));
        assert!(problem("checks: [{name: h, type: smtp}]").contains("unknown variant `smtp`"));
        assert!(problem("allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://a/', consecutiveSuccesses: 4, maxAttempts: 2}]")
            .contains("maxAttempts (2) is less than consecutiveSuccesses (4)"));
        assert!(problem("checks: [{name: a, type: alarms}]").contains("needs alarmNames"));
        assert!(problem(r#"{"checks": [{"name": "h", "type": "http"}]}"#).contains("missing field `url`"));
        assert!(problem(
            "checks: [{name: a, type: alarms, alarmNames: [x]}, {name: a, type: alarms, alarmNames: [y]}]"
        )
        .contains("used twice"));
        assert!(problem("checks: [{name: a, type: alarms}]")
            .starts_with("validation spec from VALIDATION_SPEC: checks[0] (\"a\")"));
    }

    #[test]
    fn allowed_hosts_are_origins_and_a_bare_host_means_its_default_ports() {
        let check = |allowed: &str, url: &str| {
            Spec::parse(&format!("allowedHosts: [{allowed}]\nchecks: [{{name: h, type: http, url: '{url}'}}]"), "t")
        };
        assert!(check("127.0.0.1", "http://127.0.0.1/health").is_ok());
        assert!(check("app.internal", "https://app.internal/health").is_ok());
        assert!(check("'https://app.internal:8443'", "https://app.internal:8443/").is_ok());
        assert!(check("'http://[::1]:8080'", "http://[::1]:8080/").is_ok());
        let port = check("127.0.0.1", "http://127.0.0.1:8080/health").unwrap_err().to_string();
        assert!(
            port.contains("checks[0] (\"h\"): http://127.0.0.1:8080 is not in allowedHosts [\"127.0.0.1\"] (the bare host \"127.0.0.1\" allows only http on port 80 and https on 443"),
            "{port}"
        );
        assert!(port.ends_with("the entry \"http://127.0.0.1:8080\" would allow it"), "{port}");
        let scheme = check("'https://app.internal'", "http://app.internal/").unwrap_err().to_string();
        assert!(scheme.contains("http://app.internal is not in allowedHosts"), "{scheme}");
        let entry = check("'127.0.0.1:8080'", "http://127.0.0.1:8080/").unwrap_err().to_string();
        assert!(entry.contains("allowedHosts entry \"127.0.0.1:8080\" has a port but no scheme"), "{entry}");
    }

    #[test]
    fn an_invalid_url_is_quoted_without_its_secrets() {
        let text = problem(
            "allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://user:pw-secret@a:99999/k/seg-secret?token=tk-secret', secretPathSegments: [2]}]",
        );
        assert!(
            text.contains(
                "checks[0] (\"h\"): url \"http://***@a:99999/k/***?token=***\" is not a URL: invalid port number"
            ),
            "{text}"
        );
        for secret in ["pw-secret", "seg-secret", "tk-secret", "user"] {
            assert!(!text.contains(secret), "{text}");
        }
        let scheme = problem("allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'ftp://u:pw-secret@a/'}]");
        assert!(scheme.contains("url \"ftp://***@a/\" must be http or https"), "{scheme}");
    }

    #[test]
    fn secret_headers_and_path_segments_are_checked() {
        let spec = Spec::parse(&http_check_with("secretHeaders: [X-Api-Key], secretPathSegments: []"), "t").unwrap();
        let Check::Http(http) = &spec.checks[0] else { panic!() };
        assert_eq!(http.secret_headers, vec!["X-Api-Key".to_string()]);
        let deep = "allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://a/k/v', secretPathSegments: [2]}]";
        assert!(Spec::parse(deep, "t").is_ok());
        assert!(problem(&http_check_with("secretPathSegments: [0]")).contains("secretPathSegments 0 is not a segment"));
        assert!(problem(&deep.replace("[2]", "[3]"))
            .contains("secretPathSegments 3 is not a segment of the url's path, which has 2"));
        assert!(problem(&http_check_with("secretHeaders: ['bad header']"))
            .contains("secretHeaders \"bad header\" is not a header name"));
    }

    fn http_check_with(field: &str) -> String {
        format!("allowedHosts: [a]\nchecks: [{{name: h, type: http, url: 'http://a/', {field}}}]")
    }

    #[test]
    fn durations_are_at_most_an_hour() {
        for field in ["requestTimeoutMs", "initialBackoffMs", "maxBackoffMs", "latencyBudgetMs"] {
            assert!(Spec::parse(&http_check_with(&format!("{field}: 3600000")), "t").is_ok(), "{field}");
            for value in ["3600001", "18446744073709551615"] {
                let text = problem(&http_check_with(&format!("{field}: {value}")));
                assert!(text.contains(&format!("checks[0] (\"h\"): {field} {value} is more than 3600000")), "{text}");
            }
        }
        assert!(problem(&http_check_with("latencyBudgetMs: 0")).contains("latencyBudgetMs must be above 0"));
        assert!(problem(&http_check_with("requestTimeoutMs: 0")).contains("requestTimeoutMs must be above 0"));
        let lambda = |ms: &str| format!("checks: [{{name: l, type: lambda, function: f, timeoutMs: {ms}}}]");
        assert!(Spec::parse(&lambda("3600000"), "t").is_ok());
        assert!(problem(&lambda("18446744073709551615"))
            .contains("checks[0] (\"l\"): timeoutMs 18446744073709551615 is more than 3600000"));
        assert!(problem(&lambda("0")).contains("timeoutMs must be above 0"));
    }

    #[test]
    fn body_cap_defaults_to_a_mebibyte_and_is_bounded() {
        let spec = Spec::parse(&http_check_with("method: GET"), "t").unwrap();
        let Check::Http(http) = &spec.checks[0] else { panic!() };
        assert_eq!(http.max_body_bytes, 1_048_576);
        assert!(Spec::parse(&http_check_with("maxBodyBytes: 16777216"), "t").is_ok());
        for value in ["0", "16777217", "18446744073709551615"] {
            let text = problem(&http_check_with(&format!("maxBodyBytes: {value}")));
            assert!(
                text.contains(&format!("checks[0] (\"h\"): maxBodyBytes {value} must be between 1 and 16777216")),
                "{text}"
            );
        }
    }

    const HOOKS: &str = r#"
allowedHosts: [127.0.0.1]
hooks:
  BeforeAllowTraffic:
    checks: [{name: no-alarms, type: alarms, alarmNames: [a]}]
deploymentGroups:
  shop/prod:
    checks: [{name: any, type: alarms, alarmNames: [b]}]
    hooks:
      AfterAllowTestTraffic:
        checks: [{name: test-traffic, type: alarms, alarmNames: [c]}]
      BeforeAllowTraffic: {checks: []}
"#;

    #[test]
    fn each_lifecycle_event_can_have_its_own_checks() {
        let spec = Spec::parse(HOOKS, "t").unwrap();
        let names = |app: &str, group: &str, event: Option<&str>| {
            spec.checks_for(app, group, event).map(|c| c.iter().map(|c| c.name().to_string()).collect::<Vec<_>>())
        };
        assert_eq!(names("shop", "prod", Some("AfterAllowTestTraffic")).unwrap(), ["test-traffic"]);
        assert_eq!(names("shop", "prod", Some("AfterAllowTraffic")).unwrap(), ["any"], "the group's checks");
        assert!(names("shop", "prod", Some("BeforeAllowTraffic")).unwrap().is_empty(), "explicitly none");
        let unknown_here = names("shop", "prod", None).unwrap_err();
        assert!(
            unknown_here.contains("could not be told"),
            "event unknown where events have their own: {unknown_here}"
        );
        assert_eq!(names("other", "g", Some("BeforeAllowTraffic")).unwrap(), ["no-alarms"]);
        let missing = names("other", "g", Some("AfterAllowTraffic")).unwrap_err();
        assert!(missing.contains("no checks for AfterAllowTraffic at the top level"), "{missing}");
        let unknown = names("other", "g", None).unwrap_err();
        assert!(unknown.contains("could not be told"), "{unknown}");
    }

    #[test]
    fn hooks_name_real_lifecycle_events_and_their_checks_are_validated() {
        assert!(problem("hooks: {AllowTraffic: {checks: [{name: a, type: alarms, alarmNames: [x]}]}}")
            .contains("hooks.AllowTraffic: not a lifecycle event with a hook"));
        assert!(problem("hooks: {AfterAllowTraffic: {checks: [{name: a, type: alarms}]}}")
            .contains("hooks.AfterAllowTraffic.checks[0] (\"a\"): needs alarmNames"));
        assert!(problem("hooks: {AfterAllowTraffic: {checks: []}}").contains("has no checks"));
    }

    #[test]
    fn a_canary_check_stands_after_traffic_with_settings_cloudwatch_can_answer() {
        let problem = |text: &str| Spec::parse(text, "t").unwrap_err().problem;
        let at =
            |fields: &str| format!("hooks: {{AfterAllowTraffic: {{checks: [{{name: c, type: canary{fields}}}]}}}}");
        assert!(Spec::parse(&at(""), "t").is_ok());
        assert!(Spec::parse("hooks: {AfterAllowTestTraffic: {checks: [{name: c, type: canary}]}}", "t").is_ok());
        // Where it would also run before any traffic (every event, or BeforeAllowTraffic): refused.
        assert!(
            problem("checks: [{name: c, type: canary}]").contains("checks[0] (\"c\"): a canary check judges traffic")
        );
        assert!(problem("hooks: {BeforeAllowTraffic: {checks: [{name: c, type: canary}]}}").contains("a canary check"));
        assert!(problem("deploymentGroups: {'*': {checks: [{name: c, type: canary}]}}").contains("a canary check"));
        assert!(problem(&at(", periodSeconds: 90")).contains("periodSeconds 90 must be a multiple of 60"));
        assert!(problem(&at(", windowMinutes: 1, periodSeconds: 120")).contains("longer than the window"));
        assert!(problem(&at(", alpha: 0")).contains("alpha 0 must be above 0"));
        assert!(problem(&at(", minPeriods: 1")).contains("minPeriods 1 must be at least 2"));
        assert!(problem(&at(", maxLatencyIncrease: -1")).contains("maxLatencyIncrease -1 must be 0 or more"));
        assert!(problem(&at(", loadBalancer: my-alb")).contains("app/<name>/<id>"));
        assert!(problem(&at(", targetGroups: [green]")).contains("targetgroup/<name>/<id>"));
        assert!(problem(&at(", builtIn: false")).contains("nothing to judge"));
        let custom = |stat: &str, extra: &str| {
            at(&format!(", metrics: [{{name: m, namespace: N, metricName: M, stat: {stat}}}]{extra}"))
        };
        assert!(Spec::parse(&custom("p99.9", ""), "t").is_ok());
        assert!(problem(&custom("p101", "")).contains("not a CloudWatch statistic"));
        assert!(problem(&custom("Sum", "")).contains("stat Sum measures how much traffic a side served"));
        assert!(Spec::parse(&custom("Sum", ", baseline: previous"), "t").is_ok());
    }
}
