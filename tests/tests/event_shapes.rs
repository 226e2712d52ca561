//! Every sample event under `events/` is read by our lenient model, with the fields a user would
//! look for; broken events fail with an error naming the event and the field.

use pipewarden_devkit::{all_events, event};
use pipewarden_shared::events::cloudwatch::{self, AlarmStateValue};
use pipewarden_shared::events::codedeploy::parse_hook;
use pipewarden_shared::events::codepipeline::{ExecutionState, Level, PipelineEvent};
use pipewarden_shared::events::eventbridge::Shape;
use pipewarden_shared::events::sns::parse_sns;
use serde_json::json;

#[test]
fn every_sample_event_has_a_shape_and_parses() {
    let events = all_events();
    assert!(events.len() >= 20, "expected the full set of sample events, found {}", events.len());
    for (name, value) in events {
        let shape = Shape::of(&value);
        let result: Result<(), String> = match shape {
            Shape::CodePipelineEvent => PipelineEvent::from_eventbridge(value).map(drop).map_err(|e| e.to_string()),
            Shape::CodePipelineNotification => {
                PipelineEvent::from_notification(value).map(drop).map_err(|e| e.to_string())
            }
            Shape::SnsPipelineNotifications => {
                pipeline_notifier::read_events(value).map(drop).map_err(|e| e.to_string())
            }
            Shape::AlarmStateChange => cloudwatch::parse_eventbridge_alarm(value).map(drop).map_err(|e| e.to_string()),
            Shape::AlarmLambdaAction => cloudwatch::parse_lambda_action(value).map(drop).map_err(|e| e.to_string()),
            Shape::SnsAlarmMessages => parse_sns(value).map_err(|e| e.to_string()).and_then(|sns| {
                sns.records
                    .iter()
                    .try_for_each(|r| cloudwatch::parse_classic(&r.sns.message).map(drop).map_err(|e| e.to_string()))
            }),
            Shape::CodeDeployHook => parse_hook(value).map(drop).map_err(|e| e.to_string()),
            Shape::ScheduledEvent => pipewarden_shared::events::parse_value::<
                pipewarden_shared::events::eventbridge::EventBridgeEvent<serde_json::Value>,
            >("EventBridge Scheduled Event", value)
            .map(drop)
            .map_err(|e| e.to_string()),
            Shape::AlarmFanoutTimer => alarm_fanout::timers::read(value).map(drop).map_err(|e| e.to_string()),
            Shape::Unknown => Err("no shape recognised".to_string()),
        };
        assert_eq!(result, Ok(()), "{name} ({shape:?})");
    }
}

#[test]
fn v2_pipeline_event_with_float_version_and_attempt_carries_the_commit() {
    let e = PipelineEvent::from_eventbridge(event("codepipeline-pipeline-started-v2.json")).unwrap();
    assert_eq!(e.level, Level::Pipeline);
    assert_eq!(e.detail.state, ExecutionState::Started);
    assert_eq!(e.detail.version.as_deref(), Some("4"));
    assert_eq!(e.attempt(), 1);
    let trigger = e.detail.execution_trigger.unwrap();
    assert_eq!(trigger.commit_id.as_deref(), Some("7c4a9e3f1b2d6e5a8c0f3b9d2e1a4c6b8d0e2f13"));
    assert_eq!(trigger.author_display_name.as_deref(), Some("Mary Major"));
    assert_eq!(trigger.branch_name.as_deref(), Some("main"));
    assert_eq!(trigger.commit_message.as_deref(), Some("Fix health check path for nginx"));
}

#[test]
fn version_as_string_and_integer_and_attempt_as_string() {
    let stopped = PipelineEvent::from_eventbridge(event("codepipeline-pipeline-stopped.json")).unwrap();
    assert_eq!(stopped.detail.version.as_deref(), Some("4"));
    assert_eq!(stopped.attempt(), 1);
    let legacy = PipelineEvent::from_eventbridge(event("codepipeline-pipeline-failed-v1.json")).unwrap();
    assert_eq!(legacy.detail.version.as_deref(), Some("1"));
    assert_eq!(legacy.region, "eu-west-1");
}

#[test]
fn failed_build_action_keeps_provider_error_and_summary() {
    let e = PipelineEvent::from_eventbridge(event("codepipeline-action-build-failed.json")).unwrap();
    assert_eq!(e.level, Level::Action);
    assert_eq!(e.detail.action_type.as_ref().unwrap().provider.as_deref(), Some("CodeBuild"));
    let result = e.detail.execution_result.unwrap();
    assert_eq!(result.error_code.as_deref(), Some("JobFailed"));
    assert!(result.external_execution_summary.unwrap().contains("pytest -q"));
}

