//! Builds a deploy-validator wired to the local emulator, as `main.rs` wires it to AWS.
#![allow(dead_code)]

use std::time::Duration;

use deploy_validator::deployment::CodeDeployLookup;
use deploy_validator::engine::Probes;
use deploy_validator::function_scope::FunctionScope;
use deploy_validator::hook::Validator;
use deploy_validator::probes::{CloudWatchAlarmGate, HttpProbe, LambdaInvoker, ReqwestProbe};
use deploy_validator::spec::Spec;
use deploy_validator::spec_source::SpecSlot;
use pipewarden_devkit::Emulator;
use pipewarden_shared::adapters::{CodeDeployHookReporter, S3ObjectStore, SnsPublisher};

pub const BUCKET: &str = "evidence";

pub type RealValidator<H> = Validator<
    CodeDeployHookReporter,
    S3ObjectStore,
    SnsPublisher,
    CodeDeployLookup,
    H,
    CloudWatchAlarmGate,
    LambdaInvoker,
>;

pub fn validator_with<H: HttpProbe>(
    aws: &Emulator,
    spec: impl Into<SpecSlot>,
    topic: Option<String>,
    http: H,
) -> RealValidator<H> {
    Validator {
        spec: spec.into(),
        safety_margin: Duration::from_millis(1000),
        topic_arn: topic,
        reporter: CodeDeployHookReporter::new(aws.codedeploy()),
        store: Some(S3ObjectStore::new(aws.s3(), BUCKET)),
        publisher: SnsPublisher::new(aws.sns()),
        lookup: CodeDeployLookup::new(aws.codedeploy()),
        probes: Probes {
            http,
            alarms: CloudWatchAlarmGate::new(aws_sdk_cloudwatch::Client::new(&aws.sdk)),
            functions: LambdaInvoker::new(aws_sdk_lambda::Client::new(&aws.sdk)),
            function_scope: FunctionScope::Any,
        },
    }
}

pub fn validator(aws: &Emulator, spec_text: &str, topic: Option<String>) -> RealValidator<ReqwestProbe> {
    let spec = Spec::parse(spec_text, "test spec").map_err(|e| e.to_string());
    let allowed = spec.as_ref().map(|s| s.allowed_hosts.clone()).unwrap_or_default();
    validator_with(aws, spec, topic, ReqwestProbe::new(allowed).unwrap())
}

pub fn hook(deployment_id: &str, hook_id: &str) -> serde_json::Value {
    serde_json::json!({"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": hook_id})
}

/// A health-check spec against one URL, with fast backoff for tests; `allowedHosts` names the
/// URL's origin.
pub fn http_spec(url: &str, extra: &str) -> String {
    let origin = reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    format!(
        "allowedHosts: ['{origin}']\nchecks:\n  - name: health\n    type: http\n    url: '{url}'\n    initialBackoffMs: 50\n    maxBackoffMs: 200\n{extra}"
    )
}

/// A deployment registered in the emulator under `id`, and the evidence bucket.
pub async fn deployment(aws: &Emulator, id: &str) {
    aws.bucket(BUCKET).await;
    aws.deployment_with_id(id, "flask-web-app", "Lambda").await;
}
