//! alarm-fanout's configuration, read once per cold start.

use chrono::Duration;
use pipewarden_shared::config::{ConfigError, Vars};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    Inline(String),
    S3 { bucket: String, key: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rules: RulesSource,
    /// Alarm memory and deployment context live here.
    pub bucket: String,
    pub flap_window: Duration,
    pub claim_ttl: Duration,
    /// A deployment recorded longer ago than this (and not finished) is no longer context.
    pub deploy_context_max_age: Duration,
}

impl Config {
    pub fn from_vars(vars: &impl Vars) -> Result<Config, ConfigError> {
        let rules = match (vars.optional("ROUTING_RULES"), vars.optional("ROUTING_RULES_S3_URI")) {
            (Some(text), None) => RulesSource::Inline(text),
            (None, Some(uri)) => uri
                .strip_prefix("s3://")
                .and_then(|rest| rest.split_once('/'))
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .map(|(b, k)| RulesSource::S3 { bucket: b.to_string(), key: k.to_string() })
                .ok_or_else(|| ConfigError::new("ROUTING_RULES_S3_URI", format!("{uri:?} is not s3://bucket/key")))?,
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("ROUTING_RULES", "set only one of ROUTING_RULES and ROUTING_RULES_S3_URI"))
            }
            (None, None) => {
                return Err(ConfigError::new("ROUTING_RULES", "neither it nor ROUTING_RULES_S3_URI is set"))
            }
        };
        Ok(Config {
            rules,
            bucket: vars.required("AUDIT_BUCKET")?,
            flap_window: Duration::seconds(vars.parsed_or("FLAP_WINDOW_SECONDS", 900)?),
            claim_ttl: Duration::seconds(vars.parsed_or("CLAIM_TTL_SECONDS", 120)?),
            deploy_context_max_age: Duration::seconds(vars.parsed_or("DEPLOY_CONTEXT_MAX_AGE_SECONDS", 3600)?),
        })
    }
}
