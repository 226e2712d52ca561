//! A local Lambda service for the functions a check invokes: the Invoke API as the Lambda API
//! reference documents it, in front of real function binaries, each published version its own
//! process under its own local Runtime API ([`LambdaProcess`]). Point a function's SDK at it with
//! `AWS_ENDPOINT_URL_LAMBDA` (the other services stay on the emulator).
//!
//! `POST /2015-03-31/functions/{FunctionName}/invocations`, the name in any form Invoke accepts
//! (`name`, `name:qualifier`, `123456789012:function:name[:qualifier]`, the full ARN), the
//! version in the `Qualifier` query parameter or the name (unqualified: `$LATEST`):
//!   `X-Amz-Invocation-Type` RequestResponse (default): 200, the function's payload,
//!       `X-Amz-Executed-Version`, and `X-Amz-Function-Error: Unhandled` with the error the
//!       function reported when it failed. Event: 202, run in the background. DryRun: 204, not run.
//!   Errors, with the `x-amzn-ErrorType` header and a `{"Type", "Message"}` body as Lambda answers:
//!       an unknown function or version (or another account's or region's): 404
//!       ResourceNotFoundException; a `Qualifier` other than the name's: 400
//!       InvalidParameterValueException; a payload that is not JSON: 400
//!       InvalidRequestContentException; over 6 MB: 413 RequestTooLargeException; a name of no
//!       form Invoke accepts or an unknown invocation type: 400 ValidationException.
//!
//! Every invocation that ran is recorded (name, qualifier asked, version run, payload), so a test
//! can say which version its check reached.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::lambda_process::LambdaProcess;
use crate::{repo_root, ACCOUNT, REGION};

/// How long a function may run before its invocation fails (the function's Timeout).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Invoke's limit on a synchronous request's payload.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// One invocation that ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoked {
    pub function: String,
    /// The version asked for (the `Qualifier` parameter or the name's); `None`: unqualified.
    pub qualifier: Option<String>,
    /// The version that ran (`X-Amz-Executed-Version`).
    pub version: String,
    pub invocation_type: String,
    pub payload: Value,
}

type Published = Arc<tokio::sync::Mutex<LambdaProcess>>;

#[derive(Default)]
struct State {
    /// By function name and version.
    versions: Mutex<BTreeMap<(String, String), Published>>,
    invoked: Mutex<Vec<Invoked>>,
    requests: AtomicU64,
}

pub struct LocalLambda {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalLambda {
    /// Listens on a free loopback port; no function is published yet.
    pub async fn start() -> LocalLambda {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(socket, served.clone()));
            }
        });
        LocalLambda { addr, state, task }
    }

    /// The value for `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes `version` of `function`: `program` started as Lambda starts it, cold, with the
    /// Lambda variables for that name and version and `env`; returns once it asks for work.
    pub async fn publish(&self, function: &str, version: &str, program: &Path, env: &[(&str, &str)]) {
        let log = std::env::temp_dir().join(format!(
            "pipewarden-lambda-{}-{function}-{}-{}.log",
            std::process::id(),
            version.replace('$', ""),
            self.state.requests.fetch_add(1, Ordering::Relaxed)
        ));
        let mut vars: Vec<(String, String)> = vec![("AWS_LAMBDA_FUNCTION_VERSION".into(), version.into())];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let process = LambdaProcess::start(function, program, &[], &vars, &log)
            .await
            .unwrap_or_else(|e| panic!("publishing {function}:{version}: {e}"));
        process.init(Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("publishing {function}:{version}: {e}"));
        let published = Arc::new(tokio::sync::Mutex::new(process));
        self.state.versions.lock().unwrap().insert((function.to_string(), version.to_string()), published);
    }

    /// Every invocation that ran so far, in order.
    pub fn invocations(&self) -> Vec<Invoked> {
        self.state.invoked.lock().unwrap().clone()
    }
}

