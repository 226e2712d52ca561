//! Inhibition end to end: alarms in the emulator's CloudWatch (PutMetricAlarm, SetAlarmState), read
//! by the real adapter (DescribeAlarms); the load balancer's 5xx alarm in ALARM holds back the
//! instances' alarms of the same application; when it clears, the timer set for each held alarm
//! sends the one still in ALARM and not the one that resolved meanwhile.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use alarm_fanout::config::Config;
use alarm_fanout::deployments::MemoryDeployments;
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::silences::SilenceCache;
use alarm_fanout::tags::{CachedAlarmTags, CloudWatchAlarmTags};
use alarm_fanout::timers::SchedulerTimers;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic};
use chrono::{DateTime, Duration, Utc};
use pipewarden_devkit::{event, Emulator};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::document::DocumentSource;
use serde_json::{json, Value};

const BUCKET: &str = "audit";
const GROUP: &str = "pipewarden-timers";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:pipewarden-AlarmFanoutFunction-X1";
const ROLE: &str = "arn:aws:iam::123456789012:role/pipewarden-AlarmFanoutSchedulerRole-X1";
const LB_ALARM: &str = "flask-web-app-5xx";

const RULES: &str = r#"
mode: first-match
rules:
  - name: web-errors
    match: {alarmName: {prefix: flask-web-app-}}
    severity: critical
    application: flask-web-app
    topics: [$CRITICAL]
  - name: instances
    match: {namespace: AWS/EC2}
    severity: warning
    application: flask-web-app
    topics: [$CRITICAL]
default:
  severity: info
  topics: [$CRITICAL]
inhibit:
  - name: lb-over-instances
    source: [{label: alarmName, exact: flask-web-app-5xx}]
    target: [{label: namespace, exact: AWS/EC2}]
    equal: [application]
"#;

type TestFanout = Fanout<SnsPublisher, S3ObjectStore, CloudWatchAlarmTags, MemoryDeployments, SchedulerTimers>;

async fn fanout(aws: &Emulator, topic: &str) -> TestFanout {
    let vars = HashMap::from([("CRITICAL".to_string(), topic.to_string())]);
    let scheduler = aws_sdk_scheduler::Client::new(&aws.sdk);
    scheduler.create_schedule_group().name(GROUP).send().await.expect("schedule group");
    let timers = SchedulerTimers::new(scheduler, Some((GROUP.into(), ROLE.into())));
    timers.target(FUNCTION);
    Fanout {
        config: Config {
            rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: RULES.into() },
            bucket: BUCKET.into(),
            flap_window: Duration::seconds(900),
            claim_ttl: Duration::seconds(120),
            deploy_context_max_age: Duration::seconds(3600),
            alarm_tags_cache: StdDuration::from_secs(300),
            silences_prefix: None,
            schedule: Some((GROUP.into(), ROLE.into())),
        },
        rules: RuleSet::parse(RULES, "test", &vars).unwrap(),
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), BUCKET),
        tags: CachedAlarmTags::new(
            CloudWatchAlarmTags::new(aws_sdk_cloudwatch::Client::new(&aws.sdk)),
            StdDuration::from_secs(300),
        ),
        deployments: MemoryDeployments::default(),
        silences: SilenceCache::default(),
        timers,
    }
}

/// The alarm in the emulator's CloudWatch, in `state`.
async fn alarm_in_cloudwatch(aws: &Emulator, name: &str, namespace: &str, metric: &str, state: StateValue) {
    let cw = aws_sdk_cloudwatch::Client::new(&aws.sdk);
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(Dimension::builder().name("Name").value(name).build())
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    set_state(aws, name, state).await;
}

async fn set_state(aws: &Emulator, name: &str, state: StateValue) {
    aws_sdk_cloudwatch::Client::new(&aws.sdk)
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("test")
        .send()
        .await
        .expect("SetAlarmState");
}

