//! Deployment context, linked by the functions themselves: the pipeline's deploy action starts
//! (pipeline-notifier), CodeDeploy runs the lifecycle hook (deploy-validator), an alarm fires
//! (alarm-fanout), and the alarm's message names the deployment and the commit. After the pipeline
//! succeeds, a new alarm no longer does. Nothing is written by hand: the emulator only holds what
//! AWS itself would (the action history, the deployment).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alarm_fanout::config::Config as FanoutConfig;
use alarm_fanout::deployments::{CodeDeployDeployments, DeploymentLister, DeploymentQuery};
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::tags::{CachedAlarmTags, CloudWatchAlarmTags};
use chrono::{DateTime, SecondsFormat, Utc};
use deploy_validator::deployment::CodeDeployLookup;
use deploy_validator::engine::Probes;
use deploy_validator::function_scope::FunctionScope;
use deploy_validator::hook::Validator;
use deploy_validator::probes::{CloudWatchAlarmGate, LambdaInvoker, ReqwestProbe};
use deploy_validator::spec::Spec;
use pipeline_notifier::config::{parse_notify_on, Config as NotifierConfig, DEFAULT_NOTIFY_ON};
use pipeline_notifier::handler::Notifier;
use pipeline_notifier::lookups::{CodeDeployDiagnostics, CodePipelineActionHistory, CodePipelineExecutions};
use pipeline_notifier::metrics::MetricSink;
use pipewarden_devkit::{event, Emulator, Subscribed};
use pipewarden_shared::adapters::{CodeDeployHookReporter, S3ObjectStore, SnsPublisher};
use pipewarden_shared::document::DocumentSource;
use serde_json::{json, Value};

const BUCKET: &str = "audit";
const EXECUTION: &str = "8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33";
const RULES: &str = r#"
mode: first-match
rules:
  - name: api-servers
    match: {namespace: AWS/EC2}
    severity: critical
    topics: [$CRITICAL]
    application: flask-api
default:
  severity: info
  topics: [$CRITICAL]
"#;

struct NoMetrics;

