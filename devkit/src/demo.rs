//! `make demo`: one release of the reference Flask app goes wrong and its fix ships, told through
//! the real pieces: the revision is built by `scripts/flask-bundle.sh`, its lifecycle scripts run
//! as CodeDeploy's agent runs them against a real nginx and the real Flask app (validate_service is
//! `pipewarden-validate`), and pipeline-notifier and alarm-fanout run as Lambda runs them (their
//! binaries under the local Runtime API), fed the events AWS sends, against the local emulator.
//!
//! The emulator holds only what AWS would (CodePipeline's action history and executions, the
//! CodeDeploy deployment and what its agent reported, the alarm with its tags): what the functions
//! send and write is theirs. Each step checks what it shows; the first unmet expectation ends the
//! story with an error. With `PIPEWARDEN_DEMO_MESSAGES` set to a folder, every message a subscriber
//! received is also written there (the golden copies in tests/golden/demo are compared with them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::instance::{bundle, HookRun, Instance, APPLICATION, DEPLOYMENT_GROUP as GROUP, LIFECYCLE};
use crate::lambda_process::LambdaProcess;
use crate::{local, repo_root, Emulator, Notification, Subscribed, ACCOUNT, REGION};

/// The names examples/flask-app/pipeline.yaml gives the pipeline, the deployment group and the alarm.
const PIPELINE: &str = "flask-web-app-pipeline";
const ALARM: &str = "flask-web-app-5xx";
const ALARM_DESCRIPTION: &str = "The app's instances answer HTTP 5xx through the load balancer (5 or more a minute, in 2 of 3 minutes). A deployment of flask-web-app in progress stops and rolls back.";
const LOAD_BALANCER: &str = "app/flask-web-app/50dc6c495c0c9188";
const TARGET_GROUP: &str = "targetgroup/flask-web-app/73e2d6bc24d8a067";
const INSTANCE_ID: &str = "i-0a1b2c3d4e5f67890";
const AUTHOR: &str = "Mary Major";
const REPOSITORY: &str = "example-org/flask-web-app";
const CONNECTION: &str = "arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d";
/// The last 4 KB of a script's output: what CodeDeploy keeps of it in the target's diagnostics.
const LOG_TAIL_BYTES: usize = 4096;

/// One push to the app's main branch, and what the pipeline made of it.
struct Release {
    commit: &'static str,
    message: &'static str,
    execution_id: &'static str,
    deployment_id: &'static str,
    /// Minutes after the story's start when the push happened.
    minute: i64,
}

const BROKEN: Release = Release {
    commit: "9b1e5c27d04f4a8e6c2b1d3f5a7e9c0b2d4f6a81",
    message: "Greet visitors by configuration",
    execution_id: "5d1c9a2e-3f4b-4c6d-8e7f-0a1b2c3d4e5f",
    deployment_id: "d-7Q2K9XW1A",
    minute: 0,
};

const FIX: Release = Release {
    commit: "4d7f0a12e9c84b3a5f6d7e8c9b0a1f2e3d4c5b60",
    message: "Fall back to the default greeting when GREETING is unset",
    execution_id: "7e3b1f90-5a6c-4d7e-9f80-1b2c3d4e5f60",
    deployment_id: "d-3M8H4ZT6C",
    minute: 31,
};

/// The story as it is told: what is printed, and the expectations met so far.
struct Story {
    start: DateTime<Utc>,
    messages_dir: Option<PathBuf>,
    messages: usize,
    met: usize,
}

impl Story {
    fn at(&self, minute: i64) -> DateTime<Utc> {
        self.start + chrono::Duration::minutes(minute)
    }

    fn chapter(&self, title: &str) {
        println!("\n== {title}");
    }

    fn say(&self, line: &str) {
        println!("   {line}");
    }

    /// A check of what was just shown: met, or the story ends here.
    fn expect(&mut self, what: &str, met: bool, evidence: &str) -> Result<(), String> {
        if !met {
            return Err(format!("expected: {what}\n-- what there was:\n{evidence}"));
        }
        self.met += 1;
        println!("   ok: {what}");
        Ok(())
    }

