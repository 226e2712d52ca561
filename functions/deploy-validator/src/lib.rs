//! deploy-validator: the CodeDeploy lifecycle hook (and the `pipewarden-validate` CLI) that
//! validates a new release and always reports Succeeded or Failed before its deadline.

pub mod config;
pub mod deployment;
pub mod engine;
pub mod function_scope;
pub mod hook;
pub mod probes;
pub mod spec;

use pipewarden_shared::document::DocumentSource;

use crate::spec::Spec;

/// Loads and validates the spec once per cold start; the error says what is wrong and where.
pub async fn load_spec(source: &DocumentSource, s3: &aws_sdk_s3::Client) -> Result<Spec, String> {
    let text = source.read(s3).await?;
    Spec::parse(&text, &source.origin()).map_err(|e| e.to_string())
}