impl MetricSink for NoMetrics {
    fn emit(&self, _document: &Value) {}
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A sample event of `events/`, happening at `at`.
fn pipeline_event(name: &str, at: DateTime<Utc>) -> Value {
    let mut e = event(name);
    e["time"] = json!(iso(at));
    e
}

/// The Deploy action of the execution starting, as EventBridge sends it.
fn deploy_action_started(at: DateTime<Utc>) -> Value {
    let mut e = event("codepipeline-action-deploy-failed.json");
    e["id"] = json!("d3p10y00-0000-0000-0000-000000000001");
    e["time"] = json!(iso(at));
    e["region"] = json!("us-east-1");
    e["resources"] = json!(["arn:aws:codepipeline:us-east-1:123456789012:flask-web-app"]);
    let detail = e["detail"].as_object_mut().unwrap();
    detail.remove("execution-result");
    detail.insert("execution-id".into(), json!(EXECUTION));
    detail.insert("state".into(), json!("STARTED"));
    detail.insert("region".into(), json!("us-east-1"));
    e
}

/// An EC2 CPU alarm going into ALARM at `at`.
fn alarm(name: &str, at: DateTime<Utc>) -> Value {
    let mut e = event("cloudwatch-alarm-metric.json");
    e["id"] = json!(format!("alarm-{name}"));
    e["time"] = json!(iso(at));
    e["resources"] = json!([format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}")]);
    e["detail"]["alarmName"] = json!(name);
    e["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    e
}

/// deploy-validator as main.rs wires it, against the emulator, with this spec.
fn validator(
    aws: &Emulator,
    spec: &str,
) -> Validator<
    CodeDeployHookReporter,
    S3ObjectStore,
    SnsPublisher,
    CodeDeployLookup,
    ReqwestProbe,
    CloudWatchAlarmGate,
    LambdaInvoker,
> {
    let spec = Spec::parse(spec, "test spec").map_err(|e| e.to_string());
    let allowed = spec.as_ref().map(|s| s.allowed_hosts.clone()).unwrap_or_default();
    Validator {
        spec: spec.into(),
        safety_margin: Duration::from_millis(1000),
        topic_arn: None,
        reporter: CodeDeployHookReporter::new(aws.codedeploy()),
        store: Some(S3ObjectStore::new(aws.s3(), BUCKET)),
        publisher: SnsPublisher::new(aws.sns()),
        lookup: CodeDeployLookup::new(aws.codedeploy()),
        probes: Probes {
            http: ReqwestProbe::new(allowed).unwrap(),
            alarms: CloudWatchAlarmGate::new(aws_sdk_cloudwatch::Client::new(&aws.sdk)),
            functions: LambdaInvoker::new(aws_sdk_lambda::Client::new(&aws.sdk)),
            function_scope: FunctionScope::Any,
        },
    }
}

/// pipeline-notifier as main.rs wires it, against the emulator, notifying `topic`.
fn notifier(
    aws: &Emulator,
    topic: &Subscribed,
) -> Notifier<
    SnsPublisher,
    S3ObjectStore,
    CodePipelineActionHistory,
    CodeDeployDiagnostics,
    CodePipelineExecutions,
    NoMetrics,
> {
    Notifier {
        config: NotifierConfig {
            topic_arn: topic.topic_arn.clone(),
            chat_topic_arn: None,
            bucket: BUCKET.to_string(),
            notify_on: parse_notify_on(DEFAULT_NOTIFY_ON).unwrap(),
            claim_ttl_seconds: 120,
            digest: None,
            approvals: Default::default(),
        },
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), BUCKET),
        history: CodePipelineActionHistory::new(aws_sdk_codepipeline::Client::new(&aws.sdk)),
        diagnostics: CodeDeployDiagnostics::new(aws.codedeploy()),
        revisions: CodePipelineExecutions::new(aws_sdk_codepipeline::Client::new(&aws.sdk)),
        metrics: NoMetrics,
    }
}

/// alarm-fanout as main.rs wires it, against the emulator, with [`RULES`] sending to `critical`.
fn fanout(
    aws: &Emulator,
    critical: &Subscribed,
) -> Fanout<SnsPublisher, S3ObjectStore, CloudWatchAlarmTags, CodeDeployDeployments, alarm_fanout::timers::NoTimers> {
    fanout_with(aws, critical, RULES)
}

/// [`fanout`] with these rules.
fn fanout_with(
    aws: &Emulator,
    critical: &Subscribed,
    rules: &'static str,
) -> Fanout<SnsPublisher, S3ObjectStore, CloudWatchAlarmTags, CodeDeployDeployments, alarm_fanout::timers::NoTimers> {
    let vars = HashMap::from([("CRITICAL".to_string(), critical.topic_arn.clone())]);
    Fanout {
        config: FanoutConfig {
            rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: rules.into() },
            bucket: BUCKET.into(),
            flap_window: chrono::Duration::seconds(900),
            claim_ttl: chrono::Duration::seconds(120),
            deploy_context_max_age: chrono::Duration::seconds(3600),
            alarm_tags_cache: Duration::from_secs(300),
            silences_prefix: None,
            schedule: None,
        },
        rules: RuleSet::parse(rules, "test", &vars).unwrap(),
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), BUCKET),
        tags: CachedAlarmTags::new(
            CloudWatchAlarmTags::new(aws_sdk_cloudwatch::Client::new(&aws.sdk)),
            Duration::from_secs(300),
        ),
        silences: Default::default(),
        timers: alarm_fanout::timers::NoTimers,
        deployments: CodeDeployDeployments::new(aws.codedeploy()),
    }
}

/// What CodePipeline's action history holds for the execution: its CodeDeploy action, in
/// progress since `started`, deploying the application flask-api to `group`.
async fn deploy_action_history(aws: &Emulator, started: DateTime<Utc>, group: &str) {
    aws.control_post(
        "action-executions",
        json!({"pipelineName": "flask-web-app", "actionExecutionDetails": [{
            "pipelineExecutionId": EXECUTION,
            "actionExecutionId": "a0000000-0000-0000-0000-000000000001",
            "pipelineVersion": 4,
            "stageName": "Deploy",
            "actionName": "Deploy",
            "startTime": started.timestamp(),
            "lastUpdateTime": started.timestamp(),
            "status": "InProgress",
            "input": {
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"},
                "configuration": {"ApplicationName": "flask-api", "DeploymentGroupName": "#{variables.group}"},
                "resolvedConfiguration": {"ApplicationName": "flask-api", "DeploymentGroupName": group},
                "region": "us-east-1",
                "inputArtifacts": [{"name": "BuildArtifact"}]
            }
        }]}),
    )
    .await;
}

