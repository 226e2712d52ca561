//! pipeline-notifier against the local emulator: given these CodePipeline events, this is what the
//! subscriber receives and what the audit timeline holds.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use pipeline_notifier::config::{parse_notify_on, Config, DEFAULT_NOTIFY_ON};
use pipeline_notifier::handler::{Notifier, NotifierError};
use pipeline_notifier::lookups::{
    CodeDeployDiagnostics, CodePipelineActionHistory, CodePipelineExecutions, ExecutionRevisions,
};
use pipeline_notifier::metrics::MetricSink;
use pipeline_notifier::timeline::Timeline;
use pipewarden_devkit::{event, Emulator, Notification, Subscribed};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::deadline;
use pipewarden_shared::lambda::Retry;
use pipewarden_shared::ledger::Delivery;
use pipewarden_shared::ports::FailureKind;
use serde_json::{json, Value};

const BUCKET: &str = "audit";

#[derive(Default)]
struct CollectedMetrics(Mutex<Vec<Value>>);

impl MetricSink for CollectedMetrics {
    fn emit(&self, document: &Value) {
        self.0.lock().unwrap().push(document.clone());
    }
}

type TestNotifier = Notifier<
    SnsPublisher,
    S3ObjectStore,
    CodePipelineActionHistory,
    CodeDeployDiagnostics,
    CodePipelineExecutions,
    CollectedMetrics,
>;

struct World {
    aws: Emulator,
    topic: Subscribed,
    chat: Subscribed,
}

impl World {
    async fn new() -> World {
        let aws = Emulator::fresh().await;
        let topic = aws.topic_with_subscriber("pipeline").await;
        let chat = aws.topic_with_subscriber("chat").await;
        aws.bucket(BUCKET).await;
        World { aws, topic, chat }
    }

    fn notifier(&self, notify_on: &str, chat: bool) -> TestNotifier {
        Notifier {
            config: Config {
                topic_arn: self.topic.topic_arn.clone(),
                chat_topic_arn: chat.then(|| self.chat.topic_arn.clone()),
                bucket: BUCKET.to_string(),
                notify_on: parse_notify_on(notify_on).unwrap(),
                claim_ttl_seconds: 120,
                digest: None,
                approvals: Default::default(),
            },
            publisher: SnsPublisher::new(self.aws.sns()),
            store: S3ObjectStore::new(self.aws.s3(), BUCKET),
            history: CodePipelineActionHistory::new(aws_sdk_codepipeline::Client::new(&self.aws.sdk)),
            diagnostics: CodeDeployDiagnostics::new(self.aws.codedeploy()),
            revisions: CodePipelineExecutions::new(aws_sdk_codepipeline::Client::new(&self.aws.sdk)),
            metrics: CollectedMetrics::default(),
        }
    }

    async fn received(&self) -> Vec<Notification> {
        self.aws.received(&self.topic).await
    }

    async fn timeline(&self, pipeline: &str, execution_id: &str) -> Timeline {
        let body = self.aws.object(BUCKET, &Timeline::key(pipeline, execution_id)).await.expect("timeline object");
        serde_json::from_slice(&body).expect("timeline JSON")
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

#[tokio::test]
async fn succeeded_execution_sends_one_message_with_commit_duration_and_attributes() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);

    notifier.handle(event("codepipeline-pipeline-started-v2.json"), "req-1", now()).await.unwrap();
    notifier.handle(event("codepipeline-pipeline-succeeded-v2.json"), "req-2", now()).await.unwrap();

    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let n = &got[0];
    assert_eq!(n.subject.as_deref(), Some("[SUCCEEDED] flask-web-app"));
    assert!(n.message.contains("Pipeline flask-web-app SUCCEEDED"), "{}", n.message);
    assert!(n.message.contains("Duration:   12m 30s"), "{}", n.message);
    assert!(
        n.message.contains("commit 7c4a9e3f \"Fix health check path for nginx\" by Mary Major on main"),
        "{}",
        n.message
    );
    assert!(n.message.contains(
        "https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/flask%2Dweb%2Dapp/executions/8f2a1c3e%2D0000%2D4a6b%2D9c1d%2Daa11bb22cc33/timeline?region=us-east-1"
    ));
    assert_eq!(n.attributes["pipeline"], "flask-web-app");
    assert_eq!(n.attributes["state"], "SUCCEEDED");
    assert_eq!(n.attributes["severity"], "info");
    assert_eq!(n.attributes["source"], "pipewarden.pipeline-notifier");

    let metrics = notifier.metrics.0.lock().unwrap().clone();
    assert_eq!(metrics.len(), 1, "{metrics:#?}");
    assert_eq!(metrics[0]["DurationSeconds"], 750);
    assert_eq!(metrics[0]["Deployments"], 1);
    assert_eq!(
        metrics[0]["LeadTimeSeconds"],
        Value::Null,
        "no execution seeded: GetPipelineExecution answers PipelineNotFoundException, so no commit time is known"
    );
    assert!(!n.message.contains("Revision:"), "{}", n.message);
    assert_eq!(metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Pipewarden/Pipelines");
}

#[tokio::test]
async fn duplicates_and_reversed_order_produce_exactly_one_message() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    let started = event("codepipeline-pipeline-started-v2.json");
    let succeeded = event("codepipeline-pipeline-succeeded-v2.json");

    for (payload, token) in [(&succeeded, "a"), (&succeeded, "b"), (&started, "c"), (&started, "d"), (&succeeded, "e")]
    {
        notifier.handle(payload.clone(), token, now()).await.unwrap();
    }

    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].message.contains("Duration:   12m 30s"), "start-time makes the duration order-independent");
    let timeline = world.timeline("flask-web-app", "8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33").await;
    let states: Vec<&str> = timeline.entries.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(states, vec!["STARTED", "SUCCEEDED"], "each event once, in time order");
    let deliveries: Vec<&Delivery> = timeline.deliveries.values().collect();
    assert_eq!(deliveries.len(), 1);
    assert!(matches!(deliveries[0], Delivery::Sent { .. }), "{deliveries:?}");
}

#[tokio::test]
async fn concurrent_invocations_of_the_same_outcome_send_once() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    let succeeded = event("codepipeline-pipeline-succeeded-v2.json");
    let mut codestar = event("codepipeline-codestar-notification-failed.json");
    codestar["detail"]["execution-id"] = json!("8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33");
    codestar["detail"]["state"] = json!("SUCCEEDED");

    let (a, b, c) = tokio::join!(
        notifier.handle(succeeded.clone(), "one", now()),
        notifier.handle(succeeded.clone(), "two", now()),
        notifier.handle(codestar, "three", now()),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();

    assert_eq!(world.received().await.len(), 1);
}

#[tokio::test]
async fn build_failure_names_stage_action_provider_summary_and_build_link() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);

    for name in [
        "codepipeline-action-build-failed.json",
        "codepipeline-stage-build-failed.json",
        "codepipeline-pipeline-failed-v1.json",
    ] {
        notifier.handle(event(name), name, now()).await.unwrap();
    }

    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let n = &got[0];
    assert_eq!(n.subject.as_deref(), Some("[FAILED] flask-web-app-legacy: Build/Build failed"));
    assert_eq!(n.attributes["severity"], "critical");
    assert!(n.message.contains("Failed:     stage Build, action Build (CodeBuild)"), "{}", n.message);
    assert!(n.message.contains("Error:      JobFailed"));
    assert!(n.message.contains("Error while executing command: pytest -q"));
    assert!(n.message.contains("https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/projects/flask%2Dweb%2Dapp%2Dbuild/build/flask%2Dweb%2Dapp%2Dbuild%3A5a1f0c2e"), "{}", n.message);
    assert!(n
        .message
        .contains("Trigger:    StartPipelineExecution (arn:aws:sts::123456789012:assumed-role/Admin/jdoe)"));
}

