//! deploy-validator's configuration. Unlike the other functions, a bad configuration does not stop
//! the cold start: the hook must still answer CodeDeploy, so it reports Failed and says why.

use std::time::Duration;

use pipewarden_shared::config::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct Config {
    /// Evidence records go here.
    pub bucket: Option<String>,
    /// Failed validations are announced here.
    pub topic_arn: Option<String>,
    /// Reported at least this long before the invocation's deadline.
    pub safety_margin: Duration,
    /// Where the validation spec comes from, or why that is not known.
    pub spec_source: Result<SpecSource, ConfigError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    Inline(String),
    S3 { bucket: String, key: String },
}

pub const DEFAULT_SAFETY_MARGIN_MS: u64 = 3000;

impl Config {
    pub fn from_vars(vars: &impl Vars) -> Config {
        let margin = vars.parsed_or::<u64>("SAFETY_MARGIN_MS", DEFAULT_SAFETY_MARGIN_MS);
        let source = match (vars.optional("VALIDATION_SPEC"), vars.optional("VALIDATION_SPEC_S3_URI")) {
            (Some(text), None) => Ok(SpecSource::Inline(text)),
            (None, Some(uri)) => parse_s3_uri(&uri)
                .ok_or_else(|| ConfigError::new("VALIDATION_SPEC_S3_URI", format!("{uri:?} is not s3://bucket/key"))),
            (Some(_), Some(_)) => {
                Err(ConfigError::new("VALIDATION_SPEC", "set only one of VALIDATION_SPEC and VALIDATION_SPEC_S3_URI"))
            }
            (None, None) => Err(ConfigError::new("VALIDATION_SPEC", "neither it nor VALIDATION_SPEC_S3_URI is set")),
        };
        Config {
            bucket: vars.optional("AUDIT_BUCKET"),
            topic_arn: vars.optional("DEPLOY_TOPIC_ARN"),
            safety_margin: Duration::from_millis(*margin.as_ref().unwrap_or(&DEFAULT_SAFETY_MARGIN_MS)),
            // A bad margin is reported the same way as a bad spec: every hook fails, saying why.
            spec_source: margin.and(source),
        }
    }
}

pub fn parse_s3_uri(uri: &str) -> Option<SpecSource> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then(|| SpecSource::S3 { bucket: bucket.to_string(), key: key.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn spec_source_and_margin() {
        let config =
            Config::from_vars(&HashMap::from([("VALIDATION_SPEC_S3_URI", "s3://specs/flask/validation.yaml")]));
        assert_eq!(
            config.spec_source.unwrap(),
            SpecSource::S3 { bucket: "specs".into(), key: "flask/validation.yaml".into() }
        );
        assert_eq!(config.safety_margin, Duration::from_millis(3000));
        let missing = Config::from_vars(&HashMap::<&str, &str>::new());
        assert_eq!(missing.spec_source.unwrap_err().variable, "VALIDATION_SPEC");
        let bad = Config::from_vars(&HashMap::from([("SAFETY_MARGIN_MS", "lots"), ("VALIDATION_SPEC", "x")]));
        assert_eq!(bad.spec_source.unwrap_err().variable, "SAFETY_MARGIN_MS");
    }
}