/// A deployment of flask-api to `group` on EC2/on-premises instances, as CodeDeploy knows it.
async fn server_deployment(aws: &Emulator, id: &str, group: &str, status: &str, created: DateTime<Utc>) {
    aws.control_post(
        "deployments",
        json!({
            "deploymentId": id,
            "applicationName": "flask-api",
            "deploymentGroupName": group,
            "computePlatform": "Server",
            "status": status,
            "createTime": iso(created),
        }),
    )
    .await;
}

#[tokio::test]
async fn an_alarm_during_a_pipelines_deployment_names_the_deployment_and_the_commit_until_it_ends() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let pipeline_topic = aws.topic_with_subscriber("pipeline").await;
    let critical: Subscribed = aws.topic_with_subscriber("critical").await;
    let now = Utc::now();

    deploy_action_history(&aws, now - chrono::Duration::minutes(15), "flask-api-group").await;
    // The deployment the action created, as CodeDeploy knows it.
    aws.deployment_with_id("d-CONTEXT1", "flask-api", "Lambda").await;

    let notifier = notifier(&aws, &pipeline_topic);
    let spec = "checks:\n  - name: no-alarms\n    type: alarms\n    alarmNames: [flask-api-errors]\n";
    let validator = validator(&aws, spec);
    let fanout = fanout(&aws, &critical);

    // GIVEN the pipeline started, its deploy action started, and CodeDeploy ran the hook
    let minutes = |m: i64| now + chrono::Duration::minutes(m);
    notifier.handle(pipeline_event("codepipeline-pipeline-started-v2.json", minutes(-20)), "n1", now).await.unwrap();
    notifier.handle(deploy_action_started(minutes(-15)), "n2", now).await.unwrap();
    let hook = aws.issued_hook("d-CONTEXT1", "hook-context-1").await;
    let reported = validator.handle(hook, Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert_eq!(reported["status"], "Succeeded", "{reported}");

    // WHEN an alarm of the application fires
    fanout.handle(alarm("ApiCpuHigh", minutes(1)), "f1", now).await.unwrap();

    // THEN its message names the CodeDeploy deployment, the pipeline execution and the commit
    let got = aws.received(&critical).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let expected = format!(
        "CodeDeploy deployment d-CONTEXT1 of flask-api, pipeline flask-web-app execution {EXECUTION} (commit 7c4a9e3f by Mary Major)"
    );
    assert!(got[0].message.contains(&expected), "{}", got[0].message);

    // WHEN the pipeline succeeds, and later another alarm of the application fires
    notifier.handle(pipeline_event("codepipeline-pipeline-succeeded-v2.json", minutes(2)), "n3", now).await.unwrap();
    fanout.handle(alarm("ApiMemoryHigh", minutes(25)), "f2", now).await.unwrap();

    // THEN that alarm names no deployment: the release is over
    let got = aws.received(&critical).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].message.contains("ApiMemoryHigh"), "{}", got[0].message);
    assert!(!got[0].message.contains("Deploying"), "{}", got[0].message);
    assert!(!got[0].message.contains("d-CONTEXT1"), "{}", got[0].message);
}

#[tokio::test]
async fn a_failed_hook_ends_its_deployment_as_context() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    aws.deployment_with_id("d-CONTEXT2", "flask-api", "Lambda").await;
    let store = S3ObjectStore::new(aws.s3(), BUCKET);
    // A check that can never pass: the health endpoint is on a closed port.
    let spec = "allowedHosts: ['http://127.0.0.1:9']\nchecks:\n  - name: health\n    type: http\n    url: 'http://127.0.0.1:9/health'\n    maxAttempts: 1\n";
    let validator = validator(&aws, spec);
    let hook = aws.issued_hook("d-CONTEXT2", "hook-context-2").await;
    let reported = validator.handle(hook, Instant::now() + Duration::from_secs(20)).await.unwrap();
    assert_eq!(reported["status"], "Failed", "{reported}");

    let context =
        pipewarden_shared::deploy_context::read(&store, "flask-api").await.unwrap().expect("recorded by the hook");
    assert_eq!(context.deployment_id.as_deref(), Some("d-CONTEXT2"));
    assert!(context.finished_at.is_some(), "CodeDeploy rolls back a Failed hook: {context:?}");
}

