//! alarm-fanout: CloudWatch alarm state changes in (EventBridge, Lambda alarm actions, classic SNS
//! alarm messages); routed, formatted fan-out to SNS topics out, with noise control and nothing
//! lost or doubled.

pub mod alarm;
pub mod config;
pub mod format;
pub mod handler;
pub mod memory;
pub mod rules;

use pipewarden_shared::config::Vars;
use pipewarden_shared::ports::ObjectStore;

use crate::config::RulesSource;
use crate::rules::RuleSet;

/// Loads and validates the routing rules once per cold start.
pub async fn load_rules(source: &RulesSource, s3: &aws_sdk_s3::Client, vars: &impl Vars) -> Result<RuleSet, String> {
    match source {
        RulesSource::Inline(text) => RuleSet::parse(text, "ROUTING_RULES", vars).map_err(|e| e.to_string()),
        RulesSource::S3 { bucket, key } => {
            let origin = format!("s3://{bucket}/{key}");
            let store = pipewarden_shared::adapters::S3ObjectStore::new(s3.clone(), bucket.clone());
            match store.get(key).await {
                Ok(Some(object)) => {
                    let text = String::from_utf8(object.body).map_err(|_| format!("{origin} is not UTF-8 text"))?;
                    RuleSet::parse(&text, &origin, vars).map_err(|e| e.to_string())
                }
                Ok(None) => Err(format!("ROUTING_RULES_S3_URI: {origin} does not exist")),
                Err(e) => Err(format!("ROUTING_RULES_S3_URI: {origin} could not be read: {e}")),
            }
        }
    }
}
