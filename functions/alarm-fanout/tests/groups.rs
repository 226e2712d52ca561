//! Grouping end to end: a storm of alarm transitions through alarm-fanout's handler against the
//! emulator goes out as one message per group, when its flush timer (an EventBridge Scheduler
//! schedule the test plays) goes off; later changes wait the group's interval; nothing twice.

mod common;

use chrono::{Duration, Utc};
use common::*;
use pipewarden_devkit::Emulator;

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
    // What subscription filter policies match on, as for one alarm's message.
    let attributes: Vec<(&str, &str)> = grouped[0].attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        attributes,
        [
            ("account", "123456789012"),
            ("alarm_name", "5 alarms"),
            ("region", "us-east-1"),
            ("rule", "instances"),
            ("severity", "warning"),
            ("source", "pipewarden.alarm-fanout"),
            ("state", "ALARM"),
        ]
    );
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
