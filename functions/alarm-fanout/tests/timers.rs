//! Timers end to end: alarm-fanout's handler sets EventBridge Scheduler one-time schedules in the
//! emulator through the real adapter, and the test plays the scheduler: it reads each schedule
//! (GetSchedule) and invokes the handler with its target's input, as Scheduler would, when it is
//! due, late, or twice.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use pipewarden_devkit::Emulator;
use serde_json::json;

#[tokio::test]
async fn an_alarm_still_in_alarm_is_sent_again_as_a_reminder_until_it_resolves() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let topic = aws.topic_with_subscriber("critical").await;
    let rules = "mode: first-match\ndefault:\n  severity: critical\n  topics: [$CRITICAL]\n  repeatInterval: 1h\n";
    let fanout = fanout(&aws, rules, &topic.topic_arn).await;
    let now = Utc::now();
    let raised = now - Duration::minutes(2);

    fanout.handle(transition("ServerCpuTooHigh", "ALARM", raised), "r1", now).await.unwrap();
    assert_eq!(aws.received(&topic).await.len(), 1);
    // EventBridge delivers the event again: nothing more is sent, one timer stays set.
    fanout.handle(transition("ServerCpuTooHigh", "ALARM", raised), "r1-again", now).await.unwrap();
    assert!(aws.received(&topic).await.is_empty());
    let set = schedules(&aws).await;
    assert_eq!(set.len(), 1, "{set:#?}");
    let (name, expression, first) = &set[0];
    assert!(name.ends_with("-remind-1"), "{name}");
    let due = raised.with_timezone(&Utc) + Duration::hours(1);
    assert_eq!(expression, &at_expression(due), "an hour after the alarm was raised");
    assert_eq!(first["detail"]["kind"], "remind");

    // Scheduler invokes it an hour later, and once more (at least once).
    let later = now + Duration::hours(1);
    let out = fire(&fanout, first, "s1", later).await;
    assert_eq!(out["sentTo"], json!([topic.topic_arn]), "{out}");
    let reminders = aws.received(&topic).await;
    assert_eq!(reminders.len(), 1);
    assert!(reminders[0].subject.as_deref().unwrap_or("").ends_with("(reminder 1)"), "{:?}", reminders[0].subject);
    assert!(reminders[0].message.contains("Reminder 1: still in ALARM, since"), "{}", reminders[0].message);
    fire(&fanout, first, "s1-twice", later).await;
    assert!(aws.received(&topic).await.is_empty(), "a reminder invoked twice is sent once");
    let set = schedules(&aws).await;
    let second = set.iter().find(|(n, _, _)| n.ends_with("-remind-2")).expect("the next reminder is set");
    assert_eq!(second.1, at_expression(due + Duration::hours(1)));

    // Resolved: the OK goes, and the next reminder sends nothing.
    fanout.handle(transition("ServerCpuTooHigh", "OK", later + Duration::minutes(5)), "r2", later).await.unwrap();
    assert_eq!(aws.received(&topic).await.len(), 1);
    let out = fire(&fanout, &second.2, "s2", later + Duration::hours(1)).await;
    assert_eq!(out["outcome"], "no reminder: resolved, or no longer the alarm's state", "{out}");
    assert!(aws.received(&topic).await.is_empty());
    assert_eq!(schedules(&aws).await.len(), 2, "no reminder after the OK");
}