async fn seed_failed_validate_service(aws: &Emulator) {
    aws.deployment_with_id("d-EXAMPLE11", "flask-web-app", "Server").await;
    aws.control_post(
        "deployment-targets",
        json!({
            "deploymentId": "d-EXAMPLE11",
            "targets": [
                {
                    "deploymentTargetType": "InstanceTarget",
                    "instanceTarget": {
                        "deploymentId": "d-EXAMPLE11",
                        "targetId": "i-0123456789abcdef0",
                        "status": "Failed",
                        "lifecycleEvents": [
                            {"lifecycleEventName": "BeforeInstall", "status": "Succeeded"},
                            {"lifecycleEventName": "ApplicationStart", "status": "Succeeded"},
                            {
                                "lifecycleEventName": "ValidateService",
                                "status": "Failed",
                                "diagnostics": {
                                    "errorCode": "ScriptFailed",
                                    "scriptName": "scripts/validate_service",
                                    "message": "Script at specified location: scripts/validate_service run as user root failed with exit code 1",
                                    "logTail": "[stdout]checking http://127.0.0.1/health\n[stderr]curl: (22) The requested URL returned error: 502\n[stderr]validate_service: nginx answered 502"
                                }
                            }
                        ]
                    }
                },
                {
                    "deploymentTargetType": "InstanceTarget",
                    "instanceTarget": {"deploymentId": "d-EXAMPLE11", "targetId": "i-0fedcba9876543210", "status": "Succeeded",
                        "lifecycleEvents": [{"lifecycleEventName": "ValidateService", "status": "Succeeded"}]}
                }
            ]
        }),
    )
    .await;
}

#[tokio::test]
async fn deploy_failure_in_reverse_order_names_the_failing_script_target_and_log_tail() {
    let world = World::new().await;
    seed_failed_validate_service(&world.aws).await;
    world
        .aws
        .control_post(
            "action-executions",
            json!({
                "pipelineName": "flask-web-app",
                "actionExecutionDetails": [
                    {"pipelineExecutionId": "c0ffee00-2222-4e5f-8a9b-0c1d2e3f4a5b", "stageName": "Build", "actionName": "Build", "status": "Succeeded",
                     "input": {"actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"}}},
                    {"pipelineExecutionId": "c0ffee00-2222-4e5f-8a9b-0c1d2e3f4a5b", "stageName": "Deploy", "actionName": "Deploy", "status": "Failed",
                     "input": {"actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"}},
                     "output": {"executionResult": {"externalExecutionId": "d-EXAMPLE11", "externalExecutionSummary": "Deployment d-EXAMPLE11 failed",
                                "errorDetails": {"code": "JobFailed", "message": "Deployment failed"}}}},
                    {"pipelineExecutionId": "a0000000-9999-4e5f-8a9b-0c1d2e3f4a5b", "stageName": "Deploy", "actionName": "Deploy", "status": "Failed"}
                ]
            }),
        )
        .await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);

    // The pipeline's FAILED arrives before the action's: the action history fills in.
    notifier.handle(event("codepipeline-pipeline-deploy-failed-v2.json"), "r1", now()).await.unwrap();
    notifier.handle(event("codepipeline-action-deploy-failed.json"), "r2", now()).await.unwrap();

    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let text = &got[0].message;
    assert!(text.contains("Failed:     stage Deploy, action Deploy (CodeDeploy)"), "{text}");
    assert!(
        text.contains(
            "Lifecycle:  ValidateService (script scripts/validate_service) failed on i-0123456789abcdef0: ScriptFailed"
        ),
        "{text}"
    );
    assert!(text.contains("| [stderr]validate_service: nginx answered 502"), "{text}");
    assert!(!text.contains("i-0fedcba9876543210"), "only the failing target: {text}");
    assert!(
        text.contains(
            "https://us-west-2.console.aws.amazon.com/codesuite/codedeploy/deployments/d%2DEXAMPLE11?region=us-west-2"
        ),
        "{text}"
    );
    assert!(
        text.contains("commit a1b2c3d4 \"Serve static files from nginx\" by Jorge Souza on release/2026.11"),
        "{text}"
    );
    assert!(text.contains("Duration:   16m 9s"), "{text}");
}

/// Issue 15: a message SNS refuses for what it is (a 4xx other than throttling) is not retried as
/// it is: the same message would be refused again, twice more, for nothing.
#[tokio::test]
async fn a_message_sns_refuses_is_not_retried_as_is() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    world.aws.inject_fault("Publish", 400, "InvalidParameter", 10).await;

    let err = notifier.handle(event("codepipeline-pipeline-stopped.json"), "r1", now()).await.unwrap_err();

    assert!(err.to_string().contains("InvalidParameter"), "{err}");
    assert_eq!(err.retry(), Retry::Useless, "{err}");
    world.aws.clear_faults().await;
    world.aws.inject_fault("Publish", 500, "InternalError", 10).await;
    let err = notifier.handle(event("codepipeline-pipeline-stopped.json"), "r2", now()).await.unwrap_err();
    assert_eq!(err.retry(), Retry::Helps, "a server error may pass next time: {err}");
}

/// Issue 15: a deployment failing on 70 instances, each with the 4 KB log tail CodeDeploy keeps,
/// used to make a message over SNS's 256 KB: SNS refused it, the retries refused it too, and the
/// FAILED notification was lost. The message now fits: the verdict whole, tails while they fit,
/// then "and N more".
#[tokio::test]
async fn a_deployment_failing_everywhere_still_fits_one_message() {
    let world = World::new().await;
    world.aws.deployment_with_id("d-EXAMPLE11", "flask-web-app", "Server").await;
    let tail: String = (0..20)
        .map(|i| format!("[stderr]validate_service: attempt {i:02}: nginx answered 502 {}\n", "x".repeat(150)))
        .collect();
    assert!(tail.len() >= 4000, "{}", tail.len());
    let targets: Vec<Value> = (0..70)
        .map(|i| {
            json!({"deploymentTargetType": "InstanceTarget", "instanceTarget": {
                "deploymentId": "d-EXAMPLE11", "targetId": format!("i-0123456789abc{i:04}"), "status": "Failed",
                "lifecycleEvents": [{"lifecycleEventName": "ValidateService", "status": "Failed", "diagnostics": {
                    "errorCode": "ScriptFailed", "scriptName": "scripts/validate_service",
                    "message": "Script at specified location: scripts/validate_service run as user root failed with exit code 1",
                    "logTail": tail.clone()}}]}})
        })
        .collect();
    world.aws.control_post("deployment-targets", json!({"deploymentId": "d-EXAMPLE11", "targets": targets})).await;
    world
        .aws
        .control_post(
            "action-executions",
            json!({
                "pipelineName": "flask-web-app",
                "actionExecutionDetails": [
                    {"pipelineExecutionId": "c0ffee00-2222-4e5f-8a9b-0c1d2e3f4a5b", "stageName": "Deploy", "actionName": "Deploy", "status": "Failed",
                     "input": {"actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"}},
                     "output": {"executionResult": {"externalExecutionId": "d-EXAMPLE11", "externalExecutionSummary": "Deployment d-EXAMPLE11 failed",
                                "errorDetails": {"code": "JobFailed", "message": "Deployment failed"}}}}
                ]
            }),
        )
        .await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, true);

    notifier.handle(event("codepipeline-pipeline-deploy-failed-v2.json"), "r1", now()).await.unwrap();

    let got = world.received().await;
    assert_eq!(got.len(), 1, "the FAILED notification went out");
    let text = &got[0].message;
    assert!(text.len() < 256 * 1024, "{} bytes", text.len());
    assert!(text.contains("Failed:     stage Deploy, action Deploy (CodeDeploy)"), "the verdict is whole");
    assert!(text.contains("failed on i-0123456789abc0000: ScriptFailed"), "the first target with its tail");
    assert!(text.contains("| [stderr]validate_service: attempt 19"), "tails while they fit");
    assert!(text.contains("more failed target(s): see the deployment"), "the rest counted");
    assert!(text.contains("/codedeploy/deployments/d%2DEXAMPLE11"), "with the link to see them all");
    let chat = world.aws.received(&world.chat).await;
    assert_eq!(chat.len(), 1);
    assert!(chat[0].message.contains("and 60 more failed target(s)"), "{}", chat[0].message);
}

#[tokio::test]
async fn stopped_and_superseded_each_notify_once_with_their_severity() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    notifier.handle(event("codepipeline-pipeline-stopped.json"), "s1", now()).await.unwrap();
    notifier.handle(event("codepipeline-pipeline-superseded.json"), "s2", now()).await.unwrap();
    notifier.handle(event("codepipeline-pipeline-superseded.json"), "s3", now()).await.unwrap();

    let mut got = world.received().await;
    got.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].subject.as_deref(), Some("[STOPPED] flask-web-app"));
    assert_eq!(got[0].attributes["severity"], "warning");
    assert_eq!(got[1].subject.as_deref(), Some("[SUPERSEDED] flask-web-app"));
    assert_eq!(got[1].attributes["severity"], "info");
}

