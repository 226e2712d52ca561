//! The reference Flask deployment as CodeDeploy runs it: `scripts/flask-bundle.sh` builds the
//! revision zip, and its lifecycle hooks run in the agent's order, with the agent's environment and
//! the appspec's timeouts, against a temporary root, a real nginx and the real Flask app.
//!
//! The scripts run without systemd here (their container mode, with pid files), as root they create
//! the app's system user (`flask-app`) for real.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pipewarden_devkit::http::closed_port;
use pipewarden_devkit::repo_root;
use serde_yaml_ng::Value;

/// The hooks CodeDeploy runs for an in-place EC2 deployment that has scripts, in its order; the
/// agent copies the revision's `files` between BeforeInstall and AfterInstall.
const LIFECYCLE: [&str; 4] = ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"];

/// The revision zip, built once per test run from this build's pipewarden-validate (without its
/// debug info when `strip` is installed: a debug build is about 350 MB, stripped under 30).
fn revision_zip() -> &'static Path {
    static ZIP: OnceLock<PathBuf> = OnceLock::new();
    ZIP.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let (zip, stripped) = (tmp.join("flask-app-revision.zip"), tmp.join("pipewarden-validate"));
        let binary = env!("CARGO_BIN_EXE_pipewarden-validate");
        let strip = Command::new("strip").arg("-o").arg(&stripped).arg(binary).status();
        let binary = if strip.is_ok_and(|s| s.success()) { stripped.as_path() } else { Path::new(binary) };
        let out = Command::new(repo_root().join("scripts/flask-bundle.sh"))
            .arg("--binary")
            .arg(binary)
            .arg("--out")
            .arg(&zip)
            .output()
            .expect("running scripts/flask-bundle.sh");
        assert!(out.status.success(), "flask-bundle.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        zip
    })
}

/// One test at a time: before_install creates the same system user, and nginx plus Flask are heavy
/// enough on two cores.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An instance in a temporary directory: `root/` stands for `/`, and holds what the hooks install
/// and start. Dropping it stops Flask and nginx (from their pid files) and removes the directory.
struct Instance {
    dir: PathBuf,
    nginx_port: u16,
    flask_port: u16,
    app_user: String,
}

struct HookRun {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Instance {
    fn new(name: &str) -> Instance {
        let dir = std::env::temp_dir().join(format!("pipewarden-revision-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        let root_user = run_text(Command::new("id").arg("-u")) == "0";
        // As root, the hooks create the real user; otherwise they run Flask as whoever runs the test.
        // The app's user runs the project's venv: only when every directory down to it lets others
        // through (a checkout under a private directory, such as `mktemp -d`'s, does not).
        let venv_reachable = repo_root().join(".venv").ancestors().all(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false)
        });
        let app_user =
            if root_user && venv_reachable { "flask-app".to_string() } else { run_text(Command::new("id").arg("-un")) };
        Instance { dir, nginx_port: closed_port(), flask_port: closed_port(), app_user }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn run_dir(&self) -> PathBuf {
        self.root().join("run/flask-app")
    }

    /// What the agent does with a revision: unpack it, run BeforeInstall from the archive, copy the
    /// appspec's `files` to their destinations (here under `root/`), then run the other hooks from the
    /// archive. `edit` may change the unpacked revision first. Stops at the first hook that fails.
    fn deploy(&self, deployment_id: &str, edit: impl FnOnce(&Path)) -> Vec<(&'static str, HookRun)> {
        let archive = self.dir.join(format!("deployment-archive-{deployment_id}"));
        unzip(revision_zip(), &archive);
        edit(&archive);
        let appspec: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(archive.join("appspec.yml")).unwrap())
            .expect("appspec.yml is YAML");
        let mut runs = Vec::new();
        for event in LIFECYCLE {
            if event == "AfterInstall" {
                self.install_files(&appspec, &archive);
            }
            for hook in appspec["hooks"][event].as_sequence().map(Vec::as_slice).unwrap_or_default() {
                let run = self.run_hook(event, deployment_id, hook, &archive);
                let failed = run.code != 0;
                runs.push((event, run));
                if failed {
                    return runs;
                }
            }
        }
        runs
    }

    fn install_files(&self, appspec: &Value, archive: &Path) {
        for file in appspec["files"].as_sequence().expect("appspec has files") {
            let source = archive.join(file["source"].as_str().unwrap().trim_start_matches('/'));
            let destination = self.root().join(file["destination"].as_str().unwrap().trim_start_matches('/'));
            copy_contents(&source, &destination);
        }
    }

