//! pipeline-notifier's configuration, read once per cold start.

use crate::digest::{Period, Scope};
use pipewarden_shared::config::{ConfigError, Vars};
use pipewarden_shared::events::codepipeline::{ExecutionState, Level};

/// Which state changes produce a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOn {
    /// A state at a level, for example pipeline SUCCEEDED or stage FAILED.
    State(Level, ExecutionState),
    /// A manual approval action waiting for someone.
    Approval,
    /// A manual approval approved or rejected (who, and the comment).
    ApprovalResult,
}

/// What approval notifications add.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Approvals {
    /// Who can approve, in the deployer's words (`APPROVERS`).
    pub approvers: Option<String>,
    /// Whether chat notifications of a waiting approval carry what the Approve and Reject custom
    /// actions run (`CHAT_APPROVAL_ACTIONS`).
    pub chat_actions: bool,
}

pub const DEFAULT_NOTIFY_ON: &str = "pipeline:SUCCEEDED,pipeline:FAILED,pipeline:STOPPED,pipeline:SUPERSEDED";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Topic for the readable notifications (email and other subscribers).
    pub topic_arn: String,
    /// Topic for Amazon Q Developer in chat applications (custom notification JSON), if any.
    pub chat_topic_arn: Option<String>,
    /// Bucket of the audit timelines.
    pub bucket: String,
    pub notify_on: Vec<NotifyOn>,
    /// How long another invocation's claim on a notification holds before we may send in its place.
    pub claim_ttl_seconds: i64,
    /// The DORA digest a scheduled event sends, if any (`DIGEST_PERIOD`, `DIGEST_SCOPE`).
    pub digest: Option<(Period, Scope)>,
    pub approvals: Approvals,
}

impl Config {
    pub fn from_vars(vars: &impl Vars) -> Result<Config, ConfigError> {
        let notify_text = vars.optional("NOTIFY_ON").unwrap_or_else(|| DEFAULT_NOTIFY_ON.to_string());
        Ok(Config {
            topic_arn: vars.required("PIPELINE_TOPIC_ARN")?,
            chat_topic_arn: vars.optional("CHAT_TOPIC_ARN"),
            bucket: vars.required("AUDIT_BUCKET")?,
            notify_on: parse_notify_on(&notify_text).map_err(|problem| ConfigError::new("NOTIFY_ON", problem))?,
            claim_ttl_seconds: pipewarden_shared::ledger::claim_ttl(vars)?.num_seconds(),
            approvals: Approvals {
                approvers: vars.optional("APPROVERS"),
                chat_actions: vars.parsed_or("CHAT_APPROVAL_ACTIONS", false)?,
            },
            digest: match vars.optional("DIGEST_PERIOD") {
                None => None,
                Some(text) if text.eq_ignore_ascii_case("off") => None,
                Some(text) => Some((
                    Period::parse(&text).map_err(|p| ConfigError::new("DIGEST_PERIOD", p))?,
                    Scope::parse(&vars.optional("DIGEST_SCOPE").unwrap_or_else(|| "each".into()))
                        .map_err(|p| ConfigError::new("DIGEST_SCOPE", p))?,
                )),
            },
        })
    }

    pub fn targets(&self) -> Vec<Target> {
        let mut targets = vec![Target { topic_arn: self.topic_arn.clone(), format: Format::Text }];
        if let Some(chat) = &self.chat_topic_arn {
            targets.push(Target { topic_arn: chat.clone(), format: Format::Chat });
        }
        targets
    }
}

/// Where a notification goes and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub topic_arn: String,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Chat,
}