#[tokio::test]
async fn started_stage_and_approval_events_are_recorded_but_notify_only_when_configured() {
    let world = World::new().await;
    let quiet = world.notifier(DEFAULT_NOTIFY_ON, false);
    for name in [
        "codepipeline-pipeline-started-v2.json",
        "codepipeline-action-approval-waiting.json",
        "codepipeline-stage-build-failed.json",
    ] {
        quiet.handle(event(name), name, now()).await.unwrap();
    }
    assert!(world.received().await.is_empty());
    let timeline = world.timeline("flask-web-app", "7a7a7a7a-5555-4c4c-8d8d-1e1e1e1e1e1e").await;
    assert_eq!(timeline.entries.len(), 1, "the approval event is in the audit timeline");

    let chatty = world.notifier("approval,stage:FAILED,pipeline:STARTED", false);
    chatty.handle(event("codepipeline-action-approval-waiting.json"), "x1", now()).await.unwrap();
    chatty.handle(event("codepipeline-stage-build-failed.json"), "x2", now()).await.unwrap();
    let mut got = world.received().await;
    got.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(
        got[0].subject.as_deref(),
        Some("[APPROVAL] flask-web-app: approval waiting at Approve/ProductionApproval")
    );
    assert_eq!(got[0].attributes["state"], "APPROVAL_WAITING");
    assert_eq!(got[1].subject.as_deref(), Some("[FAILED] flask-web-app-legacy: stage Build FAILED"));
}

#[tokio::test]
async fn codestar_notification_via_sns_and_chat_format() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, true);

    notifier.handle(event("sns-codestar-pipeline-notification.json"), "c1", now()).await.unwrap();

    let text = world.received().await;
    assert_eq!(text.len(), 1);
    assert!(text[0].message.contains("Failed:     stage Deploy, action Deploy"), "{}", text[0].message);
    assert!(text[0].message.contains("ScriptFailed in ValidateService on i-0123456789abcdef0"));
    let chat = world.aws.received(&world.chat).await;
    assert_eq!(chat.len(), 1);
    let doc: Value = serde_json::from_str(&chat[0].message).expect("chat message is JSON");
    assert_eq!(doc["version"], "1.0");
    assert_eq!(doc["source"], "custom");
    assert_eq!(doc["content"]["textType"], "client-markdown");
    assert_eq!(doc["content"]["title"], ":x: flask-web-app FAILED");
    assert!(doc["content"]["description"].as_str().unwrap().contains("*Failed:* stage Deploy"));
    assert_eq!(chat[0].attributes["severity"], "critical");
}

#[tokio::test]
async fn chat_text_from_commits_cannot_inject_markup() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, true);
    let mut succeeded = event("codepipeline-pipeline-succeeded-v2.json");
    succeeded["detail"]["execution-trigger"]["commit-message"] =
        json!("<!channel> see <https://evil.example|here> *now*");

    notifier.handle(succeeded, "i1", now()).await.unwrap();

    let chat = world.aws.received(&world.chat).await;
    let doc: Value = serde_json::from_str(&chat[0].message).unwrap();
    let description = doc["content"]["description"].as_str().unwrap();
    assert!(!description.contains("<!channel>"), "{description}");
    assert!(!description.contains("<https://evil.example"), "{description}");
    assert!(description.contains("&lt;!channel&gt;"), "{description}");
}

#[tokio::test]
async fn failed_publish_fails_the_invocation_and_the_retry_sends_exactly_one() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    // Every attempt the SDK makes (it retries 5xx itself) fails.
    world.aws.inject_fault("Publish", 500, "InternalError", 10).await;

    let err = notifier.handle(event("codepipeline-pipeline-stopped.json"), "first", now()).await.unwrap_err();
    assert!(matches!(err, NotifierError::Delivery { .. }), "{err}");
    assert!(err.to_string().contains("pipeline:STOPPED:attempt-1"), "{err}");
    assert!(world.received().await.is_empty());

    world.aws.clear_faults().await;

    notifier.handle(event("codepipeline-pipeline-stopped.json"), "retry", now()).await.unwrap();
    notifier.handle(event("codepipeline-pipeline-stopped.json"), "retry-again", now()).await.unwrap();
    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].subject.as_deref(), Some("[STOPPED] flask-web-app"));
}

#[tokio::test]
async fn bad_events_are_acknowledged_with_a_clear_error_and_nothing_sent() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    let mut broken = event("codepipeline-pipeline-stopped.json");
    broken["detail"].as_object_mut().unwrap().remove("pipeline");

    let out = notifier.handle(broken, "bad", now()).await.unwrap();
    let out2 = notifier.handle(json!({"unrelated": true}), "bad2", now()).await.unwrap();

    assert!(out["ignored"].as_str().unwrap().contains("detail.pipeline"), "{out}");
    assert!(out2["ignored"].as_str().unwrap().contains("not a CodePipeline event"), "{out2}");
    assert!(world.received().await.is_empty());
    assert!(world.aws.keys(BUCKET).await.is_empty());
}

#[tokio::test]
async fn storage_outage_fails_the_invocation_so_it_is_retried() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    world.aws.inject_fault("GetObject", 503, "SlowDown", 10).await;

    let err = notifier.handle(event("codepipeline-pipeline-stopped.json"), "s3down", now()).await.unwrap_err();

    assert!(matches!(err, NotifierError::Ledger { .. }), "{err}");
    assert_eq!(err.retry(), pipewarden_shared::lambda::Retry::Helps);
    assert!(world.received().await.is_empty());
}

/// What the Lambda runtime gives the handler: work bounded by a deadline `seconds` from now.
async fn handle_within(
    notifier: &TestNotifier,
    seconds: u64,
    payload: Value,
    token: &str,
) -> (Result<Value, NotifierError>, std::time::Duration) {
    let started = Instant::now();
    let work = notifier.handle(payload, token, now());
    let result = deadline::within(started + std::time::Duration::from_secs(seconds), work).await;
    (result, started.elapsed())
}

#[tokio::test]
async fn hanging_sns_stops_before_the_deadline_and_the_retry_sends_exactly_one() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    world.aws.inject_hang("Publish", 6_000, 5).await;

    let (result, took) = handle_within(&notifier, 3, event("codepipeline-pipeline-stopped.json"), "req-1").await;

    let err = result.unwrap_err();
    assert!(took < std::time::Duration::from_secs(3), "stopped after {took:?}, past the 3 s deadline");
    assert!(matches!(err, NotifierError::Delivery { .. }), "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert_eq!(err.retry(), Retry::Helps);
    assert!(world.received().await.is_empty());

    world.aws.clear_faults().await;
    // Lambda retries an asynchronous invocation with the same request id.
    let (retry, _) = handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-1").await;
    retry.unwrap();
    let (again, _) = handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-2").await;
    again.unwrap();
    assert_eq!(world.received().await.len(), 1);
}

/// Issue 15: one topic's publish hangs to the deadline while the other's is accepted. The accepted
/// one is recorded and the hung one's claim released in the time kept for settling, so a retry
/// (here with another request id, as a redelivered event has) sends only the missing one, and
/// neither topic gets the outcome twice.
#[tokio::test]
async fn a_partial_timeout_is_settled_and_the_retry_sends_only_what_is_missing() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, true);
    world.aws.inject_hang("Publish", 8_000, 1).await;

    let (result, took) = handle_within(&notifier, 4, event("codepipeline-pipeline-stopped.json"), "req-1").await;

    let err = result.unwrap_err();
    assert!(took < std::time::Duration::from_secs(4), "stopped after {took:?}, past the 4 s deadline");
    assert!(err.to_string().contains("timeout"), "{err}");
    // `received` drains what arrived since the last look.
    let first = [world.received().await.len(), world.aws.received(&world.chat).await.len()];
    assert_eq!(first.iter().sum::<usize>(), 1, "one topic got it, the other hung: {first:?}");
    world.aws.clear_faults().await;
    let (again, _) = handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-2").await;
    again.unwrap();
    let then = [world.received().await.len(), world.aws.received(&world.chat).await.len()];
    assert_eq!([first[0] + then[0], first[1] + then[1]], [1, 1], "each topic got the outcome once: {then:?}");
}

/// Issue 15: the lookups that explain a failure share the invocation with the publish after them;
/// one that hangs costs the detail, never the FAILED notification.
#[tokio::test]
async fn a_hanging_failure_lookup_still_leaves_the_failed_notification() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    world.aws.inject_hang("ListActionExecutions", 10_000, 5).await;

    let (result, took) = handle_within(&notifier, 5, event("codepipeline-pipeline-failed-v1.json"), "req-1").await;

    result.unwrap();
    assert!(took < std::time::Duration::from_secs(5), "answered after {took:?}");
    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].attributes["state"], "FAILED");
}

