//! The real deploy-validator binary under a local Lambda Runtime API, with the deadline Lambda
//! gives it: a notice SNS never answers cannot hold the invocation past that deadline, and the
//! hook is reported first.

mod common;

use std::time::{Duration, Instant};

use common::deployment;
use pipewarden_devkit::http::{LocalHttp, Reply};
use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::{local, Emulator};
use serde_json::json;

#[tokio::test]
async fn a_hanging_notice_ends_the_invocation_before_lambdas_deadline_with_the_hook_reported() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-BINHANG").await;
    let mut env = local::prepare(&aws).await;
    let app = LocalHttp::start(Reply { status: 500, ..Reply::ok("down") }).await;
    let spec = json!({
        "allowedHosts": [format!("http://127.0.0.1:{}", app.port)],
        "checks": [{"name": "health", "type": "http", "url": app.url("/health"), "maxAttempts": 1}]
    });
    env.push(("VALIDATION_SPEC".into(), spec.to_string()));
    let log = std::env::temp_dir().join(format!("deploy-validator-deadline-{}.log", std::process::id()));
    let program = env!("CARGO_BIN_EXE_deploy-validator");
    let mut function = LambdaProcess::start("deploy-validator", program.as_ref(), &[], &env, &log).await.unwrap();
    function.init(Duration::from_secs(30)).await.unwrap();
    let hook = aws.issued_hook("d-BINHANG", "hook-bin-hang").await;
    aws.inject_hang("Publish", 30_000, 1).await;
    let lambda_timeout = Duration::from_secs(6);
    let started = Instant::now();

    let answer = function.invoke("req-hang", &hook, lambda_timeout).await.unwrap();

    let took = answer.at.duration_since(started);
    assert!(took < lambda_timeout, "answered {took:?} into a {lambda_timeout:?} invocation; log:\n{}", function.logs());
    assert!(!answer.ok, "a notice not sent fails the invocation, so Lambda's retry sends it: {}", answer.body);
    assert!(answer.body.contains("failure notice not delivered"), "{}", answer.body);
    let statuses: Vec<String> = aws.hook_statuses().await.into_iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec!["Failed".to_string()]);
}
