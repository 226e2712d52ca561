//! The reference deployment end to end: the example Flask app behind a real nginx, validated by
//! the `pipewarden-validate` CLI (what the appspec ValidateService script runs) and by the Lambda
//! hook, with the example's own validation spec.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{deployment, validator};
use pipewarden_devkit::webapp::{AppMode, FlaskBehindNginx};
use pipewarden_devkit::{repo_root, Emulator};

/// The example spec, pointed at this nginx; fewer attempts where we expect failure (at least the 3 passes in a row it asks for).
fn spec_for(app: &FlaskBehindNginx, max_attempts: u32) -> String {
    std::fs::read_to_string(repo_root().join("examples/flask-app/validation.yaml"))
        .expect("example spec")
        .replace("http://127.0.0.1/", &format!("http://127.0.0.1:{}/", app.port))
        .replace("maxAttempts: 10", &format!("maxAttempts: {max_attempts}"))
}

struct CliRun {
    code: i32,
    report: String,
}

fn run_cli(spec: &str) -> CliRun {
    let path = std::env::temp_dir().join(format!("pipewarden-spec-{}-{}.yaml", std::process::id(), fastrand_suffix()));
    std::fs::write(&path, spec).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pipewarden-validate"))
        .args(["--spec", path.to_str().unwrap(), "--timeout", "20"])
        .output()
        .expect("running pipewarden-validate");
    let _ = std::fs::remove_file(&path);
    CliRun { code: out.status.code().unwrap_or(-1), report: String::from_utf8_lossy(&out.stdout).to_string() }
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

async fn lambda_status(aws: &Emulator, spec: &str, deployment_id: &str) -> serde_json::Value {
    deployment(aws, deployment_id).await;
    validator(aws, spec, None)
        .handle(
            aws.issued_hook(deployment_id, &format!("hook-{deployment_id}")).await,
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn healthy_app_behind_nginx_passes_cli_and_hook() {
    let aws = Emulator::fresh().await;
    let app = FlaskBehindNginx::start(AppMode::Healthy);
    let spec = spec_for(&app, 10);

    let cli = run_cli(&spec);
    assert_eq!(cli.code, 0, "{}", cli.report);
    assert!(cli.report.contains("PASS health (http"), "{}", cli.report);
    assert!(cli.report.contains("PASS home-page (http"), "{}", cli.report);
    assert!(cli.report.contains("validation PASSED: 2 of 2 checks passed"), "{}", cli.report);

    let out = lambda_status(&aws, &spec, "d-FLASKOK").await;
    assert_eq!(out["status"], "Succeeded", "{out}");
    assert_eq!(aws.hook_statuses().await[0].status, "Succeeded");
}

#[tokio::test]
async fn flask_down_gives_502_from_nginx_and_fails_both() {
    let aws = Emulator::fresh().await;
    let app = FlaskBehindNginx::start(AppMode::Down);
    let spec = spec_for(&app, 3);

    let cli = run_cli(&spec);
    assert_eq!(cli.code, 1, "{}", cli.report);
    assert!(cli.report.contains("FAIL health"), "{}", cli.report);
    assert!(cli.report.contains("status 502"), "{}", cli.report);

    let out = lambda_status(&aws, &spec, "d-FLASK502").await;
    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("status 502"), "{out}");
    assert_eq!(aws.hook_statuses().await[0].status, "Failed");
}

#[tokio::test]
async fn wrong_health_body_fails_both() {
    let aws = Emulator::fresh().await;
    let app = FlaskBehindNginx::start(AppMode::WrongBody);
    let spec = spec_for(&app, 3);

    let cli = run_cli(&spec);
    assert_eq!(cli.code, 1, "{}", cli.report);
    assert!(cli.report.contains("/status is \"degraded\", expected \"ok\""), "{}", cli.report);
    assert!(cli.report.contains("PASS home-page"), "only the health check fails: {}", cli.report);

    let out = lambda_status(&aws, &spec, "d-FLASKBODY").await;
    assert_eq!(out["status"], "Failed", "{out}");
}

#[tokio::test]
async fn too_slow_app_fails_its_latency_budget() {
    let aws = Emulator::fresh().await;
    let app = FlaskBehindNginx::start(AppMode::Slow);
    let spec = spec_for(&app, 3);

    let cli = run_cli(&spec);
    assert_eq!(cli.code, 1, "{}", cli.report);
    assert!(cli.report.contains("(budget 1000 ms)"), "{}", cli.report);

    let out = lambda_status(&aws, &spec, "d-FLASKSLOW").await;
    assert_eq!(out["status"], "Failed", "{out}");
}

#[test]
fn cli_rejects_a_bad_spec_with_exit_2() {
    let path = std::env::temp_dir().join(format!("pipewarden-bad-spec-{}.yaml", std::process::id()));
    std::fs::write(&path, "checks: [{name: h, type: http, url: 'http://evil.example/'}]").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pipewarden-validate"))
        .args(["--spec", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in allowedHosts"));
}

#[test]
fn appspec_hook_scripts_are_valid_bash_and_named_in_the_appspec() {
    let root = repo_root().join("examples/flask-app");
    let appspec = std::fs::read_to_string(root.join("appspec.yml")).unwrap();
    for script in ["before_install", "after_install", "app_start", "validate_service"] {
        assert!(appspec.contains(&format!("location: scripts/{script}")), "{script} not in appspec.yml");
        let status = Command::new("bash").arg("-n").arg(root.join("scripts").join(script)).status().unwrap();
        assert!(status.success(), "{script} does not parse");
    }
    let validate = std::fs::read_to_string(root.join("scripts/validate_service")).unwrap();
    assert!(validate.contains(r#""$APP_DIR/bin/pipewarden-validate" --spec "$APP_DIR/validation.yaml""#));
    // APP_DIR's default is where the appspec installs the revision.
    let common = std::fs::read_to_string(root.join("scripts/common.sh")).unwrap();
    assert!(appspec.contains("destination: /opt/flask-app"));
    assert!(common.contains("APP_DIR=${APP_DIR:-$DEPLOY_ROOT/opt/flask-app}"));
}