#[tokio::test]
async fn hanging_s3_stops_before_the_deadline_and_nothing_is_sent() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    world.aws.inject_hang("GetObject", 6_000, 5).await;

    let (result, took) = handle_within(&notifier, 3, event("codepipeline-pipeline-stopped.json"), "req-1").await;

    let err = result.unwrap_err();
    assert!(took < std::time::Duration::from_secs(3), "stopped after {took:?}");
    assert!(matches!(err, NotifierError::Ledger { .. }), "{err}");
    assert_eq!(err.retry(), Retry::Helps);
    assert!(world.received().await.is_empty());
    world.aws.clear_faults().await;
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-1").await.0.unwrap();
    assert_eq!(world.received().await.len(), 1);
}

#[tokio::test]
async fn dropped_connections_fail_the_invocation_and_the_retry_sends_exactly_one() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    // More drops than the SDK has attempts.
    world.aws.inject_drop("Publish", 10).await;

    let (result, _) = handle_within(&notifier, 20, event("codepipeline-pipeline-stopped.json"), "req-1").await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("network error"), "{err}");
    assert_eq!(err.retry(), Retry::Helps);
    assert!(world.received().await.is_empty());

    world.aws.clear_faults().await;
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-1").await.0.unwrap();
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-3").await.0.unwrap();
    assert_eq!(world.received().await.len(), 1);
}

#[tokio::test]
async fn one_dropped_connection_is_retried_by_the_sdk_and_sends_once() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    world.aws.inject_drop("Publish", 1).await;
    world.aws.inject_drop("PutObject", 1).await;

    handle_within(&notifier, 20, event("codepipeline-pipeline-stopped.json"), "req-1").await.0.unwrap();
    assert_eq!(world.received().await.len(), 1);
}

#[tokio::test]
async fn throttled_sns_fails_the_invocation_and_the_retry_sends_exactly_one() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    world.aws.inject_fault("Publish", 400, "Throttling", 10).await;

    let (result, _) = handle_within(&notifier, 20, event("codepipeline-pipeline-stopped.json"), "req-1").await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("throttled"), "{err}");
    assert_eq!(err.retry(), Retry::Helps);
    assert!(world.received().await.is_empty());

    world.aws.clear_faults().await;
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-1").await.0.unwrap();
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-2").await.0.unwrap();
    assert_eq!(world.received().await.len(), 1);
}

// --- the commit and lead time from GetPipelineExecution -------------------------------------------

const LEGACY_EXECUTION: &str = "3b9e7d21-1111-4c2d-8e3f-dd44ee55ff66";
const V2_EXECUTION: &str = "8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33";
const V2_COMMIT: &str = "7c4a9e3f1b2d6e5a8c0f3b9d2e1a4c6b8d0e2f13";

/// The V1 pipeline of `codepipeline-pipeline-failed-v1.json`, run from a CodeCommit commit.
async fn seed_legacy_execution(aws: &Emulator) {
    aws.pipeline_execution(json!({
        "pipelineName": "flask-web-app-legacy",
        "pipelineVersion": 1,
        "pipelineExecutionId": LEGACY_EXECUTION,
        "status": "Failed",
        "statusSummary": "Build failed",
        "artifactRevisions": [{
            "name": "SourceArtifact",
            "revisionId": "e4d5c6b7a8091a2b3c4d5e6f708192a3b4c5d6e7",
            "revisionChangeIdentifier": "2026-11-20T10:41:05Z",
            "revisionSummary": "Pin pytest to 8.3 so the build is reproducible\n\nThe runner image moved to 9.0.",
            "created": "2026-11-20T10:41:05Z",
            "revisionUrl": "https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/flask-web-app/commit/e4d5c6b7a8091a2b3c4d5e6f708192a3b4c5d6e7?region=eu-west-1"
        }],
        "trigger": {"triggerType": "StartPipelineExecution", "triggerDetail": "arn:aws:sts::123456789012:assumed-role/Admin/jdoe"},
        "executionMode": "SUPERSEDED"
    }))
    .await;
}

/// The V2 pipeline of the `-v2` samples, run from a GitHub commit through a CodeStar connection
/// (whose summary is a JSON object), created at `created`.
async fn seed_v2_execution(aws: &Emulator, created: &str) {
    aws.pipeline_execution(json!({
        "pipelineName": "flask-web-app",
        "pipelineVersion": 4,
        "pipelineExecutionId": V2_EXECUTION,
        "status": "Succeeded",
        "artifactRevisions": [{
            "name": "SourceArtifact",
            "revisionId": V2_COMMIT,
            "revisionSummary": "{\"ProviderType\":\"GitHub\",\"CommitMessage\":\"Fix health check path for nginx\"}",
            "created": created,
            "revisionUrl": format!("https://us-east-1.console.aws.amazon.com/codesuite/settings/connections/redirect?connectionArn=arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d&referenceType=COMMIT&FullRepositoryId=example-org/flask-web-app&Commit={V2_COMMIT}")
        }],
        "trigger": {"triggerType": "WebhookV2", "triggerDetail": "arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d"},
        "executionMode": "QUEUED"
    }))
    .await;
}

fn build_failure_events() -> [(&'static str, Value); 3] {
    [
        ("a", event("codepipeline-action-build-failed.json")),
        ("b", event("codepipeline-stage-build-failed.json")),
        ("c", event("codepipeline-pipeline-failed-v1.json")),
    ]
}

#[tokio::test]
async fn v1_pipeline_failure_names_the_commit_from_get_pipeline_execution() {
    let world = World::new().await;
    seed_legacy_execution(&world.aws).await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, true);

    for (token, payload) in build_failure_events() {
        notifier.handle(payload, token, now()).await.unwrap();
    }

    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let text = &got[0].message;
    assert!(
        text.contains(
            "Revision:   e4d5c6b7 \"Pin pytest to 8.3 so the build is reproducible\" https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/flask-web-app/commit/e4d5c6b7a8091a2b3c4d5e6f708192a3b4c5d6e7?region=eu-west-1"
        ),
        "{text}"
    );
    assert!(!text.contains("The runner image moved"), "the summary's first line only: {text}");
    assert!(
        text.contains("Trigger:    StartPipelineExecution (arn:aws:sts::123456789012:assumed-role/Admin/jdoe)"),
        "a V1 event's trigger is still told: {text}"
    );
    assert!(text.contains("Failed:     stage Build, action Build (CodeBuild)"), "{text}");
    let chat = world.aws.received(&world.chat).await;
    let doc: Value = serde_json::from_str(&chat[0].message).unwrap();
    assert!(
        doc["content"]["description"].as_str().unwrap().contains("*Revision:* <https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/flask-web-app/commit/e4d5c6b7a8091a2b3c4d5e6f708192a3b4c5d6e7?region=eu-west-1|e4d5c6b7> \"Pin pytest to 8.3 so the build is reproducible\""),
        "{doc:#}"
    );
    assert_eq!(
        world.aws.calls().await.get("GetPipelineExecution"),
        Some(&1),
        "one lookup for the outcome, none for the action and stage events"
    );
    let metrics = notifier.metrics.0.lock().unwrap().clone();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["ChangeFailures"], 1);
    assert_eq!(metrics[0]["LeadTimeSeconds"], Value::Null, "lead time is a measure of successful deployments");
}

#[tokio::test]
async fn v2_success_emits_lead_time_from_the_revision_to_the_success() {
    let world = World::new().await;
    // Not the trigger's author-date (09:58:12): the revision GetPipelineExecution names is the source.
    seed_v2_execution(&world.aws, "2026-11-20T09:55:00Z").await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);

    notifier.handle(event("codepipeline-pipeline-started-v2.json"), "r1", now()).await.unwrap();
    notifier.handle(event("codepipeline-pipeline-succeeded-v2.json"), "r2", now()).await.unwrap();
    notifier.handle(event("codepipeline-pipeline-succeeded-v2.json"), "r3", now()).await.unwrap();

    let metrics = notifier.metrics.0.lock().unwrap().clone();
    assert_eq!(metrics.len(), 1, "{metrics:#?}");
    // SUCCEEDED at 10:12:30, the commit created at 09:55:00.
    assert_eq!(metrics[0]["LeadTimeSeconds"], 17 * 60 + 30);
    assert_eq!(metrics[0]["Deployments"], 1);
    let declared = metrics[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
    assert!(declared.contains(&json!({"Name": "LeadTimeSeconds", "Unit": "Seconds"})), "{declared:?}");
    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let text = &got[0].message;
    assert!(text.contains("Revision:   7c4a9e3f \"Fix health check path for nginx\" https://us-east-1.console.aws.amazon.com/codesuite/settings/connections/redirect?"), "{text}");
    assert!(
        text.contains("Trigger:    by Mary Major on main (CodeStarSourceConnection)"),
        "the commit is not told twice: {text}"
    );
    assert_eq!(world.aws.calls().await.get("GetPipelineExecution"), Some(&1), "once per outcome, not per duplicate");
}