#[test]
fn manual_approval_waiting_is_recognised() {
    let e = PipelineEvent::from_eventbridge(event("codepipeline-action-approval-waiting.json")).unwrap();
    assert!(e.is_approval_waiting());
    let build = PipelineEvent::from_eventbridge(event("codepipeline-action-build-failed.json")).unwrap();
    assert!(!build.is_approval_waiting());
}

#[test]
fn codestar_notification_shape_keeps_failed_stage_and_actions() {
    let e = PipelineEvent::from_notification(event("codepipeline-codestar-notification-failed.json")).unwrap();
    assert_eq!(e.level, Level::Pipeline);
    assert_eq!(e.detail.state, ExecutionState::Failed);
    let extra = e.additional.unwrap();
    assert_eq!(extra.failed_stage.as_deref(), Some("Deploy"));
    assert_eq!(extra.failed_actions[0].action.as_deref(), Some("Deploy"));
    assert!(e.event_id.starts_with("8b8b8b8b-6666"));
}

#[test]
fn metric_alarm_reads_metric_and_reason_data() {
    let e = cloudwatch::parse_eventbridge_alarm(event("cloudwatch-alarm-metric.json")).unwrap();
    assert_eq!(e.detail.alarm_name, "ServerCpuTooHigh");
    assert_eq!(e.detail.state.value, AlarmStateValue::Alarm);
    assert_eq!(e.detail.previous_state.as_ref().unwrap().value, AlarmStateValue::Ok);
    let stat = e.detail.configuration.metrics[0].metric_stat.as_ref().unwrap();
    assert_eq!(stat.metric.name.as_deref(), Some("CPUUtilization"));
    assert_eq!(stat.metric.dimensions["InstanceId"], "i-12345678901234567");
    let reason = e.detail.state.reason_data().unwrap();
    assert_eq!(reason.threshold, Some(50.0));
    assert_eq!(reason.evaluated_datapoints[0].value, Some(99.50160229693434));
}

#[test]
fn metric_math_and_anomaly_alarms_need_no_metric_stat() {
    let math = cloudwatch::parse_eventbridge_alarm(event("cloudwatch-alarm-metric-math.json")).unwrap();
    assert_eq!(math.detail.configuration.metrics[0].expression.as_deref(), Some("SUM(METRICS())"));
    assert!(math.detail.configuration.metrics[0].metric_stat.is_none());
    let anomaly = cloudwatch::parse_eventbridge_alarm(event("cloudwatch-alarm-anomaly-detection.json")).unwrap();
    assert_eq!(anomaly.detail.configuration.threshold_metric_id.as_deref(), Some("ad1"));
    assert!(anomaly.detail.state.reason_data().unwrap().threshold.is_none());
}

#[test]
fn composite_alarms_with_and_without_suppressor() {
    let plain = cloudwatch::parse_eventbridge_alarm(event("cloudwatch-alarm-composite.json")).unwrap();
    assert!(plain.detail.configuration.alarm_rule.as_deref().unwrap().contains("ALARM(ServerCpuTooHigh)"));
    let triggering = plain.detail.state.reason_data().unwrap().triggering_alarms;
    assert_eq!(triggering[0].arn, "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh");
    assert!(plain.detail.state.actions_suppressed_by.is_none());

    let suppressed = cloudwatch::parse_eventbridge_alarm(event("cloudwatch-alarm-composite-suppressed.json")).unwrap();
    assert_eq!(suppressed.detail.state.actions_suppressed_by.as_deref(), Some("WaitPeriod"));
    assert_eq!(suppressed.detail.configuration.actions_suppressor_wait_period, Some(60));
}

#[test]
fn daily_period_and_null_description_and_contributor_alarms() {
    let daily = cloudwatch::parse_eventbridge_alarm(event("cloudwatch-alarm-daily-period.json")).unwrap();
    assert_eq!(daily.detail.configuration.metrics[0].metric_stat.as_ref().unwrap().period, Some(86400));
    assert_eq!(daily.detail.configuration.description, None);
    let contributor = cloudwatch::parse_eventbridge_alarm(event("cloudwatch-alarm-contributor.json")).unwrap();
    assert_eq!(contributor.detail.alarm_contributor.unwrap().attributes["InstanceId"], "i-0abc123def4567890");
}

#[test]
fn period_beyond_a_day_is_accepted() {
    let mut value = event("cloudwatch-alarm-daily-period.json");
    value["detail"]["configuration"]["metrics"][0]["metricStat"]["period"] = json!(604800);
    let e = cloudwatch::parse_eventbridge_alarm(value).unwrap();
    assert_eq!(e.detail.configuration.metrics[0].metric_stat.as_ref().unwrap().period, Some(604800));
}

