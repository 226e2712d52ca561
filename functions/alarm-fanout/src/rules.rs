//! Routing rules: which alarms go to which topics, at which severity.
//!
//! A JSON or YAML document (see the README), read and validated once per cold start. Topic entries
//! may be ARNs or `$VARIABLE`, read from the environment then (so the SAM template can pass the
//! topics it creates).

use std::collections::BTreeMap;

use pipewarden_shared::config::Vars;
use pipewarden_shared::events::cloudwatch::AlarmStateValue;
use serde::Deserialize;

use crate::alarm::AlarmTransition;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("routing rules from {origin}: {problem}")]
pub struct RulesError {
    pub origin: String,
    pub problem: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The first matching rule decides.
    FirstMatch,
    /// Every matching rule adds its topics.
    AllMatches,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRules {
    mode: Mode,
    #[serde(default)]
    rules: Vec<RawRule>,
    default: RawRoute,
    /// Inhibit rules: while a source is in ALARM, its targets are held back.
    #[serde(default)]
    inhibit: Vec<crate::inhibit::RawInhibit>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(rename = "match", default)]
    matcher: RawMatch,
    severity: Severity,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    chat_topics: Vec<String>,
    #[serde(default)]
    application: Option<String>,
    #[serde(default)]
    quiet_during_deployments: bool,
    #[serde(default)]
    repeat_interval: Option<String>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    group_wait: Option<String>,
    #[serde(default)]
    group_interval: Option<String>,
}