/// `pipeline:SUCCEEDED,stage:FAILED,action:FAILED,approval` (case-insensitive).
pub fn parse_notify_on(text: &str) -> Result<Vec<NotifyOn>, String> {
    let mut rules = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item.eq_ignore_ascii_case("approval") {
            rules.push(NotifyOn::Approval);
            continue;
        }
        if item.eq_ignore_ascii_case("approval-result") {
            rules.push(NotifyOn::ApprovalResult);
            continue;
        }
        let (level, state) = item.split_once(':').ok_or_else(|| {
            format!("{item:?} is not LEVEL:STATE (for example pipeline:FAILED), approval or approval-result")
        })?;
        let level = match level.trim().to_ascii_lowercase().as_str() {
            "pipeline" => Level::Pipeline,
            "stage" => Level::Stage,
            "action" => Level::Action,
            other => return Err(format!("{other:?} in {item:?} is not pipeline, stage or action")),
        };
        let state = ExecutionState::parse(state.trim());
        if let ExecutionState::Other(unknown) = &state {
            return Err(format!("{unknown:?} in {item:?} is not a CodePipeline execution state"));
        }
        rules.push(NotifyOn::State(level, state));
    }
    if rules.is_empty() {
        return Err("lists no states to notify on".to_string());
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_notify_on_final_pipeline_states() {
        let vars = HashMap::from([("PIPELINE_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"), ("AUDIT_BUCKET", "b")]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(config.notify_on.len(), 4);
        assert!(config.notify_on.contains(&NotifyOn::State(Level::Pipeline, ExecutionState::Superseded)));
        assert_eq!(config.targets().len(), 1);
        assert_eq!(config.digest, None);
    }

    #[test]
    fn the_digest_is_configured_or_off() {
        let with = |period: &'static str, scope: &'static str| {
            Config::from_vars(&HashMap::from([
                ("PIPELINE_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
                ("AUDIT_BUCKET", "b"),
                ("DIGEST_PERIOD", period),
                ("DIGEST_SCOPE", scope),
            ]))
        };
        assert_eq!(with("weekly", "").unwrap().digest, Some((Period::Weekly, Scope::EachPipeline)));
        assert_eq!(with("daily", "all").unwrap().digest, Some((Period::Daily, Scope::AllPipelines)));
        assert_eq!(with("off", "all").unwrap().digest, None);
        assert_eq!(with("monthly", "").unwrap_err().variable, "DIGEST_PERIOD");
        assert_eq!(with("daily", "some").unwrap_err().variable, "DIGEST_SCOPE");
    }

    #[test]
    fn custom_rules_and_bad_rules_name_the_variable() {
        assert_eq!(
            parse_notify_on("pipeline:started, stage:FAILED, approval").unwrap(),
            vec![
                NotifyOn::State(Level::Pipeline, ExecutionState::Started),
                NotifyOn::State(Level::Stage, ExecutionState::Failed),
                NotifyOn::Approval
            ]
        );
        let vars = HashMap::from([
            ("PIPELINE_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
            ("AUDIT_BUCKET", "b"),
            ("NOTIFY_ON", "pipeline:EXPLODED"),
        ]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.variable, "NOTIFY_ON");
        assert!(err.problem.contains("EXPLODED"));
        let missing = Config::from_vars(&HashMap::from([("AUDIT_BUCKET", "b")])).unwrap_err();
        assert_eq!(missing.variable, "PIPELINE_TOPIC_ARN");
    }

    #[test]
    fn claim_ttl_outlives_an_invocation_and_expires_within_lambdas_retries() {
        let with = |ttl: &'static str| {
            Config::from_vars(&HashMap::from([
                ("PIPELINE_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t"),
                ("AUDIT_BUCKET", "b"),
                ("CLAIM_TTL_SECONDS", ttl),
            ]))
        };
        assert_eq!(with("170").unwrap().claim_ttl_seconds, 170);
        assert_eq!(with("60").unwrap().claim_ttl_seconds, 60);
        // i64::MAX used to reach chrono's Duration::seconds and panic there; a day was allowed, and
        // a message waiting behind a dead claim would then go to the on-failure destination.
        for value in ["171", "86400", "9223372036854775807", "18446744073709551615"] {
            let err = with(value).unwrap_err();
            assert_eq!(err.variable, "CLAIM_TTL_SECONDS");
            assert!(err.to_string().contains("is more than the limit of 170"), "{err}");
        }
        let short = with("59").unwrap_err();
        assert!(short.to_string().contains("must outlive the invocation"), "{short}");
        assert_eq!(with("-1").unwrap_err().variable, "CLAIM_TTL_SECONDS");
    }
}