/// The `pipewarden-smoke-target` function binary, built once per test process: `cargo build --bin`
/// at the workspace root resolves features as `make run`'s `cargo build --bins` does, so the two
/// share artifacts and, after either, this is a no-op.
pub async fn smoke_target() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    tokio::task::spawn_blocking(|| BUILT.get_or_init(|| cargo_build_bin("pipewarden-smoke-target")).clone())
        .await
        .expect("building pipewarden-smoke-target")
}

fn cargo_build_bin(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--bin", name, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("running cargo build --bin {name}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo build --bin {name} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build --bin {name} named no executable:\n{stderr}"))
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An error as Lambda answers it: the code in `x-amzn-ErrorType`, `{"Type", "Message"}`.
    fn error(status: u16, code: &str, message: &str) -> Response {
        Response {
            status,
            headers: vec![("x-amzn-ErrorType", code.to_string())],
            body: json!({"Type": "User", "Message": message}).to_string().into_bytes(),
        }
    }
}

/// Reads one HTTP/1.1 request; `None` when the connection ended.
async fn read_request(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
) -> Option<Result<Request, Response>> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let request = Request { method, target, headers, body: Vec::new() };
    let Some(length) = request.header("content-length").and_then(|l| l.parse::<usize>().ok()) else {
        if request.header("transfer-encoding").is_some() {
            return Some(Err(Response::error(
                411,
                "LengthRequired",
                "the local Lambda reads Content-Length bodies only",
            )));
        }
        return Some(Ok(request));
    };
    if length > MAX_PAYLOAD_BYTES {
        let message =
            format!("Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction operation");
        return Some(Err(Response::error(413, "RequestTooLargeException", &message)));
    }
    if request.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.ok()?;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(Ok(Request { body, ..request }))
}

async fn serve(socket: TcpStream, state: Arc<State>) {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    while let Some(request) = read_request(&mut reader, &mut write).await {
        let (response, close) = match request {
            Ok(request) => (answer(&request, &state).await, false),
            // The body was not read: the connection cannot carry another request.
            Err(refused) => (refused, true),
        };
        let request_id = format!("local-{:08}", state.requests.fetch_add(1, Ordering::Relaxed));
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-amzn-RequestId: {request_id}\r\n",
            response.status,
            response.body.len()
        );
        for (name, value) in &response.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&response.body);
        if write.write_all(&out).await.is_err() || close {
            return;
        }
    }
}

/// Which function and version a request names, as Invoke reads them.
#[derive(Debug, PartialEq)]
struct Target {
    function: String,
    qualifier: Option<String>,
}

/// Invoke's `FunctionName` (percent-decoded) and `Qualifier`.
fn target(function_name: &str, qualifier: Option<&str>) -> Result<Target, Response> {
    let invalid = || {
        Response::error(
            400,
            "ValidationException",
            &format!("1 validation error detected: Value '{function_name}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern"),
        )
    };
    let parts: Vec<&str> = function_name.split(':').collect();
    let (name, named_qualifier) = match parts.as_slice() {
        ["arn", _partition, "lambda", region, account, "function", rest @ ..] => {
            if *region != REGION || *account != ACCOUNT {
                return Err(not_found(function_name));
            }
            match rest {
                [name] => (*name, None),
                [name, q] => (*name, Some(*q)),
                _ => return Err(invalid()),
            }
        }
        [account, "function", name] if account.len() == 12 => {
            if *account != ACCOUNT {
                return Err(not_found(function_name));
            }
            (*name, None)
        }
        [account, "function", name, q] if account.len() == 12 => {
            if *account != ACCOUNT {
                return Err(not_found(function_name));
            }
            (*name, Some(*q))
        }
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        _ => return Err(invalid()),
    };
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid(name) || named_qualifier.is_some_and(|q| q != "$LATEST" && !valid(q)) {
        return Err(invalid());
    }
    let qualifier = match (named_qualifier, qualifier.filter(|q| !q.is_empty())) {
        (Some(named), Some(param)) if named != param => {
            return Err(Response::error(
                400,
                "InvalidParameterValueException",
                "The derived qualifier from the function name does not match the specified qualifier.",
            ))
        }
        (named, param) => named.or(param),
    };
    Ok(Target { function: name.to_string(), qualifier: qualifier.map(str::to_string) })
}