impl RawRule {
    fn route(&self) -> RawRoute {
        RawRoute {
            severity: self.severity,
            topics: self.topics.clone(),
            chat_topics: self.chat_topics.clone(),
            application: self.application.clone(),
            quiet_during_deployments: self.quiet_during_deployments,
            repeat_interval: self.repeat_interval.clone(),
            group_by: self.group_by.clone(),
            group_wait: self.group_wait.clone(),
            group_interval: self.group_interval.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRoute {
    severity: Severity,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    chat_topics: Vec<String>,
    #[serde(default)]
    application: Option<String>,
    /// Hold back ALARM and INSUFFICIENT_DATA while a deployment of the application is in flight.
    #[serde(default)]
    quiet_during_deployments: bool,
    /// Send the ALARM again every so long (`4h`, `30m`) while it stays the alarm's state.
    #[serde(default)]
    repeat_interval: Option<String>,
    /// Group transitions by these labels into one message (none: one message per transition).
    #[serde(default)]
    group_by: Vec<String>,
    /// How long the first transition of a group waits for others (default 30s).
    #[serde(default)]
    group_wait: Option<String>,
    /// How long after a group's message its next one waits at least (default 5m).
    #[serde(default)]
    group_interval: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    alarm_name: Option<RawName>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    state: Vec<String>,
    #[serde(default)]
    previous_state: Vec<String>,
    /// Matchers on the transition's labels (those known before routing: not severity, rule or
    /// application).
    #[serde(default)]
    labels: Vec<crate::silences::Matcher>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawName {
    Exact(String),
    Pattern(RawPattern),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPattern {
    #[serde(default)]
    exact: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    glob: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

#[derive(Debug, Clone)]
pub enum NameMatch {
    Exact(String),
    Prefix(String),
    Glob(glob::Pattern),
    Regex(regex::Regex),
}

impl NameMatch {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(e) => e == name,
            NameMatch::Prefix(p) => name.starts_with(p.as_str()),
            NameMatch::Glob(g) => g.matches(name),
            NameMatch::Regex(r) => r.is_match(name),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Match {
    pub alarm_name: Option<NameMatch>,
    pub namespace: Option<String>,
    pub metric: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub state: Vec<AlarmStateValue>,
    pub previous_state: Vec<AlarmStateValue>,
    pub labels: crate::silences::Compiled,
}

impl Match {
    pub fn matches(&self, a: &AlarmTransition) -> bool {
        let metrics = a.metrics();
        self.alarm_name.as_ref().map(|m| m.matches(&a.alarm_name)).unwrap_or(true)
            && self.namespace.as_ref().map(|n| metrics.iter().any(|m| m.namespace.as_ref() == Some(n))).unwrap_or(true)
            && self.metric.as_ref().map(|n| metrics.iter().any(|m| m.name.as_ref() == Some(n))).unwrap_or(true)
            && self.account.as_ref().map(|x| *x == a.account).unwrap_or(true)
            && self.region.as_ref().map(|x| *x == a.region).unwrap_or(true)
            && self.tags.iter().all(|(k, v)| a.tags.get(k) == Some(v))
            && (self.state.is_empty() || self.state.contains(&a.state))
            && (self.previous_state.is_empty()
                || a.previous.as_ref().map(|p| self.previous_state.contains(p)).unwrap_or(false))
            && (self.labels.is_empty()
                || crate::silences::all_match(&self.labels, &crate::silences::labels(a, &[], None)))
    }
}

/// Where a matched alarm goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub rule: String,
    pub severity: Severity,
    pub topics: Vec<String>,
    pub chat_topics: Vec<String>,
    pub application: Option<String>,
    /// ALARM and INSUFFICIENT_DATA are held back while a deployment of the application is in
    /// flight (its deployment context), as a silence holds them.
    pub quiet_during_deployments: bool,
    /// Reminders: the ALARM sent again every so long while it stays the alarm's state (at least
    /// [`MIN_REPEAT_MINUTES`]).
    pub repeat_interval: Option<chrono::Duration>,
    /// Its transitions go out grouped (see [`crate::groups`]).
    pub grouping: Option<crate::groups::Grouping>,
}

/// Reminders come at most this often: a schedule fires within its minute, and a reminder more
/// often than this is noise.
pub const MIN_REPEAT_MINUTES: i64 = 5;

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub matcher: Match,
    pub route: Route,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub mode: Mode,
    pub rules: Vec<Rule>,
    pub default: Route,
    pub inhibit: Vec<crate::inhibit::Inhibit>,
}

/// One message to send: an alarm transition to a topic, in a format, at a severity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub topic_arn: String,
    pub chat: bool,
    pub severity: Severity,
    pub rule: String,
}

impl RuleSet {
    pub fn parse(text: &str, origin: &str, vars: &impl Vars) -> Result<RuleSet, RulesError> {
        let error = |problem: String| RulesError { origin: origin.to_string(), problem };
        let raw: RawRules = pipewarden_shared::document::parse_json_or_yaml(text).map_err(error)?;
        let route = |raw: &RawRoute, place: &str, name: &str| -> Result<Route, RulesError> {
            let resolve = |list: &[String], field: &str| -> Result<Vec<String>, RulesError> {
                list.iter()
                    .enumerate()
                    .map(|(i, t)| resolve_topic(t, vars).map_err(|p| error(format!("{place}.{field}[{i}]: {p}"))))
                    .collect()
            };
            let topics = resolve(&raw.topics, "topics")?;
            let chat_topics = resolve(&raw.chat_topics, "chatTopics")?;
            if topics.is_empty() && chat_topics.is_empty() {
                return Err(error(format!("{place}: names no topics or chatTopics")));
            }
            let repeat_interval = match &raw.repeat_interval {
                None => None,
                Some(text) => {
                    let every = crate::silences::parse_duration(text)
                        .map_err(|p| error(format!("{place}.repeatInterval: {p}")))?;
                    if every < chrono::Duration::minutes(MIN_REPEAT_MINUTES) {
                        return Err(error(format!(
                            "{place}.repeatInterval: {text:?} is less than {MIN_REPEAT_MINUTES} minutes"
                        )));
                    }
                    Some(every)
                }
            };
            let grouping = if raw.group_by.is_empty() {
                if raw.group_wait.is_some() || raw.group_interval.is_some() {
                    return Err(error(format!("{place}: groupWait and groupInterval need groupBy")));
                }
                None
            } else {
                let duration = |text: &Option<String>, field: &str, default: i64, least: i64| {
                    let d = match text {
                        Some(t) => {
                            crate::silences::parse_duration(t).map_err(|p| error(format!("{place}.{field}: {p}")))?
                        }
                        None => chrono::Duration::seconds(default),
                    };
                    if d < chrono::Duration::seconds(least) || d > chrono::Duration::hours(24) {
                        return Err(error(format!("{place}.{field}: between {least} s and 24 h")));
                    }
                    Ok(d)
                };
                Some(crate::groups::Grouping {
                    by: raw.group_by.clone(),
                    wait: duration(&raw.group_wait, "groupWait", 30, 1)?,
                    interval: duration(&raw.group_interval, "groupInterval", 300, 60)?,
                })
            };
            Ok(Route {
                rule: name.to_string(),
                repeat_interval,
                grouping,
                severity: raw.severity,
                topics,
                chat_topics,
                application: raw.application.clone(),
                quiet_during_deployments: raw.quiet_during_deployments,
            })
        };
        let mut rules = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let place = format!("rules[{i}] ({:?})", r.name);
            if r.name.trim().is_empty() || !names.insert(r.name.clone()) {
                return Err(error(format!("{place}: names must be present and unique")));
            }
            rules.push(Rule {
                name: r.name.clone(),
                matcher: matcher(&r.matcher).map_err(|p| error(format!("{place}.match: {p}")))?,
                route: route(&r.route(), &place, &r.name)?,
            });
        }
        let mut inhibit = Vec::new();
        let mut inhibit_names = std::collections::BTreeSet::new();
        for (i, r) in raw.inhibit.iter().enumerate() {
            let place = format!("inhibit[{i}] ({:?})", r.name);
            if r.name.trim().is_empty() || !inhibit_names.insert(r.name.clone()) {
                return Err(error(format!("{place}: names must be present and unique")));
            }
            inhibit.push(r.compile().map_err(|p| error(format!("{place}: {p}")))?);
        }
        Ok(RuleSet { mode: raw.mode, rules, default: route(&raw.default, "default", "default")?, inhibit })
    }

    /// The routes an alarm takes: the first or every matching rule, or else the default.
    pub fn routes(&self, alarm: &AlarmTransition) -> Vec<&Route> {
        let matching = self.rules.iter().filter(|r| r.matcher.matches(alarm)).map(|r| &r.route);
        let routes: Vec<&Route> = match self.mode {
            Mode::FirstMatch => matching.take(1).collect(),
            Mode::AllMatches => matching.collect(),
        };
        if routes.is_empty() {
            vec![&self.default]
        } else {
            routes
        }
    }

    /// One target per (topic, format); where several rules name a topic, the highest severity wins.
    pub fn targets(&self, alarm: &AlarmTransition) -> Vec<Target> {
        // The winning route per (topic, format), borrowed: a target's strings are made once.
        let mut by_topic: BTreeMap<(&str, bool), &Route> = BTreeMap::new();
        for route in self.routes(alarm) {
            let all = route.topics.iter().map(|t| (t, false)).chain(route.chat_topics.iter().map(|t| (t, true)));
            for (topic, chat) in all {
                by_topic
                    .entry((topic.as_str(), chat))
                    .and_modify(|won| {
                        if route.severity > won.severity {
                            *won = route;
                        }
                    })
                    .or_insert(route);
            }
        }
        by_topic
            .into_iter()
            .map(|((topic, chat), route)| Target {
                topic_arn: topic.to_string(),
                chat,
                severity: route.severity,
                rule: route.rule.clone(),
            })
            .collect()
    }

    /// Whether a route the alarm takes is quiet while its application is being deployed.
    pub fn quiet_during_deployments(&self, alarm: &AlarmTransition) -> bool {
        self.routes(alarm).iter().any(|r| r.quiet_during_deployments)
    }

    /// The grouping of the route named `rule`, if it groups.
    pub fn grouping(&self, rule: &str) -> Option<&crate::groups::Grouping> {
        self.rules.iter().map(|r| &r.route).chain([&self.default]).find(|r| r.rule == rule)?.grouping.as_ref()
    }

    /// Whether any route groups (a scheduler is then needed).
    pub fn groups(&self) -> bool {
        self.rules.iter().map(|r| &r.route).chain([&self.default]).any(|r| r.grouping.is_some())
    }

    /// Whether any route sets `repeatInterval`.
    pub fn repeats(&self) -> bool {
        self.rules.iter().map(|r| &r.route).chain([&self.default]).any(|r| r.repeat_interval.is_some())
    }

    /// Where reminders of an ALARM go and how often: the targets of the routes that set
    /// `repeatInterval`, at the shortest of their intervals.
    pub fn reminders(&self, alarm: &AlarmTransition) -> Option<(chrono::Duration, Vec<Target>)> {
        let routes = self.routes(alarm);
        let every = routes.iter().filter_map(|r| r.repeat_interval).min()?;
        let repeating = |t: &Target| {
            routes.iter().filter(|r| r.repeat_interval.is_some()).any(|r| {
                if t.chat {
                    r.chat_topics.contains(&t.topic_arn)
                } else {
                    r.topics.contains(&t.topic_arn)
                }
            })
        };
        Some((every, self.targets(alarm).into_iter().filter(repeating).collect()))
    }

    /// The application an alarm belongs to, for deployment context: the first matching route naming one.
    pub fn application(&self, alarm: &AlarmTransition) -> Option<String> {
        self.routes(alarm).iter().find_map(|r| r.application.clone()).or_else(|| alarm.tags.get("application").cloned())
    }
}

fn resolve_topic(entry: &str, vars: &impl Vars) -> Result<String, String> {
    let value = match entry.strip_prefix('$') {
        Some(variable) => {
            let variable = variable.trim_start_matches('{').trim_end_matches('}');
            vars.optional(variable).ok_or_else(|| format!("environment variable {variable} is not set"))?
        }
        None => entry.to_string(),
    };
    if !value.starts_with("arn:") || value.split(':').count() < 6 || !value.contains(":sns:") {
        return Err(format!("{value:?} is not an SNS topic ARN"));
    }
    Ok(value)
}

fn states(list: &[String], field: &str) -> Result<Vec<AlarmStateValue>, String> {
    list.iter()
        .map(|s| match AlarmStateValue::parse(s) {
            AlarmStateValue::Other(o) => Err(format!("{field}: {o:?} is not OK, ALARM or INSUFFICIENT_DATA")),
            v => Ok(v),
        })
        .collect()
}

fn matcher(raw: &RawMatch) -> Result<Match, String> {
    let alarm_name = match &raw.alarm_name {
        None => None,
        Some(RawName::Exact(e)) => Some(NameMatch::Exact(e.clone())),
        Some(RawName::Pattern(p)) => {
            let given = [p.exact.is_some(), p.prefix.is_some(), p.glob.is_some(), p.regex.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if given != 1 {
                return Err("alarmName takes exactly one of exact, prefix, glob, regex".to_string());
            }
            Some(if let Some(e) = &p.exact {
                NameMatch::Exact(e.clone())
            } else if let Some(x) = &p.prefix {
                NameMatch::Prefix(x.clone())
            } else if let Some(g) = &p.glob {
                NameMatch::Glob(glob::Pattern::new(g).map_err(|e| format!("alarmName.glob {g:?}: {e}"))?)
            } else {
                let r = p.regex.as_deref().unwrap_or_default();
                NameMatch::Regex(regex::Regex::new(r).map_err(|e| format!("alarmName.regex {r:?}: {e}"))?)
            })
        }
    };
    Ok(Match {
        alarm_name,
        namespace: raw.namespace.clone(),
        metric: raw.metric.clone(),
        account: raw.account.clone(),
        region: raw.region.clone(),
        tags: raw.tags.clone(),
        state: states(&raw.state, "state")?,
        previous_state: states(&raw.previous_state, "previousState")?,
        labels: crate::silences::compile(&raw.labels).map_err(|p| format!("labels: {p}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{MetricRef, Watched};
    use std::collections::HashMap;

    const CRIT: &str = "arn:aws:sns:us-east-1:123456789012:critical";
    const INFO: &str = "arn:aws:sns:us-east-1:123456789012:info";

    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([("CRITICAL_TOPIC", CRIT)])
    }

    fn alarm(name: &str, namespace: &str, state: AlarmStateValue) -> AlarmTransition {
        AlarmTransition {
            source_id: "e".into(),
            alarm_name: name.into(),
            alarm_arn: None,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            state,
            previous: Some(AlarmStateValue::Ok),
            reason: None,
            state_time: None,
            description: None,
            watched: Watched::Metric(MetricRef { namespace: Some(namespace.into()), ..MetricRef::default() }),
            threshold: None,
            comparison: None,
            suppressed: None,
            silenced: None,
            note: None,
            contributor: None,
            tags: BTreeMap::new(),
            tags_known: false,
        }
    }

    const RULES: &str = r#"
mode: all-matches
rules:
  - name: elb-errors
    match: {alarmName: {glob: "flask-*-5xx"}, namespace: AWS/ApplicationELB, state: [ALARM, OK]}
    severity: critical
    topics: [$CRITICAL_TOPIC]
    application: flask-web-app
  - name: anything-flask
    match: {alarmName: {regex: "^flask-"}}
    severity: warning
    topics: [$CRITICAL_TOPIC, arn:aws:sns:us-east-1:123456789012:warning]
default:
  severity: info
  topics: [arn:aws:sns:us-east-1:123456789012:info]
"#;

    #[test]
    fn rules_match_on_labels_with_every_kind_of_matcher() {
        let text = r#"
mode: first-match
rules:
  - name: web-team
    match:
      labels:
        - {label: team, regex: "web|api"}
        - {label: alarmName, prefix: canary-, negate: true}
        - {label: namespace, glob: "AWS/*"}
    severity: critical
    topics: [$CRITICAL_TOPIC]
default: {severity: info, topics: ["arn:aws:sns:us-east-1:123456789012:info"]}
"#;
        let rules = RuleSet::parse(text, "test", &vars()).unwrap();
        let mut web = alarm("web-5xx", "AWS/ApplicationELB", AlarmStateValue::Alarm);
        web.tags.insert("team".into(), "web".into());
        assert_eq!(rules.targets(&web)[0].topic_arn, CRIT);
        let mut canary = web.clone();
        canary.alarm_name = "canary-5xx".into();
        assert_eq!(rules.targets(&canary)[0].topic_arn, INFO, "negated prefix");
        let mut data = web.clone();
        data.tags.insert("team".into(), "data".into());
        assert_eq!(rules.targets(&data)[0].topic_arn, INFO, "anchored regex");
        let custom = {
            let mut a = alarm("web-5xx", "Custom/App", AlarmStateValue::Alarm);
            a.tags.insert("team".into(), "api".into());
            a
        };
        assert_eq!(rules.targets(&custom)[0].topic_arn, INFO, "glob on the namespace");
        let bad = text.replace("web|api", "(");
        assert!(RuleSet::parse(&bad, "test", &vars()).unwrap_err().problem.contains("labels: regex"));
    }

    #[test]
    fn all_matches_merges_topics_keeping_the_highest_severity() {
        let rules = RuleSet::parse(RULES, "t", &vars()).unwrap();
        let targets = rules.targets(&alarm("flask-web-app-5xx", "AWS/ApplicationELB", AlarmStateValue::Alarm));
        assert_eq!(targets.len(), 2);
        let crit = targets.iter().find(|t| t.topic_arn == CRIT).unwrap();
        assert_eq!((crit.severity, crit.rule.as_str()), (Severity::Critical, "elb-errors"));
        assert_eq!(
            rules.application(&alarm("flask-web-app-5xx", "AWS/ApplicationELB", AlarmStateValue::Alarm)).as_deref(),
            Some("flask-web-app")
        );
    }

    #[test]
    fn first_match_and_default() {
        let rules = RuleSet::parse(&RULES.replace("all-matches", "first-match"), "t", &vars()).unwrap();
        let targets = rules.targets(&alarm("flask-web-app-5xx", "AWS/ApplicationELB", AlarmStateValue::Alarm));
        assert_eq!(targets.len(), 1);
        let other = rules.targets(&alarm("db-cpu", "AWS/RDS", AlarmStateValue::Alarm));
        let prefixed = RuleSet::parse(&RULES.replace(r#"{regex: "^flask-"}"#, "{prefix: db-}"), "t", &vars()).unwrap();
        assert_eq!(prefixed.targets(&alarm("db-cpu", "AWS/RDS", AlarmStateValue::Alarm))[0].rule, "anything-flask");
        assert_eq!(
            other,
            vec![Target { topic_arn: INFO.into(), chat: false, severity: Severity::Info, rule: "default".into() }]
        );
        let insufficient =
            rules.targets(&alarm("flask-web-app-5xx", "AWS/ApplicationELB", AlarmStateValue::InsufficientData));
        assert_eq!(insufficient[0].rule, "anything-flask", "state filter skips the first rule");
    }

    #[test]
    fn bad_rules_are_explained() {
        let err = |text: &str| RuleSet::parse(text, "ROUTING_RULES", &vars()).unwrap_err().to_string();
        assert!(err("rules: []\ndefault: {severity: info, topics: [x]}").contains("missing field `mode`"));
        assert!(err("mode: some\ndefault: {severity: info, topics: []}").contains("unknown variant `some`"));
        assert!(err("mode: first-match\ndefault: {severity: info, topics: [$NOPE]}")
            .contains("default.topics[0]: environment variable NOPE is not set"));
        assert!(err("mode: first-match\ndefault: {severity: info, topics: [not-an-arn]}")
            .contains("is not an SNS topic ARN"));
        assert!(err("mode: first-match\ndefault: {severity: loud, topics: [$CRITICAL_TOPIC]}")
            .contains("unknown variant `loud`"));
        assert!(err("mode: first-match\nrules: [{name: r, match: {alarmName: {regex: '('}}, severity: info, topics: [$CRITICAL_TOPIC]}]\ndefault: {severity: info, topics: [$CRITICAL_TOPIC]}")
            .contains("rules[0] (\"r\").match: alarmName.regex"));
        assert!(err("mode: first-match\nrules: [{name: r, match: {state: [RED]}, severity: info, topics: [$CRITICAL_TOPIC]}]\ndefault: {severity: info, topics: [$CRITICAL_TOPIC]}")
            .contains("\"RED\" is not OK, ALARM or INSUFFICIENT_DATA"));
        assert!(err("mode: first-match\nrules: [{name: r, match: {colour: red}, severity: info, topics: [$CRITICAL_TOPIC]}]\ndefault: {severity: info, topics: [$CRITICAL_TOPIC]}")
            .contains("unknown field `colour`"));
    }

    #[test]
    fn reminders_go_to_the_routes_that_repeat_at_their_shortest_interval() {
        let text = format!(
            "mode: all-matches\nrules:\n  - name: web\n    match: {{alarmName: {{prefix: web-}}}}\n    severity: critical\n    topics: [{CRIT}]\n    repeatInterval: 4h\n  - name: all\n    match: {{}}\n    severity: info\n    topics: [{INFO}]\ndefault:\n  severity: info\n  topics: [{INFO}]\n"
        );
        let rules = RuleSet::parse(&text, "t", &vars()).unwrap();
        assert!(rules.repeats());
        let (every, targets) = rules.reminders(&alarm("web-5xx", "AWS/ELB", AlarmStateValue::Alarm)).unwrap();
        assert_eq!(every, chrono::Duration::hours(4));
        assert_eq!(targets.iter().map(|t| t.topic_arn.as_str()).collect::<Vec<_>>(), [CRIT], "not the info topic");
        assert!(rules.reminders(&alarm("db-cpu", "AWS/RDS", AlarmStateValue::Alarm)).is_none());
        let too_often = text.replace("repeatInterval: 4h", "repeatInterval: 1m");
        let err = RuleSet::parse(&too_often, "t", &vars()).unwrap_err().to_string();
        assert!(err.contains("rules[0] (\"web\").repeatInterval: \"1m\" is less than 5 minutes"), "{err}");
        let bad = text.replace("repeatInterval: 4h", "repeatInterval: often");
        let err = RuleSet::parse(&bad, "t", &vars()).unwrap_err().to_string();
        assert!(err.contains("repeatInterval") && err.contains("often"), "{err}");
    }

    #[test]
    fn grouping_is_read_with_its_defaults_and_bounds() {
        let text = format!(
            "mode: first-match\nrules:\n  - name: instances\n    match: {{namespace: AWS/EC2}}\n    severity: warning\n    topics: [{CRIT}]\n    groupBy: [application]\ndefault:\n  severity: info\n  topics: [{INFO}]\n"
        );
        let rules = RuleSet::parse(&text, "t", &vars()).unwrap();
        assert!(rules.groups());
        let g = rules.grouping("instances").unwrap();
        assert_eq!(
            (g.by.clone(), g.wait, g.interval),
            (vec!["application".to_string()], chrono::Duration::seconds(30), chrono::Duration::minutes(5))
        );
        assert!(rules.grouping("default").is_none());
        let fast = text.replace("groupBy: [application]", "groupBy: [application]\n    groupInterval: 10s");
        let err = RuleSet::parse(&fast, "t", &vars()).unwrap_err().to_string();
        assert!(err.contains("rules[0] (\"instances\").groupInterval: between 60 s and 24 h"), "{err}");
        let alone = text.replace("groupBy: [application]", "groupWait: 1m");
        let err = RuleSet::parse(&alone, "t", &vars()).unwrap_err().to_string();
        assert!(err.contains("groupWait and groupInterval need groupBy"), "{err}");
    }
}
