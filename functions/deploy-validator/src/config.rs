//! deploy-validator's configuration. Unlike the other functions, a bad configuration does not stop
//! the cold start: the hook must still answer CodeDeploy, so it reports Failed and says why.

use std::time::Duration;

use pipewarden_shared::config::{ConfigError, Vars};
use pipewarden_shared::deadline;
use pipewarden_shared::document::DocumentSource;

use crate::function_scope::FunctionScope;

#[derive(Debug, Clone)]
pub struct Config {
    /// Evidence records go here.
    pub bucket: Option<String>,
    /// Failed validations are announced here.
    pub topic_arn: Option<String>,
    /// Reported at least this long before the invocation's deadline.
    pub safety_margin: Duration,
    /// Where the validation spec comes from, or why that is not known.
    pub spec_source: Result<DocumentSource, ConfigError>,
    /// The functions the Lambda check may invoke (`LAMBDA_CHECK_FUNCTIONS`).
    pub function_scope: FunctionScope,
}

pub const DEFAULT_SAFETY_MARGIN_MS: u64 = 3000;
/// The shared work deadline stops every call [`deadline::MARGIN`] before Lambda's; the report
/// needs its own second after the checks on top of that.
pub const MIN_SAFETY_MARGIN_MS: u64 = deadline::MARGIN.as_millis() as u64 + 1000;

impl Config {
    pub fn from_vars(vars: &impl Vars) -> Config {
        let margin = vars.parsed_or::<u64>("SAFETY_MARGIN_MS", DEFAULT_SAFETY_MARGIN_MS).and_then(|ms| {
            if ms < MIN_SAFETY_MARGIN_MS {
                Err(ConfigError::new(
                    "SAFETY_MARGIN_MS",
                    format!("{ms} ms leaves the hook's report no time: at least {MIN_SAFETY_MARGIN_MS}"),
                ))
            } else {
                Ok(ms)
            }
        });
        let source = DocumentSource::from_vars(vars, "VALIDATION_SPEC", "VALIDATION_SPEC_S3_URI");
        // A bad scope must not widen it: every hook fails, naming the variable.
        let scope = FunctionScope::from_vars(vars);
        Config {
            bucket: vars.optional("AUDIT_BUCKET"),
            topic_arn: vars.optional("DEPLOY_TOPIC_ARN"),
            safety_margin: Duration::from_millis(*margin.as_ref().unwrap_or(&DEFAULT_SAFETY_MARGIN_MS)),
            function_scope: scope.clone().unwrap_or(FunctionScope::Only(Vec::new())),
            // A bad margin or scope is reported the same way as a bad spec: every hook fails, saying why.
            spec_source: margin.and(scope).and(source),
        }
    }
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
            DocumentSource::S3 { bucket: "specs".into(), key: "flask/validation.yaml".into() }
        );
        assert_eq!(config.safety_margin, Duration::from_millis(3000));
        let missing = Config::from_vars(&HashMap::<&str, &str>::new());
        assert_eq!(missing.spec_source.unwrap_err().variable, "VALIDATION_SPEC");
        let bad = Config::from_vars(&HashMap::from([("SAFETY_MARGIN_MS", "lots"), ("VALIDATION_SPEC", "x")]));
        assert_eq!(bad.spec_source.unwrap_err().variable, "SAFETY_MARGIN_MS");
        let starved = Config::from_vars(&HashMap::from([("SAFETY_MARGIN_MS", "1000"), ("VALIDATION_SPEC", "x")]));
        assert_eq!(starved.spec_source.unwrap_err().variable, "SAFETY_MARGIN_MS");
        assert_eq!(starved.safety_margin, Duration::from_millis(DEFAULT_SAFETY_MARGIN_MS));
        let scoped = Config::from_vars(&HashMap::from([("LAMBDA_CHECK_FUNCTIONS", "api-*"), ("VALIDATION_SPEC", "x")]));
        assert_eq!(scoped.function_scope, FunctionScope::Only(vec!["api-*".into()]));
        let bad_scope =
            Config::from_vars(&HashMap::from([("LAMBDA_CHECK_FUNCTIONS", "arn:aws:x"), ("VALIDATION_SPEC", "x")]));
        assert_eq!(bad_scope.spec_source.unwrap_err().variable, "LAMBDA_CHECK_FUNCTIONS");
        assert_eq!(bad_scope.function_scope, FunctionScope::Only(Vec::new()));
    }
}
