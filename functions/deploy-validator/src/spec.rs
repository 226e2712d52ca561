//! The validation spec: which checks a release must pass, per deployment group.
//!
//! A JSON or YAML document (see the README for the format and an example for the Flask app behind
//! nginx). It is read and validated once per cold start; errors name the check and the field.

use std::collections::BTreeMap;

use serde::Deserialize;

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
    /// The only hosts HTTP checks may call (and be redirected to). Nothing from an event can add one.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Checks for any deployment group without its own entry.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Checks per deployment group, keyed `application/group`, `application/*` or `*`.
    #[serde(default)]
    pub deployment_groups: BTreeMap<String, GroupChecks>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupChecks {
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Check {
    Http(HttpCheck),
    Lambda(LambdaCheck),
    Alarms(AlarmCheck),
}

impl Check {
    pub fn name(&self) -> &str {
        match self {
            Check::Http(c) => &c.name,
            Check::Lambda(c) => &c.name,
            Check::Alarms(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http(_) => "http",
            Check::Lambda(_) => "lambda",
            Check::Alarms(_) => "alarms",
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
        if self.checks.is_empty() && self.deployment_groups.values().all(|g| g.checks.is_empty()) {
            return Err("has no checks: a release would pass unvalidated".to_string());
        }
        if let Some(v) = self.version.filter(|v| *v != 1) {
            return Err(format!("version {v} is not supported (expected 1)"));
        }
        let lists = std::iter::once(("checks".to_string(), &self.checks))
            .chain(self.deployment_groups.iter().map(|(k, g)| (format!("deploymentGroups.{k}.checks"), &g.checks)));
        for (place, checks) in lists {
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
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn validate_http(&self, http: &HttpCheck) -> Result<(), String> {
        let url = reqwest::Url::parse(&http.url.replace("{deploymentId}", "d-EXAMPLE"))
            .map_err(|e| format!("url {:?} is not a URL: {e}", http.url))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("url {:?} must be http or https", http.url));
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
        if !self.host_allowed(url.host_str().unwrap_or("")) {
            return Err(format!(
                "host {:?} is not in allowedHosts {:?}",
                url.host_str().unwrap_or(""),
                self.allowed_hosts
            ));
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

    /// Whether HTTP checks may call this host.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// The checks for a deployment group: `application/group`, else `application/*`, else `*`,
    /// else the top-level `checks`.
    pub fn checks_for(&self, application: &str, group: &str) -> &[Check] {
        [format!("{application}/{group}"), format!("{application}/*"), "*".to_string()]
            .iter()
            .find_map(|key| self.deployment_groups.get(key))
            .map(|g| g.checks.as_slice())
            .unwrap_or(&self.checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
version: 1
allowedHosts: [127.0.0.1, app.internal]
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
        assert_eq!(spec.checks_for("flask-web-app", "production").len(), 2);
        assert_eq!(spec.checks_for("other", "group").len(), 1);
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
        assert!(problem("allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://evil.example/'}]")
            .contains("host \"evil.example\" is not in allowedHosts"));
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
}