/// The EventBridge event CloudWatch sends for the alarm's transition.
fn transition(name: &str, namespace: &str, state: &str, at: DateTime<Utc>) -> Value {
    let mut e =
        event(if state == "ALARM" { "cloudwatch-alarm-metric.json" } else { "cloudwatch-alarm-metric-ok.json" });
    e["id"] = json!(format!("{name}-{state}-{}", at.timestamp()));
    e["detail"]["alarmName"] = json!(name);
    e["resources"] = json!([format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}")]);
    e["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["namespace"] = json!(namespace);
    e["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    e["time"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    e
}

/// The release timers set, by the alarm they are for: the input Scheduler would send.
async fn release_inputs(aws: &Emulator) -> Vec<(String, Value)> {
    let scheduler = aws_sdk_scheduler::Client::new(&aws.sdk);
    let listed = scheduler.list_schedules().group_name(GROUP).send().await.expect("ListSchedules");
    let mut out = Vec::new();
    for summary in listed.schedules() {
        let s = scheduler.get_schedule().group_name(GROUP).name(summary.name().unwrap()).send().await.unwrap();
        let input: Value = serde_json::from_str(s.target().unwrap().input().unwrap()).unwrap();
        if input["detail"]["kind"] == "release" {
            let alarm = input["detail"]["transition"].as_str().unwrap().split(':').next().unwrap().to_string();
            out.push((alarm, input));
        }
    }
    out
}

#[tokio::test]
async fn a_parent_in_alarm_holds_back_its_children_and_the_ones_still_in_alarm_are_sent_when_it_clears() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let topic = aws.topic_with_subscriber("alarms").await;
    let fanout = fanout(&aws, &topic.topic_arn).await;
    let now = Utc::now();
    let at = |m: i64| now + Duration::minutes(m);

    // The load balancer's 5xx alarm fires; CloudWatch has it in ALARM.
    alarm_in_cloudwatch(&aws, LB_ALARM, "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", StateValue::Alarm).await;
    for instance in ["cpu-i-1", "cpu-i-2"] {
        alarm_in_cloudwatch(&aws, instance, "AWS/EC2", "CPUUtilization", StateValue::Alarm).await;
    }
    let out = fanout.handle(transition(LB_ALARM, "AWS/ApplicationELB", "ALARM", at(-3)), "r0", now).await.unwrap();
    assert_eq!(out["alarms"][0]["verdict"], "send", "{out}");
    // Its children, in the same minute: held back, whichever event came first.
    for (instance, request) in [("cpu-i-1", "r1"), ("cpu-i-2", "r2")] {
        let out = fanout.handle(transition(instance, "AWS/EC2", "ALARM", at(-2)), request, now).await.unwrap();
        assert_eq!(
            out["alarms"][0]["verdict"],
            "suppressed: inhibited while flask-web-app-5xx is in ALARM (inhibit rule lb-over-instances)",
            "{out}"
        );
    }
    let sent = aws.received(&topic).await;
    assert_eq!(sent.len(), 1, "only the parent: {sent:#?}");
    assert!(sent[0].subject.as_deref().unwrap().contains(LB_ALARM));
    let releases = release_inputs(&aws).await;
    assert_eq!(releases.len(), 2, "a look again for each held alarm: {releases:#?}");

    // cpu-i-2 resolves while held: nothing was told, nothing is.
    set_state(&aws, "cpu-i-2", StateValue::Ok).await;
    fanout.handle(transition("cpu-i-2", "AWS/EC2", "OK", at(-1)), "r3", now).await.unwrap();
    assert!(aws.received(&topic).await.is_empty());

    // A look while the parent still fires: still held.
    let input = |alarm: &str| releases.iter().find(|(a, _)| a == alarm).unwrap().1.to_string();
    let early = fanout.handle(input("cpu-i-1").as_str(), "s0", at(6)).await.unwrap();
    assert_eq!(early["outcome"], "still held back: looked at again later", "{early}");
    assert!(aws.received(&topic).await.is_empty());

    // The parent clears (its OK is sent); the next look sends cpu-i-1, still in ALARM, and not cpu-i-2.
    set_state(&aws, LB_ALARM, StateValue::Ok).await;
    fanout.handle(transition(LB_ALARM, "AWS/ApplicationELB", "OK", at(8)), "r4", at(8)).await.unwrap();
    let ok = aws.received(&topic).await;
    assert_eq!(ok.len(), 1);
    assert!(ok[0].subject.as_deref().unwrap().starts_with("[OK] flask-web-app-5xx"));
    // Its OK had cpu-i-1, still held, looked at again within a minute (not at its next look).
    let soon = release_inputs(&aws)
        .await
        .into_iter()
        .find(|(a, i)| {
            a == "cpu-i-1" && i["detail"]["due"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() == at(9)
        })
        .expect("a look at cpu-i-1 a minute after the parent's OK")
        .1;
    assert!(
        !release_inputs(&aws)
            .await
            .iter()
            .any(|(a, i)| a == "cpu-i-2"
                && i["detail"]["due"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() == at(9)),
        "cpu-i-2 resolved: nothing to look at"
    );
    let out = fanout.handle(soon.to_string().as_str(), "s1", at(9)).await.unwrap();
    assert_eq!(out["sentTo"], json!([topic.topic_arn]), "{out}");
    let out = fanout.handle(input("cpu-i-2").as_str(), "s2", at(11)).await.unwrap();
    assert_eq!(out["outcome"], "nothing to send: the alarm changed state since", "{out}");
    let released = aws.received(&topic).await;
    assert_eq!(released.len(), 1, "{released:#?}");
    assert!(released[0].subject.as_deref().unwrap().starts_with("[ALARM] cpu-i-1"), "{:?}", released[0].subject);
    assert!(released[0].message.contains("inhibited while flask-web-app-5xx is in ALARM"), "{}", released[0].message);

    // Which alarms are in ALARM cannot be read: an alarm that may be inhibited is sent, not lost.
    set_state(&aws, LB_ALARM, StateValue::Alarm).await;
    alarm_in_cloudwatch(&aws, "cpu-i-3", "AWS/EC2", "CPUUtilization", StateValue::Alarm).await;
    aws.inject_fault("DescribeAlarms", 500, "InternalServiceFault", 3).await;
    let out = fanout.handle(transition("cpu-i-3", "AWS/EC2", "ALARM", at(12)), "r5", at(12)).await.unwrap();
    assert_eq!(out["alarms"][0]["verdict"], "send", "{out}");
    assert_eq!(aws.received(&topic).await.len(), 1);
}
