//! alarm-fanout against the local emulator, with several topics each subscribed by an SQS queue:
//! given these alarm events, this is what each subscriber receives.

use std::collections::HashMap;
use std::time::Instant;

use alarm_fanout::config::Config;
use alarm_fanout::handler::{Fanout, FanoutError};
use alarm_fanout::rules::RuleSet;
use chrono::{Duration, Utc};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::deadline;
use pipewarden_shared::deploy_context::{self, InFlight};
use pipewarden_shared::document::DocumentSource;
use pipewarden_shared::lambda::Retry;
use pipewarden_tests::{event, Emulator, Notification, Subscribed};
use serde_json::{json, Value};

const BUCKET: &str = "audit";

const RULES: &str = r#"
mode: all-matches
rules:
  - name: ec2-critical
    match: {namespace: AWS/EC2, state: [ALARM, OK]}
    severity: critical
    topics: [$CRITICAL]
    chatTopics: [$CHAT]
    application: flask-web-app
  - name: services-warning
    match: {alarmName: {glob: "Service*"}}
    severity: warning
    topics: [$WARNING]
  - name: web-5xx
    match: {alarmName: {regex: "^flask-web-app-(5xx|degraded)$"}, state: [ALARM, OK]}
    severity: critical
    topics: [$CRITICAL, $MISSING]
default:
  severity: info
  topics: [$INFO]
"#;

struct World {
    aws: Emulator,
    critical: Subscribed,
    warning: Subscribed,
    info: Subscribed,
    chat: Subscribed,
}

impl World {
    async fn new() -> World {
        let aws = Emulator::fresh().await;
        aws.bucket(BUCKET).await;
        World {
            critical: aws.topic_with_subscriber("critical").await,
            warning: aws.topic_with_subscriber("warning").await,
            info: aws.topic_with_subscriber("info").await,
            chat: aws.topic_with_subscriber("chat").await,
            aws,
        }
    }

    fn fanout(&self) -> Fanout<SnsPublisher, S3ObjectStore> {
        let vars: HashMap<String, String> = HashMap::from([
            ("CRITICAL".into(), self.critical.topic_arn.clone()),
            ("WARNING".into(), self.warning.topic_arn.clone()),
            ("INFO".into(), self.info.topic_arn.clone()),
            ("CHAT".into(), self.chat.topic_arn.clone()),
            ("MISSING".into(), "arn:aws:sns:us-east-1:123456789012:missing".into()),
        ]);
        Fanout {
            config: Config {
                rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: RULES.into() },
                bucket: BUCKET.into(),
                flap_window: Duration::seconds(900),
                claim_ttl: Duration::seconds(120),
                deploy_context_max_age: Duration::seconds(3600),
            },
            rules: RuleSet::parse(RULES, "test", &vars).unwrap(),
            publisher: SnsPublisher::new(self.aws.sns()),
            store: S3ObjectStore::new(self.aws.s3(), BUCKET),
        }
    }

    async fn got(&self) -> [Vec<Notification>; 4] {
        [
            self.aws.received(&self.critical).await,
            self.aws.received(&self.warning).await,
            self.aws.received(&self.info).await,
            self.aws.received(&self.chat).await,
        ]
    }
}

fn counts(got: &[Vec<Notification>; 4]) -> [usize; 4] {
    [got[0].len(), got[1].len(), got[2].len(), got[3].len()]
}

async fn handle(world: &World, payload: Value, token: &str) -> Value {
    world.fanout().handle(payload, token, Utc::now()).await.unwrap()
}

#[tokio::test]
async fn metric_alarm_goes_to_critical_and_chat_with_attributes_and_text() {
    let world = World::new().await;
    handle(&world, event("cloudwatch-alarm-metric.json"), "t1").await;

    let got = world.got().await;
    assert_eq!(counts(&got), [1, 0, 0, 1]);
    let n = &got[0][0];
    assert_eq!(n.subject.as_deref(), Some("[ALARM] ServerCpuTooHigh in us-east-1"));
    assert_eq!(n.attributes["alarm_name"], "ServerCpuTooHigh");
    assert_eq!(n.attributes["state"], "ALARM");
    assert_eq!(n.attributes["severity"], "critical");
    assert_eq!(n.attributes["account"], "123456789012");
    assert_eq!(n.attributes["region"], "us-east-1");
    assert!(n.message.contains("ALARM: \"ServerCpuTooHigh\" in us-east-1 (was OK)"), "{}", n.message);
    assert!(
        n.message.contains("Metric:       AWS/EC2 CPUUtilization (InstanceId=i-12345678901234567) Average over 300s"),
        "{}",
        n.message
    );
    assert!(n.message.contains("Threshold:    threshold 50"), "{}", n.message);
    assert!(n.message.contains("was greater than the threshold (50.0)"));
    assert!(n.message.contains(
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/ServerCpuTooHigh"
    ));
    let chat: Value = serde_json::from_str(&got[3][0].message).unwrap();
    assert_eq!(chat["version"], "1.0");
    assert_eq!(chat["content"]["title"], ":x: ALARM ServerCpuTooHigh in us-east-1");
}

