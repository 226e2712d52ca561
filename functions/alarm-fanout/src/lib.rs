//! alarm-fanout: CloudWatch alarm state changes in (EventBridge, Lambda alarm actions, classic SNS
//! alarm messages); routed, formatted fan-out to SNS topics out, with noise control and nothing
//! lost or doubled.

pub mod alarm;
pub mod config;
pub mod deployments;
pub mod format;
pub mod groups;
pub mod handler;
pub mod inhibit;
pub mod memory;
pub mod rules;
pub mod silences;
pub mod tags;
pub mod timers;

use pipewarden_shared::config::Vars;
use pipewarden_shared::document::DocumentSource;

use crate::rules::RuleSet;

/// Loads and validates the routing rules once per cold start.
pub async fn load_rules(source: &DocumentSource, s3: &aws_sdk_s3::Client, vars: &impl Vars) -> Result<RuleSet, String> {
    let text = source.read(s3).await?;
    RuleSet::parse(&text, &source.origin(), vars).map_err(|e| e.to_string())
}