#[tokio::test]
async fn an_alarm_a_silence_held_back_is_sent_when_the_silence_ends_if_still_in_alarm() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let topic = aws.topic_with_subscriber("critical").await;
    let rules = "mode: first-match\ndefault:\n  severity: critical\n  topics: [$CRITICAL]\n";
    let fanout = fanout(&aws, rules, &topic.topic_arn).await;
    let now = Utc::now();
    let ends = (now + Duration::minutes(30)).with_timezone(&Utc);
    // A maintenance window, uploaded as a file (what pipewarden-silence writes).
    let silence = json!({
        "id": "maint-2",
        "matchers": [{"label": "alarmName", "prefix": "ServerCpu"}],
        "startsAt": (now - Duration::minutes(30)).to_rfc3339(),
        "endsAt": ends.to_rfc3339(),
        "createdBy": "mary",
        "comment": "kernel upgrade",
    });
    aws.s3()
        .put_object()
        .bucket(BUCKET)
        .key("config/silences/maint-2.json")
        .body(silence.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();

    // Two alarms go off during the window: held back, each with a timer for the window's end.
    let raised = now - Duration::minutes(5);
    for (name, request) in [("ServerCpuTooHigh-web", "r1"), ("ServerCpuTooHigh-db", "r2")] {
        let out = fanout.handle(transition(name, "ALARM", raised), request, now).await.unwrap();
        assert!(out["alarms"][0]["verdict"].as_str().unwrap().starts_with("suppressed: silenced by maint-2"), "{out}");
    }
    assert!(aws.received(&topic).await.is_empty());
    let set = schedules(&aws).await;
    assert_eq!(set.len(), 2, "{set:#?}");
    for (name, expression, input) in &set {
        assert!(name.contains("-release-"), "{name}");
        assert_eq!(expression, &at_expression(ends + Duration::seconds(1)), "the silence's end");
        assert_eq!(input["detail"]["kind"], "release");
    }
    let input_of = |alarm: &str| {
        set.iter().find(|(_, _, i)| i["detail"]["transition"].as_str().unwrap().starts_with(alarm)).unwrap().2.clone()
    };

    // The db alarm resolves during the window: nothing was told, nothing is.
    fanout.handle(transition("ServerCpuTooHigh-db", "OK", now - Duration::minutes(1)), "r3", now).await.unwrap();
    assert!(aws.received(&topic).await.is_empty());

    // A timer that comes early (the silence was extended, say) finds it still held: nothing sent.
    let early = fire(&fanout, &input_of("ServerCpuTooHigh-web"), "s0", now).await;
    assert_eq!(early["outcome"], "still held back: looked at again later", "{early}");
    assert!(aws.received(&topic).await.is_empty());

    // The window ends: the web alarm, still in ALARM, is sent then, saying it was held back; the db
    // alarm, resolved, is not.
    let after = ends + Duration::seconds(2);
    let out = fire(&fanout, &input_of("ServerCpuTooHigh-web"), "s1", after).await;
    assert_eq!(out["sentTo"], json!([topic.topic_arn]), "{out}");
    let out = fire(&fanout, &input_of("ServerCpuTooHigh-db"), "s2", after).await;
    assert_eq!(out["outcome"], "nothing to send: the alarm changed state since", "{out}");
    let sent = aws.received(&topic).await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].subject.as_deref().unwrap_or("").contains("ServerCpuTooHigh-web"), "{:?}", sent[0].subject);
    assert!(sent[0].subject.as_deref().unwrap_or("").ends_with("(held back)"), "{:?}", sent[0].subject);
    assert!(
        sent[0].message.contains("Held back since") && sent[0].message.contains("silenced by maint-2"),
        "{}",
        sent[0].message
    );
    // Scheduler invokes it again: sent once.
    fire(&fanout, &input_of("ServerCpuTooHigh-web"), "s1-again", after).await;
    assert!(aws.received(&topic).await.is_empty());

    // Its OK, later, goes: what was sent is resolved.
    fanout.handle(transition("ServerCpuTooHigh-web", "OK", after + Duration::minutes(3)), "r4", after).await.unwrap();
    let resolved = aws.received(&topic).await;
    assert_eq!(resolved.len(), 1);
    assert!(resolved[0].subject.as_deref().unwrap_or("").starts_with("[OK] ServerCpuTooHigh-web"));
}

#[tokio::test]
async fn a_hold_whose_timer_could_not_be_set_gets_it_from_the_retry_even_if_the_silence_changed() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let topic = aws.topic_with_subscriber("critical").await;
    let rules = "mode: first-match\ndefault:\n  severity: critical\n  topics: [$CRITICAL]\n";
    let fanout = fanout(&aws, rules, &topic.topic_arn).await;
    let now = Utc::now();
    let put_silence = |ends: DateTime<Utc>| {
        let silence = json!({
            "id": "maint-3",
            "matchers": [{"label": "alarmName", "exact": "ServerCpuTooHigh"}],
            "startsAt": (now - Duration::minutes(30)).to_rfc3339(),
            "endsAt": ends.to_rfc3339(),
            "createdBy": "mary",
            "comment": "kernel upgrade",
        });
        aws.s3()
            .put_object()
            .bucket(BUCKET)
            .key("config/silences/maint-3.json")
            .body(silence.to_string().into_bytes().into())
            .send()
    };
    put_silence(now + Duration::minutes(30)).await.unwrap();
    let alarm = transition("ServerCpuTooHigh", "ALARM", now - Duration::minutes(1));
    // Every attempt the SDK makes (three).
    aws.inject_fault("CreateSchedule", 500, "InternalServerException", 3).await;
    let failed = fanout.handle(alarm.clone(), "r1", now).await.unwrap_err();
    assert!(failed.to_string().contains("timer"), "{failed}");
    assert_eq!(failed.retry(), pipewarden_shared::lambda::Retry::Helps);
    assert!(schedules(&aws).await.is_empty());
    // The silence is extended before Lambda's retry: the hold reads differently, the timer is set.
    let extended = (now + Duration::hours(2)).with_timezone(&Utc);
    put_silence(extended).await.unwrap();
    fanout.handle(alarm, "r1", now + Duration::minutes(1)).await.unwrap();
    let set = schedules(&aws).await;
    assert_eq!(set.len(), 1, "{set:#?}");
    assert_eq!(set[0].1, at_expression(extended + Duration::seconds(1)));
    assert!(aws.received(&topic).await.is_empty(), "still held");
}
