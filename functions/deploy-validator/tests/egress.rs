//! Where an HTTP check may go, and what it may say on the way: `allowedHosts` entries are scheme,
//! host and port; a redirect is checked hop by hop, never downgrades, and leaves credentials and
//! secret headers behind when it leaves the origin; names that resolve to loopback, link-local,
//! metadata or Lambda Runtime API addresses are refused; and no URL secret reaches the log, the
//! evidence or the notice.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{deployment, validator};
use deploy_validator::hook::Evidence;
use deploy_validator::probes::egress::AllowedHosts;
use deploy_validator::probes::{HttpProbe, HttpRequest, ReqwestProbe, StaticLookup};
use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::logs::{assert_no_secret, troubleshooting_env, SECRET_KEY, SESSION_TOKEN};
use pipewarden_devkit::{local, Emulator};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PASSWORD: &str = "hunter2-egress-password";
const TOKEN: &str = "tok-egress-query-secret";
const API_KEY: &str = "api-key-egress-secret";
const BEARER: &str = "bearer-egress-secret";
const COOKIE: &str = "session-egress-secret";
const PROXY_AUTH: &str = "proxy-egress-secret";

/// One request as the server read it: the head (request line and headers) and the body.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

/// A loopback HTTP server that answers every request with one status (and `Location`, for a
/// redirect) and keeps every request whole, headers included.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start(status: u16, location: Option<String>, body: &'static str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        Self::serve(listener, status, location, body)
    }

    fn serve(listener: TcpListener, status: u16, location: Option<String>, body: &'static str) -> Recorder {
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let (recorded, location) = (recorded.clone(), location.clone());
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = socket.read(&mut buffer).await else { return };
                        if n == 0 {
                            return;
                        }
                        bytes.extend_from_slice(&buffer[..n]);
                        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&bytes[..head_end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while bytes.len() < head_end + length {
                        let Ok(n) = socket.read(&mut buffer).await else { return };
                        if n == 0 {
                            break;
                        }
                        bytes.extend_from_slice(&buffer[..n]);
                    }
                    let body_seen = String::from_utf8_lossy(&bytes[head_end..]).to_string();
                    recorded.lock().unwrap().push(Seen { head, body: body_seen });
                    let location = location.map(|l| format!("Location: {l}\r\n")).unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{location}Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Recorder { port, seen, task }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// A spec with one HTTP check; `check` holds its fields after `name` and `type`.
fn spec_with(allowed: &[String], check: &str) -> String {
    let allowed: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "allowedHosts: [{}]\nchecks:\n  - name: health\n    type: http\n    initialBackoffMs: 10\n    maxAttempts: 1\n{check}",
        allowed.join(", ")
    )
}

// ---- item 7: allowedHosts are origins; redirects are checked and drop credentials ----

#[tokio::test]
async fn a_bare_host_allows_only_its_default_ports_and_the_error_says_which_entry_would_allow_the_url() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-PORT").await;
    let app = Recorder::start(200, None, "ok").await;
    let spec = spec_with(&["127.0.0.1".into()], &format!("    url: 'http://127.0.0.1:{}/health'\n", app.port));

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-EGRESS-PORT", "hook-port").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed", "{out}");
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains("not in allowedHosts"), "{reason}");
    assert!(reason.contains(&format!("\"http://127.0.0.1:{}\"", app.port)), "names the entry to add: {reason}");
    assert!(app.seen().is_empty(), "a port the spec does not name was called");
}

#[tokio::test]
async fn a_redirect_to_another_port_of_an_allowed_host_is_refused() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-HOP").await;
    let elsewhere = Recorder::start(200, None, "ok").await;
    let app = Recorder::start(302, Some(format!("{}/admin", elsewhere.origin())), "").await;
    let spec = spec_with(&[app.origin()], &format!("    url: '{}/health'\n", app.origin()));

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-EGRESS-HOP", "hook-hop").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed", "{out}");
    assert_eq!(app.seen().len(), 1, "the allowed origin was called: {out}");
    assert!(elsewhere.seen().is_empty(), "followed a redirect to a port allowedHosts does not name");
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("redirect refused: {} is not in allowedHosts", elsewhere.origin())), "{reason}");
}