#[tokio::test]
async fn each_alarm_shape_reaches_exactly_its_topics() {
    let world = World::new().await;
    let cases: [(&str, [usize; 4], &str); 7] = [
        ("cloudwatch-alarm-metric-math.json", [1, 0, 0, 1], "Expression:   SUM(METRICS()) (Total Network Traffic)"),
        ("cloudwatch-alarm-anomaly-detection.json", [1, 0, 0, 1], "Expression:   ANOMALY_DETECTION_BAND(m1, 0.8)"),
        ("cloudwatch-alarm-composite.json", [0, 1, 0, 0], "Triggered by: ServerCpuTooHigh (ALARM)"),
        (
            "cloudwatch-alarm-contributor.json",
            [0, 0, 1, 0],
            "Contributor:  InstanceId=i-0abc123def4567890 (6d442278dba546f6)",
        ),
        (
            "cloudwatch-alarm-lambda-action.json",
            [0, 0, 1, 0],
            "AWS/Logs CallCount (InstanceId=i-12345678) Average over 60s",
        ),
        (
            "cloudwatch-alarm-daily-period.json",
            [0, 0, 1, 0],
            "AWS/CodeBuild Duration (ProjectName=flask-web-app-build) Sum over 86400s",
        ),
        ("sns-classic-alarm-composite.json", [2, 0, 0, 0], "Triggered by: flask-web-app-5xx (ALARM)"),
    ];
    for (name, expected, text) in cases {
        let result = world.fanout().handle(event(name), name, Utc::now()).await;
        let got = world.got().await;
        if name == "sns-classic-alarm-composite.json" {
            // web-5xx also names a topic that does not exist: the invocation fails for it alone.
            assert!(matches!(result, Err(FanoutError::Delivery { .. })), "{name}: {result:?}");
            assert_eq!(counts(&got), [1, 0, 0, 0], "{name}");
            assert!(got[0][0].message.contains(text), "{name}: {}", got[0][0].message);
            continue;
        }
        result.unwrap();
        assert_eq!(counts(&got), expected, "{name}");
        let first = got.iter().flatten().next().unwrap();
        assert!(first.message.contains(text), "{name}: {}", first.message);
    }
}

#[tokio::test]
async fn suppressed_composite_is_not_sent_and_says_why() {
    let world = World::new().await;
    let out = handle(&world, event("cloudwatch-alarm-composite-suppressed.json"), "s").await;
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);
    assert!(
        out["alarms"][0]["verdict"].as_str().unwrap().contains("actions suppressed by CloudWatch (WaitPeriod"),
        "{out}"
    );
}

#[tokio::test]
async fn ok_is_sent_only_after_its_alarm_was_sent() {
    let world = World::new().await;
    let out = handle(&world, event("cloudwatch-alarm-metric-ok.json"), "a").await;
    assert!(out["alarms"][0]["verdict"].as_str().unwrap().contains("OK for an alarm whose ALARM was not sent"));
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);

    handle(&world, event("cloudwatch-alarm-metric.json"), "b").await;
    let mut ok_later = event("cloudwatch-alarm-metric-ok.json");
    ok_later["id"] = json!("another-delivery");
    ok_later["detail"]["state"]["timestamp"] = json!("2026-11-20T17:30:00.000+0000");
    handle(&world, ok_later, "c").await;
    let got = world.got().await;
    assert_eq!(counts(&got), [2, 0, 0, 2]);
    assert_eq!(got[0][1].subject.as_deref(), Some("[OK] ServerCpuTooHigh in us-east-1"));
}

