//! alarm-fanout against the local emulator, with several topics each subscribed by an SQS queue:
//! given these alarm events, this is what each subscriber receives.

use std::collections::HashMap;
use std::time::Instant;

use alarm_fanout::config::Config;
use alarm_fanout::deployments::CodeDeployDeployments;
use alarm_fanout::handler::{Fanout, FanoutError};
use alarm_fanout::rules::RuleSet;
use alarm_fanout::tags::{CachedAlarmTags, CloudWatchAlarmTags};
use chrono::{Duration, Utc};
use pipewarden_devkit::{event, Emulator, Notification, Subscribed};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::deadline;
use pipewarden_shared::deploy_context::{self, Change};
use pipewarden_shared::document::DocumentSource;
use pipewarden_shared::lambda::Retry;
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

    fn fanout(
        &self,
    ) -> Fanout<SnsPublisher, S3ObjectStore, CloudWatchAlarmTags, CodeDeployDeployments, alarm_fanout::timers::NoTimers>
    {
        self.fanout_with(RULES, std::time::Duration::from_secs(300))
    }

    /// alarm-fanout as main.rs wires it: these rules, the emulator's SNS, S3 and CloudWatch, tags
    /// kept for `tags_cache`.
    fn fanout_with(
        &self,
        rules: &str,
        tags_cache: std::time::Duration,
    ) -> Fanout<SnsPublisher, S3ObjectStore, CloudWatchAlarmTags, CodeDeployDeployments, alarm_fanout::timers::NoTimers>
    {
        let vars: HashMap<String, String> = HashMap::from([
            ("CRITICAL".into(), self.critical.topic_arn.clone()),
            ("WARNING".into(), self.warning.topic_arn.clone()),
            ("INFO".into(), self.info.topic_arn.clone()),
            ("CHAT".into(), self.chat.topic_arn.clone()),
            ("MISSING".into(), "arn:aws:sns:us-east-1:123456789012:missing".into()),
        ]);
        Fanout {
            config: Config {
                rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: rules.into() },
                bucket: BUCKET.into(),
                flap_window: Duration::seconds(900),
                claim_ttl: Duration::seconds(120),
                deploy_context_max_age: Duration::seconds(3600),
                alarm_tags_cache: tags_cache,
                silences_prefix: None,
                schedule: None,
            },
            rules: RuleSet::parse(rules, "test", &vars).unwrap(),
            publisher: SnsPublisher::new(self.aws.sns()),
            store: S3ObjectStore::new(self.aws.s3(), BUCKET),
            tags: CachedAlarmTags::new(CloudWatchAlarmTags::new(self.cloudwatch()), tags_cache),
            silences: Default::default(),
            timers: alarm_fanout::timers::NoTimers,
            deployments: CodeDeployDeployments::new(self.aws.codedeploy()),
        }
    }

    fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.aws.sdk)
    }

    /// The alarm as CloudWatch has it, with its tags, so that ListTagsForResource finds them.
    async fn alarm_with_tags(&self, name: &str, tags: &[(&str, &str)]) {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic, Tag};
        self.cloudwatch()
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .statistic(Statistic::Average)
            .period(300)
            .evaluation_periods(1)
            .threshold(50.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
            .send()
            .await
            .expect("PutMetricAlarm");
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

    // Its ALARM (17:04), overtaken by that OK (17:20), arrives late: recorded, not sent, so no
    // subscriber is left with an open ALARM for an alarm that is OK.
    let late = handle(&world, event("cloudwatch-alarm-metric.json"), "b").await;
    assert!(late["alarms"][0]["verdict"].as_str().unwrap().contains("older than"), "{late}");
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);

    let mut alarm_again = event("cloudwatch-alarm-metric.json");
    alarm_again["id"] = json!("a-new-alarm");
    alarm_again["detail"]["state"]["timestamp"] = json!("2026-11-20T17:25:00.000+0000");
    handle(&world, alarm_again, "c").await;
    let mut ok_later = event("cloudwatch-alarm-metric-ok.json");
    ok_later["id"] = json!("another-delivery");
    ok_later["detail"]["state"]["timestamp"] = json!("2026-11-20T17:30:00.000+0000");
    handle(&world, ok_later, "d").await;
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
    flask_web_app_deploying(&store, "c0ffee00-2222").await;

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