    /// Shows a message as its subscriber got it, and keeps a copy when asked to.
    fn show(&mut self, topic: &str, name: &str, message: &Notification) -> Result<(), String> {
        println!("   {topic} received:");
        let mut text = String::new();
        if let Some(subject) = &message.subject {
            text.push_str(&format!("Subject: {subject}\n\n"));
        }
        text.push_str(message.message.trim_end());
        text.push('\n');
        for line in text.lines() {
            println!("   | {line}");
        }
        self.messages += 1;
        if let Some(dir) = &self.messages_dir {
            let path = dir.join(format!("{:02}-{name}.txt", self.messages));
            std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// The two functions the story drives, as Lambda runs them, and the topics' subscribers.
struct World {
    aws: Emulator,
    notifier: LambdaProcess,
    fanout: LambdaProcess,
    pipeline_topic: Subscribed,
    critical_topic: Subscribed,
    invocations: u32,
    action_history: Vec<Value>,
    /// pipewarden-validate, built beside the functions (scripts/demo.sh builds every binary).
    validate: PathBuf,
}

impl World {
    async fn invoke(&mut self, function: &str, event: &Value) -> Result<Value, String> {
        self.invocations += 1;
        let request_id = format!("demo-{:04}", self.invocations);
        let process = if function == "alarm-fanout" { &mut self.fanout } else { &mut self.notifier };
        let answer = process.invoke(&request_id, event, Duration::from_secs(30)).await?;
        if !answer.ok {
            return Err(format!("{function} failed {request_id}: {}\n-- its log:\n{}", answer.body, process.logs()));
        }
        serde_json::from_str(&answer.body).map_err(|e| format!("{function} answered {}: {e}", answer.body))
    }

    /// What a subscriber got since last asked; the story waits a moment for SNS to SQS.
    async fn received(&self, topic: &Subscribed) -> Vec<Notification> {
        for _ in 0..20 {
            let got = self.aws.received(topic).await;
            if !got.is_empty() {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Vec::new()
    }

    /// CodePipeline's action history of the pipeline, as it holds it after this change.
    async fn action(&mut self, release: &Release, status: &str, at: DateTime<Utc>) {
        self.action_history.retain(|d| d["pipelineExecutionId"] != release.execution_id);
        let mut detail = json!({
            "pipelineExecutionId": release.execution_id,
            "actionExecutionId": format!("{}-deploy", &release.execution_id[..8]),
            "pipelineVersion": 1,
            "stageName": "Deploy",
            "actionName": "Deploy",
            "startTime": iso(at),
            "lastUpdateTime": iso(at),
            "status": status,
            "input": {
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"},
                "configuration": {"ApplicationName": APPLICATION, "DeploymentGroupName": GROUP},
                "resolvedConfiguration": {"ApplicationName": APPLICATION, "DeploymentGroupName": GROUP},
                "region": REGION,
                "inputArtifacts": [{"name": "Revision"}]
            }
        });
        if status != "InProgress" {
            let mut result = json!({
                "externalExecutionId": release.deployment_id,
                "externalExecutionSummary": format!("Deployment {} {}", release.deployment_id, status.to_lowercase()),
                "externalExecutionUrl": format!("https://console.aws.amazon.com/codedeploy/home?region={REGION}#/deployments/{}", release.deployment_id),
            });
            if status == "Failed" {
                result["errorDetails"] = json!({"code": "JobFailed", "message": "Deployment failed"});
            }
            detail["output"] = json!({"executionResult": result});
        }
        self.action_history.push(detail);
        self.aws
            .control_post(
                "action-executions",
                json!({"pipelineName": PIPELINE, "actionExecutionDetails": self.action_history}),
            )
            .await;
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn short(commit: &str) -> &str {
    &commit[..7]
}

/// A pipeline-level event of a V2 pipeline triggered by a push, as EventBridge sends it.
fn pipeline_event(release: &Release, state: &str, at: DateTime<Utc>, started: DateTime<Utc>) -> Value {
    json!({
        "version": "0",
        "id": format!("{}-{}", &release.execution_id[..8], state.to_lowercase()),
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "source": "aws.codepipeline",
        "account": ACCOUNT,
        "time": iso(at),
        "region": REGION,
        "resources": [format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:{PIPELINE}")],
        "detail": {
            "pipeline": PIPELINE,
            "execution-id": release.execution_id,
            "start-time": started.to_rfc3339_opts(SecondsFormat::Millis, true),
            "execution-trigger": {
                "author-display-name": AUTHOR,
                "full-repository-name": REPOSITORY,
                "provider-type": "GitHub",
                "author-email": "mary.major@example.com",
                "commit-message": release.message,
                "author-date": iso(started - chrono::Duration::minutes(1)),
                "author-id": "mmajor",
                "commit-id": release.commit,
                "branch-name": "main",
                "trigger-type": "CodeStarSourceConnection"
            },
            "state": state,
            "version": 1.0,
            "pipeline-execution-attempt": 1.0
        }
    })
}

/// The Deploy action's state change, as EventBridge sends it.
fn deploy_action_event(release: &Release, state: &str, at: DateTime<Utc>) -> Value {
    let mut detail = json!({
        "pipeline": PIPELINE,
        "execution-id": release.execution_id,
        "stage": "Deploy",
        "action": "Deploy",
        "state": state,
        "region": REGION,
        "type": {"owner": "AWS", "provider": "CodeDeploy", "category": "Deploy", "version": "1"},
        "version": 1.0,
        "pipeline-execution-attempt": 1.0
    });
    if state != "STARTED" {
        let mut result = json!({
            "external-execution-url": format!("https://console.aws.amazon.com/codedeploy/home?region={REGION}#/deployments/{}", release.deployment_id),
            "external-execution-summary": format!("Deployment {} {}", release.deployment_id, state.to_lowercase()),
            "external-execution-id": release.deployment_id,
        });
        if state == "FAILED" {
            result["error-code"] = json!("JobFailed");
        }
        detail["execution-result"] = result;
    }
    json!({
        "version": "0",
        "id": format!("{}-deploy-{}", &release.execution_id[..8], state.to_lowercase()),
        "detail-type": "CodePipeline Action Execution State Change",
        "source": "aws.codepipeline",
        "account": ACCOUNT,
        "time": iso(at),
        "region": REGION,
        "resources": [format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:{PIPELINE}")],
        "detail": detail
    })
}

/// The ALB 5xx alarm of pipeline.yaml changing state, as EventBridge sends it.
fn alarm_event(state: &str, previous: &str, at: DateTime<Utc>) -> Value {
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    let minute = |m: i64| (at - chrono::Duration::minutes(m)).format("%d/%m/%y %H:%M:%S").to_string();
    let reason = |value: &str| {
        if value == "ALARM" {
            format!(
                "Threshold Crossed: 2 out of the last 3 datapoints [42.0 ({}), 17.0 ({})] were greater than or equal to the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition).",
                minute(1),
                minute(2)
            )
        } else {
            "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [NonBreaching].".to_string()
        }
    };
    json!({
        "version": "0",
        "id": format!("alarm-{ALARM}-{}", state.to_lowercase()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": iso(at),
        "region": REGION,
        "resources": [format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{ALARM}")],
        "detail": {
            "alarmName": ALARM,
            "configuration": {
                "description": ALARM_DESCRIPTION,
                "metrics": [{
                    "id": "m1",
                    "metricStat": {
                        "metric": {
                            "dimensions": {"LoadBalancer": LOAD_BALANCER, "TargetGroup": TARGET_GROUP},
                            "name": "HTTPCode_Target_5XX_Count",
                            "namespace": "AWS/ApplicationELB"
                        },
                        "period": 60,
                        "stat": "Sum"
                    },
                    "returnData": true
                }]
            },
            "previousState": {"reason": reason(previous), "timestamp": stamp(at - chrono::Duration::minutes(10)), "value": previous},
            "state": {"reason": reason(state), "timestamp": stamp(at), "value": state}
        }
    })
}

/// What GetPipelineExecution answers for the release's execution.
fn pipeline_execution(release: &Release, status: &str, created: DateTime<Utc>) -> Value {
    json!({
        "pipelineName": PIPELINE,
        "pipelineVersion": 1,
        "pipelineExecutionId": release.execution_id,
        "status": status,
        "artifactRevisions": [{
            "name": "SourceOutput",
            "revisionId": release.commit,
            "revisionSummary": json!({"ProviderType": "GitHub", "CommitMessage": release.message}).to_string(),
            "created": iso(created),
            "revisionUrl": format!("https://{REGION}.console.aws.amazon.com/codesuite/settings/connections/redirect?connectionArn={CONNECTION}&referenceType=COMMIT&FullRepositoryId={REPOSITORY}&Commit={}", release.commit)
        }],
        "trigger": {"triggerType": "WebhookV2", "triggerDetail": CONNECTION},
        "executionMode": "QUEUED"
    })
}

/// The app at a commit: examples/flask-app, with the release's change to app.py.
fn checkout(release: &Release, into: &Path) -> Result<PathBuf, String> {
    let app = into.join(short(release.commit));
    copy_tree(&repo_root().join("examples/flask-app"), &app)?;
    let path = app.join("app.py");
    let source = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let old = "    return \"Hello from flask-web-app\\n\"";
    let new = if release.commit == BROKEN.commit {
        // The bug: GREETING is set on the developer's machine, not on the instances.
        "    return f\"{os.environ['GREETING']} from flask-web-app\\n\""
    } else {
        "    return f\"{os.environ.get('GREETING', 'Hello')} from flask-web-app\\n\""
    };
    if !source.contains(old) {
        return Err(format!("examples/flask-app/app.py no longer has the line the demo changes: {old}"));
    }
    std::fs::write(&path, source.replace(old, new)).map_err(|e| e.to_string())?;
    Ok(app)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let status =
        std::process::Command::new("cp").arg("-R").arg(from).arg(to).status().map_err(|e| format!("cp: {e}"))?;
    status.success().then_some(()).ok_or_else(|| format!("copying {} failed", from.display()))
}

/// The log as CodeDeploy's agent keeps it: each line of the script's output, marked with its stream.
fn agent_log(run: &HookRun) -> String {
    let mut log = String::new();
    for line in run.stdout.lines() {
        log.push_str(&format!("[stdout]{line}\n"));
    }
    for line in run.stderr.lines() {
        log.push_str(&format!("[stderr]{line}\n"));
    }
    match log.char_indices().find(|(i, _)| log.len() - i <= LOG_TAIL_BYTES) {
        Some((i, _)) => log[i..].to_string(),
        None => log,
    }
}

/// The lifecycle events of an in-place deployment behind a load balancer, in CodeDeploy's order.
const IN_PLACE_EVENTS: [&str; 13] = [
    "BeforeBlockTraffic",
    "BlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];

/// What BatchGetDeploymentTargets answers for the instance after the deployment, from the hooks
/// the agent ran (the events the agent runs without scripts succeed; those after a failure are skipped).
fn instance_target(release: &Release, runs: &[(&'static str, HookRun)], at: DateTime<Utc>) -> Value {
    let mut events = Vec::new();
    let mut failed = false;
    for name in IN_PLACE_EVENTS {
        let run = runs.iter().find(|(event, _)| *event == name).map(|(_, run)| run);
        let mut event = json!({"lifecycleEventName": name});
        if failed {
            event["status"] = json!("Skipped");
            events.push(event);
            continue;
        }
        event["startTime"] = json!(iso(at));
        event["endTime"] = json!(iso(at));
        if let Some(run) = run.filter(|run| run.code != 0) {
            failed = true;
            let script = format!("scripts/{}", script_name(name));
            event["status"] = json!("Failed");
            event["diagnostics"] = json!({
                "errorCode": "ScriptFailed",
                "scriptName": script,
                "message": format!("Script at specified location: {script} run as user root failed with exit code {}", run.code),
                "logTail": agent_log(run)
            });
        } else {
            event["status"] = json!("Succeeded");
        }
        events.push(event);
    }
    json!({"deploymentTargetType": "InstanceTarget", "instanceTarget": {
        "deploymentId": release.deployment_id,
        "targetId": INSTANCE_ID,
        "targetArn": format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE_ID}"),
        "status": if failed { "Failed" } else { "Succeeded" },
        "lastUpdatedAt": iso(at),
        "lifecycleEvents": events
    }})
}

fn script_name(lifecycle_event: &str) -> &'static str {
    match lifecycle_event {
        "BeforeInstall" => "before_install",
        "AfterInstall" => "after_install",
        "ApplicationStart" => "app_start",
        _ => "validate_service",
    }
}

/// The story. `bin` is the folder with the built binaries (pipeline-notifier, alarm-fanout,
/// pipewarden-validate).
pub async fn run(bin: &Path, messages_dir: Option<PathBuf>) -> Result<(), String> {
    let now = Utc::now();
    let start = now - chrono::Duration::minutes(45);
    let start = start - chrono::Duration::nanoseconds(start.timestamp_subsec_nanos() as i64);
    let mut story = Story { start, messages_dir, messages: 0, met: 0 };
    let scratch = std::env::temp_dir().join(format!("pipewarden-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let told = tell(&mut story, bin, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    told?;
    println!("\nThe story holds: {} expectations met, {} messages shown.", story.met, story.messages);
    Ok(())
}

async fn tell(story: &mut Story, bin: &Path, scratch: &Path) -> Result<(), String> {
    println!("Pipewarden demo: a release of flask-web-app breaks, Pipewarden says what and where, the fix ships.");
    println!("Local stand-ins: the AWS emulator (moto with Pipewarden's extension) for AWS; real nginx and Flask");
    println!("for the instance; pipeline-notifier and alarm-fanout run as Lambda runs them.");

    story.chapter("Setting up what Pipewarden's stack and examples/flask-app/pipeline.yaml create");
    let aws = Emulator::fresh().await;
    let (mut env, subscribed) = local::prepare_subscribed(&aws).await;
    let rules = std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml")).map_err(|e| e.to_string())?;
    env.push(("ROUTING_RULES".into(), rules));
    let topic = |variable: &str| subscribed.iter().find(|(v, _)| v == variable).map(|(_, s)| s.clone()).unwrap();
    put_alarm(&aws).await?;
    story.say(&format!(
        "local AWS at {}: topics {}, bucket {}",
        aws.endpoint,
        local::TOPICS.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", "),
        local::BUCKET
    ));
    story.say(&format!("CodeDeploy application {APPLICATION}, deployment group {GROUP}; alarm {ALARM} tagged application={APPLICATION}"));
    let logs = scratch.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let start_function = |name: &'static str| {
        let env = env.clone();
        let logs = logs.clone();
        async move {
            let process =
                LambdaProcess::start(name, &bin.join(name), &[], &env, &logs.join(format!("{name}.log"))).await?;
            let init = process.init(Duration::from_secs(30)).await?;
            Ok::<_, String>((process, init))
        }
    };
    let (notifier, notifier_init) = start_function("pipeline-notifier").await?;
    let (fanout, fanout_init) = start_function("alarm-fanout").await?;
    story.say(&format!(
        "pipeline-notifier and alarm-fanout started under a local Lambda Runtime API (init {} ms and {} ms)",
        notifier_init.as_millis(),
        fanout_init.as_millis()
    ));
    let mut world = World {
        aws,
        notifier,
        fanout,
        pipeline_topic: topic("PIPELINE_TOPIC_ARN"),
        critical_topic: topic("ALARM_CRITICAL_TOPIC_ARN"),
        invocations: 0,
        action_history: Vec::new(),
        validate: bin.join("pipewarden-validate"),
    };
    if !world.validate.exists() {
        return Err(format!("{} is missing: run `make demo`, which builds it", world.validate.display()));
    }
    let instance = Instance::new("demo");
    story.say(&format!(
        "instance {INSTANCE_ID}: nginx on 127.0.0.1:{}, Flask on 127.0.0.1:{}",
        instance.nginx_port, instance.flask_port
    ));

    // 1. The broken release.
    let failed_at = release(story, &mut world, &instance, &BROKEN, scratch).await?;

    // 2. The fix.
    if failed_at.is_none() {
        return Err("the broken release did not fail".into());
    }
    if release(story, &mut world, &instance, &FIX, scratch).await?.is_some() {
        return Err("the fix failed".into());
    }
    Ok(())
}

async fn put_alarm(aws: &Emulator) -> Result<(), String> {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&aws.sdk);
    let tag = |k: &str, v: &str| aws_sdk_cloudwatch::types::Tag::builder().key(k).value(v).build();
    let dimension = |k: &str, v: &str| aws_sdk_cloudwatch::types::Dimension::builder().name(k).value(v).build();
    cloudwatch
        .put_metric_alarm()
        .alarm_name(ALARM)
        .alarm_description(ALARM_DESCRIPTION)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .dimensions(dimension("LoadBalancer", LOAD_BALANCER))
        .dimensions(dimension("TargetGroup", TARGET_GROUP))
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(3)
        .datapoints_to_alarm(2)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data("notBreaching")
        .tags(tag("application", APPLICATION))
        .tags(tag("team", "web"))
        .tags(tag("severity", "critical"))
        .send()
        .await
        .map_err(|e| format!("PutMetricAlarm: {e:?}"))?;
    Ok(())
}

/// One release through the pipeline. Returns when it failed, `None` when it succeeded.
async fn release(
    story: &mut Story,
    world: &mut World,
    instance: &Instance,
    release: &Release,
    scratch: &Path,
) -> Result<Option<DateTime<Utc>>, String> {
    let broken = release.commit == BROKEN.commit;
    let pushed = story.at(release.minute);
    story.chapter(&format!(
        "{} {AUTHOR} pushes {} \"{}\"",
        if broken { "1." } else { "5." },
        short(release.commit),
        release.message
    ));
    world
        .aws
        .control_post(
            "pipeline-executions",
            json!({"pipelineExecution": pipeline_execution(release, "InProgress", pushed)}),
        )
        .await;
    let answer = world.invoke("pipeline-notifier", &pipeline_event(release, "STARTED", pushed, pushed)).await?;
    story.say(&format!(
        "CodePipeline starts execution {} of {PIPELINE}: pipeline-notifier {}",
        release.execution_id,
        result_of(&answer)
    ));

    let app = checkout(release, scratch)?;
    let zip = scratch.join(format!("flask-app-{}.zip", short(release.commit)));
    bundle(&app, &world.validate, &zip)?;
    let size = std::fs::metadata(&zip).map(|m| m.len()).unwrap_or(0);
    story.say(&format!(
        "the build runs scripts/flask-bundle.sh: {} ({:.1} MB: the app, its appspec and scripts, bin/pipewarden-validate)",
        zip.file_name().unwrap().to_string_lossy(),
        size as f64 / 1e6
    ));

    let deploy_started = story.at(release.minute + 3);
    // The deployment the Deploy action creates, as CodeDeploy lists it while it runs.
    world
        .aws
        .control_post(
            "deployments",
            json!({"deploymentId": release.deployment_id, "applicationName": APPLICATION, "deploymentGroupName": GROUP,
                   "computePlatform": "Server", "status": "InProgress", "createTime": iso(deploy_started)}),
        )
        .await;
    world.action(release, "InProgress", deploy_started).await;
    let answer = world.invoke("pipeline-notifier", &deploy_action_event(release, "STARTED", deploy_started)).await?;
    story.say(&format!(
        "the Deploy action starts CodeDeploy deployment {} to {APPLICATION}/{GROUP}: pipeline-notifier {} (the release in flight)",
        release.deployment_id,
        result_of(&answer)
    ));

    story.chapter(&format!(
        "{} CodeDeploy's agent runs the lifecycle scripts on {INSTANCE_ID}",
        if broken { "2." } else { "6." }
    ));
    let runs = instance.deploy(&zip, release.deployment_id, |_| {});
    for (event, run) in &runs {
        story.say(&format!(
            "{event:<17} scripts/{:<17} {:<7} {:.1} s",
            script_name(event),
            if run.code == 0 { "ok" } else { "FAILED" },
            run.took.as_secs_f64()
        ));
    }
    let events: Vec<&str> = runs.iter().map(|(e, _)| *e).collect();
    let validate = runs.iter().find(|(e, _)| *e == "ValidateService").map(|(_, r)| r);
    let report = crate::instance::report(&runs);
    story.expect(
        "every hook before ValidateService succeeded",
        events.len() == LIFECYCLE.len() && runs[..3].iter().all(|(_, r)| r.code == 0),
        &report,
    )?;
    let validate = validate.ok_or("ValidateService did not run")?;
    for line in validate
        .stdout
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.starts_with("validation"))
    {
        story.say(&format!("  validate_service: {line}"));
    }
    if broken {
        story.expect(
            "validate_service fails the release: the home page answers 500",
            validate.code != 0 && validate.stdout.contains("FAIL home-page"),
            &report,
        )?;
    } else {
        story.expect(
            "validate_service passes the fix: the ValidateService event succeeds",
            validate.code == 0 && validate.stdout.contains("validation PASSED"),
            &report,
        )?;
    }
    let page = instance.get("/");
    story.say(&format!("through nginx, GET / answers: {}", page.lines().next().unwrap_or("")));

    let ended = story.at(release.minute + if broken { 7 } else { 6 });
    // While the deployment is in flight (CodeDeploy still lists it as InProgress).
    let alarm_at = story.at(release.minute + 5);
    let (state, previous, name) = if broken { ("ALARM", "OK", "alarm") } else { ("OK", "ALARM", "alarm-ok") };
    story.chapter(if broken {
        "3. Meanwhile the load balancer's 5xx alarm fires"
    } else {
        "7. The load balancer's 5xx alarm returns to OK"
    });
    let answer = world.invoke("alarm-fanout", &alarm_event(state, previous, alarm_at)).await?;
    story.say(&format!("{ALARM} goes to {state}: alarm-fanout {}", result_of(&answer)));
    let got = world.received(&world.critical_topic).await;
    let message = got.first().ok_or_else(|| format!("no {state} message on the critical topic"))?;
    story.show("pipewarden-alarms-critical", name, message)?;
    if broken {
        // The web-errors rule of examples/routing-rules.yaml repeats every 4 hours: the ALARM set
        // its first reminder as an EventBridge Scheduler schedule.
        let listed = aws_sdk_scheduler::Client::new(&world.aws.sdk)
            .list_schedules()
            .group_name(local::SCHEDULE_GROUP)
            .send()
            .await
            .map_err(|e| format!("ListSchedules: {e}"))?;
        let names: Vec<&str> = listed.schedules().iter().filter_map(|s| s.name()).collect();
        story.expect(
            "alarm-fanout set a reminder for four hours on, while it stays in ALARM (repeatInterval: 4h)",
            names.iter().any(|n| n.ends_with("-remind-1")),
            &names.join(", "),
        )?;
    }
    if !broken {
        story.expect(
            "the OK reaches the topic its ALARM went to",
            message.subject.as_deref().is_some_and(|s| s.starts_with("[OK]")),
            &message.message,
        )?;
    }
    story.expect(
        &format!("the alarm message names the deployment in flight ({})", release.deployment_id),
        message.message.contains(release.deployment_id),
        &message.message,
    )?;
    story.expect(
        &format!("... and the commit ({}) and its author", short(release.commit)),
        message.message.contains(short(release.commit)) && message.message.contains(AUTHOR),
        &message.message,
    )?;

    // What CodeDeploy and CodePipeline hold once the deployment ended.
    let (status, action_state, pipeline_state) =
        if broken { ("Failed", "FAILED", "FAILED") } else { ("Succeeded", "SUCCEEDED", "SUCCEEDED") };
    world.aws.control_post("deployments", json!({"deploymentId": release.deployment_id, "status": status})).await;
    world
        .aws
        .control_post(
            "deployment-targets",
            json!({"deploymentId": release.deployment_id, "targets": [instance_target(release, &runs, ended)]}),
        )
        .await;
    world.action(release, status, ended).await;
    world
        .aws
        .control_post("pipeline-executions", json!({"pipelineExecution": pipeline_execution(release, status, pushed)}))
        .await;
    story.chapter(&format!(
        "{} CodeDeploy {} deployment {}; CodePipeline's execution {}",
        if broken { "4." } else { "8." },
        if broken { "fails" } else { "completes" },
        release.deployment_id,
        pipeline_state
    ));
    world.invoke("pipeline-notifier", &deploy_action_event(release, action_state, ended)).await?;
    let answer = world.invoke("pipeline-notifier", &pipeline_event(release, pipeline_state, ended, pushed)).await?;
    story.say(&format!("pipeline-notifier {}", result_of(&answer)));
    let got = world.received(&world.pipeline_topic).await;
    let message = got.first().ok_or("no notification on the pipeline topic")?;
    story.show("pipewarden-pipeline", &pipeline_state.to_lowercase(), message)?;
    let text = &message.message;
    if broken {
        story.expect(
            "the FAILED notification names the failing script",
            text.contains("scripts/validate_service"),
            text,
        )?;
        story.expect(&format!("... the instance ({INSTANCE_ID})"), text.contains(INSTANCE_ID), text)?;
        story.expect("... and the script's log tail", text.contains("FAIL home-page"), text)?;
        story.expect(
            &format!("... and the commit ({})", short(release.commit)),
            text.contains(short(release.commit)),
            text,
        )?;
        Ok(Some(ended))
    } else {
        let failed_at = story.at(BROKEN.minute + 7);
        let minutes = (ended - failed_at).num_minutes();
        story.expect(
            "the SUCCEEDED notification says the pipeline is restored",
            text.to_lowercase().contains("restored"),
            text,
        )?;
        story.expect(
            &format!("... after how long ({minutes} minutes)"),
            text.contains(&format!("{minutes} min")),
            text,
        )?;
        let got = world.received(&world.pipeline_topic).await;
        story.expect(
            "one notification per outcome: nothing else on the pipeline topic",
            got.is_empty(),
            &format!("{got:#?}"),
        )?;
        Ok(None)
    }
}

/// What a function's answer says it did, in a few words.
fn result_of(answer: &Value) -> String {
    let results: Vec<String> = answer["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| match &e["result"] {
                    Value::String(s) => s.clone(),
                    Value::Object(o) if o.contains_key("notified") => {
                        format!("notified {}", o["notified"].as_str().unwrap_or(""))
                    }
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let sent: Vec<String> = answer["alarms"]
        .as_array()
        .map(|alarms| {
            alarms
                .iter()
                .map(|a| {
                    let topics: Vec<&str> = a["sentTo"]
                        .as_array()
                        .map(|t| t.iter().filter_map(|t| t.as_str()?.rsplit(':').next()).collect())
                        .unwrap_or_default();
                    format!("{} to {}", a["verdict"].as_str().unwrap_or("?"), topics.join(", "))
                })
                .collect()
        })
        .unwrap_or_default();
    if !sent.is_empty() {
        sent.join(", ")
    } else if results.is_empty() {
        answer.to_string()
    } else {
        results.join(", ")
    }
}