#[tokio::test]
async fn duplicates_and_concurrent_deliveries_send_once() {
    let world = World::new().await;
    let fanout = world.fanout();
    let e = event("cloudwatch-alarm-metric.json");
    let (a, b) = tokio::join!(fanout.handle(e.clone(), "x", Utc::now()), fanout.handle(e.clone(), "y", Utc::now()));
    a.unwrap();
    b.unwrap();
    fanout.handle(e, "z", Utc::now()).await.unwrap();
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1]);
}

#[tokio::test]
async fn sns_batch_of_classic_alarms_uses_publish_batch_and_rejects_bad_records_loudly() {
    let world = World::new().await;
    let mut batch = event("sns-classic-alarm-batch.json");
    let mut broken = batch["Records"][0].clone();
    broken["Sns"]["MessageId"] = json!("broken-1");
    broken["Sns"]["Message"] = json!("{\"AlarmName\": \"half\"}");
    batch["Records"].as_array_mut().unwrap().push(broken);

    let out = handle(&world, batch, "batch").await;

    let got = world.got().await;
    assert_eq!(counts(&got), [0, 0, 2, 0], "both real alarms go to the default route");
    let mut subjects: Vec<String> = got[2].iter().map(|n| n.subject.clone().unwrap()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            "[ALARM] flask-web-app-error-rate in eu-west-1",
            "[INSUFFICIENT_DATA] flask-web-app-latency-anomaly in us-east-1"
        ]
    );
    assert_eq!(world.aws.calls().await.get("PublishBatch"), Some(&1));
    let rejected = out["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].as_str().unwrap().contains("broken-1") && rejected[0].as_str().unwrap().contains("NewStateValue"),
        "{out}"
    );
}

#[tokio::test]
async fn insufficient_data_flapping_is_suppressed_within_the_window() {
    let world = World::new().await;
    let first = event("sns-classic-alarm-batch.json");
    let record = first["Records"][1].clone();
    let mut message: Value = serde_json::from_str(record["Sns"]["Message"].as_str().unwrap()).unwrap();
    let single = |message: &Value, id: &str| {
        let mut r = record.clone();
        r["Sns"]["MessageId"] = json!(id);
        r["Sns"]["Message"] = json!(message.to_string());
        json!({"Records": [r]})
    };
    handle(&world, single(&message, "m1"), "1").await;
    message["StateChangeTime"] = json!("2026-11-22T15:50:07.150+0000");
    let out = handle(&world, single(&message, "m2"), "2").await;
    message["StateChangeTime"] = json!("2026-11-22T16:30:07.150+0000");
    handle(&world, single(&message, "m3"), "3").await;

    assert!(out["alarms"][0]["verdict"].as_str().unwrap().contains("flapping"), "{out}");
    assert_eq!(counts(&world.got().await), [0, 0, 2, 0]);
}

#[tokio::test]
async fn a_failing_target_fails_the_invocation_and_the_retry_sends_only_the_missing_message() {
    let world = World::new().await;
    let alarm = event("sns-classic-alarm-metric.json");

    let err = world.fanout().handle(alarm.clone(), "first", Utc::now()).await.unwrap_err();
    assert!(err.to_string().contains("flask-web-app-5xx -> arn:aws:sns:us-east-1:123456789012:missing"), "{err}");
    assert_eq!(counts(&world.got().await), [1, 0, 0, 0]);

    let missing = world.aws.topic_with_subscriber("missing").await;
    world.fanout().handle(alarm, "retry", Utc::now()).await.unwrap();
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0], "critical already had it");
    assert_eq!(world.aws.received(&missing).await.len(), 1);
}

#[tokio::test]
async fn throttled_sns_fails_the_invocation_and_the_retry_delivers() {
    let world = World::new().await;
    world.aws.inject_fault("Publish", 400, "Throttling", 100).await;
    let err = world.fanout().handle(event("cloudwatch-alarm-metric.json"), "t1", Utc::now()).await.unwrap_err();
    assert!(err.to_string().contains("throttled"), "{err}");
    world.aws.clear_faults().await;
    world.fanout().handle(event("cloudwatch-alarm-metric.json"), "t2", Utc::now()).await.unwrap();
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1]);
}

