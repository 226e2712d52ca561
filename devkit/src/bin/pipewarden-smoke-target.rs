//! A small real Lambda function for deploy-validator's `lambda` check to invoke: one published
//! version of a release under test, run by the harness's local Lambda (`lambda_invoke.rs`).
//!
//! It answers `{"status": ..., "function": ..., "version": ..., "path": ...}`, with its name and
//! version as Lambda sets them (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_VERSION`) and the
//! payload's `path` echoed. How a release behaves is set per version, in its environment:
//!   SMOKE_STATUS   the status it reports (default `ok`): a release that runs but is unhealthy
//!   SMOKE_FAILURE  every invocation fails with this message: a broken release (Lambda's
//!                  FunctionError)
//! A payload `{"fail": "message"}` fails that one invocation.

use lambda_runtime::{run, service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Value};

struct Release {
    function: String,
    version: String,
    status: String,
    failure: Option<String>,
}

fn answer(release: &Release, payload: &Value) -> Result<Value, Diagnostic> {
    let asked_to_fail = payload.get("fail").and_then(Value::as_str);
    if let Some(message) = release.failure.as_deref().or(asked_to_fail) {
        return Err(Diagnostic { error_type: "SmokeCheckFailed".to_string(), error_message: message.to_string() });
    }
    Ok(json!({
        "status": release.status,
        "function": release.function,
        "version": release.version,
        "path": payload.get("path").cloned().unwrap_or(Value::Null),
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let release = Release {
        function: var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        version: var("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|| "$LATEST".to_string()),
        status: var("SMOKE_STATUS").unwrap_or_else(|| "ok".to_string()),
        failure: var("SMOKE_FAILURE"),
    };
    let release = &release;
    run(service_fn(move |event: LambdaEvent<Value>| async move { answer(release, &event.payload) })).await
}
