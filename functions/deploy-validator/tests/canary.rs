//! The canary check end to end, against the local emulator: CloudWatch holds the metrics AWS
//! Lambda and the ALB publish for the old and the new release (seeded as the services write them;
//! `PutMetricData` refuses `AWS/` namespaces, as AWS does), CodeDeploy holds a Lambda deployment
//! with the AppSpec SAM writes or an ECS blue/green deployment with its task sets, and the hook
//! runs as CodeDeploy invokes it. What a user checks: the status CodeDeploy was told, the
//! evidence in S3, the failure notice.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{hook, validator, BUCKET};
use deploy_validator::canary::Verdict;
use deploy_validator::hook::Evidence;
use pipewarden_devkit::{Emulator, Subscribed};
use serde_json::{json, Value};

const FUNCTION: &str = "flask-api";

fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// A Lambda deployment shifting `flask-api`'s alias `live` from version 6 to 7 (the AppSpec SAM
/// writes), created 15 minutes ago, at its AfterAllowTraffic hook.
async fn lambda_deployment(aws: &Emulator, id: &str, hook_id: &str) {
    aws.bucket(BUCKET).await;
    let appspec = json!({
        "version": 0.0,
        "Resources": [{"FlaskApiFunction": {"Type": "AWS::Lambda::Function",
            "Properties": {"Name": FUNCTION, "Alias": "live", "CurrentVersion": "6", "TargetVersion": "7"}}}],
        "Hooks": [{"AfterAllowTraffic": "CodeDeployHook_pipewarden-validator"}]
    });
    aws.control_post(
        "deployments",
        json!({
            "deploymentId": id,
            "applicationName": "flask-api-app",
            "computePlatform": "Lambda",
            "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec.to_string()}},
            "createTime": (Utc::now() - chrono::Duration::minutes(15)).timestamp(),
        }),
    )
    .await;
    aws.hook_execution(id, hook_id, "AfterAllowTraffic").await;
}

/// What a metric is each minute of the last ten, as the service publishes it.
struct Minutely<'a> {
    metric: &'a str,
    dimensions: Value,
    values: Vec<f64>,
}

