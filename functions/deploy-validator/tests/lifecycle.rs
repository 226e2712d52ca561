//! Which lifecycle event a hook serves: CodeDeploy leaves it out of the hook's payload, so the
//! validator reads it from the deployment target's lifecycle events (the one in progress), runs
//! that event's own checks (`hooks:` in the spec) and records it in the evidence.

mod common;

use std::time::{Duration, Instant};

use common::{deployment, validator, BUCKET};
use deploy_validator::hook::Evidence;
use pipewarden_devkit::Emulator;

fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// Alarm checks named after the event they belong to, so the evidence shows which ran.
const SPEC: &str = r#"
hooks:
  BeforeAllowTraffic:
    checks: [{name: before-traffic, type: alarms, alarmNames: [flask-web-app-canary-errors]}]
  AfterAllowTestTraffic:
    checks: [{name: test-traffic, type: alarms, alarmNames: [flask-web-app-green-5xx]}]
  AfterAllowTraffic:
    checks: [{name: live-traffic, type: alarms, alarmNames: [flask-web-app-5xx]}]
"#;

async fn evidence(aws: &Emulator, deployment_id: &str, hook_id: &str) -> Evidence {
    let body = aws.object(BUCKET, &Evidence::key(deployment_id, hook_id)).await.expect("evidence");
    serde_json::from_slice(&body).unwrap()
}

fn check_names(evidence: &Evidence) -> Vec<&str> {
    evidence.checks.iter().map(|c| c.name.as_str()).collect()
}

/// A CloudWatch alarm that is in ALARM.
async fn alarm_in_alarm(aws: &Emulator, name: &str) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
    let cw = aws_sdk_cloudwatch::Client::new(&aws.sdk);
    cw.put_metric_alarm()
        .alarm_name(name)
        .metric_name("HTTPCode_Target_5XX_Count")
        .namespace("AWS/ApplicationELB")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    cw.set_alarm_state().alarm_name(name).state_value(StateValue::Alarm).state_reason("test").send().await.unwrap();
}

fn hook_event(deployment_id: &str, hook_id: &str) -> serde_json::Value {
    serde_json::json!({"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": hook_id})
}

#[tokio::test]
async fn a_lambda_deployment_runs_each_events_own_checks_and_records_the_event() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-HOOKS1").await;
    let v = validator(&aws, SPEC, None);

    aws.hook_execution("d-HOOKS1", "h-before", "BeforeAllowTraffic").await;
    let before = v.handle(hook_event("d-HOOKS1", "h-before"), deadline_in(20)).await.unwrap();
    // CodeDeploy shifts traffic, then runs the AfterAllowTraffic hook.
    aws.hook_execution("d-HOOKS1", "h-after", "AfterAllowTraffic").await;
    let after = v.handle(hook_event("d-HOOKS1", "h-after"), deadline_in(20)).await.unwrap();

    assert_eq!(before["status"], "Succeeded", "{before}");
    assert_eq!(after["status"], "Succeeded", "{after}");
    let before = evidence(&aws, "d-HOOKS1", "h-before").await;
    assert_eq!(before.lifecycle_event.as_deref(), Some("BeforeAllowTraffic"));
    assert_eq!(check_names(&before), ["before-traffic"]);
    let after = evidence(&aws, "d-HOOKS1", "h-after").await;
    assert_eq!(after.lifecycle_event.as_deref(), Some("AfterAllowTraffic"));
    assert_eq!(check_names(&after), ["live-traffic"]);
}

#[tokio::test]
async fn an_ecs_deployment_runs_its_test_traffic_checks_at_after_allow_test_traffic() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    aws.deployment_with_id("d-ECSHOOK", "flask-web-app", "ECS").await;
    aws.hook_execution("d-ECSHOOK", "h-test", "AfterAllowTestTraffic").await;
    let topic = aws.topic_with_subscriber("deploy").await;
    alarm_in_alarm(&aws, "flask-web-app-green-5xx").await;

    let v = validator(&aws, SPEC, Some(topic.topic_arn.clone()));
    let out = v.handle(hook_event("d-ECSHOOK", "h-test"), deadline_in(20)).await.unwrap();
    // Lambda may deliver the same invocation twice: the second reads the recorded decision back
    // (an alarm check's evidence has no attempts) and neither reports nor notifies again.
    let again = v.handle(hook_event("d-ECSHOOK", "h-test"), deadline_in(20)).await.unwrap();
    assert_eq!(again["status"], "Failed", "{again}");

    assert_eq!(out["status"], "Failed", "{out}");
    let recorded = evidence(&aws, "d-ECSHOOK", "h-test").await;
    assert_eq!(recorded.lifecycle_event.as_deref(), Some("AfterAllowTestTraffic"));
    assert_eq!(check_names(&recorded), ["test-traffic"]);
    let notices = aws.received(&topic).await;
    assert_eq!(notices.len(), 1, "one notice for the hook, however often it is invoked");
    assert_eq!(aws.hook_statuses().await.len(), 1);
    assert!(notices[0].message.contains("Hook execution: h-test (AfterAllowTestTraffic)"), "{}", notices[0].message);
}

/// When the targets show no hook in progress, the event is not guessed: a spec with only
/// per-event checks fails the hook with the reason, rather than passing it unchecked.
#[tokio::test]
async fn an_event_that_cannot_be_told_is_not_guessed() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-NOEVENT").await;
    aws.hook_execution("d-NOEVENT", "h-x", "AfterAllowTraffic").await;
    // CodeDeploy's answer with the event already over (what a late or replayed invocation meets).
    aws.control_post(
        "deployment-targets",
        serde_json::json!({"deploymentId": "d-NOEVENT", "targets": [{
            "deploymentTargetType": "LambdaTarget",
            "lambdaTarget": {"deploymentId": "d-NOEVENT", "targetId": "flask-api:live", "status": "Succeeded",
                "lifecycleEvents": [
                    {"lifecycleEventName": "BeforeAllowTraffic", "status": "Succeeded"},
                    {"lifecycleEventName": "AllowTraffic", "status": "Succeeded"},
                    {"lifecycleEventName": "AfterAllowTraffic", "status": "Succeeded"}]}}]}),
    )
    .await;

    let out = validator(&aws, SPEC, None).handle(hook_event("d-NOEVENT", "h-x"), deadline_in(20)).await.unwrap();

    assert_eq!(out["status"], "Failed", "{out}");
    assert!(out["reason"].as_str().unwrap().contains("lifecycle event of this hook could not be told"), "{out}");
    let recorded = evidence(&aws, "d-NOEVENT", "h-x").await;
    assert_eq!(recorded.lifecycle_event, None);
    assert_eq!(aws.hook_statuses().await.len(), 1, "reported, not left to CodeDeploy's timeout");
}