#[tokio::test]
async fn lead_time_is_measured_even_when_success_is_not_notified() {
    let world = World::new().await;
    seed_v2_execution(&world.aws, "2026-11-20T10:00:00Z").await;
    let notifier = world.notifier("pipeline:FAILED", false);

    notifier.handle(event("codepipeline-pipeline-succeeded-v2.json"), "r1", now()).await.unwrap();

    assert!(world.received().await.is_empty());
    let metrics = notifier.metrics.0.lock().unwrap().clone();
    assert_eq!(metrics.len(), 1, "{metrics:#?}");
    assert_eq!(metrics[0]["LeadTimeSeconds"], 12 * 60 + 30);
}

#[tokio::test]
async fn failing_get_pipeline_execution_still_notifies_without_the_commit() {
    let world = World::new().await;
    seed_legacy_execution(&world.aws).await;
    // More failures than the SDK has attempts.
    world.aws.inject_fault("GetPipelineExecution", 500, "InternalFailure", 10).await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);

    for (token, payload) in build_failure_events() {
        notifier.handle(payload, token, now()).await.unwrap();
    }

    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let text = &got[0].message;
    assert!(!text.contains("Revision:"), "{text}");
    assert!(text.contains("Failed:     stage Build, action Build (CodeBuild)"), "the rest is all there: {text}");
    assert!(text.contains("Trigger:    StartPipelineExecution"), "{text}");
    assert!(world.aws.calls().await["GetPipelineExecution"] >= 2, "the SDK retried the 500s");
}

#[tokio::test]
async fn hanging_get_pipeline_execution_leaves_time_to_notify_before_the_deadline() {
    let world = World::new().await;
    seed_v2_execution(&world.aws, "2026-11-20T09:55:00Z").await;
    world.aws.inject_hang("GetPipelineExecution", 8_000, 5).await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);

    let (result, took) = handle_within(&notifier, 4, event("codepipeline-pipeline-succeeded-v2.json"), "r1").await;

    result.unwrap();
    assert!(took < std::time::Duration::from_secs(4), "answered after {took:?}, past the 4 s deadline");
    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(!got[0].message.contains("Revision:"), "{}", got[0].message);
    let metrics = notifier.metrics.0.lock().unwrap().clone();
    assert_eq!(metrics[0]["LeadTimeSeconds"], Value::Null, "unknown, not guessed");
}

#[tokio::test]
async fn get_pipeline_execution_answers_as_aws_does_for_unknown_and_malformed_requests() {
    let world = World::new().await;
    seed_legacy_execution(&world.aws).await;
    let lookups = CodePipelineExecutions::new(aws_sdk_codepipeline::Client::new(&world.aws.sdk));

    let found = lookups.source_revisions("flask-web-app-legacy", LEGACY_EXECUTION).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].artifact.as_deref(), Some("SourceArtifact"));
    assert_eq!(
        found[0].summary.as_deref(),
        Some("Pin pytest to 8.3 so the build is reproducible\n\nThe runner image moved to 9.0.")
    );
    assert_eq!(found[0].created, Some("2026-11-20T10:41:05Z".parse().unwrap()));

    for (pipeline, execution, code) in [
        ("flask-web-app-legacy", "3b9e7d21-1111-4c2d-8e3f-000000000000", "PipelineExecutionNotFoundException"),
        ("no-such-pipeline", LEGACY_EXECUTION, "PipelineNotFoundException"),
        ("flask-web-app-legacy", "not-an-execution-id", "ValidationException"),
        ("flask web app", LEGACY_EXECUTION, "ValidationException"),
    ] {
        let err = lookups.source_revisions(pipeline, execution).await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Rejected, "{err}");
        assert!(err.to_string().contains(&format!("{code} (HTTP 400)")), "{pipeline} {execution}: {err}");
    }

    // What AWS would never answer is refused when seeded, naming the member at fault.
    let (status, body) = world
        .aws
        .control_answer(
            "pipeline-executions",
            json!({"pipelineExecution": {
                "pipelineName": "flask-web-app-legacy",
                "pipelineExecutionId": LEGACY_EXECUTION,
                "status": "Done",
                "artifactRevisions": [{"revisionId": "", "created": "yesterday"}]
            }}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = world
        .aws
        .control_answer(
            "pipeline-executions",
            json!({"pipelineExecution": {
                "pipelineName": "flask-web-app-legacy",
                "pipelineExecutionId": LEGACY_EXECUTION,
                "status": "Done",
                "artifactRevisions": [{"revisionId": "", "commitId": "abc"}]
            }}),
        )
        .await;
    assert_eq!(status, 400);
    let problem = body["error"].as_str().unwrap();
    assert!(problem.contains("'pipelineExecution.status'"), "{problem}");
    assert!(problem.contains("'pipelineExecution.artifactRevisions.1.member.revisionId'"), "{problem}");
    assert!(problem.contains("Unknown member 'commitId'"), "{problem}");
}

// ---------------------------------------------------------------------------------------------
// Accepted, then the answer lost: the request took effect in AWS, the client saw the connection
// reset, and the SDK sent it again.

#[tokio::test]
async fn a_claim_written_then_its_answer_lost_is_recognised_and_sends_once() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    // The first PutObject is the timeline's claim (If-None-Match: *): S3 stores it, the answer is
    // lost, and the SDK's retry of the conditional write gets 412.
    world.aws.inject_drop_after("PutObject", 1).await;

    let (result, _) = handle_within(&notifier, 20, event("codepipeline-pipeline-stopped.json"), "req-1").await;

    result.unwrap();
    assert_eq!(world.received().await.len(), 1, "our own claim was recognised on the re-read");
    let calls = world.aws.calls().await;
    // The claim (stored, answer lost), the SDK's retry of it (412: the object exists), the claim
    // again on the version just read (our token's claim: ours to go on with), the settle.
    assert_eq!(calls["PutObject"], 4, "{calls:?}");
    let timeline = world.timeline("flask-web-app", "5e5e5e5e-3333-4a4a-8b8b-9c9c9c9c9c9c").await;
    let deliveries: Vec<&Delivery> = timeline.deliveries.values().collect();
    assert_eq!(deliveries.len(), 1);
    assert!(matches!(deliveries[0], Delivery::Sent { .. }), "{deliveries:?}");

    // Lambda's retry (same request id) and a duplicate send nothing more.
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-1").await.0.unwrap();
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-2").await.0.unwrap();
    assert!(world.received().await.is_empty());
}

#[tokio::test]
async fn a_publish_accepted_then_its_answer_lost_reaches_the_subscriber_twice() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    // SNS accepts the publish and delivers it; the answer is lost; the SDK publishes again, and a
    // standard topic has no deduplication. This is the one documented duplicate (RELIABILITY.md).
    world.aws.inject_drop_after("Publish", 1).await;

    let (result, _) = handle_within(&notifier, 20, event("codepipeline-pipeline-stopped.json"), "req-1").await;

    result.unwrap();
    let got = world.received().await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].message, got[1].message);
    assert_eq!(world.aws.calls().await["Publish"], 2);
    // The second answer was recorded as sent: nothing more on a Lambda retry or a duplicate.
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-1").await.0.unwrap();
    handle_within(&notifier, 10, event("codepipeline-pipeline-stopped.json"), "req-2").await.0.unwrap();
    assert!(world.received().await.is_empty());
}

/// An object store whose reads of the pipeline's health go in pairs, the first four of them: each
/// finishes only when another invocation's has, so two outcomes read the same health, as two
/// invocations at once do. (Each success reads the health twice: for its message, whether it ends a
/// failing streak; then to record itself.)
struct HealthRace {
    inner: S3ObjectStore,
    reads: std::sync::atomic::AtomicUsize,
    barrier: tokio::sync::Barrier,
}