/// One point in each of the last ten whole minutes (the one in progress is not judged).
async fn publish(aws: &Emulator, namespace: &str, series: &[Minutely<'_>]) {
    publish_before(aws, namespace, series, 0).await;
}

/// One point in each of the ten whole minutes that ended `minutes_ago`.
async fn publish_before(aws: &Emulator, namespace: &str, series: &[Minutely<'_>], minutes_ago: i64) {
    let minute = Utc::now().timestamp() / 60 * 60 - 60 * minutes_ago;
    let now = chrono::DateTime::from_timestamp(minute, 0).unwrap();
    let data: Vec<Value> = series
        .iter()
        .flat_map(|s| {
            s.values.iter().enumerate().map(move |(minute, value)| {
                json!({
                    "MetricName": s.metric,
                    "Dimensions": s.dimensions,
                    "Timestamp": (now - chrono::Duration::seconds(30 + 60 * minute as i64)).timestamp(),
                    "Value": value,
                })
            })
        })
        .collect();
    aws.control_post("metrics", json!({"namespace": namespace, "metricData": data})).await;
}

fn lambda_dimensions(version: &str) -> Value {
    json!([
        {"Name": "FunctionName", "Value": FUNCTION},
        {"Name": "Resource", "Value": format!("{FUNCTION}:live")},
        {"Name": "ExecutedVersion", "Value": version},
    ])
}

/// Ten minutes of both versions: `errors` of 100 invocations a minute, durations around `ms`.
async fn lambda_metrics(aws: &Emulator, version: &str, errors: f64, ms: f64) {
    lambda_metrics_before(aws, version, errors, ms, 0).await;
}

async fn lambda_metrics_before(aws: &Emulator, version: &str, errors: f64, ms: f64, minutes_ago: i64) {
    let d = lambda_dimensions(version);
    let durations = (0..10).map(|i| ms + f64::from(i % 3)).collect();
    publish_before(
        aws,
        "AWS/Lambda",
        &[
            Minutely { metric: "Invocations", dimensions: d.clone(), values: vec![100.0; 10] },
            Minutely { metric: "Errors", dimensions: d.clone(), values: vec![errors; 10] },
            Minutely { metric: "Duration", dimensions: d, values: durations },
        ],
        minutes_ago,
    )
    .await;
}

/// The check where a spec puts it: after traffic has shifted. Twelve minutes hold the ten seeded
/// even when the minute turns between seeding and judging.
const SPEC: &str =
    "hooks:\n  AfterAllowTraffic:\n    checks:\n      - name: judge\n        type: canary\n        windowMinutes: 12\n";

async fn evidence(aws: &Emulator, deployment: &str, hook_id: &str) -> Evidence {
    serde_json::from_slice(&aws.object(BUCKET, &Evidence::key(deployment, hook_id)).await.expect("evidence")).unwrap()
}

async fn reported(aws: &Emulator) -> Vec<(String, String)> {
    aws.hook_statuses().await.into_iter().map(|s| (s.hook_execution_id, s.status)).collect()
}

async fn run(aws: &Emulator, spec: &str, topic: Option<&Subscribed>, deployment: &str, hook_id: &str) -> Value {
    validator(aws, spec, topic.map(|t| t.topic_arn.clone()))
        .handle(hook(deployment, hook_id), deadline_in(20))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lambda_version_with_more_errors_than_the_old_one_is_rolled_back_with_the_evidence() {
    // GIVEN version 7 failing 12% of its invocations where version 6 fails 1%, equally fast
    let aws = Emulator::fresh().await;
    lambda_deployment(&aws, "d-CANARY001", "hook-canary-1").await;
    lambda_metrics(&aws, "7", 12.0, 80.0).await;
    lambda_metrics(&aws, "6", 1.0, 80.0).await;
    let topic = aws.topic_with_subscriber("deploy").await;

    // WHEN CodeDeploy runs the AfterAllowTraffic hook
    let out = run(&aws, SPEC, Some(&topic), "d-CANARY001", "hook-canary-1").await;

    // THEN it reports Failed (CodeDeploy rolls back), and the evidence says why, metric by metric
    assert_eq!(out["status"], "Failed", "{out}");
    assert_eq!(reported(&aws).await, vec![("hook-canary-1".to_string(), "Failed".to_string())]);
    let evidence = evidence(&aws, "d-CANARY001", "hook-canary-1").await;
    let check = &evidence.checks[0];
    assert_eq!(check.kind, "canary");
    let rate = &check.metrics[0];
    assert_eq!((rate.metric.as_str(), rate.verdict), ("error rate", Verdict::Fail), "{rate:?}");
    assert_eq!((rate.new.side.as_str(), rate.new.rate), ("flask-api:7", Some(0.12)));
    assert_eq!((rate.old.side.as_str(), rate.old.rate), ("flask-api:6", Some(0.01)));
    assert_eq!((rate.new.requests, rate.old.requests), (Some(1000.0), Some(1000.0)));
    assert!(rate.p_value.unwrap() < 0.001, "{rate:?}");
    assert!(rate.graph.contains("ExecutedVersion"), "{}", rate.graph);
    assert_eq!(check.metrics[1].verdict, Verdict::Pass, "latency is the same: {:?}", check.metrics[1]);

    // ... and the notice a person reads shows both sides, the test and the graph
    let notices = aws.received(&topic).await;
    assert_eq!(notices.len(), 1);
    let body = &notices[0].message;
    assert!(body.contains("error rate [FAIL]: new flask-api:7 12.00% (120 errors in 1000 requests); old flask-api:6 1.00% (10 errors in 1000 requests); two-proportion z-test, one-sided, p = 0.0000"), "{body}");
    assert!(
        body.contains(
            "graph: https://us-east-1.console.aws.amazon.com/cloudwatch/deeplink.js?region=us-east-1#metricsV2:graph="
        ),
        "{body}"
    );
}

#[tokio::test]
async fn a_lambda_version_as_good_as_the_old_one_passes() {
    let aws = Emulator::fresh().await;
    lambda_deployment(&aws, "d-CANARY002", "hook-canary-2").await;
    lambda_metrics(&aws, "7", 1.0, 75.0).await;
    lambda_metrics(&aws, "6", 1.0, 80.0).await;
    // Another namespace's metric of the same name and dimensions is not Lambda's.
    publish(
        &aws,
        "Custom/Copy",
        &[Minutely { metric: "Errors", dimensions: lambda_dimensions("7"), values: vec![90.0; 10] }],
    )
    .await;

    let out = run(&aws, SPEC, None, "d-CANARY002", "hook-canary-2").await;

    assert_eq!(out["status"], "Succeeded", "{out}");
    assert_eq!(reported(&aws).await, vec![("hook-canary-2".to_string(), "Succeeded".to_string())]);
    let evidence = evidence(&aws, "d-CANARY002", "hook-canary-2").await;
    assert!(evidence.checks[0].metrics.iter().all(|m| m.verdict == Verdict::Pass), "{:?}", evidence.checks[0]);
}

#[tokio::test]
async fn without_metrics_the_no_data_policy_decides() {
    let aws = Emulator::fresh().await;
    lambda_deployment(&aws, "d-CANARY003", "hook-canary-3").await;
    aws.hook_execution("d-CANARY003", "hook-canary-4", "AfterAllowTraffic").await;

    // noData: fail (the default): nothing to judge fails the release, saying so
    let out = run(&aws, SPEC, None, "d-CANARY003", "hook-canary-3").await;
    assert_eq!(out["status"], "Failed", "{out}");
    let evidence = evidence(&aws, "d-CANARY003", "hook-canary-3").await;
    assert!(evidence.checks[0].metrics.iter().all(|m| m.verdict == Verdict::NoData));
    assert!(
        evidence.checks[0].detail.contains("too few requests to judge: 0 new, 0 old"),
        "{}",
        evidence.checks[0].detail
    );

    // noData: pass
    let out = run(&aws, &format!("{SPEC}        noData: pass\n"), None, "d-CANARY003", "hook-canary-4").await;
    assert_eq!(out["status"], "Succeeded", "{out}");
}

/// An ECS blue/green deployment at AfterAllowTraffic, its task sets as CodeDeploy reports them.
async fn ecs_deployment(aws: &Emulator, id: &str, hook_id: &str) {
    aws.bucket(BUCKET).await;
    let created = (Utc::now() - chrono::Duration::minutes(15)).timestamp();
    aws.control_post(
        "deployments",
        json!({"deploymentId": id, "applicationName": "flask-ecs-app", "computePlatform": "ECS", "createTime": created}),
    )
    .await;
    aws.hook_execution(id, hook_id, "AfterAllowTraffic").await;
    let now = Utc::now().timestamp();
    let events: Vec<Value> = [
        ("BeforeInstall", "Succeeded"),
        ("Install", "Succeeded"),
        ("AfterInstall", "Succeeded"),
        ("AllowTestTraffic", "Succeeded"),
        ("AfterAllowTestTraffic", "Succeeded"),
        ("BeforeAllowTraffic", "Succeeded"),
        ("AllowTraffic", "Succeeded"),
        ("AfterAllowTraffic", "InProgress"),
    ]
    .iter()
    .map(|(name, status)| json!({"lifecycleEventName": name, "status": status, "startTime": now}))
    .collect();
    let task_set = |label: &str, group: &str, weight: f64| {
        json!({"identifer": format!("ecs-svc/{label}"), "desiredCount": 2, "pendingCount": 0, "runningCount": 2,
               "status": "ACTIVE", "trafficWeight": weight, "targetGroup": {"name": group}, "taskSetLabel": label})
    };
    aws.control_post(
        "deployment-targets",
        json!({"deploymentId": id, "targets": [{"deploymentTargetType": "ECSTarget", "ecsTarget": {
            "deploymentId": id,
            "targetId": "flask-ecs-cluster:flask-ecs-service",
            "targetArn": "arn:aws:ecs:us-east-1:123456789012:service/flask-ecs-cluster/flask-ecs-service",
            "status": "InProgress",
            "lastUpdatedAt": now,
            "lifecycleEvents": events,
            "taskSetsInfo": [task_set("Blue", "flask-tg-blue", 0.0), task_set("Green", "flask-tg-green", 100.0)],
        }}]}),
    )
    .await;
}

const LOAD_BALANCER: &str = "app/flask-alb/50dc6c495c0c9188";
const ECS_SPEC: &str = "hooks:\n  AfterAllowTraffic:\n    checks:\n      - name: judge\n        type: canary\n        windowMinutes: 12\n        loadBalancer: app/flask-alb/50dc6c495c0c9188\n        targetGroups: [targetgroup/flask-tg-blue/73e2d6bc24d8a067, targetgroup/flask-tg-green/943f017f100becff]\n";

/// Ten minutes of one target group behind the ALB: 200 requests a minute, `five_xx` of them
/// failing, response times around `seconds`.
async fn alb_metrics(aws: &Emulator, target_group: &str, five_xx: f64, seconds: f64) {
    let d = json!([{"Name": "LoadBalancer", "Value": LOAD_BALANCER}, {"Name": "TargetGroup", "Value": target_group}]);
    let times = (0..10).map(|i| seconds * (1.0 + f64::from(i % 4) / 20.0)).collect();
    publish(
        aws,
        "AWS/ApplicationELB",
        &[
            Minutely { metric: "RequestCount", dimensions: d.clone(), values: vec![200.0; 10] },
            Minutely { metric: "HTTPCode_Target_5XX_Count", dimensions: d.clone(), values: vec![five_xx; 10] },
            Minutely { metric: "TargetResponseTime", dimensions: d, values: times },
        ],
    )
    .await;
}

#[tokio::test]
async fn an_ecs_green_target_group_slower_than_blue_fails_and_one_as_fast_passes() {
    let aws = Emulator::fresh().await;
    ecs_deployment(&aws, "d-CANARYE01", "hook-canary-ecs-1").await;
    // Green answers twice as slowly, with as few errors.
    alb_metrics(&aws, "targetgroup/flask-tg-green/943f017f100becff", 0.0, 0.240).await;
    alb_metrics(&aws, "targetgroup/flask-tg-blue/73e2d6bc24d8a067", 0.0, 0.120).await;

    let out = run(&aws, ECS_SPEC, None, "d-CANARYE01", "hook-canary-ecs-1").await;

    assert_eq!(out["status"], "Failed", "{out}");
    let evidence = evidence(&aws, "d-CANARYE01", "hook-canary-ecs-1").await;
    let latency = evidence.checks[0].metrics.get(1).unwrap_or_else(|| panic!("{:?}", evidence.checks));
    assert_eq!((latency.metric.as_str(), latency.verdict), ("latency", Verdict::Fail), "{latency:?}");
    assert_eq!(latency.new.side, "targetgroup/flask-tg-green/943f017f100becff");
    assert!(latency.effect.unwrap() > 0.9, "twice as slow: {latency:?}");
    assert_eq!(evidence.checks[0].metrics[0].verdict, Verdict::Pass, "no 5xx on either side");

    // A later deployment whose green is as fast as blue passes (on an emulator of its own: one
    // test holds one at a time).
    drop(aws);
    let aws = Emulator::fresh().await;
    ecs_deployment(&aws, "d-CANARYE02", "hook-canary-ecs-2").await;
    alb_metrics(&aws, "targetgroup/flask-tg-green/943f017f100becff", 1.0, 0.118).await;
    alb_metrics(&aws, "targetgroup/flask-tg-blue/73e2d6bc24d8a067", 1.0, 0.120).await;
    let out = run(&aws, ECS_SPEC, None, "d-CANARYE02", "hook-canary-ecs-2").await;
    assert_eq!(out["status"], "Succeeded", "{out}");
}

#[tokio::test]
async fn metrics_read_page_by_page_are_judged_whole() {
    // GIVEN CloudWatch answering 7 data points a page
    let aws = Emulator::fresh().await;
    aws.control_post("page-sizes", json!({"operation": "GetMetricData", "size": 7})).await;
    lambda_deployment(&aws, "d-CANARY005", "hook-canary-5").await;
    lambda_metrics(&aws, "7", 12.0, 80.0).await;
    lambda_metrics(&aws, "6", 1.0, 80.0).await;

    let out = run(&aws, SPEC, None, "d-CANARY005", "hook-canary-5").await;

    // THEN every page was read: the counts are the whole window's
    assert_eq!(out["status"], "Failed", "{out}");
    let evidence = evidence(&aws, "d-CANARY005", "hook-canary-5").await;
    assert_eq!(evidence.checks[0].metrics[0].new.requests, Some(1000.0));
    assert_eq!(evidence.checks[0].metrics[1].new.periods, Some(10));
    assert!(aws.calls().await["GetMetricData"] >= 9, "60 points at 7 a page");
}

#[tokio::test]
async fn when_cloudwatch_does_not_answer_in_time_the_hook_still_reports_failed() {
    // GIVEN GetMetricData hanging past the hook's deadline
    let aws = Emulator::fresh().await;
    lambda_deployment(&aws, "d-CANARY006", "hook-canary-6").await;
    lambda_metrics(&aws, "7", 1.0, 80.0).await;
    lambda_metrics(&aws, "6", 1.0, 80.0).await;
    aws.inject_hang("GetMetricData", 30_000, 5).await;

    let started = Instant::now();
    let out = validator(&aws, SPEC, None).handle(hook("d-CANARY006", "hook-canary-6"), deadline_in(6)).await.unwrap();

    // THEN it reports Failed before its deadline, saying the analysis could not finish
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    assert_eq!(out["status"], "Failed", "{out}");
    assert_eq!(reported(&aws).await, vec![("hook-canary-6".to_string(), "Failed".to_string())]);
    let evidence = evidence(&aws, "d-CANARY006", "hook-canary-6").await;
    assert!(
        evidence.reason.contains("the analysis could not finish: ran out of time reading CloudWatch metrics"),
        "{}",
        evidence.reason
    );
}

/// The application's own metric, as it publishes it (PutMetricData), one per minute.
async fn checkout_times(aws: &Emulator, version: &str, ms: f64, minutes_ago: i64) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    let minute = Utc::now().timestamp() / 60 * 60 - 60 * minutes_ago;
    let data: Vec<MetricDatum> = (0..10)
        .map(|i| {
            MetricDatum::builder()
                .metric_name("CheckoutMs")
                .dimensions(Dimension::builder().name("Version").value(version).build())
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(minute - 30 - 60 * i))
                .value(ms + (i % 3) as f64)
                .unit(StandardUnit::Milliseconds)
                .build()
        })
        .collect();
    aws_sdk_cloudwatch::Client::new(&aws.sdk)
        .put_metric_data()
        .namespace("FlaskApp")
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData");
}

#[tokio::test]
async fn an_all_at_once_release_is_judged_against_the_old_version_before_the_deployment() {
    // GIVEN an all-at-once deployment 15 minutes ago: version 6 served until then, version 7 since
    // (failing 12% where 6 failed 1%), and the app's own checkout time per version, as fast
    let aws = Emulator::fresh().await;
    lambda_deployment(&aws, "d-CANARY007", "hook-canary-7").await;
    lambda_metrics(&aws, "7", 12.0, 80.0).await;
    lambda_metrics_before(&aws, "6", 1.0, 80.0, 16).await;
    checkout_times(&aws, "7", 300.0, 0).await;
    checkout_times(&aws, "6", 300.0, 16).await;
    let spec = format!(
        "{SPEC}        metrics:\n          - {{name: checkout, namespace: FlaskApp, metricName: CheckoutMs, dimensions: {{Version: '{{version}}'}}}}\n"
    );

    let out = run(&aws, &spec, None, "d-CANARY007", "hook-canary-7").await;

    // THEN the old side is version 6 before the deployment (it served nothing alongside 7)
    assert_eq!(out["status"], "Failed", "{out}");
    let evidence = evidence(&aws, "d-CANARY007", "hook-canary-7").await;
    let check = &evidence.checks[0];
    assert!(
        check.detail.starts_with("flask-api:7 against flask-api:6 before the deployment: error rate: worse"),
        "{}",
        check.detail
    );
    let rate = &check.metrics[0];
    assert_eq!((rate.verdict, rate.old.rate, rate.old.requests), (Verdict::Fail, Some(0.01), Some(1000.0)), "{rate:?}");
    let checkout = &check.metrics[2];
    assert_eq!((checkout.metric.as_str(), checkout.verdict), ("checkout", Verdict::Pass), "{checkout:?}");
    assert_eq!((checkout.new.periods, checkout.old.periods), (Some(10), Some(10)));
    assert!(checkout.old.window < checkout.new.window, "{} before {}", checkout.old.window, checkout.new.window);
}
