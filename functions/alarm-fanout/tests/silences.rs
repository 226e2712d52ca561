//! Silences end to end: `pipewarden-silence` writes them to the audit bucket in the emulator, and
//! alarm-fanout's handler holds back what they match while they hold, never an OK for an ALARM it
//! sent, and sends again once they are expired.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration as StdDuration;

use alarm_fanout::config::Config;
use alarm_fanout::deployments::MemoryDeployments;
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::silences::{SilenceCache, PREFIX};
use alarm_fanout::tags::{CachedAlarmTags, MemoryAlarmTags};
use chrono::{DateTime, Duration, Utc};
use pipewarden_devkit::{event, Emulator};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::document::DocumentSource;
use serde_json::{json, Value};

const BUCKET: &str = "audit";

fn silence_cli(aws: &Emulator, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pipewarden-silence"))
        .args(args)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_REGION", pipewarden_devkit::REGION)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AUDIT_BUCKET", BUCKET)
        .output()
        .expect("running pipewarden-silence");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn transition(name: &str, state: &str, at: DateTime<Utc>) -> Value {
    let mut e =
        event(if state == "ALARM" { "cloudwatch-alarm-metric.json" } else { "cloudwatch-alarm-metric-ok.json" });
    e["id"] = json!(format!("{name}-{state}-{}", at.timestamp()));
    e["detail"]["alarmName"] = json!(name);
    e["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    e["time"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    e
}

#[tokio::test]
async fn a_silence_holds_back_what_it_matches_never_a_resolved_and_ends_when_expired() {
    let aws = Emulator::fresh().await;
    aws.bucket(BUCKET).await;
    let topic = aws.topic_with_subscriber("critical").await;
    let rules = "mode: first-match\ndefault:\n  severity: critical\n  topics: [$CRITICAL]\n";
    let vars = HashMap::from([("CRITICAL".to_string(), topic.topic_arn.clone())]);
    let fanout = Fanout {
        config: Config {
            rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: rules.into() },
            bucket: BUCKET.into(),
            flap_window: Duration::seconds(900),
            claim_ttl: Duration::seconds(120),
            deploy_context_max_age: Duration::seconds(3600),
            alarm_tags_cache: StdDuration::from_secs(300),
            silences_prefix: Some(PREFIX.into()),
            schedule: None,
        },
        rules: RuleSet::parse(rules, "test", &vars).unwrap(),
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), BUCKET),
        tags: CachedAlarmTags::new(MemoryAlarmTags::default(), StdDuration::from_secs(300)),
        deployments: MemoryDeployments::default(),
        // Read at every invocation, so the test sees the CLI's changes at once.
        silences: SilenceCache::new(Some(PREFIX.into()), StdDuration::ZERO),
        timers: alarm_fanout::timers::NoTimers,
    };
    let now = Utc::now();
    let minutes = |m: i64| now + Duration::minutes(m);

    // An ALARM sent before the maintenance window.
    fanout.handle(transition("ServerCpuTooHigh-db", "ALARM", minutes(-20)), "r1", now).await.unwrap();
    assert_eq!(aws.received(&topic).await.len(), 1);

    let start = minutes(-10).to_rfc3339();
    let (code, out, err) = silence_cli(
        &aws,
        &[
            "add",
            "--id",
            "maint-1",
            "--author",
            "mary",
            "--comment",
            "database maintenance",
            "--start",
            &start,
            "--for",
            "1h",
            "alarmName^=ServerCpu",
            "severity!=info",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("added maint-1  active"), "{out}");
    let (code, listed, _) = silence_cli(&aws, &["list"]);
    assert_eq!(code, 0);
    assert!(listed.contains("maint-1  active") && listed.contains("alarmName^=ServerCpu severity!=info"), "{listed}");
    let (code, _, err) =
        silence_cli(&aws, &["add", "--id", "maint-1", "--author", "m", "--comment", "c", "--for", "1h", "a=b"]);
    assert_eq!(code, 1, "the same id twice is refused");
    assert!(err.contains("exists already"), "{err}");

    // During the silence: a new ALARM is held back, and its OK says nothing; the OK of the ALARM
    // sent before the silence still goes.
    let held = fanout.handle(transition("ServerCpuTooHigh-web", "ALARM", minutes(-5)), "r2", now).await.unwrap();
    assert!(held["alarms"][0]["verdict"].as_str().unwrap().starts_with("suppressed: silenced by maint-1"), "{held}");
    fanout.handle(transition("ServerCpuTooHigh-web", "OK", minutes(-4)), "r3", now).await.unwrap();
    fanout.handle(transition("ServerCpuTooHigh-db", "OK", minutes(-3)), "r4", now).await.unwrap();
    let during = aws.received(&topic).await;
    assert_eq!(during.len(), 1, "only the resolved of what was sent: {during:#?}");
    assert!(during[0].message.contains("ServerCpuTooHigh-db"), "{}", during[0].message);

    // Expired: the next ALARM goes.
    let (code, out, err) = silence_cli(&aws, &["expire", "maint-1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, listed, _) = silence_cli(&aws, &["list"]);
    assert!(!listed.contains("maint-1"), "an expired silence is listed with --all only: {listed}");
    assert!(silence_cli(&aws, &["list", "--all"]).1.contains("maint-1  expired"));
    fanout.handle(transition("ServerCpuTooHigh-web", "ALARM", minutes(2)), "r5", now).await.unwrap();
    assert_eq!(aws.received(&topic).await.len(), 1);

    // Bad arguments say what is wrong, with status 2.
    let (code, _, err) = silence_cli(&aws, &["add", "--comment", "c", "--for", "2w", "a=b"]);
    assert_eq!(code, 2);
    assert!(err.contains("2w"), "{err}");
}