impl pipewarden_shared::ports::ObjectStore for HealthRace {
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<pipewarden_shared::ports::StoredObject>, pipewarden_shared::ports::PortError> {
        let got = self.inner.get(key).await;
        if key.starts_with("pipeline-notifier/pipelines/")
            && self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 4
        {
            self.barrier.wait().await;
        }
        got
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: pipewarden_shared::ports::WriteCondition,
    ) -> Result<pipewarden_shared::ports::PutOutcome, pipewarden_shared::ports::PortError> {
        self.inner.put(key, body, content_type, condition).await
    }
}

/// Issue 15: pipeline health was written unconditionally, outside the ledger. Two executions
/// succeeding together after a failure both read "failing since" and both reported a time to
/// restore: one recovery counted twice. Written conditionally, the second sees the first.
#[tokio::test]
async fn two_successes_at_once_after_a_failure_are_one_recovery() {
    let world = World::new().await;
    world
        .notifier(DEFAULT_NOTIFY_ON, false)
        .handle(event("codepipeline-pipeline-deploy-failed-v2.json"), "f", now())
        .await
        .unwrap();
    let base = world.notifier(DEFAULT_NOTIFY_ON, false);
    let notifier = Notifier {
        config: base.config,
        publisher: base.publisher,
        store: HealthRace {
            inner: S3ObjectStore::new(world.aws.s3(), BUCKET),
            reads: Default::default(),
            barrier: tokio::sync::Barrier::new(2),
        },
        history: base.history,
        diagnostics: base.diagnostics,
        revisions: base.revisions,
        metrics: CollectedMetrics::default(),
    };
    let succeeded = |execution: &str, time: &str| {
        let mut e = event("codepipeline-pipeline-succeeded-v2.json");
        e["id"] = json!(format!("id-{execution}"));
        e["time"] = json!(time);
        e["detail"]["execution-id"] = json!(execution);
        e
    };

    let (a, b) = tokio::join!(
        notifier.handle(succeeded("aaaaaaaa-0000-4a6b-9c1d-000000000001", "2026-11-21T15:00:00Z"), "a", now()),
        notifier.handle(succeeded("bbbbbbbb-0000-4a6b-9c1d-000000000002", "2026-11-21T15:10:00Z"), "b", now()),
    );
    a.unwrap();
    b.unwrap();

    let metrics = notifier.metrics.0.lock().unwrap().clone();
    let restores: Vec<&Value> = metrics.iter().map(|m| &m["TimeToRestoreSeconds"]).filter(|t| !t.is_null()).collect();
    assert_eq!(restores.len(), 1, "one recovery, one time to restore: {metrics:#?}");
}

/// The success that ends a failing streak says so, and since when: a FAILED execution, then a
/// later SUCCEEDED one of the same pipeline.
#[tokio::test]
async fn a_success_after_a_failure_says_the_pipeline_was_restored_and_since_when() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, true);
    let mut succeeded = event("codepipeline-pipeline-succeeded-v2.json");
    succeeded["time"] = json!("2026-11-21T14:55:20Z");
    succeeded["region"] = json!("us-west-2");
    succeeded["detail"]["start-time"] = json!("2026-11-21T14:40:00.000Z");

    notifier.handle(event("codepipeline-pipeline-deploy-failed-v2.json"), "req-1", now()).await.unwrap();
    notifier.handle(succeeded, "req-2", now()).await.unwrap();

    let got = world.received().await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(!got[0].message.contains("Restored"), "{}", got[0].message);
    assert!(
        got[1].message.starts_with(
            "Pipeline flask-web-app SUCCEEDED\n\nRestored:   the pipeline had been failing since 2026-11-21 14:21:09 UTC (34 minutes, 1 failed execution)\n"
        ),
        "{}",
        got[1].message
    );
    let chat = world.aws.received(&world.chat).await;
    let doc: Value = serde_json::from_str(&chat[1].message).unwrap();
    let description = doc["content"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("*Restored:* failing since 2026-11-21 14:21 UTC (34 minutes, 1 failed execution)\n"),
        "{description}"
    );
}

/// The template's delivery dashboard graphs what the notifier emits: every SEARCH names a
/// namespace, a dimension set and a metric that the notifier's EMF documents declare, after a
/// failure and the success that restores the pipeline (with its lead time).
#[tokio::test]
async fn the_delivery_dashboard_graphs_the_metrics_the_notifier_emits() {
    let world = World::new().await;
    seed_v2_execution(&world.aws, "2026-11-20T09:55:00Z").await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    let mut succeeded = event("codepipeline-pipeline-succeeded-v2.json");
    succeeded["time"] = json!("2026-11-21T14:55:20Z");
    notifier.handle(event("codepipeline-pipeline-deploy-failed-v2.json"), "req-1", now()).await.unwrap();
    notifier.handle(succeeded, "req-2", now()).await.unwrap();
    let emitted = notifier.metrics.0.lock().unwrap().clone();
    assert_eq!(emitted.len(), 2, "{emitted:#?}");
    let declares = |namespace: &str, dimensions: &[&str], metric: &str| {
        emitted.iter().any(|doc| {
            doc["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten().any(|set| {
                set["Namespace"] == namespace
                    && set["Dimensions"].as_array().is_some_and(|d| d.contains(&json!(dimensions)))
                    && set["Metrics"].as_array().is_some_and(|m| m.iter().any(|m| m["Name"] == metric))
            })
        })
    };

    let template = pipewarden_devkit::template_json();
    let dashboard = &template["Resources"]["DeliveryDashboardResource"];
    assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboard["Condition"], "WantsDashboard");
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"].as_str().expect("a Fn::Sub body");
    let body: Value =
        serde_json::from_str(&body.replace("${AWS::Region}", "us-east-1").replace("${AWS::StackName}", "pipewarden"))
            .expect("the dashboard body is JSON");
    let search = searches();
    let mut graphed = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        let queries: Vec<&Value> = widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row.as_array())
            .flatten()
            .collect();
        let ids: Vec<&str> = queries.iter().filter_map(|q| q["id"].as_str()).collect();
        for query in queries {
            let Some(expression) = query["expression"].as_str() else { continue };
            for (namespace, dimensions, metric) in search(expression) {
                let dimensions: Vec<&str> = dimensions.iter().map(String::as_str).collect();
                assert!(
                    declares(&namespace, &dimensions, &metric),
                    "{expression}: the notifier declares no {metric} in {namespace} by {dimensions:?}"
                );
                graphed.push(metric);
            }
            // Metric math (no SEARCH of its own) names only queries of its own widget.
            if !expression.contains("SEARCH(") {
                for word in expression.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
                    if word.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                        assert!(ids.contains(&word), "{expression}: {word} is no query of this widget ({ids:?})");
                    }
                }
            }
        }
    }
    graphed.sort();
    graphed.dedup();
    assert_eq!(
        graphed,
        ["ChangeFailures", "Deployments", "DurationSeconds", "Executions", "LeadTimeSeconds", "TimeToRestoreSeconds"],
        "every DORA measure the notifier emits is on the dashboard"
    );
}

/// `SEARCH('{Namespace,Dim1,Dim2} MetricName="X"', ...)` occurrences: (namespace, dimensions, X).
fn searches() -> impl Fn(&str) -> Vec<(String, Vec<String>, String)> {
    |expression: &str| {
        expression
            .split("SEARCH('{")
            .skip(1)
            .map(|rest| {
                let (schema, rest) = rest.split_once('}').expect("a schema in braces");
                let mut parts = schema.split(',').map(|p| p.trim().to_string());
                let namespace = parts.next().unwrap();
                let metric = rest.split("MetricName=\"").nth(1).and_then(|r| r.split('"').next()).expect("MetricName");
                (namespace, parts.collect(), metric.to_string())
            })
            .collect()
    }
}