#[test]
fn lambda_alarm_action_payload() {
    let e = cloudwatch::parse_lambda_action(event("cloudwatch-alarm-lambda-action.json")).unwrap();
    assert_eq!(e.alarm_data.alarm_name, "lambda-demo-metric-alarm");
    assert_eq!(e.account_id.as_deref(), Some("444455556666"));
}

#[test]
fn classic_sns_alarm_with_nulls_takes_region_from_arn() {
    let sns = parse_sns(event("sns-classic-alarm-metric.json")).unwrap();
    let alarm = cloudwatch::parse_classic(&sns.records[0].sns.message).unwrap();
    assert_eq!(alarm.alarm_description, None);
    assert_eq!(alarm.region_code(), Some("us-east-1"));
    let trigger = alarm.trigger.unwrap();
    assert_eq!(trigger.metric_name.as_deref(), Some("HTTPCode_Target_5XX_Count"));
    assert_eq!(trigger.dimensions[0].name, "LoadBalancer");
}

#[test]
fn classic_sns_batch_metric_math_anomaly_and_composite() {
    let sns = parse_sns(event("sns-classic-alarm-batch.json")).unwrap();
    assert_eq!(sns.records.len(), 2);
    let math = cloudwatch::parse_classic(&sns.records[0].sns.message).unwrap();
    assert_eq!(math.region_code(), Some("eu-west-1"));
    assert_eq!(math.trigger.as_ref().unwrap().metrics[0].expression.as_deref(), Some("100 * errors / requests"));
    let anomaly = cloudwatch::parse_classic(&sns.records[1].sns.message).unwrap();
    assert_eq!(anomaly.new_state_value, AlarmStateValue::InsufficientData);
    let anomaly = anomaly.trigger.unwrap();
    assert_eq!(anomaly.metrics[0].expression.as_deref(), Some("ANOMALY_DETECTION_BAND(m1, 2)"));
    assert_eq!(anomaly.metrics[1].metric_stat.as_ref().unwrap().stat.as_deref(), Some("p90"));

    let composite_sns = parse_sns(event("sns-classic-alarm-composite.json")).unwrap();
    let composite = cloudwatch::parse_classic(&composite_sns.records[0].sns.message).unwrap();
    assert!(composite.trigger.is_none());
    assert_eq!(composite.triggering_children[0].state.as_ref().unwrap().value, AlarmStateValue::Alarm);
}

#[test]
fn codedeploy_hook_payload() {
    let hook = parse_hook(event("codedeploy-hook-before-allow-traffic.json")).unwrap();
    assert_eq!(hook.deployment_id, "d-EXAMPLE33");
}

#[test]
fn missing_required_fields_are_named() {
    let mut value = event("codepipeline-pipeline-succeeded-v2.json");
    value["detail"].as_object_mut().unwrap().remove("execution-id");
    let err = PipelineEvent::from_eventbridge(value).unwrap_err();
    assert_eq!(err.field, "detail.execution-id");
    assert!(err.to_string().contains("CodePipeline"), "{err}");

    let err = parse_hook(json!({"DeploymentId": "d-1"})).unwrap_err();
    assert_eq!(err.field, "LifecycleEventHookExecutionId");
    assert_eq!(err.event, "CodeDeploy lifecycle hook");

    let mut alarm = event("cloudwatch-alarm-metric.json");
    alarm["detail"]["state"].as_object_mut().unwrap().remove("value");
    let err = cloudwatch::parse_eventbridge_alarm(alarm).unwrap_err();
    assert_eq!(err.field, "detail.state.value");

    let err = cloudwatch::parse_classic(r#"{"AlarmName": "x"}"#).unwrap_err();
    assert_eq!(err.field, "NewStateValue");
}

#[test]
fn wrong_types_name_the_field_not_panic() {
    let mut value = event("codepipeline-pipeline-stopped.json");
    value["detail"]["pipeline-execution-attempt"] = json!("first");
    let err = PipelineEvent::from_eventbridge(value).unwrap_err();
    assert_eq!(err.field, "detail.pipeline-execution-attempt");

    let mut value = event("codepipeline-pipeline-stopped.json");
    value["detail-type"] = json!("CodePipeline Something Else");
    assert_eq!(PipelineEvent::from_eventbridge(value).unwrap_err().field, "detail-type");

    assert_eq!(Shape::of(&json!({"hello": "world"})), Shape::Unknown);
    assert_eq!(Shape::of(&json!([1, 2])), Shape::Unknown);
    assert!(pipeline_notifier::read_events(json!("text")).is_err());
}
