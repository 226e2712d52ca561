//! alarm-fanout's configuration, read once per cold start.

use chrono::Duration;
use pipewarden_shared::config::{ConfigError, Vars};
use pipewarden_shared::document::DocumentSource;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rules: DocumentSource,
    /// Alarm memory and deployment context live here.
    pub bucket: String,
    pub flap_window: Duration,
    pub claim_ttl: Duration,
    /// A deployment recorded longer ago than this (and not finished) is no longer context.
    pub deploy_context_max_age: Duration,
}

impl Config {
    pub fn from_vars(vars: &impl Vars) -> Result<Config, ConfigError> {
        let rules = DocumentSource::from_vars(vars, "ROUTING_RULES", "ROUTING_RULES_S3_URI")?;
        Ok(Config {
            rules,
            bucket: vars.required("AUDIT_BUCKET")?,
            flap_window: Duration::seconds(vars.parsed_or("FLAP_WINDOW_SECONDS", 900)?),
            claim_ttl: Duration::seconds(vars.parsed_or("CLAIM_TTL_SECONDS", 120)?),
            deploy_context_max_age: Duration::seconds(vars.parsed_or("DEPLOY_CONTEXT_MAX_AGE_SECONDS", 3600)?),
        })
    }
}