/// pipeline-notifier saw the flask-web-app pipeline's deploy action start at 17:00.
async fn flask_web_app_deploying(store: &S3ObjectStore, execution_id: &str) {
    let change = Change::PipelineDeploying {
        pipeline: "flask-web-app".into(),
        execution_id: execution_id.into(),
        deployment_group: None,
        commit: Some("a1b2c3d4e5f60718".into()),
        author: Some("Jorge Souza".into()),
        at: chrono::DateTime::parse_from_rfc3339("2026-11-20T17:00:00Z").unwrap().into(),
    };
    deploy_context::update(store, "flask-web-app", &change).await.unwrap();
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

/// Issue 15: one of the two topics' publishes hangs to the deadline. The one accepted is recorded
/// and the hung one's claim released in the time kept for settling, so a retry with another
/// request id (a redelivered event) sends only what is missing; no topic gets it twice.
#[tokio::test]
async fn a_partial_timeout_is_settled_and_the_retry_sends_only_what_is_missing() {
    let world = World::new().await;
    world.aws.inject_hang("Publish", 8_000, 1).await;

    let (result, took) = handle_within(&world, 4, event("cloudwatch-alarm-metric.json"), "req-1").await;

    let err = result.unwrap_err();
    assert!(took < std::time::Duration::from_secs(4), "stopped after {took:?}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert_eq!(counts(&world.got().await).iter().sum::<usize>(), 1, "one topic got it, the other hung");
    world.aws.clear_faults().await;
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-2").await.0.unwrap();
    let total: Vec<usize> = counts(&world.got().await).to_vec();
    // `got` drains what was received since the last look: the missing one, and nothing else.
    assert_eq!(total.iter().sum::<usize>(), 1, "{total:?}");
}

/// Issue 15: a message SNS refuses for what it is (a 4xx other than throttling) is not retried as
/// it is; a server error still is.
#[tokio::test]
async fn a_message_sns_refuses_is_not_retried_as_is() {
    let world = World::new().await;
    world.aws.inject_fault("Publish", 400, "InvalidParameter", 10).await;
    let (result, _) = handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-1").await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("InvalidParameter"), "{err}");
    assert_eq!(err.retry(), Retry::Useless, "{err}");

    world.aws.clear_faults().await;
    world.aws.inject_fault("Publish", 500, "InternalError", 100).await;
    let (result, _) = handle_within(&world, 20, event("cloudwatch-alarm-metric.json"), "req-2").await;
    let err = result.unwrap_err();
    assert_eq!(err.retry(), Retry::Helps, "{err}");
}

/// Issue 15: ALARM's publish fails (SNS errors until the SDK gives up), OK arrives and is handled,
/// then Lambda retries the ALARM. The on-call must not be left with an open ALARM for an alarm
/// that is closed: the OK supersedes the ALARM that never went out, and the retry sends nothing.
#[tokio::test]
async fn an_alarm_retried_after_its_ok_is_not_sent_last() {
    let world = World::new().await;
    world.aws.inject_fault("Publish", 500, "InternalError", 100).await;
    let (alarm, _) = handle_within(&world, 20, event("cloudwatch-alarm-metric.json"), "req-alarm").await;
    assert!(alarm.is_err(), "the ALARM was not delivered: {alarm:?}");
    world.aws.clear_faults().await;

    handle_within(&world, 10, event("cloudwatch-alarm-metric-ok.json"), "req-ok").await.0.unwrap();
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-alarm").await.0.unwrap();

    let got = world.got().await;
    let last: Vec<Option<&str>> = got.iter().map(|topic| topic.last().map(|n| n.message.as_str())).collect();
    for (topic, message) in last.iter().enumerate() {
        assert!(
            !message.is_some_and(|m| m.contains("ALARM") && !m.contains("OK")),
            "topic {topic}'s last message says ALARM for an alarm that is OK: {message:?}"
        );
    }
    assert_eq!(counts(&got), [0, 0, 0, 0], "nothing to resolve where the ALARM never went");
}

/// Issue 15: with the ALARM sent, the OK goes to the topics that got it, once.
#[tokio::test]
async fn an_ok_follows_its_alarm_to_the_topics_that_got_it() {
    let world = World::new().await;
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-alarm").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1]);
    handle_within(&world, 10, event("cloudwatch-alarm-metric-ok.json"), "req-ok").await.0.unwrap();
    handle_within(&world, 10, event("cloudwatch-alarm-metric-ok.json"), "req-ok-2").await.0.unwrap();
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

// ---------------------------------------------------------------------------------------------
// Alarm tags: read from the event when CloudWatch propagates them, looked up otherwise.

/// A rule that only an alarm's tags can match, and a default for everything else.
const TAG_RULES: &str = r#"
mode: all-matches
rules:
  - name: payments-team
    match: {tags: {team: payments}}
    severity: critical
    topics: [$CRITICAL]
default:
  severity: info
  topics: [$INFO]
"#;

const CPU_ALARM_ARN: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh";

fn tag_lookups(calls: &std::collections::BTreeMap<String, u64>) -> u64 {
    calls.get("ListTagsForResource").copied().unwrap_or(0)
}

#[tokio::test]
async fn tags_in_the_eventbridge_event_route_by_a_tags_rule_without_a_lookup() {
    let world = World::new().await;
    let fanout = world.fanout_with(TAG_RULES, std::time::Duration::from_secs(300));

    let out = fanout.handle(event("cloudwatch-alarm-tagged.json"), "tagged", Utc::now()).await.unwrap();

    let got = world.got().await;
    assert_eq!(counts(&got), [1, 0, 0, 0], "{out}");
    assert_eq!(got[0][0].attributes["rule"], "payments-team");
    assert!(got[0][0].message.contains("Tags:         env=prod, team=payments"), "{}", got[0][0].message);
    assert_eq!(tag_lookups(&world.aws.calls().await), 0, "alarmTagsStatus SUCCESS: the event's tags are the alarm's");
}

/// The classic message of `sns-classic-alarm-metric.json`, with the alarm's name and tags as
/// CloudWatch sends them when the alarm's tag propagation is on.
fn classic_with_tags(alarm_name: &str, tags: Value) -> Value {
    let mut sns = event("sns-classic-alarm-metric.json");
    let mut message: Value = serde_json::from_str(sns["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["AlarmName"] = json!(alarm_name);
    message["AlarmArn"] = json!(format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm_name}"));
    message["AlarmTags"] = tags;
    message["AlarmTagsStatus"] = json!("SUCCESS");
    sns["Records"][0]["Sns"]["Message"] = json!(message.to_string());
    sns["Records"][0]["Sns"]["MessageId"] = json!(format!("{alarm_name}-message"));
    sns
}

#[tokio::test]
async fn tags_in_a_classic_sns_message_route_by_a_tags_rule() {
    let world = World::new().await;
    let fanout = world.fanout_with(TAG_RULES, std::time::Duration::from_secs(300));

    fanout.handle(classic_with_tags("payments-5xx", json!({"team": "payments"})), "a", Utc::now()).await.unwrap();
    // Read as leniently when the tags come as a list of {Key, Value}.
    let listed = json!([{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}]);
    fanout.handle(classic_with_tags("payments-latency", listed), "b", Utc::now()).await.unwrap();
    fanout.handle(classic_with_tags("search-5xx", json!({"team": "search"})), "c", Utc::now()).await.unwrap();

    let got = world.got().await;
    assert_eq!(counts(&got), [2, 0, 1, 0]);
    let mut critical: Vec<String> = got[0].iter().map(|n| n.attributes["alarm_name"].clone()).collect();
    critical.sort();
    assert_eq!(critical, ["payments-5xx", "payments-latency"]);
    assert_eq!(got[2][0].attributes["alarm_name"], "search-5xx");
    assert!(got[2][0].message.contains("Tags:         team=search"), "{}", got[2][0].message);
    assert_eq!(tag_lookups(&world.aws.calls().await), 0);
}

#[tokio::test]
async fn tags_missing_from_the_event_are_looked_up_once_within_the_cache_time_and_name_the_deployment() {
    let world = World::new().await;
    world.alarm_with_tags("ServerCpuTooHigh", &[("team", "payments"), ("application", "flask-web-app")]).await;
    let store = S3ObjectStore::new(world.aws.s3(), BUCKET);
    flask_web_app_deploying(&store, "c0ffee00-3333").await;
    let fanout = world.fanout_with(TAG_RULES, std::time::Duration::from_secs(300));

    fanout.handle(event("cloudwatch-alarm-metric.json"), "first", Utc::now()).await.unwrap();
    let mut ok = event("cloudwatch-alarm-metric-ok.json");
    ok["id"] = json!("the-ok-a-minute-later");
    fanout.handle(ok, "second", Utc::now()).await.unwrap();

    let got = world.got().await;
    assert_eq!(counts(&got), [2, 0, 0, 0], "both transitions routed by the looked-up team tag");
    let alarm = &got[0][0].message;
    assert!(alarm.contains("Tags:         application=flask-web-app, team=payments"), "{alarm}");
    assert!(alarm.contains("Deploying:    pipeline flask-web-app execution c0ffee00-3333"), "{alarm}");
    assert_eq!(tag_lookups(&world.aws.calls().await), 1, "the second transition used the tags kept for 300 s");

    // With no cache time, every transition looks them up.
    let uncached = world.fanout_with(TAG_RULES, std::time::Duration::ZERO);
    let mut again = event("cloudwatch-alarm-metric.json");
    again["id"] = json!("a-later-alarm");
    again["detail"]["state"]["timestamp"] = json!("2026-11-20T18:00:00.000+0000");
    uncached.handle(again, "third", Utc::now()).await.unwrap();
    assert_eq!(tag_lookups(&world.aws.calls().await), 2);
    assert_eq!(counts(&world.got().await), [1, 0, 0, 0]);
}

#[tokio::test]
async fn a_failing_tag_lookup_still_delivers_by_the_other_rules() {
    let world = World::new().await;
    world.alarm_with_tags("ServerCpuTooHigh", &[("team", "payments")]).await;
    world.aws.inject_fault("ListTagsForResource", 500, "InternalServiceError", 100).await;
    let fanout = world.fanout_with(TAG_RULES, std::time::Duration::from_secs(300));

    let out = fanout.handle(event("cloudwatch-alarm-metric.json"), "t", Utc::now()).await.unwrap();

    let got = world.got().await;
    assert_eq!(counts(&got), [0, 0, 1, 0], "routed without tags, by the default: {out}");
    assert_eq!(out["alarms"][0]["verdict"], "send");
    assert!(!got[2][0].message.contains("Tags:"), "{}", got[2][0].message);
    assert!(tag_lookups(&world.aws.calls().await) >= 1);

    // An alarm CloudWatch does not know (ResourceNotFound) is routed without tags too.
    world.aws.clear_faults().await;
    let mut unknown = event("cloudwatch-alarm-metric.json");
    unknown["id"] = json!("unknown-alarm");
    unknown["detail"]["alarmName"] = json!("DeletedAlarm");
    unknown["resources"] = json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:DeletedAlarm"]);
    fanout.handle(unknown, "u", Utc::now()).await.unwrap();
    assert_eq!(counts(&world.got().await), [0, 0, 1, 0]);
}

#[tokio::test]
async fn a_hanging_tag_lookup_leaves_time_to_deliver_before_the_deadline() {
    let world = World::new().await;
    world.alarm_with_tags("ServerCpuTooHigh", &[("team", "payments")]).await;
    world.aws.inject_hang("ListTagsForResource", 6_000, 10).await;

    let (result, took) = handle_within(&world, 3, event("cloudwatch-alarm-metric.json"), "req-1").await;

    result.unwrap();
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}: the lookup should give up early");
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1]);
}

#[test]
fn the_tagged_sample_event_names_the_alarm_the_lookup_would() {
    let (alarms, _) = alarm_fanout::handler::read_transitions(event("cloudwatch-alarm-tagged.json")).unwrap();
    assert_eq!(alarms[0].alarm_arn.as_deref(), Some(CPU_ALARM_ARN));
    assert!(alarms[0].tags_known);
}

// ---------------------------------------------------------------------------------------------
// Every alarm shape users meet: the sample events of the `aws_lambda_events` crate.

use pipewarden_devkit::lambda_events_fixtures;

/// The crate's CloudWatch alarm shapes, and the verdict (start) on each alarm they carry: each
/// must be delivered, or suppressed with a reason.
const ALARM_FIXTURES: [(&str, &[&str]); 5] = [
    // A Lambda alarm action, metric alarm (its ARN and times carry stray spaces).
    ("example-cloudwatch-alarm-metric.json", &["send"]),
    // A Lambda alarm action, composite alarm with an actions suppressor.
    ("example-cloudwatch-alarm-composite.json", &["send"]),
    // `alarmData` in an EventBridge envelope (no alarmArn: derived from `resources`), its actions
    // suppressed by WaitPeriod.
    (
        "example-cloudwatch-alarm-composite-with-suppressor-alarm.json",
        &["suppressed: actions suppressed by CloudWatch (WaitPeriod"],
    ),
    // Classic alarm notifications in SNS: one metric; metric math, the same record twice.
    ("example-cloudwatch-alarm-sns-payload-single-metric.json", &["send"]),
    (
        "example-cloudwatch-alarm-sns-payload-multiple-metrics.json",
        &["send", "suppressed: the same transition as an earlier record of this event"],
    ),
];

/// The crate's other CloudWatch and SNS sample events, and why they are no alarm.
const NOT_ALARM_FIXTURES: [(&str, &str); 10] = [
    ("example-sns-event.json", "a plain SNS text message (\"Hello world!\"), not a CloudWatch alarm notification"),
    ("example-sns-event-pascal-case.json", "the same plain text message, with PascalCase URL fields"),
    ("example-sns-event-obj.json", "a plain SNS message holding an application's own JSON ({foo, bar})"),
    ("example-ses-sns-event.json", "an SES receipt (eventSource aws:ses) for a mail received, not SNS"),
    (
        "example-sns-subscription-confirmation.json",
        "what SNS posts to an HTTP(S) endpoint to confirm a subscription; a Lambda subscriber never gets it",
    ),
    (
        "example-sns-unsubscribe-confirmation.json",
        "what SNS posts to an HTTP(S) endpoint when it unsubscribes; a Lambda subscriber never gets it",
    ),
    ("example-cloudwatch-cloudtrail-assumed-role.json", "a CloudTrail API call event through EventBridge"),
    ("example-cloudwatch-cloudtrail-unknown-federate.json", "a CloudTrail API call event through EventBridge"),
    ("example-cloudwatch-cloudtrail-unknown-user-auth.json", "a CloudTrail API call event through EventBridge"),
    ("example-cloudwatch_logs-event.json", "a CloudWatch Logs subscription (compressed log events), not an alarm"),
];

#[tokio::test]
async fn every_alarm_sample_event_of_aws_lambda_events_is_delivered_or_suppressed_with_a_reason() {
    let fixtures = lambda_events_fixtures();
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap_or_else(|e| panic!("{}: {e}", fixtures.display()))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .filter(|n| n.ends_with(".json") && (n.contains("cloudwatch") || n.contains("sns")))
        .collect();
    names.sort();
    for name in &names {
        assert!(
            ALARM_FIXTURES.iter().any(|(n, _)| n == name) || NOT_ALARM_FIXTURES.iter().any(|(n, _)| n == name),
            "{name} is a new CloudWatch or SNS sample event of aws_lambda_events: say whether it is an alarm shape"
        );
    }
    for expected in ALARM_FIXTURES.iter().map(|(n, _)| n).chain(NOT_ALARM_FIXTURES.iter().map(|(n, _)| n)) {
        assert!(names.iter().any(|n| n == expected), "{expected} is no longer among the fixtures");
    }

    let world = World::new().await;
    for (name, verdicts) in ALARM_FIXTURES {
        let text = std::fs::read_to_string(fixtures.join(name)).unwrap();
        let payload: Value = serde_json::from_str(&text).unwrap();
        let out = world.fanout().handle(payload, name, Utc::now()).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out.get("ignored").is_none(), "{name} was ignored: {out}");
        assert_eq!(out["rejected"], json!([]), "{name} had records rejected: {out}");
        let alarms = out["alarms"].as_array().unwrap();
        assert_eq!(alarms.len(), verdicts.len(), "{name}: {out}");
        for (alarm, expected) in alarms.iter().zip(verdicts.iter()) {
            let verdict = alarm["verdict"].as_str().unwrap();
            assert!(verdict.starts_with(expected), "{name}: {alarm}");
            let sent = !alarm["sentTo"].as_array().unwrap().is_empty();
            let reason = verdict.strip_prefix("suppressed: ").filter(|r| !r.trim().is_empty());
            assert!((verdict == "send" && sent) || reason.is_some(), "{name}: {alarm}");
        }
    }
    // The two classic ones read AWS/EC2 (critical and chat); the two Lambda actions go to the
    // default; the suppressed composite and the repeated record go nowhere.
    assert_eq!(counts(&world.got().await), [2, 0, 2, 2]);

    for (name, why) in NOT_ALARM_FIXTURES {
        let text = std::fs::read_to_string(fixtures.join(name)).unwrap();
        let payload: Value = serde_json::from_str(&text).unwrap();
        let out = world.fanout().handle(payload, name, Utc::now()).await.unwrap();
        assert!(out["ignored"].as_str().is_some_and(|e| e.contains("not a CloudWatch alarm")), "{name} ({why}): {out}");
    }
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);
}

