//! The local run's driver (used by `make run` and `make replay`; see scripts/run-local.sh).
//!
//! pipewarden-local setup  <emulator-url> <env-file>    creates topics (each with a subscriber
//!                                                      queue), the audit bucket, and writes the
//!                                                      functions' environment
//! pipewarden-local invoke <emulator-url> <invoke-url> <file-or-dir>...
//!                                                      routes each event to its function by
//!                                                      shape, invokes it through the Lambda
//!                                                      Invoke API, and prints what came out

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pipewarden_devkit::local::{self, BUCKET, TOPICS};
use pipewarden_devkit::{Emulator, Subscribed};
use pipewarden_shared::events::eventbridge::Shape;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") if args.len() == 3 => setup(&args[1], Path::new(&args[2])).await,
        Some("invoke") if args.len() >= 4 => invoke(&args[1], &args[2], &args[3..]).await,
        _ => Err("usage: pipewarden-local setup <emulator-url> <env-file> | invoke <emulator-url> <invoke-url> <file-or-dir>...".into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pipewarden-local: {e}");
            ExitCode::from(2)
        }
    }
}

type Failure = Box<dyn std::error::Error>;

async fn setup(endpoint: &str, env_file: &Path) -> Result<bool, Failure> {
    let aws = Emulator::connect(endpoint).await;
    let mut env: Vec<String> = local::prepare(&aws).await.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(extra) = std::env::var_os("PIPEWARDEN_LOCAL_ENV") {
        env.extend(std::fs::read_to_string(extra)?.lines().map(str::to_string));
    }
    std::fs::write(env_file, env.join("\n") + "\n")?;
    println!("local AWS ready at {}: {} topics with subscriber queues, bucket {}", aws.endpoint, TOPICS.len(), BUCKET);
    Ok(true)
}

fn event_files(paths: &[String]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        let path = PathBuf::from(path);
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = Vec::new();
            collect_json(&path, &mut inside)?;
            inside.sort();
            files.extend(inside);
        } else if path.is_file() {
            files.push(path);
        } else {
            return Err(format!("{} is neither a file nor a folder", path.display()).into());
        }
    }
    Ok(files)
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().map(|e| e == "json").unwrap_or(false) {
            out.push(path);
        }
    }
    Ok(())
}

async fn invoke(endpoint: &str, invoke_url: &str, paths: &[String]) -> Result<bool, Failure> {
    let aws = Emulator::connect(endpoint).await;
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build()?;
    let mut failed = 0;
    let files = event_files(paths)?;
    for file in &files {
        let shown = file.display();
        let value: serde_json::Value =
            match std::fs::read_to_string(file).map_err(Failure::from).and_then(|t| Ok(serde_json::from_str(&t)?)) {
                Ok(v) => v,
                Err(e) => {
                    println!("FAIL {shown}: not a JSON event: {e}");
                    failed += 1;
                    continue;
                }
            };
        let shape = Shape::of(&value);
        let Some(function) = shape.function() else {
            println!("FAIL {shown}: no Pipewarden function handles this shape of event");
            failed += 1;
            continue;
        };
        if shape == Shape::CodeDeployHook {
            let deployment_id = value["DeploymentId"].as_str().unwrap_or_default();
            aws.deployment_with_id(deployment_id, "pipewarden-local", "Lambda").await;
            // The hook execution the event names, as CodeDeploy issued it (it accepts a report for
            // no other). An event without one is the function's to refuse.
            if let Some(hook_id) = value["LifecycleEventHookExecutionId"].as_str().filter(|h| !h.is_empty()) {
                let body = serde_json::json!({"deploymentId": deployment_id, "lifecycleEventHookExecutionId": hook_id});
                let (status, answer) = aws.control_answer("hooks", body).await;
                if !(200..300).contains(&status) {
                    println!("note {shown}: the emulator did not register hook {hook_id}: {answer}");
                }
            }
        }
        let response = http
            .post(format!("{}/2015-03-31/functions/{function}/invocations", invoke_url.trim_end_matches('/')))
            .json(&value)
            .send()
            .await;
        match response {
            Err(e) => {
                println!("FAIL {shown} -> {function}: invoke failed: {e}");
                failed += 1;
            }
            Ok(r) => {
                let function_error = r.headers().get("x-amz-function-error").is_some() || !r.status().is_success();
                let body = r.text().await.unwrap_or_default();
                if function_error {
                    println!("FAIL {shown} -> {function}: {body}");
                    failed += 1;
                } else if let Some(reasons) = dropped(&body) {
                    // A replay shows what would happen to real events: one the function could
                    // not read, whole or in part, would be lost on AWS too.
                    println!("FAIL {shown} -> {function}: dropped as invalid: {}", reasons.join("; "));
                    failed += 1;
                } else {
                    println!("ok   {shown} -> {function}: {body}");
                }
            }
        }
    }
    report(&aws).await;
    println!("\n{} events, {} passed, {failed} failed", files.len(), files.len() - failed);
    Ok(failed == 0)
}

/// Why an event (or records inside it) was dropped as unreadable, from a function's answer:
/// `ignored` (the whole event) or `rejected` (records of a batch).
fn dropped(body: &str) -> Option<Vec<String>> {
    let answer: serde_json::Value = serde_json::from_str(body).ok()?;
    let mut reasons: Vec<String> =
        answer.get("ignored").and_then(|v| v.as_str()).map(str::to_string).into_iter().collect();
    if let Some(rejected) = answer.get("rejected").and_then(|v| v.as_array()) {
        reasons.extend(rejected.iter().map(|r| r.as_str().map(str::to_string).unwrap_or_else(|| r.to_string())));
    }
    (!reasons.is_empty()).then_some(reasons)
}

async fn report(aws: &Emulator) {
    println!("\n== What each subscriber received");
    for (_, name) in TOPICS {
        let subscribed = Subscribed {
            topic_arn: format!("arn:aws:sns:{}:{}:{name}", pipewarden_devkit::REGION, pipewarden_devkit::ACCOUNT),
            queue_url: format!("{}/{}/{name}-subscriber", aws.endpoint, pipewarden_devkit::ACCOUNT),
        };
        let received = aws.received(&subscribed).await;
        println!("{name}: {} message(s)", received.len());
        for n in received {
            println!("  - subject: {}", n.subject.as_deref().unwrap_or("(none)"));
            println!("    attributes: {:?}", n.attributes);
            for line in n.message.lines().take(12) {
                println!("    | {line}");
            }
        }
    }
    println!("\n== Objects written to s3://{BUCKET}");
    for key in aws.keys(BUCKET).await {
        println!("  {key}");
    }
    println!("\n== CodeDeploy hook statuses reported");
    for status in aws.hook_statuses().await {
        println!("  {} {} -> {}", status.deployment_id, status.hook_execution_id, status.status);
    }
}