    fn run_hook(&self, event: &str, deployment_id: &str, hook: &Value, archive: &Path) -> HookRun {
        let script = archive.join(hook["location"].as_str().expect("hook has a location"));
        let timeout = Duration::from_secs(hook["timeout"].as_u64().unwrap_or(3600));
        let mut child = Command::new(&script)
            .current_dir("/")
            // The agent's variables for hook scripts.
            .env("LIFECYCLE_EVENT", event)
            .env("DEPLOYMENT_ID", deployment_id)
            .env("APPLICATION_NAME", "flask-web-app")
            .env("DEPLOYMENT_GROUP_NAME", "flask-web-app-fleet")
            .env("DEPLOYMENT_GROUP_ID", "7d3a9b1c-0e2f-4a5b-8c6d-1e2f3a4b5c6d")
            // The scripts' own settings: this temporary root, free ports, no systemd, the project's
            // venv (Flask is in it; no index, so pip cannot change it), this machine's nginx.
            .env("DEPLOY_ROOT", self.root())
            .env("SERVICE_MANAGER", "none")
            .env("NGINX_PORT", self.nginx_port.to_string())
            .env("NGINX_LISTEN", format!("127.0.0.1:{}", self.nginx_port))
            .env("FLASK_PORT", self.flask_port.to_string())
            .env("APP_USER", &self.app_user)
            .env("APP_VENV", repo_root().join(".venv"))
            .env("PIP_NO_INDEX", "1")
            .env("NGINX_BIN", nginx())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        // Like the agent, a hook is done when it has exited and closed its output; a background
        // process still holding stdout would hang the deployment until the hook's timeout.
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let pid = child.id();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut out, mut err) = (String::new(), String::new());
            let err_reader = std::thread::spawn(move || {
                let _ = stderr.read_to_string(&mut err);
                err
            });
            let _ = stdout.read_to_string(&mut out);
            let err = err_reader.join().unwrap_or_default();
            let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
            let _ = done.send(HookRun { code, stdout: out, stderr: err });
        });
        finished.recv_timeout(timeout).unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("{event} did not finish (exit and close its output) within the appspec's {timeout:?}")
        })
    }

    fn get(&self, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.nginx_port)).expect("connecting to nginx");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reading nginx's response");
        response
    }

    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.run_dir().join(name)).ok()?.trim().parse().ok()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // TERM lets nginx's master take its workers down with it.
        for pidfile in ["nginx.pid", "flask.pid"] {
            if let Some(pid) = self.pid(pidfile).filter(|pid| running(*pid)) {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
                for _ in 0..50 {
                    if !running(pid) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("nginx is not installed: run `make test`, which installs Debian's nginx-light"))
}

fn run_text(command: &mut Command) -> String {
    let out = command.output().expect("running a command");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Unpacks the zip as the agent does (it uses unzip, which restores the unix modes).
fn unzip(zip: &Path, into: &Path) {
    let status = Command::new("python3")
        .args([
            "-c",
            "import os, sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1]) as z:\n\
             \x20   for info in z.infolist():\n\
             \x20       path = z.extract(info, sys.argv[2])\n\
             \x20       mode = info.external_attr >> 16 & 0o777\n\
             \x20       if mode: os.chmod(path, mode)\n",
        ])
        .arg(zip)
        .arg(into)
        .status()
        .expect("running python3");
    assert!(status.success(), "unzipping {}", zip.display());
}

/// Copies a tree's file contents only, with default modes: the hooks must not rely on the copy
/// keeping the executable bit.
fn copy_contents(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_contents(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::write(to, std::fs::read(from).unwrap()).unwrap();
    }
}

fn report(runs: &[(&str, HookRun)]) -> String {
    runs.iter()
        .map(|(event, run)| format!("== {event} exit {}\n{}{}", run.code, run.stdout, run.stderr))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a process runs (a zombie, exited but not yet reaped, does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|status| !status.lines().any(|l| l.starts_with("State:") && l.contains("zombie")))
        .unwrap_or(false)
}

fn uid_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is running");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    uid_line.split_whitespace().nth(1).unwrap().to_string()
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

    let runs = instance.deploy("d-REVISION1", |_| {});

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
    let good = instance.deploy("d-GOOD", |_| {});
    assert!(good.iter().all(|(_, run)| run.code == 0), "{}", report(&good));
    let good_flask = instance.pid("flask.pid").unwrap();

    // A release whose health endpoint says "degraded": it starts, so only ValidateService catches it.
    let bad = instance.deploy("d-BAD", |archive| {
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

    let runs = instance.deploy("d-NOSTART", |archive| {
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