#[tokio::test]
async fn a_redirect_that_leaves_the_origin_drops_credentials_and_secret_headers() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-CREDS").await;
    let other = Recorder::start(200, None, "ok").await;
    let app = Recorder::start(302, Some(format!("{}/landing", other.origin())), "").await;
    let check = format!(
        "    url: 'http://checker:{PASSWORD}@127.0.0.1:{}/start'\n    headers:\n      Authorization: 'Bearer {BEARER}'\n      Cookie: 'session={COOKIE}'\n      Proxy-Authorization: 'Basic {PROXY_AUTH}'\n      X-Api-Key: '{API_KEY}'\n      X-Trace: plain-value\n    secretHeaders: [x-api-key]\n",
        app.port
    );
    let spec = spec_with(&[app.origin(), other.origin()], &check);

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-EGRESS-CREDS", "hook-creds").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Succeeded", "{out}");
    let first = &app.seen()[0].head;
    assert!(first.contains(API_KEY) && first.contains(BEARER), "the origin itself gets the credentials: {first}");
    let followed = other.seen();
    assert_eq!(followed.len(), 1, "the redirect was followed");
    let head = &followed[0].head;
    assert!(head.starts_with("GET /landing "), "{head}");
    assert!(head.to_ascii_lowercase().contains("x-trace: plain-value"), "other headers go on: {head}");
    assert_no_secret("the request to the other origin", head, &[PASSWORD, BEARER, COOKIE, PROXY_AUTH, API_KEY]);
    let lower = head.to_ascii_lowercase();
    for header in ["authorization:", "cookie:", "proxy-authorization:", "x-api-key:"] {
        assert!(!lower.contains(header), "{header} sent to another origin: {head}");
    }
}

#[tokio::test]
async fn a_redirect_within_the_origin_keeps_the_credentials() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-SAME").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The server answers every request with a redirect to itself.
    let app = Recorder::serve(listener, 302, Some(format!("http://127.0.0.1:{port}/again")), "");
    let spec = spec_with(
        &[app.origin()],
        &format!(
            "    url: '{}/start'\n    headers: {{X-Api-Key: '{API_KEY}'}}\n    secretHeaders: [X-Api-Key]\n",
            app.origin()
        ),
    );

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-EGRESS-SAME", "hook-same").await, deadline_in(10))
        .await
        .unwrap();

    // Every answer is a redirect to the same origin: followed five times, then refused.
    assert_eq!(out["status"], "Failed", "{out}");
    assert!(out["reason"].as_str().unwrap().contains("more than 5 redirects"), "{out}");
    let seen = app.seen();
    assert_eq!(seen.len(), 6, "the first request and five redirects");
    assert!(seen.iter().all(|s| s.head.contains(API_KEY)), "same origin keeps its secret headers");
}

#[tokio::test]
async fn a_post_answered_with_303_continues_as_a_get_without_its_body() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-303").await;
    let other = Recorder::start(200, None, "ok").await;
    let app = Recorder::start(303, Some(format!("{}/result", other.origin())), "").await;
    let check = format!(
        "    url: '{}/submit'\n    method: POST\n    body: 'form-body'\n    headers: {{Content-Type: text/plain}}\n",
        app.origin()
    );
    let spec = spec_with(&[app.origin(), other.origin()], &check);

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-EGRESS-303", "hook-303").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Succeeded", "{out}");
    assert!(app.seen()[0].head.starts_with("POST /submit "));
    assert_eq!(app.seen()[0].body, "form-body");
    let followed = &other.seen()[0];
    assert!(followed.head.starts_with("GET /result "), "{}", followed.head);
    assert!(followed.body.is_empty(), "{followed:?}");
    assert!(!followed.head.to_ascii_lowercase().contains("content-type"), "{}", followed.head);
}

