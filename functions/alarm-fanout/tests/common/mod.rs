//! What the timer tests share: alarm-fanout's handler against the emulator with the real
//! EventBridge Scheduler adapter, and the test playing the scheduler.
#![allow(dead_code)]

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

pub const BUCKET: &str = "audit";
pub const GROUP: &str = "pipewarden-timers";
pub const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:pipewarden-AlarmFanoutFunction-X1";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/pipewarden-AlarmFanoutSchedulerRole-X1";

pub type TestFanout = Fanout<SnsPublisher, S3ObjectStore, MemoryAlarmTags, MemoryDeployments, SchedulerTimers>;

pub fn transition(name: &str, state: &str, at: DateTime<Utc>) -> Value {
    let mut e =
        event(if state == "ALARM" { "cloudwatch-alarm-metric.json" } else { "cloudwatch-alarm-metric-ok.json" });
    e["id"] = json!(format!("{name}-{state}-{}", at.timestamp()));
    e["detail"]["alarmName"] = json!(name);
    e["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    e["time"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    e
}

pub async fn fanout(aws: &Emulator, rules: &str, topic: &str) -> TestFanout {
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
pub async fn schedules(aws: &Emulator) -> Vec<(String, String, Value)> {
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
pub async fn fire(fanout: &TestFanout, input: &Value, request: &str, now: DateTime<Utc>) -> Value {
    fanout.handle(input.to_string().as_str(), request, now).await.expect("the timer's invocation")
}

/// The expression a timer due at `t` gets: the whole minute at or after it (Scheduler runs a
/// schedule within the minute it names).
pub fn at_expression(t: DateTime<Utc>) -> String {
    format!("at({})", alarm_fanout::timers::whole_minute_after(t).format("%Y-%m-%dT%H:%M:%S"))
}
