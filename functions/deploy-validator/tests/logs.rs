//! The real deploy-validator binary under a local Lambda Runtime API, checking a URL that carries
//! credentials and a token, with a secret header: neither its log, nor the evidence it keeps in S3,
//! nor the notice it publishes holds any of them; every line written for a hook names the deployment.

mod common;

use std::time::Duration;

use common::deployment;
use pipewarden_devkit::http::{LocalHttp, Reply};
use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::logs::{assert_clean_log, assert_no_secret, troubleshooting_env, SECRET_KEY, SESSION_TOKEN};
use pipewarden_devkit::{local, Emulator};
use serde_json::json;

const PASSWORD: &str = "hunter2-url-password";
const TOKEN: &str = "tok-query-secret-42";
const BEARER: &str = "bearer-header-secret-7";

#[tokio::test]
async fn no_secret_reaches_the_log_the_evidence_or_the_notice() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-SECRETS1").await;
    let mut env = local::prepare(&aws).await;
    let deploy_topic = env.iter().find(|(k, _)| k == "DEPLOY_TOPIC_ARN").map(|(_, v)| v.clone()).unwrap();
    let subscriber = pipewarden_devkit::Subscribed {
        topic_arn: deploy_topic,
        queue_url: format!("{}/{}/pipewarden-deploy-subscriber", aws.endpoint, pipewarden_devkit::ACCOUNT),
    };
    // The release answers 500, so the hook fails, publishes a notice and keeps evidence.
    let app = LocalHttp::start(Reply { status: 500, ..Reply::ok("down") }).await;
    let spec = json!({
        "allowedHosts": [format!("http://127.0.0.1:{}", app.port)],
        "checks": [{"name": "health", "type": "http",
                    "url": format!("http://checker:{PASSWORD}@127.0.0.1:{}/health?token={TOKEN}", app.port),
                    "headers": {"Authorization": format!("Bearer {BEARER}")},
                    "maxAttempts": 2, "initialBackoffMs": 10}]
    });
    env.push(("VALIDATION_SPEC".into(), spec.to_string()));
    let env = troubleshooting_env(env);
    let log = std::env::temp_dir().join(format!("deploy-validator-logs-{}.log", std::process::id()));
    let program = env!("CARGO_BIN_EXE_deploy-validator");
    let mut function = LambdaProcess::start("deploy-validator", program.as_ref(), &[], &env, &log).await.unwrap();
    function.init(Duration::from_secs(30)).await.unwrap();

    let hook = aws.issued_hook("d-SECRETS1", "hook-secrets").await;
    let answer = function.invoke("req-1", &hook, Duration::from_secs(20)).await.unwrap();
    assert!(answer.ok, "{}", answer.body);
    assert!(answer.body.contains("Failed"), "{}", answer.body);
    assert_eq!(app.requests().len(), 2, "the check did call the release");

    let secrets = [SECRET_KEY, SESSION_TOKEN, PASSWORD, TOKEN, BEARER];
    assert_clean_log("deploy-validator's log", &function.logs(), &secrets, &["deployment_id"], 2);
    for key in aws.keys(local::BUCKET).await {
        let object = String::from_utf8(aws.object(local::BUCKET, &key).await.unwrap()).unwrap();
        assert_no_secret(&format!("s3://{}/{key}", local::BUCKET), &object, &secrets);
    }
    let notices = aws.received(&subscriber).await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_no_secret("the published notice", &format!("{notices:?}"), &secrets);
    assert!(format!("{notices:?}").contains("127.0.0.1"), "the notice still says which URL failed");
}