// ---- item 8: names that resolve to guarded addresses, and the Lambda Runtime API ----

/// The hook's HTTP probe with names mapped by hand (no DNS, no /etc/hosts).
fn probe(allowed: &[String], names: &[(&str, &[&str])], runtime_api: Option<&str>) -> ReqwestProbe {
    let addresses: Vec<(&str, Vec<IpAddr>)> =
        names.iter().map(|(name, ips)| (*name, ips.iter().map(|ip| ip.parse().unwrap()).collect())).collect();
    let lookup = StaticLookup::new(addresses.iter().map(|(name, ips)| (*name, ips.as_slice())));
    ReqwestProbe::with_lookup(AllowedHosts::parse(allowed).unwrap(), lookup, runtime_api).unwrap()
}

async fn get(probe: &ReqwestProbe, url: &str) -> Result<u16, String> {
    let request = HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        secret_headers: Vec::new(),
        body: None,
        timeout: Duration::from_secs(5),
        max_body_bytes: 1024,
    };
    probe.send(&request).await.map(|r| r.status)
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_unless_it_is_localhost() {
    let app = Recorder::start(200, None, "ok").await;
    let p = app.port;
    let allowed =
        [format!("http://app.test:{p}"), format!("http://v6.test:{p}"), format!("http://localhost:{p}"), app.origin()];
    let names: &[(&str, &[&str])] =
        &[("app.test", &["127.0.0.1"]), ("v6.test", &["::ffff:127.0.0.1", "::1"]), ("localhost", &["127.0.0.1"])];
    let probe = probe(&allowed, names, None);

    let refused = get(&probe, &format!("http://app.test:{p}/health")).await.unwrap_err();
    assert!(refused.contains("refused: app.test resolves to 127.0.0.1 (loopback)"), "{refused}");
    let refused = get(&probe, &format!("http://v6.test:{p}/health")).await.unwrap_err();
    assert!(refused.contains("v6.test resolves to ::ffff:127.0.0.1 (loopback)"), "{refused}");
    assert!(app.seen().is_empty(), "loopback reached through a name: {:?}", app.seen());

    assert_eq!(get(&probe, &format!("http://localhost:{p}/health")).await, Ok(200), "localhost, named, is loopback");
    assert_eq!(get(&probe, &format!("http://127.0.0.1:{p}/health")).await, Ok(200), "so is a named IP literal");
    assert_eq!(app.seen().len(), 2);
}

#[tokio::test]
async fn names_that_resolve_to_link_local_or_metadata_addresses_are_refused() {
    let names: &[(&str, &[&str])] = &[
        ("imds.test", &["169.254.169.254"]),
        ("ecs.test", &["169.254.170.2"]),
        ("imds6.test", &["fd00:ec2::254"]),
        ("mapped.test", &["::ffff:169.254.169.254"]),
        ("link.test", &["fe80::1"]),
    ];
    let allowed: Vec<String> = names.iter().map(|(name, _)| name.to_string()).collect();
    let probe = probe(&allowed, names, None);
    for (name, ips) in names {
        let refused = get(&probe, &format!("http://{name}/latest/meta-data/")).await.unwrap_err();
        assert!(refused.starts_with(&format!("refused: {name} resolves to {}", ips[0])), "{refused}");
    }
}

#[tokio::test]
async fn a_redirect_to_a_name_that_resolves_to_the_metadata_endpoint_is_refused() {
    let app = Recorder::start(302, Some("http://metadata.test/latest/meta-data/iam/".into()), "").await;
    let probe = probe(&[app.origin(), "metadata.test".into()], &[("metadata.test", &["169.254.169.254"])], None);

    let refused = get(&probe, &format!("{}/health", app.origin())).await.unwrap_err();

    assert_eq!(app.seen().len(), 1);
    assert!(refused.contains("refused: metadata.test resolves to 169.254.169.254 (link-local"), "{refused}");
}

