//! The reference Flask deployment as CodeDeploy runs it: `scripts/flask-bundle.sh` builds the
//! revision zip, and its lifecycle hooks run in the agent's order, with the agent's environment and
//! the appspec's timeouts, against a temporary root, a real nginx and the real Flask app.
//!
//! The scripts run without systemd here (their container mode, with pid files), as root they create
//! the app's system user (`flask-app`) for real.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use pipewarden_devkit::instance::{bundle, report, run_text, running, uid_of, unzip, Instance, LIFECYCLE};
use pipewarden_devkit::repo_root;

/// The revision zip, built once per test run from this build's pipewarden-validate.
fn revision_zip() -> &'static Path {
    static ZIP: OnceLock<PathBuf> = OnceLock::new();
    ZIP.get_or_init(|| {
        let zip = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("flask-app-revision.zip");
        let binary = Path::new(env!("CARGO_BIN_EXE_pipewarden-validate"));
        bundle(&repo_root().join("examples/flask-app"), binary, &zip).unwrap();
        zip
    })
}

/// One test at a time: before_install creates the same system user, and nginx plus Flask are heavy
/// enough on two cores.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn the_revision_zip_has_appspec_at_its_root_and_executable_hooks() {
    let dir = std::env::temp_dir().join(format!("pipewarden-revision-unzip-{}", std::process::id()));
    unzip(revision_zip(), &dir);
    let executable = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(p)).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    let appspec_at_root = dir.join("appspec.yml").is_file();
    let all_executable = ["scripts/before_install", "scripts/after_install", "scripts/app_start"]
        .into_iter()
        .chain(["scripts/validate_service", "bin/pipewarden-validate"])
        .all(executable);
    let shipped = ["app.py", "requirements.txt", "validation.yaml", "nginx/flask-app.conf", "scripts/common.sh"]
        .into_iter()
        .chain(["scripts/flask-app.service"])
        .all(|p| dir.join(p).is_file());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(appspec_at_root, "appspec.yml is not at the root of the zip");
    assert!(all_executable, "a hook script or bin/pipewarden-validate lost its executable bit");
    assert!(shipped, "a file of examples/flask-app is missing from the zip");
}

#[test]
fn a_fresh_instance_runs_every_hook_and_validate_service_passes() {
    let _one = one_at_a_time();
    let instance = Instance::new("fresh");

    let runs = instance.deploy(revision_zip(), "d-REVISION1", |_| {});

    let all = report(&runs);
    let events: Vec<&str> = runs.iter().map(|(event, _)| *event).collect();
    assert_eq!(events, LIFECYCLE, "{all}");
    assert!(runs.iter().all(|(_, run)| run.code == 0), "{all}");
    let validate = &runs[3].1.stdout;
    assert!(validate.contains("PASS health (http"), "{all}");
    assert!(validate.contains("validation PASSED: 2 of 2 checks passed"), "{all}");
    let page = instance.get("/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Hello from flask-web-app"), "{page}");
    // Flask runs as the app's own user, which exists (created by before_install when root).
    let flask = instance.pid("flask.pid").expect("app_start wrote Flask's pid file");
    assert_eq!(uid_of(flask), run_text(Command::new("id").args(["-u", &instance.app_user])), "{all}");
}

#[test]
fn a_bad_release_over_a_good_one_fails_validate_service() {
    let _one = one_at_a_time();
    let instance = Instance::new("bad-release");
    let good = instance.deploy(revision_zip(), "d-GOOD", |_| {});
    assert!(good.iter().all(|(_, run)| run.code == 0), "{}", report(&good));
    let good_flask = instance.pid("flask.pid").unwrap();

    // A release whose health endpoint says "degraded": it starts, so only ValidateService catches it.
    let bad = instance.deploy(revision_zip(), "d-BAD", |archive| {
        let app = archive.join("app.py");
        let source = std::fs::read_to_string(&app).unwrap();
        let broken =
            source.replace(r#"os.environ.get("APP_MODE", "healthy")"#, r#"os.environ.get("APP_MODE", "wrong-body")"#);
        assert_ne!(source, broken, "app.py no longer reads APP_MODE this way");
        std::fs::write(&app, broken).unwrap();
    });

    let all = report(&bad);
    let codes: Vec<(&str, i32)> = bad.iter().map(|(event, run)| (*event, run.code)).collect();
    assert_eq!(
        codes,
        [("BeforeInstall", 0), ("AfterInstall", 0), ("ApplicationStart", 0), ("ValidateService", 1)],
        "{all}"
    );
    let validate = &bad[3].1.stdout;
    assert!(validate.contains("FAIL health"), "{all}");
    assert!(validate.contains("/status is \"degraded\", expected \"ok\""), "{all}");
    assert!(validate.contains("PASS home-page"), "{all}");
    assert!(!running(good_flask), "before_install left the old Flask running");
    assert!(instance.get("/health").contains("degraded"), "nginx is not in front of the new release");
}

#[test]
fn a_release_whose_app_cannot_start_fails_application_start() {
    let _one = one_at_a_time();
    let instance = Instance::new("no-start");

    let runs = instance.deploy(revision_zip(), "d-NOSTART", |archive| {
        let app = archive.join("app.py");
        let source = std::fs::read_to_string(&app).unwrap();
        std::fs::write(&app, format!("raise SystemExit('this release cannot start')\n{source}")).unwrap();
    });

    let all = report(&runs);
    let codes: Vec<(&str, i32)> = runs.iter().map(|(event, run)| (*event, run.code)).collect();
    assert_eq!(codes, [("BeforeInstall", 0), ("AfterInstall", 0), ("ApplicationStart", 1)], "{all}");
    assert!(runs[2].1.stderr.contains("Flask exited"), "{all}");
    assert!(runs[2].1.stderr.contains("this release cannot start"), "{all}");
}
