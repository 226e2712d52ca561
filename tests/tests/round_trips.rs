//! How many AWS requests each kind of event costs, counted by the emulator (issue 17): the
//! handlers wired as `main.rs` wires them, against the local emulator, each event once on state
//! that already holds the earlier events (a warm alarm memory, a recorded execution). Prints the
//! table BENCHMARKS.md keeps (`cargo test -p pipewarden-tests --test round_trips -- --nocapture`)
//! and holds the targets: an alarm transition makes at most 3 S3 requests whatever the number of
//! topics and one SNS request per topic; a pipeline event that notifies nothing makes at most 2
//! S3 requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use alarm_fanout::config::Config as FanoutConfig;
use alarm_fanout::deployments::CodeDeployDeployments;
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::tags::{CachedAlarmTags, CloudWatchAlarmTags};
use chrono::{Duration, Utc};
use pipeline_notifier::config::{parse_notify_on, Config as NotifierConfig};
use pipeline_notifier::handler::Notifier;
use pipeline_notifier::lookups::{CodeDeployDiagnostics, CodePipelineActionHistory, CodePipelineExecutions};
use pipeline_notifier::metrics::MetricSink;
use pipewarden_devkit::{event, Emulator};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::document::DocumentSource;
use serde_json::{json, Value};

const BUCKET: &str = "audit";

#[derive(Default)]
struct NoMetrics(Mutex<usize>);

impl MetricSink for NoMetrics {
    fn emit(&self, _: &Value) {
        *self.0.lock().unwrap() += 1;
    }
}

/// The requests one call of `work` made, by service and operation.
async fn counted<F: std::future::Future>(aws: &Emulator, work: F) -> BTreeMap<String, u64> {
    let before = aws.calls().await;
    work.await;
    let after = aws.calls().await;
    after
        .into_iter()
        .filter_map(|(op, n)| Some((op.clone(), n - before.get(&op).copied().unwrap_or(0))).filter(|(_, n)| *n > 0))
        .collect()
}

fn s3(calls: &BTreeMap<String, u64>) -> u64 {
    ["GetObject", "PutObject", "HeadObject", "DeleteObject"].iter().filter_map(|op| calls.get(*op)).sum()
}

fn sns(calls: &BTreeMap<String, u64>) -> u64 {
    ["Publish", "PublishBatch"].iter().filter_map(|op| calls.get(*op)).sum()
}

fn row(kind: &str, calls: &BTreeMap<String, u64>) -> String {
    let all: u64 = calls.values().sum();
    let list: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
    format!(
        "| {kind} | {} | {} | {} | {all} | {} |",
        s3(calls),
        sns(calls),
        all - s3(calls) - sns(calls),
        list.join(", ")
    )
}

/// alarm-fanout as main.rs wires it, one rule sending the EC2 alarm to `topics`.
async fn fanout(
    aws: &Emulator,
    topics: usize,
) -> Fanout<SnsPublisher, S3ObjectStore, CloudWatchAlarmTags, CodeDeployDeployments, alarm_fanout::timers::NoTimers> {
    let mut vars = HashMap::new();
    let mut names = Vec::new();
    for i in 0..topics {
        let topic = aws.topic_with_subscriber(&format!("alarms-{i}")).await;
        vars.insert(format!("T{i}"), topic.topic_arn.clone());
        names.push(format!("$T{i}"));
    }
    let rules = format!(
        "mode: all-matches\nrules:\n  - name: ec2\n    match: {{namespace: AWS/EC2}}\n    severity: critical\n    topics: [{}]\ndefault:\n  severity: info\n  topics: [$T0]\n",
        names.join(", ")
    );
    let tags_cache = std::time::Duration::from_secs(300);
    Fanout {
        config: FanoutConfig {
            rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: rules.clone() },
            bucket: BUCKET.into(),
            flap_window: Duration::seconds(900),
            claim_ttl: Duration::seconds(120),
            deploy_context_max_age: Duration::seconds(3600),
            alarm_tags_cache: tags_cache,
            silences_prefix: None,
            schedule: None,
        },
        rules: RuleSet::parse(&rules, "round trips", &vars).unwrap(),
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), BUCKET),
        tags: CachedAlarmTags::new(CloudWatchAlarmTags::new(aws_sdk_cloudwatch::Client::new(&aws.sdk)), tags_cache),
        silences: Default::default(),
        timers: alarm_fanout::timers::NoTimers,
        deployments: CodeDeployDeployments::new(aws.codedeploy()),
    }
}

/// The events' alarm as CloudWatch has it, so that its tags are found (and then kept 300 s).
async fn alarm_in_cloudwatch(aws: &Emulator) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
    let alarm = event("cloudwatch-alarm-metric.json");
    aws_sdk_cloudwatch::Client::new(&aws.sdk)
        .put_metric_alarm()
        .alarm_name(alarm["detail"]["alarmName"].as_str().unwrap())
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .statistic(Statistic::Average)
        .period(300)
        .evaluation_periods(1)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
}

/// The EC2 alarm's transition at minute `minute`, to `state`.
fn transition(minute: u32, state: &str) -> Value {
    let mut e = event("cloudwatch-alarm-metric.json");
    e["id"] = json!(format!("round-trip-{minute}"));
    e["detail"]["state"]["value"] = json!(state);
    e["detail"]["state"]["timestamp"] = json!(format!("2026-11-20T17:{minute:02}:00.000+0000"));
    e["detail"]["previousState"]["value"] = json!(if state == "ALARM" { "OK" } else { "ALARM" });
    e
}