/// An EC2/on-premises release runs no lifecycle hook, so nothing records its deployment id: the
/// context has the pipeline's execution and commit and the deployment group the action history
/// names. An alarm during it names the deployment CodeDeploy lists in flight for that group.
#[tokio::test]
async fn an_alarm_during_a_pipelines_ec2_deployment_names_the_deployment_codedeploy_has_in_flight() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let pipeline_topic = aws.topic_with_subscriber("pipeline").await;
    let critical = aws.topic_with_subscriber("critical").await;
    let now = Utc::now();
    let minutes = |m: i64| now + chrono::Duration::minutes(m);
    deploy_action_history(&aws, minutes(-15), "flask-api-servers").await;
    // The group's previous release, long over, and the one the deploy action created.
    server_deployment(&aws, "d-EC2PREV01", "flask-api-servers", "Succeeded", minutes(-180)).await;
    server_deployment(&aws, "d-EC2CTX001", "flask-api-servers", "InProgress", minutes(-15)).await;
    let notifier = notifier(&aws, &pipeline_topic);
    let fanout = fanout(&aws, &critical);

    // GIVEN the pipeline started and its deploy action to the EC2 instances started
    notifier.handle(pipeline_event("codepipeline-pipeline-started-v2.json", minutes(-20)), "n1", now).await.unwrap();
    notifier.handle(deploy_action_started(minutes(-15)), "n2", now).await.unwrap();

    // WHEN an alarm of the application fires
    fanout.handle(alarm("ApiCpuHigh", minutes(1)), "f1", now).await.unwrap();

    // THEN its message names the CodeDeploy deployment, the pipeline execution and the commit
    let got = aws.received(&critical).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let expected = format!(
        "CodeDeploy deployment d-EC2CTX001 of flask-api, pipeline flask-web-app execution {EXECUTION} (commit 7c4a9e3f by Mary Major)"
    );
    assert!(got[0].message.contains(&expected), "{}", got[0].message);
    assert_eq!(aws.calls().await.get("ListDeployments"), Some(&1));

    // WHEN the deployment fails and CodeDeploy rolls back (a new deployment of the group, created
    // by codeDeployRollback) before the pipeline's FAILED is recorded, and the alarm fires again
    server_deployment(&aws, "d-EC2CTX001", "flask-api-servers", "Failed", minutes(-15)).await;
    aws.control_post(
        "deployments",
        json!({"deploymentId": "d-EC2BACK01", "applicationName": "flask-api", "deploymentGroupName": "flask-api-servers",
               "computePlatform": "Server", "status": "InProgress", "createTime": iso(minutes(2)), "creator": "codeDeployRollback"}),
    )
    .await;
    fanout.handle(alarm("ApiCpuHigher", minutes(3)), "f2", now).await.unwrap();

    // THEN the rollback, which redeploys the previous revision, is not named as the release's
    let got = aws.received(&critical).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(!got[0].message.contains("d-EC2BACK01"), "{}", got[0].message);
    assert!(got[0].message.contains(&format!("pipeline flask-web-app execution {EXECUTION}")), "{}", got[0].message);
}

