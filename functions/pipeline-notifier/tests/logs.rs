//! The real pipeline-notifier binary under a local Lambda Runtime API: its log is JSON, each line
//! written while handling an event names the event and its execution, and no credential appears.

use std::time::Duration;

use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::logs::{assert_clean_log, carries, json_lines, troubleshooting_env, SECRET_KEY, SESSION_TOKEN};
use pipewarden_devkit::{event, local, Emulator};
use serde_json::json;

#[tokio::test]
async fn logs_are_json_lines_naming_the_execution_and_never_a_credential() {
    let aws = Emulator::fresh().await;
    let env = troubleshooting_env(local::prepare(&aws).await);
    let log = std::env::temp_dir().join(format!("pipeline-notifier-logs-{}.log", std::process::id()));
    let program = env!("CARGO_BIN_EXE_pipeline-notifier");
    let mut function = LambdaProcess::start("pipeline-notifier", program.as_ref(), &[], &env, &log).await.unwrap();
    function.init(Duration::from_secs(30)).await.unwrap();

    let events = [
        event("codepipeline-pipeline-started-v2.json"),
        event("codepipeline-pipeline-failed-v1.json"),
        event("sns-codestar-pipeline-notification.json"),
        json!({"source": "aws.codepipeline"}),
    ];
    for (i, payload) in events.iter().enumerate() {
        let answer = function.invoke(&format!("req-{i}"), payload, Duration::from_secs(20)).await.unwrap();
        assert!(answer.ok, "invocation {i}: {}", answer.body);
    }

    assert_clean_log(
        "pipeline-notifier's log",
        &function.logs(),
        &[SECRET_KEY, SESSION_TOKEN],
        &["execution_id", "event"],
        4,
    );
    // The V1 FAILED outcome's revision lookup finds no such pipeline here: a warning naming the
    // execution, and the notification still went out.
    let lines = json_lines(&function.logs());
    let line = lines
        .iter()
        .find(|l| {
            l["message"] == "no source revisions; the notification leaves the commit out"
                && l.to_string().contains("3b9e7d21-1111-4c2d-8e3f-dd44ee55ff66")
        })
        .unwrap_or_else(|| panic!("no warning about the revision lookup:\n{}", function.logs()));
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(carries(line, &["execution_id"]), "{line}");
    let error = line["error"].as_str().unwrap_or_default();
    assert!(error.contains("GetPipelineExecution") && error.contains("PipelineNotFoundException"), "{line}");

    // The handler reads the body as Lambda sent it (`run_on_body`): what is not text is a bad
    // event named as such, and the next invocation gets its own body.
    function.assert_refuses_non_utf8().await;
    let started = event("codepipeline-pipeline-started-v2.json");
    let answer = function.invoke("req-after", &started, Duration::from_secs(20)).await.unwrap();
    let execution = started["detail"]["execution-id"].as_str().unwrap();
    assert!(answer.ok && answer.body.contains(execution), "after a bad body: {}", answer.body);
}
