//! deploy-validator on each CodeDeploy compute platform, against the local emulator: Lambda and ECS
//! hooks are validated and reported; an EC2/on-premises deployment has no Lambda hooks, so its
//! "hook" is an error naming the platform, never a report, and never retried.

mod common;

use std::time::{Duration, Instant};

use common::{hook, http_spec, validator, BUCKET};
use deploy_validator::hook::{answer, Evidence, ValidatorError};
use pipewarden_devkit::http::{LocalHttp, Reply};
use pipewarden_devkit::Emulator;
use pipewarden_shared::lambda::Retry;

fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// A deployment of `platform` under `id`, with the hook executions CodeDeploy issued for it
/// (`(hook id, lifecycle event)`), and the evidence bucket.
async fn deployment_with_hooks(aws: &Emulator, id: &str, application: &str, platform: &str, hooks: &[(&str, &str)]) {
    aws.bucket(BUCKET).await;
    aws.deployment_with_id(id, application, platform).await;
    for (hook_id, lifecycle_event) in hooks {
        aws.hook_execution(id, hook_id, lifecycle_event).await;
    }
}

async fn statuses(aws: &Emulator) -> Vec<(String, String)> {
    aws.hook_statuses().await.into_iter().map(|s| (s.hook_execution_id, s.status)).collect()
}

#[tokio::test]
async fn ecs_deployment_is_validated_and_reported_at_test_traffic_and_at_traffic() {
    let aws = Emulator::fresh().await;
    let hooks = [("hook-ecs-test-traffic", "AfterAllowTestTraffic"), ("hook-ecs-traffic", "AfterAllowTraffic")];
    deployment_with_hooks(&aws, "d-ECS00001", "flask-ecs-app", "ECS", &hooks).await;
    let app = LocalHttp::start(Reply::ok(r#"{"status":"ok"}"#)).await;
    let spec = http_spec(&app.url("/health"), "    jsonField: {pointer: /status, equals: ok}\n");
    let v = validator(&aws, &spec, None);

    for (hook_id, _) in hooks {
        let out = v.handle(hook("d-ECS00001", hook_id), deadline_in(20)).await.unwrap();
        assert_eq!(out["status"], "Succeeded", "{hook_id}: {out}");
    }

    assert_eq!(
        statuses(&aws).await,
        vec![
            ("hook-ecs-test-traffic".to_string(), "Succeeded".to_string()),
            ("hook-ecs-traffic".to_string(), "Succeeded".to_string())
        ]
    );
    assert_eq!(app.requests().len(), 2, "one health check per hook");
    let evidence: Evidence = serde_json::from_slice(
        &aws.object(BUCKET, &Evidence::key("d-ECS00001", "hook-ecs-traffic")).await.expect("evidence"),
    )
    .unwrap();
    assert!(evidence.reported);
    assert_eq!(evidence.application.as_deref(), Some("flask-ecs-app"));
}

#[tokio::test]
async fn ecs_deployment_failing_its_checks_reports_failed_and_announces_it() {
    let aws = Emulator::fresh().await;
    deployment_with_hooks(&aws, "d-ECS00002", "flask-ecs-app", "ECS", &[("hook-ecs-bad", "AfterAllowTestTraffic")])
        .await;
    let topic = aws.topic_with_subscriber("deploy").await;
    let app = LocalHttp::start(Reply { status: 503, ..Reply::ok("starting") }).await;
    let spec = http_spec(&app.url("/health"), "    maxAttempts: 2\n");

    let out = validator(&aws, &spec, Some(topic.topic_arn.clone()))
        .handle(hook("d-ECS00002", "hook-ecs-bad"), deadline_in(20))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed", "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-ecs-bad".to_string(), "Failed".to_string())]);
    let notices = aws.received(&topic).await;
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0].subject.as_deref(),
        Some("[FAILED] deployment d-ECS00002 validation: flask-ecs-app/flask-ecs-app-group")
    );
}

#[tokio::test]
async fn server_deployment_is_an_error_naming_the_platform_and_nothing_is_reported() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    aws.deployment_with_id("d-EC2SRV01", "flask-web-app", "Server").await;
    let topic = aws.topic_with_subscriber("deploy").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), Some(topic.topic_arn.clone()));

    let err = v.handle(hook("d-EC2SRV01", "hook-ec2"), deadline_in(10)).await.unwrap_err();

    assert!(matches!(err, ValidatorError::UnsupportedPlatform { .. }), "{err:?}");
    assert!(
        err.to_string().contains(
            "CodeDeploy runs appspec scripts on EC2/on-premises instances, not Lambda hooks: deployment d-EC2SRV01 is Server"
        ),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Useless);
    assert!(statuses(&aws).await.is_empty());
    assert_eq!(aws.calls().await.get("PutLifecycleEventHookExecutionStatus"), None, "not even tried");
    assert!(app.requests().is_empty(), "nothing validated");
    assert!(aws.keys(BUCKET).await.is_empty(), "no decision recorded: {:?}", aws.keys(BUCKET).await);
    assert!(aws.received(&topic).await.is_empty(), "no failed-validation notice");

    // At the Lambda boundary the invocation is acknowledged with the error, not retried into the DLQ.
    let acknowledged = answer(Err(err)).expect("acknowledged, not an invocation error");
    assert_eq!(acknowledged["status"], "NotValidated");
    assert!(acknowledged["error"].as_str().unwrap().contains("deployment d-EC2SRV01 is Server"), "{acknowledged}");
}

#[tokio::test]
async fn server_deployment_refusing_the_report_is_the_same_error_when_its_platform_was_not_read() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    aws.deployment_with_id("d-EC2SRV02", "flask-web-app", "Server").await;
    // GetDeployment refused: the validator cannot know the platform, decides Failed and reports it,
    // and CodeDeploy answers UnsupportedActionForDeploymentTypeException.
    aws.inject_fault("GetDeployment", 400, "AccessDeniedException", 1).await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), None);

    let err = v.handle(hook("d-EC2SRV02", "hook-ec2-unread"), deadline_in(10)).await.unwrap_err();

    assert!(matches!(err, ValidatorError::UnsupportedPlatform { .. }), "{err:?}");
    assert!(err.to_string().contains("deployment d-EC2SRV02 is Server"), "{err}");
    assert_eq!(err.retry(), Retry::Useless);
    assert_eq!(aws.calls().await.get("PutLifecycleEventHookExecutionStatus"), Some(&1), "refused once, not retried");
    assert!(statuses(&aws).await.is_empty());
}

#[test]
fn errors_a_retry_can_fix_stay_invocation_errors() {
    let e = ValidatorError::Notice {
        deployment_id: "d-1".into(),
        hook_execution_id: "h-1".into(),
        source: pipewarden_shared::ports::PortError::new(
            "SNS",
            "Publish",
            pipewarden_shared::ports::FailureKind::ServerError,
            "HTTP 500",
        ),
    };
    let diagnostic = answer(Err(e)).unwrap_err();
    assert_eq!(diagnostic.error_type, "Pipewarden.RetryableError");
}