fn not_found(function: &str) -> Response {
    let arn = if function.starts_with("arn:") {
        function.to_string()
    } else if function.contains(":function:") {
        format!("arn:aws:lambda:{REGION}:{function}")
    } else {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}")
    };
    Response::error(404, "ResourceNotFoundException", &format!("Function not found: {arn}"))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

async fn answer(request: &Request, state: &Arc<State>) -> Response {
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let function_name = path.strip_prefix("/2015-03-31/functions/").and_then(|rest| rest.strip_suffix("/invocations"));
    let (Some(function_name), "POST") = (function_name, request.method.as_str()) else {
        return Response::error(404, "UnknownOperationException", "the local Lambda serves Invoke only");
    };
    let function_name = decode(function_name);
    let qualifier = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "Qualifier")
        .map(|(_, v)| decode(v));
    let target = match target(&function_name, qualifier.as_deref()) {
        Ok(target) => target,
        Err(refused) => return refused,
    };
    let version = target.qualifier.clone().unwrap_or_else(|| "$LATEST".to_string());
    let published = state.versions.lock().unwrap().get(&(target.function.clone(), version.clone())).cloned();
    let Some(published) = published else {
        let named = match &target.qualifier {
            Some(q) => format!("{}:{q}", target.function),
            None => target.function.clone(),
        };
        return not_found(&named);
    };
    let invocation_type = request.header("x-amz-invocation-type").unwrap_or("RequestResponse").to_string();
    if !["RequestResponse", "Event", "DryRun"].contains(&invocation_type.as_str()) {
        return Response::error(
            400,
            "ValidationException",
            &format!("1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"),
        );
    }
    let payload: Value = if request.body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&request.body) {
            Ok(payload) => payload,
            Err(e) => {
                return Response::error(
                    400,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                )
            }
        }
    };
    let executed = ("X-Amz-Executed-Version", version.clone());
    if invocation_type == "DryRun" {
        return Response { status: 204, headers: vec![executed], body: Vec::new() };
    }
    let invoked = Invoked {
        function: target.function,
        qualifier: target.qualifier,
        version,
        invocation_type: invocation_type.clone(),
        payload: payload.clone(),
    };
    state.invoked.lock().unwrap().push(invoked);
    let request_id = format!("invoke-{:08}", state.requests.fetch_add(1, Ordering::Relaxed));
    let run = async move {
        let mut process = published.lock().await;
        process.invoke(&request_id, &payload, FUNCTION_TIMEOUT).await
    };
    if invocation_type == "Event" {
        tokio::spawn(run);
        return Response { status: 202, headers: Vec::new(), body: Vec::new() };
    }
    match run.await {
        Ok(answer) if answer.ok => Response { status: 200, headers: vec![executed], body: answer.body.into_bytes() },
        // The runtime's error document ({"errorType", "errorMessage"}) is the payload.
        Ok(answer) => Response {
            status: 200,
            headers: vec![executed, ("X-Amz-Function-Error", "Unhandled".to_string())],
            body: answer.body.into_bytes(),
        },
        Err(problem) => Response {
            status: 200,
            headers: vec![executed, ("X-Amz-Function-Error", "Unhandled".to_string())],
            body: json!({"errorType": "Sandbox.Timedout", "errorMessage": problem}).to_string().into_bytes(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_lambda::error::ProvideErrorMetadata;
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::InvocationType;

    async fn sdk(lambda: &LocalLambda) -> aws_sdk_lambda::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(lambda.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new("local", "local", None, None, "test"))
            .load()
            .await;
        aws_sdk_lambda::Client::new(&config)
    }

    #[tokio::test]
    async fn the_sdk_reads_its_answers_as_lambdas() {
        let lambda = LocalLambda::start().await;
        let smoke = smoke_target().await;
        lambda.publish("api", "3", &smoke, &[]).await;
        let client = sdk(&lambda).await;
        let invoke = |name: &str, payload: &str| {
            client.invoke().function_name(name).payload(Blob::new(payload.as_bytes().to_vec()))
        };

        let ok = invoke("api", r#"{"path": "/health"}"#).qualifier("3").send().await.unwrap();
        assert_eq!((ok.status_code, ok.function_error, ok.executed_version.as_deref()), (200, None, Some("3")));
        let answer: Value = serde_json::from_slice(ok.payload.unwrap().as_ref()).unwrap();
        assert_eq!(answer, json!({"status": "ok", "function": "api", "version": "3", "path": "/health"}));

        let failed = invoke("api:3", r#"{"fail": "boom"}"#).send().await.unwrap();
        assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
        let error: Value = serde_json::from_slice(failed.payload.unwrap().as_ref()).unwrap();
        assert_eq!(error, json!({"errorType": "SmokeCheckFailed", "errorMessage": "boom"}));

        let dry = invoke("api:3", "{}").invocation_type(InvocationType::DryRun).send().await.unwrap();
        assert_eq!(dry.status_code, 204);
        let event = invoke("api:3", "{}").invocation_type(InvocationType::Event).send().await.unwrap();
        assert_eq!(event.status_code, 202);

        let missing = invoke("api", "{}").send().await.unwrap_err().into_service_error();
        assert!(missing.is_resource_not_found_exception(), "{missing:?}");
        assert_eq!(missing.message(), Some("Function not found: arn:aws:lambda:us-east-1:123456789012:function:api"));
        let garbled = invoke("api:3", "not json").send().await.unwrap_err().into_service_error();
        assert!(garbled.is_invalid_request_content_exception(), "{garbled:?}");
        let mismatch = invoke("api:3", "{}").qualifier("4").send().await.unwrap_err().into_service_error();
        assert!(mismatch.is_invalid_parameter_value_exception(), "{mismatch:?}");

        let ran: Vec<(Option<String>, String)> =
            lambda.invocations().into_iter().map(|i| (i.qualifier, i.invocation_type)).collect();
        let three = || Some("3".to_string());
        assert_eq!(
            ran,
            vec![(three(), "RequestResponse".into()), (three(), "RequestResponse".into()), (three(), "Event".into())],
            "DryRun and refused requests run nothing"
        );
    }

    fn refused_code(result: Result<Target, Response>) -> String {
        let response = result.expect_err("refused");
        response.headers.iter().find(|(k, _)| *k == "x-amzn-ErrorType").map(|(_, v)| v.clone()).unwrap()
    }

    #[test]
    fn every_name_form_invoke_accepts_names_the_function_and_its_qualifier() {
        let t = |name: &str, q: Option<&str>| target(name, q).ok().expect("accepted");
        let expect = |q: Option<&str>| Target { function: "flask-api".into(), qualifier: q.map(str::to_string) };
        assert_eq!(t("flask-api", None), expect(None));
        assert_eq!(t("flask-api", Some("5")), expect(Some("5")));
        assert_eq!(t("flask-api:5", None), expect(Some("5")));
        assert_eq!(t("flask-api:5", Some("5")), expect(Some("5")));
        assert_eq!(t("123456789012:function:flask-api", None), expect(None));
        assert_eq!(t("123456789012:function:flask-api:live", None), expect(Some("live")));
        assert_eq!(
            t("arn:aws:lambda:us-east-1:123456789012:function:flask-api", Some("$LATEST")),
            expect(Some("$LATEST"))
        );
        assert_eq!(t("arn:aws:lambda:us-east-1:123456789012:function:flask-api:5", None), expect(Some("5")));
    }

    #[test]
    fn names_lambda_would_refuse_are_refused_with_its_codes() {
        assert_eq!(refused_code(target("flask-api:5", Some("6"))), "InvalidParameterValueException");
        assert_eq!(refused_code(target("a:b:c:d:e", None)), "ValidationException");
        assert_eq!(refused_code(target("flask api", None)), "ValidationException");
        assert_eq!(
            refused_code(target("arn:aws:lambda:eu-west-1:123456789012:function:x", None)),
            "ResourceNotFoundException"
        );
        assert_eq!(refused_code(target("210987654321:function:x", None)), "ResourceNotFoundException");
    }
}
