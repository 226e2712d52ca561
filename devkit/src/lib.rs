//! The harness for Pipewarden's end-to-end tests: a real local AWS (moto's server with our
//! extension, `tests/emulator/server.py`), started once per test binary on a free 127.0.0.1 port,
//! and reset before each test.
//!
//! Tests that use it take [`Emulator::fresh`], which also serialises them: moto's state is global.

pub mod demo;
pub mod groovy;
pub mod http;
pub mod instance;
pub mod lambda_invoke;
pub mod lambda_process;
pub mod local;
pub mod logs;
pub mod runtime_api;
pub mod webapp;
pub mod work;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;
use serde_json::Value;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The `src/fixtures` folder of the `aws_lambda_events` crate this workspace locks: sample events
/// of the shapes users send.
pub fn lambda_events_fixtures() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let manifest = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "aws_lambda_events")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("aws_lambda_events is a dependency of the workspace");
    std::path::Path::new(manifest).parent().expect("the crate's folder").join("src/fixtures")
}

/// A sample event from `events/`.
pub fn event(name: &str) -> Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every sample event file under `events/`, with its name.
pub fn all_events() -> Vec<(String, Value)> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .expect("events/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), event(&n))).collect()
}

struct Server {
    endpoint: String,
    _child: Child,
    // Held open for the life of the test process; the server exits when it closes.
    _stdin: ChildStdin,
}

/// The Python that runs the emulator (the project's .venv, or $PIPEWARDEN_PYTHON).
pub fn python() -> PathBuf {
    std::env::var_os("PIPEWARDEN_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// template.yaml as CloudFormation reads it (short-form tags become `Ref`, `Fn::Sub`, ...), decoded
/// by cfn-lint from the project's .venv.
pub fn template_json() -> Value {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import json, sys\nfrom cfnlint.decode import decode\nt, e = decode(sys.argv[1])\nassert not e, e\nprint(json.dumps(t))",
        ])
        .arg(repo_root().join("template.yaml"))
        .output()
        .expect("the project's Python (run `make test`, which installs cfn-lint into .venv)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cfn-lint's decoding is JSON")
}

fn start_server() -> Server {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run `make test`, which installs moto into the project's .venv",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg(repo_root().join("tests/emulator/server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the emulator with {}: {e}", python.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).expect("reading the emulator's port");
    let port = first_line
        .trim()
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("the emulator did not print its port, it said {first_line:?}"));
    let stdin = child.stdin.take().expect("piped stdin");
    Server { endpoint: format!("http://127.0.0.1:{port}"), _child: child, _stdin: stdin }
}

