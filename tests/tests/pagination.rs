//! Every list the functions read is read to its end: given pages of one item, each adapter asks
//! for every page (the emulator counts the calls) and returns every item.

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use deploy_validator::probes::{AlarmGate, CloudWatchAlarmGate};
use pipeline_notifier::lookups::{
    ActionHistory, CodeDeployDiagnostics, CodePipelineActionHistory, DeploymentDiagnostics,
};
use pipewarden_devkit::Emulator;
use serde_json::json;

const EXECUTION: &str = "c0ffee00-3333-4e5f-8a9b-0c1d2e3f4a5b";

async fn calls_of(aws: &Emulator, operation: &str) -> u64 {
    aws.calls().await.get(operation).copied().unwrap_or(0)
}

fn action(stage: &str, action: &str, status: &str, category: &str, provider: &str) -> serde_json::Value {
    json!({
        "pipelineExecutionId": EXECUTION, "stageName": stage, "actionName": action, "status": status,
        "input": {
            "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"},
            "configuration": {"ApplicationName": "flask-web-app", "DeploymentGroupName": format!("{action}-group")}
        },
        "output": {"executionResult": {"externalExecutionSummary": format!("{action} {status}")}}
    })
}

#[tokio::test]
async fn action_history_reads_every_page_of_list_action_executions() {
    let aws = Emulator::fresh().await;
    let mut details = vec![
        action("Build", "Build", "Failed", "Build", "CodeBuild"),
        action("Deploy", "Canary", "Succeeded", "Deploy", "CodeDeploy"),
        action("Deploy", "Fleet", "Failed", "Deploy", "CodeDeploy"),
    ];
    details.push(json!({"pipelineExecutionId": "0ddba11e-4444-4e5f-8a9b-0c1d2e3f4a5b", "stageName": "Deploy", "actionName": "Old", "status": "Failed"}));
    aws.control_post("action-executions", json!({"pipelineName": "flask-web-app", "actionExecutionDetails": details}))
        .await;
    let history = CodePipelineActionHistory::new(aws_sdk_codepipeline::Client::new(&aws.sdk)).with_page_size(1);

    let failed = history.failed_actions("flask-web-app", EXECUTION).await.unwrap();

    let names: Vec<_> = failed.iter().map(|f| f.action.as_str()).collect();
    assert_eq!(names, ["Build", "Fleet"], "the failures on every page, only this execution's: {failed:#?}");
    assert_eq!(calls_of(&aws, "ListActionExecutions").await, 3, "one call per page of one action");

    let deploys = history.deploy_actions("flask-web-app", EXECUTION).await.unwrap();

    let groups: Vec<_> = deploys.iter().map(|d| d.deployment_group.as_deref().unwrap_or("")).collect();
    assert_eq!(groups, ["Canary-group", "Fleet-group"], "{deploys:#?}");
    assert_eq!(calls_of(&aws, "ListActionExecutions").await, 6);
}

fn instance(id: &str, failed_event: Option<&str>) -> serde_json::Value {
    let status = if failed_event.is_some() { "Failed" } else { "Succeeded" };
    let events = match failed_event {
        Some(event) => json!([{"lifecycleEventName": event, "status": "Failed",
            "diagnostics": {"errorCode": "ScriptFailed", "scriptName": "scripts/validate_service", "message": format!("{id} failed")}}]),
        None => json!([{"lifecycleEventName": "ValidateService", "status": "Succeeded"}]),
    };
    json!({"deploymentTargetType": "InstanceTarget",
        "instanceTarget": {"deploymentId": "d-PAGED1", "targetId": id, "status": status, "lifecycleEvents": events}})
}

#[tokio::test]
async fn deployment_diagnostics_read_every_page_of_list_deployment_targets() {
    let aws = Emulator::fresh().await;
    aws.deployment_with_id("d-PAGED1", "flask-web-app", "Server").await;
    let targets = vec![
        instance("i-0000000000000000a", Some("ApplicationStart")),
        instance("i-0000000000000000b", None),
        instance("i-0000000000000000c", Some("ValidateService")),
    ];
    aws.control_post("deployment-targets", json!({"deploymentId": "d-PAGED1", "targets": targets})).await;
    // ListDeploymentTargets takes no page size: CodeDeploy chooses it, so the emulator is told.
    aws.page_size("ListDeploymentTargets", 1).await;

    let failures = CodeDeployDiagnostics::new(aws.codedeploy()).failed_lifecycle_events("d-PAGED1").await.unwrap();

    let failed: Vec<_> = failures.iter().map(|f| (f.target_id.as_str(), f.lifecycle_event.as_str())).collect();
    assert_eq!(failed, [("i-0000000000000000a", "ApplicationStart"), ("i-0000000000000000c", "ValidateService")]);
    assert_eq!(calls_of(&aws, "ListDeploymentTargets").await, 3, "one call per page of one target");
    assert_eq!(calls_of(&aws, "BatchGetDeploymentTargets").await, 1, "the three ids in one batch of at most 25");
}

#[tokio::test]
async fn alarm_gate_reads_every_page_of_describe_alarms() {
    let aws = Emulator::fresh().await;
    let cw = aws_sdk_cloudwatch::Client::new(&aws.sdk);
    for name in ["flask-web-app-5xx", "flask-web-app-latency", "flask-web-app-errors", "other-app-quiet"] {
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
        // The one in OK is outside the prefix: moto (unlike CloudWatch) ignores StateValue when
        // AlarmNamePrefix is given, and the page count must not depend on that.
        let state = if name.ends_with("quiet") { StateValue::Ok } else { StateValue::Alarm };
        cw.set_alarm_state().alarm_name(name).state_value(state).state_reason("test").send().await.unwrap();
    }
    let gate = CloudWatchAlarmGate::new(cw).with_page_size(1);

    let in_alarm = gate.alarms_in_alarm(&[], Some("flask-web-app-")).await.unwrap();

    assert_eq!(in_alarm, ["flask-web-app-5xx", "flask-web-app-errors", "flask-web-app-latency"]);
    assert_eq!(calls_of(&aws, "DescribeAlarms").await, 3, "one call per page of one alarm in ALARM");
}