/// A pipeline that keeps failing says since when and how many in a row, once per execution
/// (a retried outcome sends nothing more and counts once), and the success that ends it counts
/// them.
#[tokio::test]
async fn a_pipeline_that_keeps_failing_says_so_and_its_recovery_counts_the_failures() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    let failed = |n: u32, time: &str| {
        let mut e = event("codepipeline-pipeline-deploy-failed-v2.json");
        e["id"] = json!(format!("failed-{n}"));
        e["time"] = json!(time);
        e["detail"]["execution-id"] = json!(format!("c0ffee00-2222-4e5f-8a9b-00000000000{n}"));
        e
    };
    notifier.handle(failed(1, "2026-11-21T14:21:09Z"), "req-1", now()).await.unwrap();
    notifier.handle(failed(2, "2026-11-21T14:40:00Z"), "req-2", now()).await.unwrap();
    // Lambda retries the second one's event: nothing new is sent, and it counts once.
    notifier.handle(failed(2, "2026-11-21T14:40:00Z"), "req-2-retry", now()).await.unwrap();
    notifier.handle(failed(3, "2026-11-21T15:01:09Z"), "req-3", now()).await.unwrap();
    let mut succeeded = event("codepipeline-pipeline-succeeded-v2.json");
    succeeded["time"] = json!("2026-11-21T15:21:09Z");
    notifier.handle(succeeded, "req-4", now()).await.unwrap();

    let got = world.received().await;
    let second_lines: Vec<String> = got.iter().map(|m| m.message.lines().nth(2).unwrap_or("").to_string()).collect();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(!got[0].message.contains("Failing:"), "the first failure is no streak: {}", got[0].message);
    assert_eq!(second_lines[1], "Failing:    since 2026-11-21 14:21:09 UTC (18 minutes): 2 failed executions in a row");
    assert_eq!(second_lines[2], "Failing:    since 2026-11-21 14:21:09 UTC (40 minutes): 3 failed executions in a row");
    assert_eq!(
        second_lines[3],
        "Restored:   the pipeline had been failing since 2026-11-21 14:21:09 UTC (1 hour, 3 failed executions)"
    );
}

/// Where the time went: each outcome lists its stages with their durations, and once the
/// pipeline has five executions behind it, a stage much slower than its median says so.
#[tokio::test]
async fn the_outcome_says_where_the_time_went_and_flags_a_stage_slower_than_usual() {
    let world = World::new().await;
    let notifier = world.notifier(DEFAULT_NOTIFY_ON, false);
    let succeeded = event("codepipeline-pipeline-succeeded-v2.json");
    let pipeline = succeeded["detail"]["pipeline"].clone();
    let at = |minutes: i64| {
        (DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap() + chrono::Duration::minutes(minutes))
            .to_rfc3339()
    };
    for n in 0..6i64 {
        let execution = format!("8f2a1c3e-0000-4a6b-9c1d-0000000000{n:02}");
        let start = n * 60;
        // Build takes 2 minutes, except the sixth time: 7.
        let build = if n == 5 { 7 } else { 2 };
        for (i, (state, minute)) in [("STARTED", start + 1), ("SUCCEEDED", start + 1 + build)].into_iter().enumerate() {
            let mut stage = event("codepipeline-stage-build-failed.json");
            stage["id"] = json!(format!("stage-{n}-{i}"));
            stage["time"] = json!(at(minute));
            stage["region"] = succeeded["region"].clone();
            stage["detail"]["pipeline"] = pipeline.clone();
            stage["detail"]["execution-id"] = json!(execution);
            stage["detail"]["state"] = json!(state);
            notifier.handle(stage, &format!("req-stage-{n}-{i}"), now()).await.unwrap();
        }
        let mut done = succeeded.clone();
        done["id"] = json!(format!("done-{n}"));
        done["time"] = json!(at(start + 2 + build));
        done["detail"]["execution-id"] = json!(execution);
        done["detail"]["start-time"] = json!(at(start));
        notifier.handle(done, &format!("req-done-{n}"), now()).await.unwrap();
    }

    let got = world.received().await;
    assert_eq!(got.len(), 6, "{got:#?}");
    let stages = |m: &Notification| m.message.lines().find(|l| l.starts_with("Stages:")).map(str::to_string);
    assert_eq!(stages(&got[0]).as_deref(), Some("Stages:     Build 2m 00s"), "{}", got[0].message);
    assert_eq!(stages(&got[4]).as_deref(), Some("Stages:     Build 2m 00s"));
    assert_eq!(
        stages(&got[5]).as_deref(),
        Some("Stages:     Build 7m 00s (slow: usually 2m 00s)"),
        "{}",
        got[5].message
    );
}

/// The DORA digest: two weeks of executions of two pipelines sent as events, then the schedule
/// rule's Scheduled Event; each pipeline's digest holds the README's hand-computed figures, goes
/// to both topics once, and the event's retry sends nothing more.
#[tokio::test]
async fn the_weekly_digest_counts_what_the_notifier_saw_against_the_week_before() {
    use pipeline_notifier::digest::{Period, Scope};
    let world = World::new().await;
    let mut notifier = world.notifier(DEFAULT_NOTIFY_ON, true);
    notifier.config.digest = Some((Period::Weekly, Scope::EachPipeline));
    let outcome = |pipeline: &str, execution: &str, state: &str, started: &str, ended: &str| {
        let mut e = event(if state == "SUCCEEDED" {
            "codepipeline-pipeline-succeeded-v2.json"
        } else {
            "codepipeline-pipeline-deploy-failed-v2.json"
        });
        e["id"] = json!(format!("{pipeline}-{execution}-{state}"));
        e["time"] = json!(ended);
        e["detail"]["pipeline"] = json!(pipeline);
        e["detail"]["execution-id"] = json!(execution);
        e["detail"]["start-time"] = json!(started);
        e
    };
    let runs = [
        // The week before the digest's (2026-11-13 08:00 to 2026-11-20 08:00).
        ("web", "p1", "SUCCEEDED", "2026-11-16T09:55:00Z", "2026-11-16T10:00:00Z"),
        ("web", "p2", "FAILED", "2026-11-17T09:58:20Z", "2026-11-17T10:00:00Z"),
        ("web", "p3", "SUCCEEDED", "2026-11-18T09:51:40Z", "2026-11-18T10:00:00Z"),
        // The digest's week, to 2026-11-27 08:00.
        ("web", "e1", "SUCCEEDED", "2026-11-23T08:53:20Z", "2026-11-23T09:00:00Z"),
        ("web", "e2", "FAILED", "2026-11-24T08:58:00Z", "2026-11-24T09:00:00Z"),
        ("web", "e4", "SUCCEEDED", "2026-11-26T08:56:40Z", "2026-11-26T09:00:00Z"),
        ("web", "e5", "FAILED", "2026-11-27T06:58:30Z", "2026-11-27T07:00:00Z"),
        ("api", "a1", "SUCCEEDED", "2026-11-25T12:00:00Z", "2026-11-25T12:01:00Z"),
        // After the digest's end: not counted.
        ("web", "e6", "SUCCEEDED", "2026-11-27T08:00:00Z", "2026-11-27T08:10:00Z"),
        // Quiet for two weeks: no digest.
        ("old", "o1", "SUCCEEDED", "2026-10-01T08:00:00Z", "2026-10-01T08:10:00Z"),
    ];
    for (pipeline, execution, state, started, ended) in runs {
        notifier.handle(outcome(pipeline, execution, state, started, ended), "req", now()).await.unwrap();
    }
    let before = world.received().await.len();
    assert_eq!(before, runs.len());

    let mut schedule = event("eventbridge-scheduled-event.json");
    schedule["time"] = json!("2026-11-27T08:00:00Z");
    let answer = notifier.handle(schedule.clone(), "req-digest", now()).await.unwrap();
    assert_eq!(answer["sent"], json!(4), "two pipelines, two topics: {answer}");
    // What the topic's subscriber received since (each read takes what arrived).
    let got = world.received().await;
    let digests: Vec<&Notification> = got.iter().collect();
    assert_eq!(digests.len(), 2, "{digests:#?}");
    let web = digests.iter().find(|m| m.attributes.get("pipeline").map(String::as_str) == Some("web")).unwrap();
    assert_eq!(web.subject.as_deref(), Some("[DIGEST] web: weekly delivery to 2026-11-27"));
    assert_eq!(web.attributes["state"], "DIGEST");
    let lines: Vec<&str> = web.message.lines().collect();
    assert_eq!(lines[0], "Delivery of web, the week to 2026-11-27 08:00 UTC (the week before in brackets)");
    assert_eq!(
        lines[2..10],
        [
            "Executions:           4 (3, up 1)",
            "Success rate:         50% (67%, down 17 points)",
            "Duration (median):    5m 00s (6m 40s, down 1m 40s)",
            "Duration (p90):       6m 20s (8m 00s, down 1m 40s)",
            "Deployments:          2 (2, no change), 0.3 a day",
            "Lead time (median):   - (-, no trend)",
            "Change failure rate:  50% (33%, up 17 points)",
            "Time to restore:      48h 00m (24h 00m, up 24h 00m)",
        ],
        "{}",
        web.message
    );
    let api = digests.iter().find(|m| m.attributes.get("pipeline").map(String::as_str) == Some("api")).unwrap();
    assert!(api.message.contains("Executions:           1 (0, up 1)"), "{}", api.message);

    // The chat topic got the same digests as custom notifications.
    let chat = world.aws.received(&world.chat).await;
    let chat_digests: Vec<Value> = chat
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(&m.message).ok())
        .filter(|v| v["metadata"]["eventType"] == "Pipewarden Delivery Digest")
        .collect();
    assert_eq!(chat_digests.len(), 2);
    let description = chat_digests.iter().map(|v| v["content"]["description"].as_str().unwrap()).collect::<String>();
    assert!(description.contains("*Success rate:* 50% (67%, down 17 points)"), "{description}");

    // EventBridge delivers the same event again: nothing more is sent.
    let again = notifier.handle(schedule, "req-digest-retry", now()).await.unwrap();
    assert_eq!(again["sent"], json!(0), "{again}");
    assert_eq!(world.received().await.len(), 0);
}