#[tokio::test]
async fn an_alarm_during_a_deployment_names_it() {
    let world = World::new().await;
    let store = S3ObjectStore::new(world.aws.s3(), BUCKET);
    deploy_context::record(
        &store,
        &InFlight {
            application: "flask-web-app".into(),
            source: "pipeline-notifier".into(),
            pipeline: Some("flask-web-app".into()),
            execution_id: Some("c0ffee00-2222".into()),
            deployment_id: None,
            commit: Some("a1b2c3d4e5f60718".into()),
            author: Some("Jorge Souza".into()),
            started_at: chrono::DateTime::parse_from_rfc3339("2026-11-20T17:00:00Z").unwrap().into(),
            finished_at: None,
        },
    )
    .await
    .unwrap();

    handle(&world, event("cloudwatch-alarm-metric.json"), "d").await;

    let got = world.got().await;
    assert!(
        got[0][0]
            .message
            .contains("Deploying:    pipeline flask-web-app execution c0ffee00-2222 (commit a1b2c3d4 by Jorge Souza)"),
        "{}",
        got[0][0].message
    );
}

#[tokio::test]
async fn unknown_shapes_are_acknowledged_with_a_clear_error() {
    let world = World::new().await;
    let out = handle(&world, json!({"detail-type": "Something", "source": "aws.ec2"}), "u").await;
    assert!(out["ignored"].as_str().unwrap().contains("not a CloudWatch alarm"), "{out}");
    let mut broken = event("cloudwatch-alarm-metric.json");
    broken["detail"].as_object_mut().unwrap().remove("alarmName");
    let out = handle(&world, broken, "b").await;
    assert!(out["ignored"].as_str().unwrap().contains("detail.alarmName"), "{out}");
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);
}

/// What the Lambda runtime gives the handler: work bounded by a deadline `seconds` from now.
async fn handle_within(
    world: &World,
    seconds: u64,
    payload: Value,
    token: &str,
) -> (Result<Value, FanoutError>, std::time::Duration) {
    let started = Instant::now();
    let fanout = world.fanout();
    let work = fanout.handle(payload, token, Utc::now());
    let result = deadline::within(started + std::time::Duration::from_secs(seconds), work).await;
    (result, started.elapsed())
}

#[tokio::test]
async fn hanging_sns_stops_before_the_deadline_and_the_retry_delivers_once() {
    let world = World::new().await;
    world.aws.inject_hang("Publish", 6_000, 10).await;

    let (result, took) = handle_within(&world, 3, event("cloudwatch-alarm-metric.json"), "req-1").await;

    let err = result.unwrap_err();
    assert!(took < std::time::Duration::from_secs(3), "stopped after {took:?}, past the 3 s deadline");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert_eq!(err.retry(), Retry::Helps);
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);

    world.aws.clear_faults().await;
    // Lambda retries an asynchronous invocation with the same request id.
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-1").await.0.unwrap();
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-2").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1]);
}

#[tokio::test]
async fn hanging_s3_stops_before_the_deadline_and_nothing_is_sent() {
    let world = World::new().await;
    world.aws.inject_hang("GetObject", 6_000, 10).await;

    let (result, took) = handle_within(&world, 3, event("cloudwatch-alarm-metric.json"), "req-1").await;

    let err = result.unwrap_err();
    assert!(took < std::time::Duration::from_secs(3), "stopped after {took:?}");
    assert!(matches!(err, FanoutError::Ledger { .. }), "{err}");
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);
    world.aws.clear_faults().await;
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-1").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1]);
}

#[tokio::test]
async fn dropped_batch_connections_fail_the_invocation_and_the_retry_delivers_once() {
    let world = World::new().await;
    let batch = event("sns-classic-alarm-batch.json");
    world.aws.inject_drop("PublishBatch", 20).await;
    world.aws.inject_drop("Publish", 20).await;

    let (result, _) = handle_within(&world, 20, batch.clone(), "req-1").await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("network error"), "{err}");
    assert_eq!(err.retry(), Retry::Helps);
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);

    world.aws.clear_faults().await;
    handle_within(&world, 10, batch.clone(), "req-1").await.0.unwrap();
    let first = counts(&world.got().await);
    assert!(first.iter().sum::<usize>() > 0, "{first:?}");
    handle_within(&world, 10, batch, "req-2").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0], "nothing sent twice");
}

#[tokio::test]
async fn sns_server_errors_fail_the_invocation_and_the_retry_delivers_once() {
    let world = World::new().await;
    world.aws.inject_fault("Publish", 500, "InternalError", 100).await;

    let (result, _) = handle_within(&world, 20, event("cloudwatch-alarm-metric.json"), "req-1").await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("server error"), "{err}");
    assert_eq!(err.retry(), Retry::Helps);
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);

    world.aws.clear_faults().await;
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-1").await.0.unwrap();
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-2").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1]);
}
