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
    /// How long a container keeps the tags it looked up for an alarm (0: not kept).
    pub alarm_tags_cache: std::time::Duration,
    /// Where the silences are in the audit bucket (`SILENCES_PREFIX`; none: no silences read).
    pub silences_prefix: Option<String>,
    /// The EventBridge Scheduler group for alarm-fanout's timers and the role schedules invoke it
    /// with (`SCHEDULE_GROUP`, `SCHEDULER_ROLE_ARN`, both or neither; neither: no reminders, and
    /// an ALARM held back is not looked at again when its hold ends).
    pub schedule: Option<(String, String)>,
}

/// A day: tags change rarely, but a change should show within a day.
const MAX_ALARM_TAGS_CACHE_SECONDS: u64 = 86_400;
/// A day bounds every window and TTL read from the environment: longer is a mistake, and an
/// unbounded value (up to `u64::MAX`) would overflow chrono's `Duration::seconds`.
pub const MAX_WINDOW_SECONDS: u64 = 86_400;

impl Config {
    pub fn from_vars(vars: &impl Vars) -> Result<Config, ConfigError> {
        let rules = DocumentSource::from_vars(vars, "ROUTING_RULES", "ROUTING_RULES_S3_URI")?;
        Ok(Config {
            rules,
            bucket: vars.required("AUDIT_BUCKET")?,
            flap_window: window(vars, "FLAP_WINDOW_SECONDS", 900)?,
            claim_ttl: pipewarden_shared::ledger::claim_ttl(vars)?,
            deploy_context_max_age: window(vars, "DEPLOY_CONTEXT_MAX_AGE_SECONDS", 3600)?,
            alarm_tags_cache: alarm_tags_cache(vars)?,
            silences_prefix: vars.optional("SILENCES_PREFIX"),
            schedule: schedule(vars)?,
        })
    }
}

fn window(vars: &impl Vars, variable: &str, default: u64) -> Result<Duration, ConfigError> {
    let seconds = vars.seconds_at_most(variable, default, MAX_WINDOW_SECONDS)?;
    // At most a day, so the cast and chrono's conversion cannot overflow.
    Ok(Duration::seconds(seconds as i64))
}

fn schedule(vars: &impl Vars) -> Result<Option<(String, String)>, ConfigError> {
    match (vars.optional("SCHEDULE_GROUP"), vars.optional("SCHEDULER_ROLE_ARN")) {
        (Some(group), Some(role)) => Ok(Some((group, role))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new("SCHEDULER_ROLE_ARN", "is needed with SCHEDULE_GROUP")),
        (None, Some(_)) => Err(ConfigError::new("SCHEDULE_GROUP", "is needed with SCHEDULER_ROLE_ARN")),
    }
}

fn alarm_tags_cache(vars: &impl Vars) -> Result<std::time::Duration, ConfigError> {
    const VARIABLE: &str = "ALARM_TAGS_CACHE_SECONDS";
    let seconds: u64 = vars.parsed_or(VARIABLE, 300)?;
    if seconds > MAX_ALARM_TAGS_CACHE_SECONDS {
        return Err(ConfigError::new(
            VARIABLE,
            format!("{seconds} is more than {MAX_ALARM_TAGS_CACHE_SECONDS} (a day); 0 looks tags up every time"),
        ));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(extra: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        let mut vars = HashMap::from([("ROUTING_RULES", "mode: first-match"), ("AUDIT_BUCKET", "audit")]);
        vars.extend(extra.iter().copied());
        vars
    }

    #[test]
    fn alarm_tags_cache_defaults_to_five_minutes_and_is_bounded() {
        assert_eq!(Config::from_vars(&vars(&[])).unwrap().alarm_tags_cache, std::time::Duration::from_secs(300));
        let none = Config::from_vars(&vars(&[("ALARM_TAGS_CACHE_SECONDS", "0")])).unwrap();
        assert!(none.alarm_tags_cache.is_zero());
        let too_long = Config::from_vars(&vars(&[("ALARM_TAGS_CACHE_SECONDS", "90000")])).unwrap_err();
        assert_eq!(too_long.variable, "ALARM_TAGS_CACHE_SECONDS");
        assert!(too_long.to_string().contains("90000 is more than 86400"), "{too_long}");
        let negative = Config::from_vars(&vars(&[("ALARM_TAGS_CACHE_SECONDS", "-5")])).unwrap_err();
        assert!(negative.to_string().starts_with("environment variable ALARM_TAGS_CACHE_SECONDS:"), "{negative}");
    }

    #[test]
    fn windows_and_ttls_are_at_most_a_day() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(config.flap_window, Duration::seconds(900));
        assert_eq!(config.claim_ttl, Duration::seconds(120));
        assert_eq!(config.deploy_context_max_age, Duration::seconds(3600));
        let a_day = Config::from_vars(&vars(&[
            ("FLAP_WINDOW_SECONDS", "86400"),
            ("CLAIM_TTL_SECONDS", "170"),
            ("DEPLOY_CONTEXT_MAX_AGE_SECONDS", "86400"),
        ]))
        .unwrap();
        assert_eq!(a_day.flap_window, Duration::days(1));
        assert_eq!(a_day.claim_ttl, Duration::seconds(170));
        // A claim expires within Lambda's retries, so a transition waiting behind a dead one is sent.
        let err = Config::from_vars(&vars(&[("CLAIM_TTL_SECONDS", "86400")])).unwrap_err();
        assert!(err.to_string().contains("is more than the limit of 170"), "{err}");
        for variable in ["FLAP_WINDOW_SECONDS", "DEPLOY_CONTEXT_MAX_AGE_SECONDS"] {
            // i64::MAX used to panic in chrono's Duration::seconds; u64::MAX and negatives were never durations.
            for value in ["86401", "9223372036854775807", "18446744073709551615"] {
                let err = Config::from_vars(&vars(&[(variable, value)])).unwrap_err();
                assert_eq!(err.variable, variable);
                assert!(err.to_string().contains("is more than the limit of 86400"), "{err}");
            }
            let negative = Config::from_vars(&vars(&[(variable, "-1")])).unwrap_err();
            assert_eq!(negative.variable, variable, "{negative}");
        }
    }

    #[test]
    fn the_scheduler_is_configured_by_both_variables_or_neither() {
        assert_eq!(Config::from_vars(&vars(&[])).unwrap().schedule, None);
        let both =
            Config::from_vars(&vars(&[("SCHEDULE_GROUP", "g"), ("SCHEDULER_ROLE_ARN", "arn:aws:iam::1:role/r")]));
        assert_eq!(both.unwrap().schedule, Some(("g".into(), "arn:aws:iam::1:role/r".into())));
        let one = Config::from_vars(&vars(&[("SCHEDULE_GROUP", "g")])).unwrap_err();
        assert_eq!(one.variable, "SCHEDULER_ROLE_ARN");
    }
}
