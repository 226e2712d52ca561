//! The local stand-in for an installed Pipewarden: its topics (each subscribed by a queue), its
//! audit bucket, and the environment the three functions get. Used by `make run`, `make replay`
//! and the benchmarks.

use crate::{Emulator, Subscribed};

/// Topics of the local run, by the variable that names them, each subscribed by a queue.
pub const TOPICS: &[(&str, &str)] = &[
    ("PIPELINE_TOPIC_ARN", "pipewarden-pipeline"),
    ("DEPLOY_TOPIC_ARN", "pipewarden-deploy"),
    ("ALARM_CRITICAL_TOPIC_ARN", "pipewarden-alarms-critical"),
    ("ALARM_WARNING_TOPIC_ARN", "pipewarden-alarms-warning"),
    ("ALARM_INFO_TOPIC_ARN", "pipewarden-alarms-info"),
];
pub const BUCKET: &str = "pipewarden-audit-local";
/// alarm-fanout's schedule group (its timers) and the role its schedules would invoke it with.
pub const SCHEDULE_GROUP: &str = "pipewarden-alarm-fanout-local";
pub const SCHEDULER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/pipewarden-alarm-fanout-scheduler-local";

/// Creates the topics and the bucket in the emulator; returns the functions' environment.
pub async fn prepare(aws: &Emulator) -> Vec<(String, String)> {
    prepare_subscribed(aws).await.0
}

/// [`prepare`], with each topic's subscriber by the variable that names the topic.
pub async fn prepare_subscribed(aws: &Emulator) -> (Vec<(String, String)>, Vec<(String, Subscribed)>) {
    let mut env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
        ("AWS_REGION", crate::REGION),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AUDIT_BUCKET", BUCKET),
        ("RUST_LOG", "info"),
        // pipeline-notifier's digest, for the scheduled event among the samples.
        ("DIGEST_PERIOD", "weekly"),
        // alarm-fanout's timers (reminders of the example rules' repeatInterval).
        ("SCHEDULE_GROUP", SCHEDULE_GROUP),
        ("SCHEDULER_ROLE_ARN", SCHEDULER_ROLE_ARN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut subscribers = Vec::new();
    for (variable, name) in TOPICS {
        let subscribed = aws.topic_with_subscriber(name).await;
        env.push((variable.to_string(), subscribed.topic_arn.clone()));
        subscribers.push((variable.to_string(), subscribed));
    }
    aws.bucket(BUCKET).await;
    aws_sdk_scheduler::Client::new(&aws.sdk)
        .create_schedule_group()
        .name(SCHEDULE_GROUP)
        .send()
        .await
        .expect("creating the local schedule group");
    (env, subscribers)
}
