//! Configuration from environment variables, read once per cold start.
//!
//! Each function has one typed config struct built with [`Vars`]; a missing or bad variable is a
//! [`ConfigError`] that names it, and stops the cold start.

use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self { variable: variable.to_string(), problem: problem.into() }
    }
}

/// Where configuration values come from: the process environment, or a map in tests.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;

    /// A variable that must be set and non-empty.
    fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// A variable that may be absent; blank counts as absent.
    fn optional(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// A typed variable with a default when absent.
    fn parsed_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|e| ConfigError::new(name, format!("{text:?} is not valid: {e}"))),
        }
    }

    /// A number of seconds, at most `max`: a bound in validation, so a huge value (`u64::MAX`)
    /// stops the cold start with a message instead of overflowing a duration later.
    fn seconds_at_most(&self, name: &str, default: u64, max: u64) -> Result<u64, ConfigError> {
        let seconds: u64 = self.parsed_or(name, default)?;
        if seconds > max {
            return Err(ConfigError::new(name, format!("{seconds} seconds is more than the limit of {max}")));
        }
        Ok(seconds)
    }

    /// A boolean variable (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
    fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError::new(name, format!("{v:?} is not a boolean (true or false)"))),
        }
    }

    /// A comma-separated list; blank items are dropped.
    fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// The real process environment.
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Vars for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Vars for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_variable_is_named() {
        let vars: HashMap<&str, &str> = HashMap::new();
        let err = vars.required("TOPIC_ARN").unwrap_err();
        assert_eq!(err.to_string(), "environment variable TOPIC_ARN: is required but not set");
    }

    #[test]
    fn bad_number_and_flag_are_named_with_their_value() {
        let vars = HashMap::from([("TIMEOUT_MS", "soon"), ("CHAT", "maybe")]);
        let err = vars.parsed_or::<u64>("TIMEOUT_MS", 5).unwrap_err();
        assert!(err.to_string().starts_with("environment variable TIMEOUT_MS: \"soon\" is not valid"));
        assert_eq!(vars.flag("CHAT", false).unwrap_err().variable, "CHAT");
        assert_eq!(vars.parsed_or::<u64>("ABSENT", 5).unwrap(), 5);
    }

    #[test]
    fn lists_drop_blank_items() {
        let vars = HashMap::from([("STATES", " SUCCEEDED, ,FAILED ")]);
        assert_eq!(vars.list("STATES"), vec!["SUCCEEDED", "FAILED"]);
    }
}