#[tokio::test]
async fn the_runtime_api_is_reached_only_by_its_literal_named_with_its_port() {
    let api = Recorder::start(200, None, "{}").await;
    let p = api.port;
    let runtime_api = format!("127.0.0.1:{p}");
    let allowed = [format!("http://rapi.test:{p}"), format!("http://localhost:{p}"), api.origin()];
    let names: &[(&str, &[&str])] = &[("rapi.test", &["127.0.0.1"]), ("localhost", &["127.0.0.1"])];
    let probe = probe(&allowed, names, Some(&runtime_api));

    let by_name = get(&probe, &format!("http://rapi.test:{p}/2018-06-01/runtime/invocation/next")).await.unwrap_err();
    assert!(by_name.contains("rapi.test resolves to 127.0.0.1, the Lambda Runtime API's address"), "{by_name}");
    let by_localhost =
        get(&probe, &format!("http://localhost:{p}/2018-06-01/runtime/invocation/next")).await.unwrap_err();
    assert!(by_localhost.contains(&format!("http://localhost:{p} is the Lambda Runtime API")), "{by_localhost}");
    assert!(api.seen().is_empty());
    // Named as an IP literal with its port: the spec asked for exactly this.
    assert_eq!(get(&probe, &format!("{}/2018-06-01/ping", api.origin())).await, Ok(200));

    // Elsewhere than loopback, a name that resolves to its address is refused on any port.
    let remote = self::probe(&["rapi.test".into()], &[("rapi.test", &["10.200.0.1"])], Some("10.200.0.1:9001"));
    let refused = get(&remote, "http://rapi.test/").await.unwrap_err();
    assert!(refused.contains("rapi.test resolves to 10.200.0.1, the Lambda Runtime API's address"), "{refused}");
}

/// The real binary under a local Runtime API, with a spec read from S3 at the first hook (its
/// cold-start read finds nothing, so the spec can name the Runtime API's port, known only then).
#[tokio::test]
async fn the_runtime_api_is_refused_even_when_localhost_and_its_port_are_allowed() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-RAPI").await;
    let mut env = local::prepare(&aws).await;
    env.push(("VALIDATION_SPEC_S3_URI".into(), format!("s3://{}/config/validation.json", local::BUCKET)));
    let log = std::env::temp_dir().join(format!("deploy-validator-egress-rapi-{}.log", std::process::id()));
    let program = env!("CARGO_BIN_EXE_deploy-validator");
    let mut function = LambdaProcess::start("deploy-validator", program.as_ref(), &[], &env, &log).await.unwrap();
    function.init(Duration::from_secs(30)).await.unwrap();
    let runtime_port = function.api.addr.port();
    let spec = json!({
        "allowedHosts": [format!("http://localhost:{runtime_port}")],
        "checks": [{"name": "runtime", "type": "http", "maxAttempts": 1,
                    "url": format!("http://localhost:{runtime_port}/2018-06-01/runtime/invocation/next")}]
    });
    aws.s3()
        .put_object()
        .bucket(local::BUCKET)
        .key("config/validation.json")
        .body(spec.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();

    let hook = aws.issued_hook("d-EGRESS-RAPI", "hook-rapi").await;
    let answer = function.invoke("req-rapi", &hook, Duration::from_secs(15)).await.unwrap();

    assert!(answer.ok, "{}", answer.body);
    let out: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(out["status"], "Failed", "{out}");
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains("Lambda Runtime API"), "{reason}\nlog:\n{}", function.logs());
}

// ---- item 9: no URL secret reaches the log, the evidence or the notice ----

