//! A function's `bootstrap` run as Lambda runs it: a fresh process, the Lambda environment, and
//! the local [`RuntimeApi`] to take invocations from. Its stdout and stderr (the function's log)
//! go to a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::runtime_api::{Answer, RuntimeApi};

pub struct LambdaProcess {
    pub name: String,
    pub api: RuntimeApi,
    answers: UnboundedReceiver<Answer>,
    child: Child,
    /// Just before the process was spawned.
    pub spawned: Instant,
    pub log: PathBuf,
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The variables Lambda sets for every function, for a function called `name`.
pub fn lambda_env(name: &str, api: &RuntimeApi) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.host()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_string()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl LambdaProcess {
    /// Spawns `program args` with only the Lambda variables and `env` set (a cold start).
    pub async fn start(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<LambdaProcess, String> {
        let (api, answers) = RuntimeApi::start().await;
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let stderr = file.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(lambda_env(name, &api))
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr);
        let spawned = Instant::now();
        let child = command.spawn().map_err(|e| format!("starting {}: {e}", program.display()))?;
        Ok(LambdaProcess { name: name.to_string(), api, answers, child, spawned, log: log.to_path_buf() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The init phase: from spawn to the first request for work.
    pub async fn init(&self, limit: Duration) -> Result<Duration, String> {
        let first = self
            .api
            .first_next(limit)
            .await
            .ok_or_else(|| format!("{} never asked for work; its log:\n{}", self.name, self.logs()))?;
        Ok(first - self.spawned)
    }

    /// One invocation with `timeout` to answer, waited for.
    pub async fn invoke(&mut self, request_id: &str, payload: &Value, timeout: Duration) -> Result<Answer, String> {
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        self.invoke_bytes(request_id, body, timeout).await
    }

    /// One invocation whose body is `body` as it is (not necessarily JSON), waited for.
    pub async fn invoke_bytes(&mut self, request_id: &str, body: Vec<u8>, timeout: Duration) -> Result<Answer, String> {
        self.api.invoke(request_id, body, timeout);
        let wait = timeout + Duration::from_secs(10);
        match tokio::time::timeout(wait, self.answers.recv()).await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err("the runtime API closed".to_string()),
            Err(_) => Err(format!("{} did not answer {request_id} in {wait:?}; its log:\n{}", self.name, self.logs())),
        }
    }

    /// Sends a body that is not UTF-8 (Lambda sends JSON, but the handler reads the body as it
    /// came, `pipewarden_shared::lambda::run_on_body`): it must be answered as a bad event that
    /// names the Lambda invocation, never as a success.
    pub async fn assert_refuses_non_utf8(&mut self) {
        let body = b"{\"x\": \"\xff\"}".to_vec();
        let answer = self.invoke_bytes("req-not-utf8", body, Duration::from_secs(20)).await.unwrap();
        assert!(!answer.ok, "{}: a body that is not UTF-8 was answered: {}", self.name, answer.body);
        let named = answer.body.contains("Pipewarden.BadEvent") && answer.body.contains("Lambda invocation");
        assert!(named, "{}: {}", self.name, answer.body);
    }

    /// What the function has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
