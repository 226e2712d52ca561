//! Which Lambda functions the `lambda` check may invoke. Anyone who can create a CodeDeploy
//! deployment chooses its target version, so without a bound the hook would invoke any function
//! its role reaches. The template passes the same patterns to IAM and to `LAMBDA_CHECK_FUNCTIONS`;
//! the check refuses a target outside them with a reason a person can act on, before any call.

use pipewarden_shared::config::{ConfigError, Vars};

/// Function-name patterns (`*` matches any run of characters). `Any` when the deployer set none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FunctionScope {
    /// `LAMBDA_CHECK_FUNCTIONS` is unset: only IAM bounds the check (the CLI on an instance).
    #[default]
    Any,
    /// Only names matching one of these patterns; none at all when the list is empty.
    Only(Vec<String>),
}

pub const VARIABLE: &str = "LAMBDA_CHECK_FUNCTIONS";

impl FunctionScope {
    /// `LAMBDA_CHECK_FUNCTIONS`: comma-separated function names or patterns such as `flask-api-*`.
    /// Set but empty means the check may invoke nothing.
    pub fn from_vars(vars: &impl Vars) -> Result<FunctionScope, ConfigError> {
        let Some(raw) = vars.get(VARIABLE) else {
            return Ok(FunctionScope::Any);
        };
        let mut patterns = Vec::new();
        for pattern in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if pattern.starts_with("arn:") || pattern.contains(':') || pattern.contains('/') {
                return Err(ConfigError::new(
                    VARIABLE,
                    format!("{pattern:?} is not a function name or name pattern (no ARNs or qualifiers)"),
                ));
            }
            patterns.push(pattern.to_string());
        }
        Ok(FunctionScope::Only(patterns))
    }

    /// Ok when `target` (a name, `name:qualifier`, or a full or partial ARN) may be invoked;
    /// otherwise the reason, naming the function and the allowed patterns.
    pub fn permits(&self, target: &str) -> Result<(), String> {
        let FunctionScope::Only(patterns) = self else {
            return Ok(());
        };
        let name = function_name(target);
        if patterns.iter().any(|p| glob_matches(p, name)) {
            return Ok(());
        }
        let allowed =
            if patterns.is_empty() { "none (the Lambda check is turned off)".to_string() } else { patterns.join(", ") };
        Err(format!(
            "{target} is outside the functions this hook may invoke ({VARIABLE}: {allowed}); \
             the deployer widens the template's LambdaCheckFunctions parameter to allow it"
        ))
    }
}

/// The function name of any form Lambda's Invoke accepts: `name`, `name:qualifier`,
/// `123456789012:function:name[:qualifier]`, `arn:aws:lambda:region:account:function:name[:qualifier]`.
pub fn function_name(target: &str) -> &str {
    let rest = match target.find(":function:") {
        Some(i) => &target[i + ":function:".len()..],
        None => target,
    };
    rest.split(':').next().unwrap_or(rest)
}

/// `*` matches any run of characters (possibly empty); everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn scope(value: &str) -> FunctionScope {
        FunctionScope::from_vars(&HashMap::from([(VARIABLE, value)])).unwrap()
    }

    #[test]
    fn names_are_read_from_every_form_invoke_accepts() {
        assert_eq!(function_name("flask-api"), "flask-api");
        assert_eq!(function_name("flask-api:7"), "flask-api");
        assert_eq!(function_name("123456789012:function:flask-api:live"), "flask-api");
        assert_eq!(function_name("arn:aws:lambda:us-east-1:123456789012:function:flask-api"), "flask-api");
        assert_eq!(function_name("arn:aws-cn:lambda:cn-north-1:123456789012:function:flask-api:3"), "flask-api");
    }

    #[test]
    fn a_target_outside_the_patterns_is_refused_with_the_reason() {
        let s = scope("flask-api-*, billing");
        assert!(s.permits("flask-api-prod:5").is_ok());
        assert!(s.permits("arn:aws:lambda:us-east-1:123456789012:function:billing:live").is_ok());
        let refused = s.permits("arn:aws:lambda:us-east-1:123456789012:function:payroll-admin:1").unwrap_err();
        assert!(refused.contains("payroll-admin"), "{refused}");
        assert!(refused.contains("LAMBDA_CHECK_FUNCTIONS: flask-api-*, billing"), "{refused}");
        assert!(s.permits("billing-extra").is_err(), "an exact name is not a prefix");
    }

    #[test]
    fn empty_means_none_and_unset_means_iam_decides() {
        assert!(scope("").permits("anything").unwrap_err().contains("turned off"));
        let unset = FunctionScope::from_vars(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(unset, FunctionScope::Any);
        assert!(unset.permits("anything").is_ok());
    }

    #[test]
    fn arns_and_qualifiers_are_not_patterns() {
        let err = FunctionScope::from_vars(&HashMap::from([(VARIABLE, "arn:aws:lambda:*")])).unwrap_err();
        assert_eq!(err.variable, VARIABLE);
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*c", "abbc"));
        assert!(glob_matches("a*b*c", "axbyc"));
        assert!(!glob_matches("a*c", "ab"));
        assert!(!glob_matches("ab*ba", "aba"), "the prefix and suffix may not overlap");
        assert!(glob_matches("*-prod", "api-prod"));
    }
}
