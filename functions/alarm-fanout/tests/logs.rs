//! The real alarm-fanout binary under a local Lambda Runtime API: its log is JSON, each line
//! written while handling an alarm names it, and no credential appears in it.

use std::time::Duration;

use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::logs::{assert_clean_log, troubleshooting_env, SECRET_KEY, SESSION_TOKEN};
use pipewarden_devkit::{event, local, repo_root, Emulator};
use serde_json::json;

#[tokio::test]
async fn logs_are_json_lines_naming_the_alarm_event_and_never_a_credential() {
    let aws = Emulator::fresh().await;
    let mut env = troubleshooting_env(local::prepare(&aws).await);
    env.push((
        "ROUTING_RULES".into(),
        std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml")).unwrap(),
    ));
    let log = std::env::temp_dir().join(format!("alarm-fanout-logs-{}.log", std::process::id()));
    let mut function =
        LambdaProcess::start("alarm-fanout", env!("CARGO_BIN_EXE_alarm-fanout").as_ref(), &[], &env, &log)
            .await
            .unwrap();
    function.init(Duration::from_secs(30)).await.unwrap();

    for (i, payload) in [event("cloudwatch-alarm-metric.json"), event("sns-classic-alarm-batch.json"), json!({"x": 1})]
        .iter()
        .enumerate()
    {
        let answer = function.invoke(&format!("req-{i}"), payload, Duration::from_secs(20)).await.unwrap();
        assert!(answer.ok, "invocation {i}: {}", answer.body);
    }

    assert_clean_log("alarm-fanout's log", &function.logs(), &[SECRET_KEY, SESSION_TOKEN], &["event_id", "event"], 4);

    // The handler reads the body as Lambda sent it (`run_on_body`): what is not text is a bad
    // event named as such, and the next invocation gets its own body.
    function.assert_refuses_non_utf8().await;
    let answer =
        function.invoke("req-after", &event("sns-classic-alarm-metric.json"), Duration::from_secs(20)).await.unwrap();
    assert!(answer.ok && answer.body.contains("flask-web-app-5xx"), "after a bad body: {}", answer.body);
}