// ---------------------------------------------------------------------------------------------
// Accepted, then the answer lost: the request took effect in AWS, the client saw the connection
// reset, and the SDK sent it again.

#[tokio::test]
async fn a_memory_claim_written_then_its_answer_lost_is_recognised_and_sends_once() {
    let world = World::new().await;
    // The first PutObject is the alarm memory's claim (If-None-Match: *): S3 stores it, the answer
    // is lost, and the SDK's retry of the conditional write gets 412.
    world.aws.inject_drop_after("PutObject", 1).await;

    let (result, _) = handle_within(&world, 20, event("cloudwatch-alarm-metric.json"), "req-1").await;

    result.unwrap();
    assert_eq!(counts(&world.got().await), [1, 0, 0, 1], "our own claim was recognised on the re-read");
    let calls = world.aws.calls().await;
    // The claim (stored, answer lost), the SDK's retry of it (412: the object exists), the claim
    // again on the version just read (our token's claim: ours to go on with), the settle.
    assert_eq!(calls["PutObject"], 4, "{calls:?}");
    // Lambda's retry (same request id) and a duplicate send nothing more.
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-1").await.0.unwrap();
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-2").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);
}

#[tokio::test]
async fn a_publish_accepted_then_its_answer_lost_reaches_that_topic_twice() {
    let world = World::new().await;
    // SNS delivers the publish, the answer is lost, the SDK publishes again: a standard topic has
    // no deduplication. The other topic's publish is untouched.
    world.aws.inject_drop_after("Publish", 1).await;

    let (result, _) = handle_within(&world, 20, event("cloudwatch-alarm-metric.json"), "req-1").await;

    result.unwrap();
    let mut got = counts(&world.got().await);
    got.sort();
    assert_eq!(got, [0, 0, 1, 2], "one of critical and chat twice, the other once");
    assert_eq!(world.aws.calls().await["Publish"], 3);
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-1").await.0.unwrap();
    handle_within(&world, 10, event("cloudwatch-alarm-metric.json"), "req-2").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);
}

#[tokio::test]
async fn a_publish_batch_accepted_then_its_answer_lost_reaches_the_topic_twice() {
    let world = World::new().await;
    let batch = event("sns-classic-alarm-batch.json");
    // Both alarms go to the info topic in one PublishBatch: SNS delivers both entries, the answer
    // is lost, the SDK sends the batch again and SNS delivers both again.
    world.aws.inject_drop_after("PublishBatch", 1).await;

    let (result, _) = handle_within(&world, 20, batch.clone(), "req-1").await;

    result.unwrap();
    let got = world.got().await;
    assert_eq!(counts(&got), [0, 0, 4, 0], "{got:#?}");
    assert_eq!(world.aws.calls().await["PublishBatch"], 2);
    handle_within(&world, 10, batch.clone(), "req-1").await.0.unwrap();
    handle_within(&world, 10, batch, "req-2").await.0.unwrap();
    assert_eq!(counts(&world.got().await), [0, 0, 0, 0]);
}
