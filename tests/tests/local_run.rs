//! `make run` and `make replay`, as a user runs them: the README's commands, the real binaries
//! under `cargo lambda watch`, the local emulator. A replay exists to show what would happen to
//! real events, so an event dropped as invalid (whole, or a record inside a batch) fails it.

use std::process::Command;

use pipewarden_devkit::{lambda_events_fixtures, repo_root};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn make(args: &[&str], name: &str) -> Run {
    let work = std::env::temp_dir().join(format!("pipewarden-local-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new("make")
        .args(args)
        .current_dir(repo_root())
        .env("PIPEWARDEN_LOCAL_DIR", &work)
        .output()
        .expect("running make");
    let _ = std::fs::remove_dir_all(&work);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// One test: each run starts an emulator, Flask and `cargo lambda watch`; two at once on two
/// cores would only slow both.
#[test]
fn make_run_delivers_every_sample_and_make_replay_fails_on_what_would_be_lost() {
    let samples = std::fs::read_dir(repo_root().join("events")).unwrap().count();
    let run = make(&["--no-print-directory", "run"], "run");
    assert_eq!(run.code, Some(0), "make run failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!("{samples} events, {samples} passed, 0 failed")),
        "every sample in events/ is handled:\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("dropped as invalid"), "{}", run.stdout);
    assert!(run.stdout.contains("pipewarden-alarms-critical: "), "subscribers are reported:\n{}", run.stdout);

    let bad = repo_root().join("tests/fixtures/replay");
    let good = repo_root().join("events/codepipeline-pipeline-failed-v1.json");
    let events = format!("EVENTS={} {}", bad.display(), good.display());
    let replay = make(&["--no-print-directory", "replay", &events], "replay");
    assert_ne!(replay.code, Some(0), "a replay with lost events must fail:\n{}", replay.stdout);
    // The verdict line of an event (make also echoes the command, which names the files).
    let line = |name: &str| {
        let verdict = |l: &&str| (l.starts_with("ok ") || l.starts_with("FAIL ")) && l.contains(name);
        replay.stdout.lines().find(verdict).unwrap_or_default().to_string()
    };
    let pipeline = line("pipeline-event-without-execution-id.json");
    assert!(pipeline.starts_with("FAIL "), "{}", replay.stdout);
    assert!(pipeline.contains("dropped as invalid") && pipeline.contains("execution-id"), "{pipeline}");
    let batch = line("sns-alarm-batch-with-a-bad-record.json");
    assert!(batch.starts_with("FAIL "), "{}", replay.stdout);
    assert!(batch.contains("dropped as invalid") && batch.contains("NewStateValue"), "{batch}");
    assert!(line("codepipeline-pipeline-failed-v1.json").starts_with("ok "), "{}", replay.stdout);
    assert!(replay.stdout.contains("3 events, 1 passed, 2 failed"), "{}", replay.stdout);

    // The shapes users send, as the aws_lambda_events crate has them: every CodePipeline state
    // change, the CodeDeploy lifecycle hook and every CloudWatch alarm shape replays cleanly
    // (delivered, or suppressed with a reason). Its other CodeDeploy and CodePipeline samples are
    // not Pipewarden's: CodeDeploy deployment and instance state changes (EventBridge) and the
    // CodePipeline job of a Lambda invoke action go to no function of ours.
    let fixtures = lambda_events_fixtures();
    let ours: Vec<String> = [
        "example-codepipeline-action-execution-stage-change-event.json",
        "example-codepipeline-execution-stage-change-event.json",
        "example-codepipeline-execution-state-change-event.json",
        "example-codedeploy-lifecycle-event.json",
        "example-cloudwatch-alarm-metric.json",
        "example-cloudwatch-alarm-composite.json",
        "example-cloudwatch-alarm-composite-with-suppressor-alarm.json",
        "example-cloudwatch-alarm-sns-payload-single-metric.json",
        "example-cloudwatch-alarm-sns-payload-multiple-metrics.json",
    ]
    .iter()
    .map(|f| fixtures.join(f).display().to_string())
    .collect();
    let events = format!("EVENTS={}", ours.join(" "));
    let replay = make(&["--no-print-directory", "replay", &events], "fixtures");
    assert_eq!(replay.code, Some(0), "{}\n{}", replay.stdout, replay.stderr);
    assert!(replay.stdout.contains(&format!("{n} events, {n} passed, 0 failed", n = ours.len())), "{}", replay.stdout);
}