/// Approvals from chat: the waiting approval names the stage and action, what it asks (the
/// action's CustomData), what to review (ExternalEntityLink) and who can approve; in chat it
/// carries each button's PutApprovalResult input (with the token GetPipelineState gives). The
/// result says who decided and the comment, as CodePipeline's action history reports them; every
/// message of the execution shares its chat thread.
#[tokio::test]
async fn an_approval_names_what_to_review_and_who_decided_and_chat_can_answer_it() {
    const EXECUTION: &str = "7a7a7a7a-5555-4c4c-8d8d-1e1e1e1e1e1e";
    const TOKEN: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    let world = World::new().await;
    let mut notifier = world.notifier("approval,approval-result,pipeline:FAILED", true);
    notifier.config.approvals.approvers = Some("release managers (role ReleaseManager)".into());
    notifier.config.approvals.chat_actions = true;
    let detail = |status: &str, by: Option<&str>, comment: Option<&str>| {
        let mut d = json!({
            "pipelineExecutionId": EXECUTION, "stageName": "Approve", "actionName": "ProductionApproval",
            "actionExecutionId": "ae-1", "status": status, "startTime": 1795860000,
            "input": {
                "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
                "configuration": {
                    "CustomData": "Release 2.4 to production: check the canary dashboard first",
                    "ExternalEntityLink": "https://grafana.example.com/d/canary"
                }
            }
        });
        if let Some(by) = by {
            d["updatedBy"] = json!(by);
        }
        if let Some(comment) = comment {
            d["output"] = json!({"executionResult": {"externalExecutionSummary": comment}});
        }
        d
    };
    world
        .aws
        .control_post(
            "action-executions",
            json!({"pipelineName": "flask-web-app", "actionExecutionDetails": [detail("InProgress", None, None)]}),
        )
        .await;
    world
        .aws
        .control_post(
            "pipeline-state",
            json!({"pipelineName": "flask-web-app", "stageStates": [{"stageName": "Approve", "actionStates": [{
                "actionName": "ProductionApproval",
                "latestExecution": {"status": "InProgress", "token": TOKEN, "actionExecutionId": "ae-1"}
            }]}]}),
        )
        .await;
    notifier.handle(event("codepipeline-action-approval-waiting.json"), "req-1", now()).await.unwrap();
    let waiting = world.received().await;
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    let lines: Vec<&str> = waiting[0].message.lines().collect();
    assert_eq!(
        lines[2..7],
        [
            "Approval:   stage Approve, action ProductionApproval: waiting for review",
            "Summary:    Release 2.4 to production: check the canary dashboard first",
            "Review:     https://grafana.example.com/d/canary",
            "Approvers:  release managers (role ReleaseManager)",
            "",
        ],
        "{}",
        waiting[0].message
    );
    assert!(!waiting[0].message.contains(TOKEN), "the token is for the buttons only");
    let chat: Vec<Value> =
        world.aws.received(&world.chat).await.iter().map(|m| serde_json::from_str(&m.message).unwrap()).collect();
    assert_eq!(chat.len(), 1);
    let context = &chat[0]["metadata"]["additionalContext"];
    let approve: Value = serde_json::from_str(context["approve"].as_str().unwrap()).unwrap();
    assert_eq!(
        approve,
        json!({"pipelineName": "flask-web-app", "stageName": "Approve", "actionName": "ProductionApproval",
               "result": {"summary": "Approved-from-chat", "status": "Approved"}, "token": TOKEN})
    );
    assert!(!context["approve"].as_str().unwrap().contains(' '), "one word on the command line");
    assert_eq!(
        serde_json::from_str::<Value>(context["reject"].as_str().unwrap()).unwrap()["result"]["status"],
        "Rejected"
    );
    assert_eq!(chat[0]["metadata"]["enableCustomActions"], true);
    let description = chat[0]["content"]["description"].as_str().unwrap();
    assert!(
        description.contains("*Approvers:* release managers \\(role ReleaseManager\\)")
            || description.contains("*Approvers:* release managers (role ReleaseManager)"),
        "{description}"
    );
    assert!(chat[0]["content"]["nextSteps"][0].as_str().unwrap().contains("https://grafana.example.com/d/canary"));

    // Bob rejects it; the action's FAILED and then the pipeline's.
    world
        .aws
        .control_post(
            "action-executions",
            json!({"pipelineName": "flask-web-app", "actionExecutionDetails": [detail(
                "Failed", Some("arn:aws:iam::123456789012:user/Bob"), Some("The canary's p99 is too high")
            )]}),
        )
        .await;
    let mut rejected = event("codepipeline-action-approval-waiting.json");
    rejected["id"] = json!("approval-rejected");
    rejected["time"] = json!("2026-11-22T10:20:00Z");
    rejected["detail"]["state"] = json!("FAILED");
    notifier.handle(rejected, "req-2", now()).await.unwrap();
    let got = world.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].subject.as_deref(), Some("[APPROVAL] flask-web-app: not approved at Approve/ProductionApproval"));
    assert_eq!(got[0].attributes["state"], "APPROVAL_REJECTED");
    let lines: Vec<&str> = got[0].message.lines().collect();
    assert_eq!(
        lines[2..5],
        [
            "Rejected:   stage Approve, action ProductionApproval",
            "By:         Bob (arn:aws:iam::123456789012:user/Bob)",
            "Comment:    The canary's p99 is too high",
        ],
        "{}",
        got[0].message
    );
    assert!(!got[0].message.contains("Failed:"), "a rejection is no failure to explain");
    let mut failed = event("codepipeline-pipeline-deploy-failed-v2.json");
    failed["detail"]["pipeline"] = json!("flask-web-app");
    failed["detail"]["execution-id"] = json!(EXECUTION);
    notifier.handle(failed, "req-3", now()).await.unwrap();
    let chat: Vec<Value> =
        world.aws.received(&world.chat).await.iter().map(|m| serde_json::from_str(&m.message).unwrap()).collect();
    assert_eq!(chat.len(), 2, "the rejection and the pipeline's failure");
    for message in &chat {
        assert_eq!(message["metadata"]["threadId"], format!("flask-web-app/{EXECUTION}"), "one thread per execution");
        assert!(message["metadata"]["additionalContext"].get("approve").is_none(), "no buttons once decided");
    }

    // Another execution waits at the same action (PARALLEL mode): the token GetPipelineState gives
    // is that one's, so this execution's message carries no buttons rather than the wrong token.
    const OTHER: &str = "7a7a7a7a-5555-4c4c-8d8d-2e2e2e2e2e2e";
    let mut waiting = detail("InProgress", None, None);
    waiting["pipelineExecutionId"] = json!(OTHER);
    world
        .aws
        .control_post(
            "action-executions",
            json!({"pipelineName": "flask-web-app", "actionExecutionDetails": [waiting]}),
        )
        .await;
    world
        .aws
        .control_post(
            "pipeline-state",
            json!({"pipelineName": "flask-web-app", "stageStates": [{"stageName": "Approve", "actionStates": [{
                "actionName": "ProductionApproval",
                "latestExecution": {"status": "InProgress", "token": TOKEN, "actionExecutionId": "ae-2"}
            }]}]}),
        )
        .await;
    let mut other = event("codepipeline-action-approval-waiting.json");
    other["id"] = json!("other-waiting");
    other["detail"]["execution-id"] = json!(OTHER);
    notifier.handle(other, "req-4", now()).await.unwrap();
    let chat: Vec<Value> =
        world.aws.received(&world.chat).await.iter().map(|m| serde_json::from_str(&m.message).unwrap()).collect();
    assert_eq!(chat.len(), 1);
    assert!(chat[0]["metadata"]["additionalContext"].get("approve").is_none(), "{}", chat[0]);
}
