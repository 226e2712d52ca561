//! Grouping end to end: a storm of alarm transitions through alarm-fanout's handler against the
//! emulator goes out as one message per group, when its flush timer (an EventBridge Scheduler
//! schedule the test plays) goes off; later changes wait the group's interval; nothing twice.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use alarm_fanout::config::Config;
use alarm_fanout::deployments::MemoryDeployments;
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::silences::{SilenceCache, PREFIX};
use alarm_fanout::tags::{CachedAlarmTags, MemoryAlarmTags};
use alarm_fanout::timers::SchedulerTimers;
use chrono::{DateTime, Duration, Utc};
use pipewarden_devkit::{event, Emulator};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::document::DocumentSource;
use serde_json::{json, Value};

const BUCKET: &str = "audit";
const GROUP: &str = "pipewarden-timers";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:pipewarden-AlarmFanoutFunction-X1";
const ROLE: &str = "arn:aws:iam::123456789012:role/pipewarden-AlarmFanoutSchedulerRole-X1";

type TestFanout = Fanout<SnsPublisher, S3ObjectStore, MemoryAlarmTags, MemoryDeployments, SchedulerTimers>;

fn transition(name: &str, state: &str, at: DateTime<Utc>) -> Value {
    let mut e =
        event(if state == "ALARM" { "cloudwatch-alarm-metric.json" } else { "cloudwatch-alarm-metric-ok.json" });
    e["id"] = json!(format!("{name}-{state}-{}", at.timestamp()));
    e["detail"]["alarmName"] = json!(name);
    e["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    e["time"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    e
}

async fn fanout(aws: &Emulator, rules: &str, topic: &str) -> TestFanout {
    let vars = HashMap::from([("CRITICAL".to_string(), topic.to_string())]);
    let scheduler = aws_sdk_scheduler::Client::new(&aws.sdk);
    scheduler.create_schedule_group().name(GROUP).send().await.expect("schedule group");
    let timers = SchedulerTimers::new(scheduler, Some((GROUP.into(), ROLE.into())));
    // What main does with the first invocation's context.
    timers.target(FUNCTION);
    Fanout {
        config: Config {
            rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: rules.into() },
            bucket: BUCKET.into(),
            flap_window: Duration::seconds(900),
            claim_ttl: Duration::seconds(120),
            deploy_context_max_age: Duration::seconds(3600),
            alarm_tags_cache: StdDuration::from_secs(300),
            silences_prefix: Some(PREFIX.into()),
            schedule: Some((GROUP.into(), ROLE.into())),
        },
        rules: RuleSet::parse(rules, "test", &vars).unwrap(),
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), BUCKET),
        tags: CachedAlarmTags::new(MemoryAlarmTags::default(), StdDuration::from_secs(300)),
        deployments: MemoryDeployments::default(),
        silences: SilenceCache::new(Some(PREFIX.into()), StdDuration::ZERO),
        timers,
    }
}

