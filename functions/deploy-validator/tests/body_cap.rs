//! A release that answers with a huge body: the `pipewarden-validate` CLI (the hook's engine) under
//! an address-space limit like a Lambda's memory reads at most `maxBodyBytes`, says the body was
//! cut, and reaches a verdict instead of being killed.

use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// 256 MiB of address space: the CLI needs about 40 MiB (measured with `prlimit --as`), a 128 MB
/// Lambda has a little more; the body served is 2 GiB, eight times the limit.
const ADDRESS_SPACE_LIMIT: u64 = 256 * 1024 * 1024;
const BODY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Serves a 2 GiB JSON-looking body to every request, generated as it is sent (never held).
async fn endless_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut request = vec![0u8; 8192];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n{{\"status\": \"ok\", \"pad\": \""
                );
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = head.len() as u64;
                while sent < BODY_BYTES {
                    // The client hanging up after its cap ends this.
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += chunk.len() as u64;
                }
            });
        }
    });
    port
}

struct CliRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run_limited(spec: String, extra_args: &[&str]) -> CliRun {
    let path = std::env::temp_dir().join(format!(
        "pipewarden-body-cap-{}-{}.yaml",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::write(&path, spec).unwrap();
    let extra: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
    let spec_path = path.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("prlimit")
            .arg(format!("--as={ADDRESS_SPACE_LIMIT}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_pipewarden-validate"))
            .args(["--spec", &spec_path])
            .args(extra)
            .output()
            .expect("running prlimit (util-linux) with pipewarden-validate")
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&path);
    CliRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn spec(port: u16, judge: &str) -> String {
    format!(
        "allowedHosts: ['http://127.0.0.1:{port}']\nchecks:\n  - name: huge\n    type: http\n    url: http://127.0.0.1:{port}/health\n    maxAttempts: 1\n    requestTimeoutMs: 20000\n    {judge}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_body_is_cut_at_the_default_cap_and_body_contains_judges_what_was_read() {
    let port = endless_server().await;
    let run = run_limited(spec(port, "bodyContains: '\"status\": \"ok\"'"), &["--timeout", "30"]).await;
    assert_eq!(run.code, Some(0), "killed or failed under the memory limit?\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("PASS huge"), "{}", run.stdout);
    assert!(run.stdout.contains("body cut at 1048576 bytes (maxBodyBytes)"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_field_on_a_cut_body_fails_saying_the_body_was_cut() {
    let port = endless_server().await;
    let judge = "maxBodyBytes: 4096\n    jsonField: {pointer: /status, equals: ok}";
    let run = run_limited(spec(port, judge), &["--timeout", "30"]).await;
    assert_eq!(run.code, Some(1), "expected a failed check, not a kill\n{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL huge"), "{}", run.stdout);
    assert!(run.stdout.contains("jsonField /status cannot be judged: body cut at 4096 bytes"), "{}", run.stdout);
}

#[tokio::test]
async fn a_huge_timeout_is_refused_instead_of_overflowing() {
    // `Instant::now() + Duration::from_secs(u64::MAX)` used to panic (exit 101).
    let run = run_limited(spec(1, "bodyContains: ok"), &["--timeout", "18446744073709551615"]).await;
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--timeout 18446744073709551615 must be between 1 and 3600 seconds"), "{}", run.stderr);
}