static SERVER: OnceLock<Server> = OnceLock::new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's view of the emulator: reset, with SDK config pointing at it.
pub struct Emulator {
    pub endpoint: String,
    pub sdk: SdkConfig,
    http: reqwest::Client,
    _serial: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl Emulator {
    /// Starts the emulator if this test binary has not yet, waits for other tests using it, and
    /// resets it.
    pub async fn fresh() -> Emulator {
        let serial = SERIAL.lock().await;
        let endpoint = SERVER.get_or_init(start_server).endpoint.clone();
        let http = reqwest::Client::new();
        http.post(format!("{endpoint}/moto-api/reset"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("resetting the emulator");
        let sdk = sdk_config(&endpoint).await;
        Emulator { endpoint, sdk, http, _serial: Some(serial) }
    }

    /// Uses an emulator that is already running (the local run and `make replay`), as it is.
    pub async fn connect(endpoint: &str) -> Emulator {
        Emulator {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            sdk: sdk_config(endpoint).await,
            http: reqwest::Client::new(),
            _serial: None,
        }
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        pipewarden_shared::aws::sns_client(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        pipewarden_shared::aws::s3_client(&self.sdk)
    }

    pub fn codedeploy(&self) -> aws_sdk_codedeploy::Client {
        pipewarden_shared::aws::codedeploy_client(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// An SNS topic with an SQS queue subscribed to it, as a subscriber would have.
    pub async fn topic_with_subscriber(&self, name: &str) -> Subscribed {
        let topic_arn =
            self.sns().create_topic().name(name).send().await.expect("CreateTopic").topic_arn.expect("topic arn");
        let queue_url = self
            .sqs()
            .create_queue()
            .queue_name(format!("{name}-subscriber"))
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("queue url");
        let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-subscriber");
        self.sns()
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .send()
            .await
            .expect("Subscribe");
        Subscribed { topic_arn, queue_url }
    }

    /// Every notification the queue subscribed to a topic received so far (and takes them off it).
    pub async fn received(&self, subscribed: &Subscribed) -> Vec<Notification> {
        let mut out = Vec::new();
        loop {
            let batch = self
                .sqs()
                .receive_message()
                .queue_url(&subscribed.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = batch.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let envelope: Value =
                    serde_json::from_str(m.body.as_deref().unwrap_or("{}")).expect("SNS envelope JSON");
                out.push(Notification::from_envelope(&envelope));
                if let Some(handle) = m.receipt_handle {
                    self.sqs()
                        .delete_message()
                        .queue_url(&subscribed.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("DeleteMessage");
                }
            }
        }
        out
    }

    pub async fn bucket(&self, name: &str) {
        self.s3().create_bucket().bucket(name).send().await.expect("CreateBucket");
    }

    /// The body of an S3 object, or `None`.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self.s3().get_object().bucket(bucket).key(key).send().await.ok()?;
        Some(out.body.collect().await.expect("object body").into_bytes().to_vec())
    }

    /// Every key in a bucket.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let out = self.s3().list_objects_v2().bucket(bucket).send().await.expect("ListObjectsV2");
        out.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).collect()
    }

    /// A CodeDeploy application, deployment group and deployment; returns the deployment id.
    pub async fn deployment(&self, application: &str, compute_platform: &str) -> String {
        let cd = self.codedeploy();
        cd.create_application()
            .application_name(application)
            .compute_platform(compute_platform.into())
            .send()
            .await
            .expect("CreateApplication");
        cd.create_deployment_group()
            .application_name(application)
            .deployment_group_name(format!("{application}-group"))
            .service_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/codedeploy"))
            .send()
            .await
            .expect("CreateDeploymentGroup");
        cd.create_deployment()
            .application_name(application)
            .deployment_group_name(format!("{application}-group"))
            .send()
            .await
            .expect("CreateDeployment")
            .deployment_id
            .expect("deployment id")
    }

    /// Registers a deployment under the id an event names (moto would make up its own), in an
    /// application and group it creates if needed. It has no hook executions yet: see
    /// [`Emulator::hook_execution`].
    pub async fn deployment_with_id(&self, deployment_id: &str, application: &str, compute_platform: &str) {
        self.control_post(
            "deployments",
            serde_json::json!({"deploymentId": deployment_id, "applicationName": application, "computePlatform": compute_platform}),
        )
        .await;
    }

    /// Records a lifecycle event hook execution CodeDeploy issued for a deployment (a Lambda or ECS
    /// one the emulator knows), so PutLifecycleEventHookExecutionStatus accepts a report for it, as
    /// AWS refuses one for an id it never issued. `lifecycle_event` is one of the platform's hooks
    /// (AfterAllowTraffic, BeforeAllowTraffic, and for ECS also BeforeInstall, AfterInstall,
    /// AfterAllowTestTraffic).
    pub async fn hook_execution(&self, deployment_id: &str, hook_execution_id: &str, lifecycle_event: &str) {
        self.control_post(
            "hooks",
            serde_json::json!({
                "deploymentId": deployment_id,
                "lifecycleEventHookExecutionId": hook_execution_id,
                "lifecycleEvent": lifecycle_event,
            }),
        )
        .await;
    }

    /// The event CodeDeploy sends a hook function for a hook execution it issues now (registered
    /// with [`Emulator::hook_execution`] as an AfterAllowTraffic hook).
    pub async fn issued_hook(&self, deployment_id: &str, hook_execution_id: &str) -> Value {
        self.hook_execution(deployment_id, hook_execution_id, "AfterAllowTraffic").await;
        serde_json::json!({"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": hook_execution_id})
    }

    /// The page size of `operation` (ListDeploymentTargets, ListActionExecutions, DescribeAlarms)
    /// when the request sets none, so tests can make every item its own page.
    pub async fn page_size(&self, operation: &str, size: u32) {
        self.control_post("page-sizes", serde_json::json!({"operation": operation, "size": size})).await;
    }

    /// An execution CodePipeline's GetPipelineExecution answers with: `execution` is the AWS
    /// `PipelineExecution` shape (with `pipelineName` and `pipelineExecutionId`; timestamps may be
    /// ISO 8601). The emulator refuses what AWS would never answer.
    pub async fn pipeline_execution(&self, execution: Value) {
        self.control_post("pipeline-executions", serde_json::json!({ "pipelineExecution": execution })).await;
    }

    /// What the emulator's control API answers, status and body, without failing on an error status.
    pub async fn control_answer(&self, what: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/_pipewarden/{what}", self.endpoint))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /_pipewarden/{what}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// What the CodeDeploy extension recorded of PutLifecycleEventHookExecutionStatus calls.
    pub async fn hook_statuses(&self) -> Vec<RecordedHookStatus> {
        self.control_get("hook-statuses").await
    }

    /// How many calls each AWS operation received since the reset.
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        self.control_get("calls").await
    }

    /// Makes the next `count` calls of `operation` fail with `status` and `code`.
    pub async fn inject_fault(&self, operation: &str, status: u16, code: &str, count: u32) {
        self.control_post(
            "faults",
            serde_json::json!({"operation": operation, "status": status, "code": code, "count": count}),
        )
        .await;
    }

    /// The next `count` calls of `operation` hang for `ms` milliseconds, then lose their
    /// connection with no answer (nothing reaches the emulated service).
    pub async fn inject_hang(&self, operation: &str, ms: u64, count: u32) {
        self.control_post(
            "faults",
            serde_json::json!({"operation": operation, "delayMs": ms, "drop": true, "count": count}),
        )
        .await;
    }

    /// The next `count` calls of `operation` lose their connection at once, with no answer.
    pub async fn inject_drop(&self, operation: &str, count: u32) {
        self.control_post("faults", serde_json::json!({"operation": operation, "drop": true, "count": count})).await;
    }

    /// The next `count` calls of `operation` reach the emulated service and take effect, then lose
    /// their connection with no answer: the caller cannot tell whether AWS did what it asked.
    pub async fn inject_drop_after(&self, operation: &str, count: u32) {
        self.control_post("faults", serde_json::json!({"operation": operation, "dropAfter": true, "count": count}))
            .await;
    }

    /// Ends every injected fault.
    pub async fn clear_faults(&self) {
        self.control_post("faults/clear", serde_json::json!({})).await;
    }

    /// A control request that must succeed (the emulator's refusal, with its reason, fails the test).
    pub async fn control_post(&self, what: &str, body: Value) {
        let (status, answer) = self.control_answer(what, body).await;
        assert!((200..300).contains(&status), "POST /_pipewarden/{what}: HTTP {status}: {answer}");
    }

    async fn control_get<T: serde::de::DeserializeOwned>(&self, what: &str) -> T {
        self.http
            .get(format!("{}/_pipewarden/{what}", self.endpoint))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("GET /_pipewarden/{what}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET /_pipewarden/{what} JSON: {e}"))
    }
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    // The functions' own HTTPS client (shared/src/http.rs), so every test's AWS call goes through
    // it: its timeouts and its classification of failures are what the ledger relies on.
    let tls = pipewarden_shared::tls::TrustStore { roots: pipewarden_shared::tls::Roots::Mozilla, extra_bundle: None }
        .client_config()
        .expect("Mozilla's roots make a TLS setup");
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(pipewarden_shared::http::sdk_client(tls))
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "pipewarden-tests"))
        .load()
        .await
}

/// A topic and the queue subscribed to it.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub topic_arn: String,
    pub queue_url: String,
}

/// What a subscriber got: the SNS notification envelope's parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub subject: Option<String>,
    pub message: String,
    pub attributes: BTreeMap<String, String>,
}

impl Notification {
    fn from_envelope(envelope: &Value) -> Notification {
        let attributes = envelope
            .get("MessageAttributes")
            .and_then(|a| a.as_object())
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), v.get("Value").and_then(|v| v.as_str()).unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Notification {
            subject: envelope.get("Subject").and_then(|s| s.as_str()).map(str::to_string),
            message: envelope.get("Message").and_then(|s| s.as_str()).unwrap_or("").to_string(),
            attributes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RecordedHookStatus {
    #[serde(rename = "deploymentId")]
    pub deployment_id: String,
    #[serde(rename = "lifecycleEventHookExecutionId")]
    pub hook_execution_id: String,
    /// The lifecycle event the hook execution was issued for (AfterAllowTraffic, ...).
    #[serde(rename = "lifecycleEvent")]
    pub lifecycle_event: String,
    pub status: String,
}