/// An alarm's warm transition (its memory exists, its tags are cached) to 1 and to 10 topics.
async fn alarm_rows() -> Vec<(String, BTreeMap<String, u64>)> {
    let mut rows = Vec::new();
    for topics in [1, 10] {
        let aws = Emulator::fresh().await;
        aws.bucket(BUCKET).await;
        let fanout = fanout(&aws, topics).await;
        alarm_in_cloudwatch(&aws).await;
        fanout.handle(transition(10, "ALARM"), "warm-up", Utc::now()).await.unwrap();
        let calls = counted(&aws, async {
            fanout.handle(transition(11, "OK"), "measured", Utc::now()).await.unwrap();
        })
        .await;
        rows.push((format!("alarm transition to {topics} topic(s)"), calls));
    }
    rows
}

fn notifier(
    aws: &Emulator,
    topic: &str,
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
            topic_arn: topic.to_string(),
            chat_topic_arn: None,
            bucket: BUCKET.to_string(),
            notify_on: parse_notify_on("pipeline:FAILED,pipeline:SUCCEEDED").unwrap(),
            claim_ttl_seconds: 120,
            digest: None,
            approvals: Default::default(),
        },
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), BUCKET),
        history: CodePipelineActionHistory::new(aws_sdk_codepipeline::Client::new(&aws.sdk)),
        diagnostics: CodeDeployDiagnostics::new(aws.codedeploy()),
        revisions: CodePipelineExecutions::new(aws_sdk_codepipeline::Client::new(&aws.sdk)),
        metrics: NoMetrics::default(),
    }
}

/// A pipeline event that only records (a stage failing, not notified) and the outcome that
/// notifies (the pipeline's FAILED), on an execution whose start is recorded.
async fn pipeline_rows() -> Vec<(String, BTreeMap<String, u64>)> {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let topic = aws.topic_with_subscriber("pipeline").await;
    let notifier = notifier(&aws, &topic.topic_arn);
    let same_execution = |name: &str| {
        let mut e = event(name);
        e["detail"]["pipeline"] = json!("flask-web-app-legacy");
        e["detail"]["execution-id"] = json!("0e4b7e5a-1d2c-4b7e-9f7e-2b8a1c0d9e01");
        e
    };
    notifier.handle(same_execution("codepipeline-pipeline-started-v2.json"), "warm-up", Utc::now()).await.unwrap();
    let records = counted(&aws, async {
        notifier.handle(same_execution("codepipeline-stage-build-failed.json"), "records", Utc::now()).await.unwrap();
    })
    .await;
    let notifies = counted(&aws, async {
        notifier.handle(same_execution("codepipeline-pipeline-failed-v1.json"), "notifies", Utc::now()).await.unwrap();
    })
    .await;
    vec![
        ("pipeline event that only records (stage FAILED, not notified)".to_string(), records),
        ("pipeline outcome that notifies (pipeline FAILED, 1 topic)".to_string(), notifies),
    ]
}

/// A Lambda deployment's hook with one check (no alarm firing), as deploy-validator's main.rs
/// wires it.
async fn hook_row() -> (String, BTreeMap<String, u64>) {
    use deploy_validator::deployment::CodeDeployLookup;
    use deploy_validator::engine::Probes;
    use deploy_validator::function_scope::FunctionScope;
    use deploy_validator::hook::Validator;
    use deploy_validator::probes::{CloudWatchAlarmGate, LambdaInvoker, ReqwestProbe};
    use deploy_validator::spec::Spec;
    use pipewarden_shared::adapters::CodeDeployHookReporter;

    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    aws.deployment_with_id("d-ROUNDTRIP", "flask-web-app", "Lambda").await;
    let spec = Spec::parse("checks: [{name: no-alarms, type: alarms, alarmNames: [flask-web-app-5xx]}]", "round trips")
        .expect("spec");
    let allowed = spec.allowed_hosts.clone();
    let validator = Validator {
        spec: Ok::<Spec, String>(spec).into(),
        safety_margin: std::time::Duration::from_millis(1000),
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
    };
    let hook = aws.issued_hook("d-ROUNDTRIP", "hook-roundtrip").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let calls = counted(&aws, async {
        let out = validator.handle(hook, deadline).await.unwrap();
        assert_eq!(out["status"], "Succeeded", "{out}");
    })
    .await;
    ("hook (Lambda deployment, one alarm check, Succeeded)".to_string(), calls)
}

#[tokio::test]
async fn each_kind_of_event_makes_few_aws_requests() {
    let mut rows = alarm_rows().await;
    rows.extend(pipeline_rows().await);
    rows.push(hook_row().await);
    println!("| event | S3 | SNS | other | all | requests |\n| --- | --- | --- | --- | --- | --- |");
    for (kind, calls) in &rows {
        println!("{}", row(kind, calls));
    }
    let (one, ten) = (&rows[0].1, &rows[1].1);
    assert!(
        s3(one) <= 3 && s3(ten) <= 3,
        "an alarm transition: at most 3 S3 requests whatever the topics\n{one:?}\n{ten:?}"
    );
    assert_eq!(sns(one), 1, "one SNS request per topic: {one:?}");
    assert_eq!(sns(ten), 10, "one SNS request per topic: {ten:?}");
    let records = &rows[2].1;
    assert!(s3(records) <= 2, "a pipeline event that notifies nothing: at most 2 S3 requests\n{records:?}");
    assert_eq!(sns(records), 0, "{records:?}");
    assert_eq!(sns(&rows[3].1), 1, "{:?}", rows[3].1);
    assert_eq!(rows[4].1.get("PutLifecycleEventHookExecutionStatus"), Some(&1), "{:?}", rows[4].1);
}