/// The schedules in the group, by name: (expression, input).
async fn schedules(aws: &Emulator) -> Vec<(String, String, Value)> {
    let scheduler = aws_sdk_scheduler::Client::new(&aws.sdk);
    let listed = scheduler.list_schedules().group_name(GROUP).send().await.expect("ListSchedules");
    let mut out = Vec::new();
    for summary in listed.schedules() {
        let name = summary.name().unwrap_or_default().to_string();
        let s = scheduler.get_schedule().group_name(GROUP).name(&name).send().await.expect("GetSchedule");
        let target = s.target().expect("a target");
        assert_eq!(target.arn(), FUNCTION, "schedules invoke alarm-fanout");
        assert_eq!(target.role_arn(), ROLE);
        assert_eq!(s.flexible_time_window().map(|w| w.mode().as_str()), Some("OFF"));
        let input: Value = serde_json::from_str(target.input().unwrap_or_default()).expect("JSON input");
        out.push((name, s.schedule_expression().unwrap_or_default().to_string(), input));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What Scheduler does when the schedule is due: invokes the function with its input.
async fn fire(fanout: &TestFanout, input: &Value, request: &str, now: DateTime<Utc>) -> Value {
    fanout.handle(input.to_string().as_str(), request, now).await.expect("the timer's invocation")
}

/// The expression a timer due at `t` gets: the whole minute at or after it (Scheduler runs a
/// schedule within the minute it names).
fn at_expression(t: DateTime<Utc>) -> String {
    format!("at({})", alarm_fanout::timers::whole_minute_after(t).format("%Y-%m-%dT%H:%M:%S"))
}

const RULES: &str = "mode: first-match\nrules:\n  - name: instances\n    match: {alarmName: {prefix: cpu-}}\n    severity: warning\n    application: flask-web-app\n    topics: [$CRITICAL]\n    groupBy: [application]\n    groupWait: 30s\n    groupInterval: 5m\ndefault:\n  severity: critical\n  topics: [$CRITICAL]\n";

#[tokio::test]
async fn a_storm_goes_out_as_one_message_per_group_and_later_changes_wait_the_interval() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let topic = aws.topic_with_subscriber("alarms").await;
    let fanout = fanout(&aws, RULES, &topic.topic_arn).await;
    let now = Utc::now();
    let s = |seconds: i64| now + Duration::seconds(seconds);

    // Five instances' alarms within seconds, and one alarm outside the group's rule.
    for i in 1..=5 {
        let out =
            fanout.handle(transition(&format!("cpu-i-{i}"), "ALARM", s(i)), &format!("r{i}"), s(i)).await.unwrap();
        assert_eq!(out["alarms"][0]["verdict"], "send", "{out}");
    }
    fanout.handle(transition("db-storage", "ALARM", s(6)), "r6", s(6)).await.unwrap();
    let direct = aws.received(&topic).await;
    assert_eq!(direct.len(), 1, "only the ungrouped alarm goes at once: {direct:#?}");
    assert!(direct[0].subject.as_deref().unwrap().starts_with("[ALARM] db-storage"));
    let set = schedules(&aws).await;
    assert_eq!(set.len(), 1, "one flush timer for the group: {set:#?}");
    let (name, expression, first) = &set[0];
    assert!(name.contains("-flush-"), "{name}");
    // groupWait (30 s) after the first, but never sooner than a minute from now (Scheduler's precision).
    assert_eq!(expression, &at_expression(s(1) + Duration::minutes(1)));

    // The timer goes off: one message lists the five; a second invocation sends nothing.
    let out = fire(&fanout, first, "f1", s(62)).await;
    assert_eq!(out["alarms"], 5, "{out}");
    let grouped = aws.received(&topic).await;
    assert_eq!(grouped.len(), 1, "{grouped:#?}");
    let subject = grouped[0].subject.as_deref().unwrap();
    assert_eq!(subject, "[5 ALARM] 5 alarms, application=flask-web-app");
    for i in 1..=5 {
        assert!(grouped[0].message.contains(&format!("cpu-i-{i} in us-east-1")), "{}", grouped[0].message);
    }
    let again = fire(&fanout, first, "f1-again", s(63)).await;
    assert_eq!(again["outcome"], "nothing to send", "{again}");
    assert!(aws.received(&topic).await.is_empty());

    // Two resolve (one of them delivered twice): they wait the group's interval after its message.
    fanout.handle(transition("cpu-i-1", "OK", s(90)), "r7", s(90)).await.unwrap();
    fanout.handle(transition("cpu-i-2", "OK", s(95)), "r8", s(95)).await.unwrap();
    fanout.handle(transition("cpu-i-2", "OK", s(95)), "r8-again", s(96)).await.unwrap();
    assert!(aws.received(&topic).await.is_empty());
    let next = schedules(&aws).await.into_iter().find(|(n, _, _)| n != name).expect("the next flush");
    assert_eq!(next.1, at_expression(s(62) + Duration::minutes(5)), "groupInterval after the last message");
    let out = fire(&fanout, &next.2, "f2", s(62) + Duration::minutes(5)).await;
    assert_eq!(out["alarms"], 2, "{out}");
    let resolved = aws.received(&topic).await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].subject.as_deref().unwrap(), "[2 OK] 2 alarms, application=flask-web-app");
    assert!(resolved[0].message.contains("cpu-i-1") && resolved[0].message.contains("cpu-i-2"));
}
