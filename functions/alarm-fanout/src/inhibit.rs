//! Inhibition: while a source alarm is in ALARM, the alarms an inhibit rule names as its targets
//! are held back (a load balancer's 5xx alarm holding back each instance's). Rules in the routing
//! rules' `inhibit:` list: `source` and `target` matchers on labels (see [`crate::silences`]) and
//! `equal` labels that must have the same value on both (absent on both is the same).
//!
//! Which sources are in ALARM is CloudWatch's word (DescribeAlarms), not alarm-fanout's memory: a
//! source whose own event has not arrived yet (EventBridge delivers in no order) still holds.

use serde::Deserialize;

use crate::silences::{all_match, compile, Compiled, Labels, Matcher};

/// An inhibit rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawInhibit {
    pub name: String,
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// An inhibit rule, its matchers compiled.
#[derive(Debug, Clone)]
pub struct Inhibit {
    pub name: String,
    pub source: Compiled,
    pub target: Compiled,
    pub equal: Vec<String>,
}

/// Labels that never come from tags: an inhibit rule on these only needs no tag lookup of the
/// sources (`severity`, `rule` and `application` may: routes can match on tags, and an
/// `application` tag names the application when no route does).
const BUILT_IN: [&str; 6] = ["alarmName", "namespace", "metric", "account", "region", "state"];

impl RawInhibit {
    pub fn compile(&self) -> Result<Inhibit, String> {
        for (side, matchers) in [("source", &self.source), ("target", &self.target)] {
            // A side of only negated matchers would hold back (or be held by) nearly everything.
            if matchers.iter().all(|m| m.negate) {
                return Err(format!("{side} needs at least one matcher that is not negated"));
            }
        }
        Ok(Inhibit {
            name: self.name.clone(),
            source: compile(&self.source).map_err(|e| format!("source: {e}"))?,
            target: compile(&self.target).map_err(|e| format!("target: {e}"))?,
            equal: self.equal.clone(),
        })
    }
}

impl Inhibit {
    /// Whether a source's and a target's labels agree on each of the rule's `equal` labels (absent
    /// on both is the same).
    pub fn equal_labels(&self, source: &Labels, target: &Labels) -> bool {
        self.equal.iter().all(|l| source.get(l) == target.get(l))
    }

    /// Whether a source's labels include its tags (so the sources' tags must be looked up).
    pub fn needs_tags(&self) -> bool {
        self.source.iter().map(|(label, _, _)| label).chain(&self.equal).any(|l| !BUILT_IN.contains(&l.as_str()))
    }
}

/// The inhibition holding back a transition of the alarm `subject` (its name) with `labels`: the first rule whose
/// target matchers match it and whose source matchers match an alarm in ALARM now (another one)
/// with each `equal` label the same. The rule and the source's name.
pub fn inhibiting<'a>(
    rules: &'a [Inhibit],
    subject: &str,
    labels: &Labels,
    firing: &'a [(String, Labels)],
) -> Option<(&'a Inhibit, &'a str)> {
    rules.iter().filter(|r| all_match(&r.target, labels)).find_map(|rule| {
        firing
            .iter()
            .filter(|(name, _)| name != subject)
            .find(|(_, source)| all_match(&rule.source, source) && rule.equal_labels(source, labels))
            .map(|(name, _)| (rule, name.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn rule(yaml: &str) -> Result<Inhibit, String> {
        pipewarden_shared::document::parse_json_or_yaml::<RawInhibit>(yaml)?.compile()
    }

    #[test]
    fn a_source_in_alarm_holds_back_targets_with_the_same_equal_labels() {
        let r = rule(
            "name: lb-over-instances\nsource: [{label: alarmName, exact: flask-web-app-5xx}]\ntarget: [{label: namespace, exact: AWS/EC2}]\nequal: [application]\n",
        )
        .unwrap();
        let rules = [r];
        let instance = labels(&[("alarmName", "cpu-i-1"), ("namespace", "AWS/EC2"), ("application", "flask-web-app")]);
        let lb = labels(&[("alarmName", "flask-web-app-5xx"), ("application", "flask-web-app")]);
        let other_app = labels(&[("alarmName", "flask-web-app-5xx"), ("application", "billing")]);
        let firing = vec![("flask-web-app-5xx".to_string(), lb)];
        let (by, source) = inhibiting(&rules, "cpu-i-1", &instance, &firing).unwrap();
        assert_eq!((by.name.as_str(), source), ("lb-over-instances", "flask-web-app-5xx"));
        assert!(inhibiting(&rules, "cpu-i-1", &instance, &[]).is_none(), "no source in ALARM");
        let elsewhere = vec![("flask-web-app-5xx".to_string(), other_app)];
        assert!(inhibiting(&rules, "cpu-i-1", &instance, &elsewhere).is_none(), "another application's");
        let not_target = labels(&[("alarmName", "db"), ("namespace", "AWS/RDS"), ("application", "flask-web-app")]);
        assert!(inhibiting(&rules, "db", &not_target, &firing).is_none());
        assert!(rules[0].needs_tags(), "application may come from a tag");
    }

    #[test]
    fn an_alarm_never_inhibits_itself_and_bad_rules_are_refused() {
        let r = rule("name: any\nsource: [{label: team, exact: web}]\ntarget: [{label: team, exact: web}]\n").unwrap();
        assert!(r.needs_tags());
        let web = labels(&[("alarmName", "a"), ("team", "web")]);
        let rules = [r];
        assert!(inhibiting(&rules, "a", &web, &[("a".to_string(), web.clone())]).is_none());
        assert!(inhibiting(&rules, "a", &web, &[("b".to_string(), web.clone())]).is_some());
        let err = rule("name: x\nsource: [{label: a, exact: b, negate: true}]\ntarget: [{label: a, exact: c}]\n");
        assert!(err.unwrap_err().contains("source needs at least one matcher that is not negated"));
        let err = rule("name: x\nsource: [{label: a, exact: b}]\ntarget: [{label: a, regex: '('}]\n");
        assert!(err.unwrap_err().starts_with("target: "));
    }
}