/// The adapter asks CodeDeploy for the group's deployments that have not ended, created since the
/// release began, every page; an unknown group is CodeDeploy's refusal, not an empty answer.
#[tokio::test]
async fn codedeploy_lists_the_group_s_deployments_in_flight_since_the_release_began() {
    let aws = Emulator::fresh().await;
    let now = Utc::now();
    let minutes = |m: i64| now + chrono::Duration::minutes(m);
    server_deployment(&aws, "d-OLDRUN001", "flask-api-servers", "InProgress", minutes(-120)).await;
    server_deployment(&aws, "d-ENDED0001", "flask-api-servers", "Stopped", minutes(-10)).await;
    server_deployment(&aws, "d-STAGING01", "flask-api-staging", "InProgress", minutes(-10)).await;
    server_deployment(&aws, "d-QUEUED001", "flask-api-servers", "Queued", minutes(-9)).await;
    server_deployment(&aws, "d-RUNNING01", "flask-api-servers", "InProgress", minutes(-8)).await;
    aws.page_size("ListDeployments", 1).await;
    let lister = CodeDeployDeployments::new(aws.codedeploy());
    let query = DeploymentQuery {
        application: "flask-api".into(),
        deployment_group: "flask-api-servers".into(),
        created_after: minutes(-11),
    };

    let mut listed = lister.in_flight(&query).await.unwrap();

    listed.sort();
    assert_eq!(listed, vec!["d-QUEUED001".to_string(), "d-RUNNING01".to_string()]);
    assert_eq!(aws.calls().await.get("ListDeployments"), Some(&2), "two pages of one");
    let unknown = DeploymentQuery { deployment_group: "flask-api-nope".into(), ..query };
    let refused = lister.in_flight(&unknown).await.unwrap_err();
    assert_eq!(refused.kind, pipewarden_shared::ports::FailureKind::Rejected, "{refused}");
    assert!(refused.to_string().contains("DeploymentGroupDoesNotExistException"), "{refused}");
}

/// A route quiet during deployments holds back the application's ALARMs while the pipeline deploys
/// it, never the OK of an ALARM sent before, and speaks again once the release is over.
#[tokio::test]
async fn a_route_quiet_during_deployments_holds_back_alarms_while_the_application_is_deployed() {
    const QUIET: &str = r#"
mode: first-match
rules:
  - name: api-servers
    match: {namespace: AWS/EC2}
    severity: critical
    topics: [$CRITICAL]
    application: flask-api
    quietDuringDeployments: true
default:
  severity: info
  topics: [$CRITICAL]
"#;
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let pipeline_topic = aws.topic_with_subscriber("pipeline").await;
    let critical: Subscribed = aws.topic_with_subscriber("critical").await;
    let now = Utc::now();
    let minutes = |m: i64| now + chrono::Duration::minutes(m);
    deploy_action_history(&aws, minutes(-15), "flask-api-group").await;
    let notifier = notifier(&aws, &pipeline_topic);
    let fanout = fanout_with(&aws, &critical, QUIET);
    let ok = |name: &str, at: DateTime<Utc>| {
        let mut e = alarm(name, at);
        e["id"] = json!(format!("ok-{name}"));
        e["detail"]["previousState"] = e["detail"]["state"].clone();
        e["detail"]["state"]["value"] = json!("OK");
        e
    };

    // An alarm that fired before the release, then the release begins.
    fanout.handle(alarm("ApiDiskHigh", minutes(-30)), "f0", now).await.unwrap();
    assert_eq!(aws.received(&critical).await.len(), 1);
    notifier.handle(pipeline_event("codepipeline-pipeline-started-v2.json", minutes(-20)), "n1", now).await.unwrap();
    notifier.handle(deploy_action_started(minutes(-15)), "n2", now).await.unwrap();

    // During it: a new ALARM is held back, saying why; the earlier alarm's OK still goes.
    let held = fanout.handle(alarm("ApiCpuHigh", minutes(1)), "f1", now).await.unwrap();
    let verdict = held["alarms"][0]["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with(&format!(
            "suppressed: quiet while pipeline flask-web-app execution {EXECUTION} of flask-api is in flight"
        )),
        "{verdict}"
    );
    fanout.handle(ok("ApiDiskHigh", minutes(2)), "f2", now).await.unwrap();
    let got = aws.received(&critical).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].message.contains("ApiDiskHigh") && got[0].message.contains("OK"), "{}", got[0].message);

    // The release is over: the application's alarms are heard again.
    notifier.handle(pipeline_event("codepipeline-pipeline-succeeded-v2.json", minutes(3)), "n3", now).await.unwrap();
    fanout.handle(ok("ApiCpuHigh", minutes(4)), "f3", now).await.unwrap();
    let mut again = alarm("ApiCpuHigh", minutes(30));
    again["id"] = json!("alarm-ApiCpuHigh-again");
    fanout.handle(again, "f4", now).await.unwrap();
    let got = aws.received(&critical).await;
    assert_eq!(got.len(), 1, "only the new ALARM (the held one's OK says nothing): {got:#?}");
    assert!(got[0].message.contains("ApiCpuHigh"), "{}", got[0].message);
}
