//! The reference deployment, for real: the example Flask app (`examples/flask-app`) run by the
//! project's venv Python, behind a real nginx using the example's own site config, on loopback.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::repo_root;

pub struct FlaskBehindNginx {
    /// nginx's port: what a check calls.
    pub port: u16,
    pub flask_port: u16,
    flask: Option<Child>,
    nginx: Child,
    _dir: TempDir,
}

/// How the Flask app behaves (its `APP_MODE`), or not running at all (nginx answers 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppMode {
    Healthy,
    WrongBody,
    Slow,
    Down,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    crate::http::closed_port()
}

fn wait_for_port(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "{what} did not start listening on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl FlaskBehindNginx {
    pub fn start(mode: AppMode) -> FlaskBehindNginx {
        let root = repo_root();
        let dir = std::env::temp_dir().join(format!("pipewarden-nginx-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("logs")).expect("temp dir");
        let dir = TempDir(dir);
        let (port, flask_port) = (free_port(), free_port());

        let flask = (mode != AppMode::Down).then(|| {
            let python = root.join(".venv/bin/python");
            assert!(python.exists(), "{} missing: run `make test`, which installs Flask into .venv", python.display());
            let child = Command::new(python)
                .arg(root.join("examples/flask-app/app.py"))
                .env("PORT", flask_port.to_string())
                .env(
                    "APP_MODE",
                    match mode {
                        AppMode::WrongBody => "wrong-body",
                        AppMode::Slow => "slow",
                        _ => "healthy",
                    },
                )
                .env("SLOW_SECONDS", "1.5")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting Flask");
            wait_for_port(flask_port, "Flask");
            child
        });

        let site = std::fs::read_to_string(root.join("examples/flask-app/nginx/flask-app.conf")).expect("site config");
        let site = site
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace("127.0.0.1:5000", &format!("127.0.0.1:{flask_port}"));
        std::fs::write(dir.0.join("site.conf"), site).expect("write site");
        let d = dir.0.display();
        let main = format!(
            "worker_processes 1;\nerror_log {d}/logs/error.log;\npid {d}/nginx.pid;\ndaemon off;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
        );
        std::fs::write(dir.0.join("nginx.conf"), main).expect("write nginx.conf");
        let nginx_bin =
            ["/usr/sbin/nginx", "/usr/bin/nginx"].iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
                panic!("nginx is not installed: run `make test`, which installs Debian's nginx-light")
            });
        let nginx = Command::new(nginx_bin)
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        wait_for_port(port, "nginx");
        FlaskBehindNginx { port, flask_port, flask, nginx, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for FlaskBehindNginx {
    fn drop(&mut self) {
        // TERM lets nginx's master take its workers down with it.
        let _ = Command::new("kill").arg("-TERM").arg(self.nginx.id().to_string()).status();
        let _ = self.nginx.wait();
        if let Some(flask) = &mut self.flask {
            let _ = flask.kill();
            let _ = flask.wait();
        }
    }
}
