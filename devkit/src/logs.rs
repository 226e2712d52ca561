//! What a user checks in a function's CloudWatch log: every line is JSON, every line written
//! while handling an event names that event, and no line holds a secret.

use serde_json::Value;

/// Credentials a function gets in its environment and must never log.
pub const SECRET_KEY: &str = "wJalrXUtnFEMI-secret-access-key-do-not-log";
pub const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjE-session-token-do-not-log";

/// A function's environment with [`SECRET_KEY`] and [`SESSION_TOKEN`] as its credentials, logging
/// at DEBUG as a user troubleshooting would set it (every crate's debug lines, the SDK's signing
/// included).
pub fn troubleshooting_env(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.retain(|(k, _)| !matches!(k.as_str(), "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" | "AWS_LAMBDA_LOG_LEVEL"));
    env.extend(
        [
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

/// Every non-empty line parsed as JSON; panics naming the first line that is not, or that has a
/// key twice (a field named like `level` or `message` would hide the real one from log filters).
pub fn json_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let value: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"));
            let keys = value.as_object().map(|o| o.len()).unwrap_or(0);
            let written = l.matches("\":").count() - l.matches("\\\":").count();
            let nested: usize = value.as_object().map(|o| o.values().map(key_count).sum()).unwrap_or(0);
            assert_eq!(written, keys + nested, "a log line with a key twice: {l}");
            value
        })
        .collect()
}

fn key_count(v: &Value) -> usize {
    match v {
        Value::Object(o) => o.len() + o.values().map(key_count).sum::<usize>(),
        Value::Array(a) => a.iter().map(key_count).sum(),
        _ => 0,
    }
}

/// Panics naming each secret found in the text, and where.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        if let Some(line) = text.lines().find(|l| l.contains(secret)) {
            panic!("{what} holds the secret {secret:?}: {line}");
        }
    }
}

/// Whether `line` carries one of `keys`, as a field of its own or of one of its spans.
pub fn carries(line: &Value, keys: &[&str]) -> bool {
    let has = |object: &Value| keys.iter().any(|k| object.get(*k).is_some_and(|v| !v.is_null()));
    has(line)
        || line.get("fields").is_some_and(has)
        || line.get("spans").and_then(Value::as_array).is_some_and(|spans| spans.iter().any(has))
}

/// Lines at INFO or above (what a function logs by default) written while handling an invocation:
/// inside the runtime's span, which carries its `requestId`.
pub fn in_invocation(lines: &[Value]) -> Vec<&Value> {
    let default_level = |l: &&Value| matches!(l.get("level").and_then(Value::as_str), Some("INFO" | "WARN" | "ERROR"));
    lines.iter().filter(|l| carries(l, &["requestId"])).filter(default_level).collect()
}

/// A function's whole log as a user checks it: no secret anywhere, every line JSON with no key twice,
/// at least `at_least` INFO+ lines written while handling invocations, and each of those with a
/// timestamp and one of the correlation `ids` (on the line or its spans).
pub fn assert_clean_log(what: &str, logs: &str, secrets: &[&str], ids: &[&str], at_least: usize) {
    assert_no_secret(what, logs, secrets);
    let lines = json_lines(logs);
    let handled = in_invocation(&lines);
    assert!(
        handled.len() >= at_least,
        "{what}: {} lines handling invocations, expected {at_least}:\n{logs}",
        handled.len()
    );
    for line in handled {
        assert!(carries(line, ids), "{what}: a line that carries none of {ids:?}: {line}");
        assert!(line.get("timestamp").is_some(), "{what}: a line without a timestamp: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "a key twice")]
    fn a_field_that_shadows_the_level_is_caught() {
        json_lines(r#"{"timestamp":"t","level":"INFO","message":"event recorded","level":"Pipeline"}"#);
    }

    #[test]
    fn quotes_and_colons_inside_values_are_not_keys() {
        let lines =
            json_lines(r#"{"level":"INFO","message":"say \"a\": b","spans":[{"requestId":"r","event_id":"e"}]}"#);
        assert!(carries(&lines[0], &["event_id"]));
        assert_eq!(in_invocation(&lines).len(), 1);
    }

    #[test]
    #[should_panic(expected = "holds the secret")]
    fn a_secret_is_caught() {
        assert_no_secret("log", "{\"url\":\"https://u:pw-123@h/\"}", &["pw-123"]);
    }
}