#[tokio::test]
async fn an_invalid_url_with_a_password_and_a_token_is_reported_without_them() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-BADURL").await;
    let mut env = local::prepare(&aws).await;
    let deploy_topic = env.iter().find(|(k, _)| k == "DEPLOY_TOPIC_ARN").map(|(_, v)| v.clone()).unwrap();
    let subscriber = pipewarden_devkit::Subscribed {
        topic_arn: deploy_topic,
        queue_url: format!("{}/{}/pipewarden-deploy-subscriber", aws.endpoint, pipewarden_devkit::ACCOUNT),
    };
    // Port 99999 does not exist: the URL is not a URL, and today's message quoted it whole.
    let spec = json!({
        "allowedHosts": ["http://127.0.0.1:8080"],
        "checks": [{"name": "health", "type": "http",
                    "url": format!("http://checker:{PASSWORD}@127.0.0.1:99999/health?token={TOKEN}")}]
    });
    env.push(("VALIDATION_SPEC".into(), spec.to_string()));
    let env = troubleshooting_env(env);
    let log = std::env::temp_dir().join(format!("deploy-validator-egress-badurl-{}.log", std::process::id()));
    let program = env!("CARGO_BIN_EXE_deploy-validator");
    let mut function = LambdaProcess::start("deploy-validator", program.as_ref(), &[], &env, &log).await.unwrap();
    function.init(Duration::from_secs(30)).await.unwrap();

    let hook = aws.issued_hook("d-EGRESS-BADURL", "hook-badurl").await;
    let answer = function.invoke("req-badurl", &hook, Duration::from_secs(20)).await.unwrap();

    assert!(answer.ok, "{}", answer.body);
    let secrets = [SECRET_KEY, SESSION_TOKEN, PASSWORD, TOKEN];
    assert_no_secret("deploy-validator's answer", &answer.body, &secrets);
    assert_no_secret("deploy-validator's log", &function.logs(), &secrets);
    let evidence_key = Evidence::key("d-EGRESS-BADURL", "hook-badurl");
    let mut evidence_seen = false;
    for key in aws.keys(local::BUCKET).await {
        let object = String::from_utf8(aws.object(local::BUCKET, &key).await.unwrap()).unwrap();
        assert_no_secret(&format!("s3://{}/{key}", local::BUCKET), &object, &secrets);
        evidence_seen |= key == evidence_key;
    }
    assert!(evidence_seen, "the evidence was written");
    let notices = aws.received(&subscriber).await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    let notice = format!("{notices:?}");
    assert_no_secret("the published notice", &notice, &secrets);
    assert!(notices[0].message.contains("(\"health\")"), "the notice names the check: {notice}");
    assert!(notices[0].message.contains("is not a URL"), "{notice}");
    assert!(notices[0].message.contains("token=***"), "the notice keeps the query's names: {notice}");
}

#[tokio::test]
async fn a_failing_check_reports_its_url_without_userinfo_query_values_or_secret_path_segments() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-EGRESS-PATH").await;
    let app = Recorder::start(500, None, "down").await;
    let check = format!(
        "    url: 'http://checker:{PASSWORD}@127.0.0.1:{}/keys/{API_KEY}/health?token={TOKEN}&env=prod'\n    secretPathSegments: [2]\n",
        app.port
    );
    let spec = spec_with(&[app.origin()], &check);

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-EGRESS-PATH", "hook-path").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed", "{out}");
    assert_eq!(app.seen().len(), 1, "the check ran: {out}");
    assert!(app.seen()[0].head.contains(API_KEY), "the request itself carries the secret segment");
    let text = out.to_string();
    assert_no_secret("the hook's answer", &text, &[PASSWORD, TOKEN, API_KEY]);
    let evidence =
        String::from_utf8(aws.object(common::BUCKET, &Evidence::key("d-EGRESS-PATH", "hook-path")).await.unwrap())
            .unwrap();
    assert_no_secret("the evidence", &evidence, &[PASSWORD, TOKEN, API_KEY]);
    let shown = format!("http://***@127.0.0.1:{}/keys/***/health?token=***&env=***", app.port);
    assert!(out["reason"].as_str().unwrap().contains(&shown), "{out}");
}
