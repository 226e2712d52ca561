//! deploy-validator: the CodeDeploy lifecycle hook (and the `pipewarden-validate` CLI) that
//! validates a new release and always reports Succeeded or Failed before its deadline.

pub mod config;
pub mod deployment;
pub mod engine;
pub mod hook;
pub mod probes;
pub mod spec;

use pipewarden_shared::ports::ObjectStore;

use crate::config::SpecSource;
use crate::spec::Spec;

/// Loads and validates the spec once per cold start; the error says what is wrong and where.
pub async fn load_spec(source: &SpecSource, s3: &aws_sdk_s3::Client) -> Result<Spec, String> {
    match source {
        SpecSource::Inline(text) => Spec::parse(text, "VALIDATION_SPEC").map_err(|e| e.to_string()),
        SpecSource::S3 { bucket, key } => {
            let store = pipewarden_shared::adapters::S3ObjectStore::new(s3.clone(), bucket.clone());
            let origin = format!("s3://{bucket}/{key}");
            match store.get(key).await {
                Ok(Some(object)) => {
                    let text = String::from_utf8(object.body).map_err(|_| format!("{origin} is not UTF-8 text"))?;
                    Spec::parse(&text, &origin).map_err(|e| e.to_string())
                }
                Ok(None) => Err(format!("{origin} does not exist")),
                Err(e) => Err(format!("{origin} could not be read: {e}")),
            }
        }
    }
}
