//! An EC2 instance as CodeDeploy's agent sees it, on this machine: a revision zip is unpacked, its
//! appspec hooks run in the agent's order with the agent's environment and the appspec's timeouts,
//! against a temporary root (`root/` stands for `/`), a real nginx and the real Flask app. Used by
//! the revision tests and by `make demo`.
//!
//! The scripts run without systemd here (their container mode, with pid files); as root they create
//! the app's system user (`flask-app`) for real.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value;

use crate::http::closed_port;
use crate::repo_root;

/// The hooks CodeDeploy runs for an in-place EC2 deployment that has scripts, in its order; the
/// agent copies the revision's `files` between BeforeInstall and AfterInstall.
pub const LIFECYCLE: [&str; 4] = ["BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"];

/// The reference app's CodeDeploy names, as examples/flask-app/pipeline.yaml creates them.
pub const APPLICATION: &str = "flask-web-app";
pub const DEPLOYMENT_GROUP: &str = "production";

/// Builds a revision zip with `scripts/flask-bundle.sh` from the app in `app` (examples/flask-app or
/// a changed copy of it) and `binary` as its pipewarden-validate, stripped of its debug info when
/// `strip` is installed (a debug build is about 350 MB, stripped under 30).
pub fn bundle(app: &Path, binary: &Path, out: &Path) -> Result<(), String> {
    let stripped = out.with_extension("pipewarden-validate");
    let strip = Command::new("strip").arg("-o").arg(&stripped).arg(binary).status();
    let binary = if strip.is_ok_and(|s| s.success()) { stripped.as_path() } else { binary };
    let run = Command::new(repo_root().join("scripts/flask-bundle.sh"))
        .arg("--app")
        .arg(app)
        .arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .output()
        .map_err(|e| format!("running scripts/flask-bundle.sh: {e}"))?;
    let _ = std::fs::remove_file(&stripped);
    if run.status.success() {
        Ok(())
    } else {
        Err(format!("flask-bundle.sh failed: {}", String::from_utf8_lossy(&run.stderr)))
    }
}

/// An instance in a temporary directory: `root/` stands for `/`, and holds what the hooks install
/// and start. Dropping it stops Flask and nginx (from their pid files) and removes the directory.
pub struct Instance {
    pub dir: PathBuf,
    pub nginx_port: u16,
    pub flask_port: u16,
    /// The user Flask runs as.
    pub app_user: String,
}

pub struct HookRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Instance {
    pub fn new(name: &str) -> Instance {
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

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root().join("run/flask-app")
    }

    /// What the agent does with a revision: unpack it, run BeforeInstall from the archive, copy the
    /// appspec's `files` to their destinations (here under `root/`), then run the other hooks from the
    /// archive. `edit` may change the unpacked revision first. Stops at the first hook that fails.
    pub fn deploy(
        &self,
        revision: &Path,
        deployment_id: &str,
        edit: impl FnOnce(&Path),
    ) -> Vec<(&'static str, HookRun)> {
        let archive = self.dir.join(format!("deployment-archive-{deployment_id}"));
        unzip(revision, &archive);
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
        let started = Instant::now();
        let mut child = Command::new(&script)
            .current_dir("/")
            // The agent's variables for hook scripts.
            .env("LIFECYCLE_EVENT", event)
            .env("DEPLOYMENT_ID", deployment_id)
            .env("APPLICATION_NAME", APPLICATION)
            .env("DEPLOYMENT_GROUP_NAME", DEPLOYMENT_GROUP)
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
            let _ = done.send(HookRun { code, stdout: out, stderr: err, took: started.elapsed() });
        });
        finished.recv_timeout(timeout).unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("{event} did not finish (exit and close its output) within the appspec's {timeout:?}")
        })
    }

    pub fn get(&self, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.nginx_port)).expect("connecting to nginx");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reading nginx's response");
        response
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
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

pub fn run_text(command: &mut Command) -> String {
    let out = command.output().expect("running a command");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Unpacks the zip as the agent does (it uses unzip, which restores the unix modes).
pub fn unzip(zip: &Path, into: &Path) {
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

pub fn report(runs: &[(&str, HookRun)]) -> String {
    runs.iter()
        .map(|(event, run)| format!("== {event} exit {}\n{}{}", run.code, run.stdout, run.stderr))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a process runs (a zombie, exited but not yet reaped, does not).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|status| !status.lines().any(|l| l.starts_with("State:") && l.contains("zombie")))
        .unwrap_or(false)
}

pub fn uid_of(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is running");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    uid_line.split_whitespace().nth(1).unwrap().to_string()
}
