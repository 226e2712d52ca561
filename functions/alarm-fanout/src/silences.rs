//! Labels and silences: every alarm transition has labels (its name, namespace, metric, account,
//! region, state, severity, rule, application and its tags); a silence is a document of matchers
//! on labels with a start, an end, an author and a comment, kept in the audit bucket under
//! `config/silences/`. While a silence matches an ALARM (or INSUFFICIENT_DATA), it is not sent; an
//! OK is never silenced, so an ALARM that was sent always gets its OK (one that was silenced gets
//! none: nothing was told).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use pipewarden_shared::events::cloudwatch::AlarmStateValue;
use pipewarden_shared::ports::{ObjectStore, PortError};
use serde::{Deserialize, Serialize};

use crate::alarm::AlarmTransition;
use crate::rules::{NameMatch, Target};

/// Labels by name.
pub type Labels = BTreeMap<String, String>;

/// Where silences are, in the audit bucket (the bucket policy lets only the configuration writer
/// write there).
pub const PREFIX: &str = "config/silences/";
/// Silences read at most (the bucket's lifecycle deletes them 91 days after they were written).
pub const MAX_SILENCES: usize = 1000;
/// How long a silence may last.
pub const MAX_DAYS: i64 = 90;

/// The labels of a transition routed to `targets` (the highest severity, its rule) for
/// `application`. Tags are labels under their own keys, unless they take a built-in label's name.
pub fn labels(alarm: &AlarmTransition, targets: &[Target], application: Option<&str>) -> Labels {
    let mut labels: Labels = alarm.tags.clone();
    let top = targets.iter().max_by_key(|t| t.severity);
    let metrics = alarm.metrics();
    let builtin = [
        ("alarmName", Some(alarm.alarm_name.clone())),
        ("namespace", metrics.iter().find_map(|m| m.namespace.clone())),
        ("metric", metrics.iter().find_map(|m| m.name.clone())),
        ("account", Some(alarm.account.clone())),
        ("region", Some(alarm.region.clone())),
        ("state", Some(alarm.state.to_string())),
        ("severity", top.map(|t| t.severity.as_str().to_string())),
        ("rule", top.map(|t| t.rule.clone())),
        ("application", application.map(str::to_string)),
    ];
    // What is not known here (severity before routing, say) stays as a tag of that name says.
    for (name, value) in builtin {
        if let Some(value) = value {
            labels.insert(name.to_string(), value);
        }
    }
    labels
}

/// One matcher on a label: exactly one of `exact`, `prefix`, `glob`, `regex`; `negate` inverts it
/// (a label that is absent matches a negated matcher only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// Compiled matchers: label, pattern, negated.
pub type Compiled = Vec<(String, NameMatch, bool)>;

/// Compiles matchers, or says which is wrong.
pub fn compile(matchers: &[Matcher]) -> Result<Compiled, String> {
    matchers.iter().map(|m| Ok((m.label.clone(), m.compile()?, m.negate))).collect()
}

/// Whether every matcher matches `labels` (a label that is absent matches a negated matcher only).
pub fn all_match(matchers: &Compiled, labels: &Labels) -> bool {
    matches_with(matchers, labels, true)
}

/// [`all_match`], where an absent label matches a negated matcher only if `absent_is_known`: when
/// an alarm's tags could not be had, `env!=prod` must not hold an alarm that is in fact prod's.
fn matches_with(matchers: &Compiled, labels: &Labels, absent_is_known: bool) -> bool {
    matchers.iter().all(|(label, m, negate)| match labels.get(label) {
        Some(value) => m.matches(value) != *negate,
        None => *negate && absent_is_known,
    })
}

impl Matcher {
    fn compile(&self) -> Result<NameMatch, String> {
        let given = [&self.exact, &self.prefix, &self.glob, &self.regex].iter().filter(|v| v.is_some()).count();
        if given != 1 {
            return Err(format!("matcher on {:?} takes exactly one of exact, prefix, glob, regex", self.label));
        }
        Ok(if let Some(e) = &self.exact {
            NameMatch::Exact(e.clone())
        } else if let Some(p) = &self.prefix {
            NameMatch::Prefix(p.clone())
        } else if let Some(g) = &self.glob {
            NameMatch::Glob(glob::Pattern::new(g).map_err(|e| format!("glob {g:?}: {e}"))?)
        } else {
            let r = self.regex.as_deref().unwrap_or_default();
            // Anchored: a label matches the whole expression, as Alertmanager's matchers do.
            NameMatch::Regex(regex::Regex::new(&format!("^(?:{r})$")).map_err(|e| format!("regex {r:?}: {e}"))?)
        })
    }
}

/// A silence as stored (`config/silences/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A silence read and checked, its matchers compiled.
#[derive(Debug, Clone)]
pub struct ActiveSilence {
    pub silence: Silence,
    matchers: Compiled,
}

impl Silence {
    /// Checks a silence: an id that is a file name, at least one matcher (a silence of
    /// everything is refused), each valid, an end after its start, an author and a comment.
    pub fn check(self) -> Result<ActiveSilence, String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 100
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(format!("id {:?} must be 1 to 100 letters, digits, - or _", self.id));
        }
        if self.matchers.is_empty() || self.matchers.iter().all(|m| m.negate) {
            return Err("a silence needs at least one matcher that is not negated".to_string());
        }
        if self.ends_at <= self.starts_at {
            return Err(format!("endsAt {} is not after startsAt {}", self.ends_at, self.starts_at));
        }
        // The bucket's lifecycle deletes silences 91 days after they were written.
        if self.ends_at - self.starts_at > chrono::Duration::days(MAX_DAYS) {
            return Err(format!("a silence lasts at most {MAX_DAYS} days"));
        }
        if self.created_by.trim().is_empty() || self.comment.trim().is_empty() {
            return Err("createdBy and comment are required".to_string());
        }
        let matchers = compile(&self.matchers)?;
        Ok(ActiveSilence { silence: self, matchers })
    }

    pub fn key(&self) -> String {
        format!("{PREFIX}{}.json", self.id)
    }
}

impl ActiveSilence {
    /// Whether it silences labels `labels` at `at`: in force (`startsAt <= at < endsAt`) and every
    /// matcher matches.
    pub fn silences(&self, labels: &Labels, at: DateTime<Utc>) -> bool {
        self.silences_with(labels, at, true)
    }

    /// [`ActiveSilence::silences`], knowing whether the alarm's tags are known (see [`matches_with`]).
    pub fn silences_with(&self, labels: &Labels, at: DateTime<Utc>, tags_known: bool) -> bool {
        let s = &self.silence;
        s.starts_at <= at && at < s.ends_at && matches_with(&self.matchers, labels, tags_known)
    }

    /// Why it silenced: for the verdict and the log.
    pub fn reason(&self) -> String {
        let s = &self.silence;
        format!("silenced by {} until {} ({}: {})", s.id, s.ends_at.to_rfc3339(), s.created_by, s.comment)
    }
}

/// The silence that holds back this transition at `at`, if any: ALARM and INSUFFICIENT_DATA only
/// (an OK always goes where its ALARM went).
pub fn silencing<'a>(
    silences: &'a [ActiveSilence],
    alarm: &AlarmTransition,
    labels: &Labels,
    at: DateTime<Utc>,
) -> Option<&'a ActiveSilence> {
    if matches!(alarm.state, AlarmStateValue::Ok) {
        return None;
    }
    silences.iter().find(|s| s.silences_with(labels, at, alarm.tags_known))
}

/// The silences, read from the audit bucket at most every `ttl` per container (one ListObjectsV2
/// and a GetObject per silence). Off (`None` prefix): none, no request.
#[derive(Debug, Default)]
pub struct SilenceCache {
    prefix: Option<String>,
    ttl: StdDuration,
    read: Mutex<Option<(Instant, Vec<ActiveSilence>)>>,
}

impl SilenceCache {
    pub fn new(prefix: Option<String>, ttl: StdDuration) -> Self {
        SilenceCache { prefix, ttl, read: Mutex::new(None) }
    }

    /// The silences in force or to come (ended ones are left out), as last read. A silence that
    /// does not read is logged and skipped: the others still hold (and, when S3 failed, the set is
    /// not kept: the next call reads again). A listing that fails is an error: the caller silences
    /// nothing that time.
    pub async fn get<S: ObjectStore>(&self, store: &S, now: DateTime<Utc>) -> Result<Vec<ActiveSilence>, PortError> {
        let Some(prefix) = &self.prefix else { return Ok(Vec::new()) };
        if let Some((at, silences)) = self.read.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(silences.clone());
            }
        }
        let keys = store.list(prefix, MAX_SILENCES).await?;
        let reads = keys.iter().filter(|k| k.ends_with(".json")).map(|key| async move {
            let object = store.get(key).await;
            (key, object)
        });
        if keys.len() >= MAX_SILENCES {
            tracing::warn!(read = MAX_SILENCES, "more silences than are read: the first by key only");
        }
        let mut silences = Vec::new();
        let mut complete = true;
        for (key, object) in futures_util::future::join_all(reads).await {
            let parsed = match object {
                Ok(Some(object)) => read(&object.body).and_then(|silence| {
                    // The file is the silence's: the CLI finds and expires it by its id.
                    if silence.silence.key() == *key {
                        Ok(silence)
                    } else {
                        Err(format!("its id {:?} is not its file name", silence.silence.id))
                    }
                }),
                Ok(None) => continue,
                Err(e) => {
                    // Not kept: the next invocation reads them all again.
                    complete = false;
                    Err(e.to_string())
                }
            };
            match parsed {
                Ok(silence) if silence.silence.ends_at > now => silences.push(silence),
                Ok(_) => {}
                Err(problem) => {
                    tracing::warn!(silence = %key, problem = %problem, "silence not read: it silences nothing")
                }
            }
        }
        if complete {
            *self.read.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), silences.clone()));
        }
        Ok(silences)
    }
}

/// Reads a silence file: JSON, or YAML as any configuration here; checked.
pub fn read(body: &[u8]) -> Result<ActiveSilence, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    pipewarden_shared::document::parse_json_or_yaml::<Silence>(text).and_then(Silence::check)
}

/// A matcher as written on a command line, amtool's way: `label=value` (exact), `label!=value`,
/// `label=~regex`, `label!~regex`, and ours: `label^=prefix`, `label*=glob`.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    const OPERATORS: [(&str, &str, bool); 6] = [
        ("!=", "exact", true),
        ("=~", "regex", false),
        ("!~", "regex", true),
        ("^=", "prefix", false),
        ("*=", "glob", false),
        ("=", "exact", false),
    ];
    // The leftmost operator; of two at the same place, the longer.
    let found = OPERATORS
        .iter()
        .filter_map(|(op, kind, negate)| text.find(op).map(|at| (at, std::cmp::Reverse(op.len()), *op, *kind, *negate)))
        .min();
    let Some((at, _, op, kind, negate)) = found else {
        return Err(format!(
            "{text:?} is not label=value, label!=value, label=~regex, label!~regex, label^=prefix or label*=glob"
        ));
    };
    let (label, value) = (&text[..at], &text[at + op.len()..]);
    if label.is_empty() || value.is_empty() {
        return Err(format!("{text:?} needs a label and a value"));
    }
    let mut m = Matcher { label: label.to_string(), exact: None, prefix: None, glob: None, regex: None, negate };
    let value = Some(value.to_string());
    match kind {
        "exact" => m.exact = value,
        "regex" => m.regex = value,
        "prefix" => m.prefix = value,
        _ => m.glob = value,
    }
    m.compile()?;
    Ok(m)
}

/// `90m`, `2h`, `1d`, `45s` (at most 90 days).
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 90m, 2h or 1d"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?} is not a duration such as 90m, 2h or 1d")),
    };
    if !(1..=90 * 86_400).contains(&seconds) {
        return Err(format!("{text:?} must be between 1 second and 90 days"));
    }
    Ok(chrono::Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn silence(matchers: Vec<Matcher>) -> Silence {
        Silence {
            id: "maint-1".into(),
            matchers,
            starts_at: at("2026-11-27T10:00:00Z"),
            ends_at: at("2026-11-27T12:00:00Z"),
            created_by: "mary".into(),
            comment: "database maintenance".into(),
        }
    }

    fn m(label: &str, kind: &str, value: &str, negate: bool) -> Matcher {
        let mut m = Matcher { label: label.into(), exact: None, prefix: None, glob: None, regex: None, negate };
        let v = Some(value.to_string());
        match kind {
            "exact" => m.exact = v,
            "prefix" => m.prefix = v,
            "glob" => m.glob = v,
            _ => m.regex = v,
        }
        m
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_kind_of_matcher_and_negation() {
        let l = labels(&[("alarmName", "flask-web-app-5xx"), ("severity", "critical"), ("team", "web")]);
        let t = at("2026-11-27T11:00:00Z");
        let yes = |ms: Vec<Matcher>| silence(ms).check().unwrap().silences(&l, t);
        assert!(yes(vec![m("alarmName", "exact", "flask-web-app-5xx", false)]));
        assert!(yes(vec![m("alarmName", "prefix", "flask-web-app-", false)]));
        assert!(yes(vec![m("alarmName", "glob", "flask-*-5xx", false)]));
        assert!(yes(vec![m("alarmName", "regex", "flask-.*", false)]));
        assert!(!yes(vec![m("alarmName", "regex", "flask", false)]), "regexes are anchored");
        assert!(!yes(vec![m("team", "exact", "web", false), m("severity", "exact", "critical", true)]));
        assert!(yes(vec![m("team", "exact", "web", false), m("owner", "exact", "x", true)]), "absent label");
        assert!(!yes(vec![m("owner", "exact", "x", false)]));
    }

    #[test]
    fn a_silence_holds_from_its_start_to_its_end_only() {
        let s = silence(vec![m("team", "exact", "web", false)]).check().unwrap();
        let l = labels(&[("team", "web")]);
        assert!(!s.silences(&l, at("2026-11-27T09:59:59Z")));
        assert!(s.silences(&l, at("2026-11-27T10:00:00Z")));
        assert!(!s.silences(&l, at("2026-11-27T12:00:00Z")));
    }

    #[test]
    fn matchers_and_durations_from_the_command_line() {
        assert_eq!(parse_matcher("alarmName=web-5xx").unwrap(), m("alarmName", "exact", "web-5xx", false));
        assert_eq!(parse_matcher("severity!=info").unwrap(), m("severity", "exact", "info", true));
        assert_eq!(parse_matcher("alarmName=~web-.*").unwrap(), m("alarmName", "regex", "web-.*", false));
        assert_eq!(parse_matcher("alarmName!~web-.*").unwrap(), m("alarmName", "regex", "web-.*", true));
        assert_eq!(parse_matcher("alarmName^=flask-").unwrap(), m("alarmName", "prefix", "flask-", false));
        assert_eq!(parse_matcher("alarmName*=flask-*").unwrap(), m("alarmName", "glob", "flask-*", false));
        assert_eq!(parse_matcher("team=a=b").unwrap(), m("team", "exact", "a=b", false), "the first operator splits");
        assert!(parse_matcher("team").is_err());
        assert!(parse_matcher("=web").is_err());
        assert!(parse_matcher("a=~(").unwrap_err().contains("regex"));
        assert_eq!(parse_duration("90m").unwrap(), chrono::Duration::minutes(90));
        assert_eq!(parse_duration("1d").unwrap(), chrono::Duration::days(1));
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("91d").is_err());
    }

    fn transition(tags: &[(&str, &str)], tags_known: bool) -> AlarmTransition {
        AlarmTransition {
            source_id: "e".into(),
            alarm_name: "db-cpu".into(),
            alarm_arn: None,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            state: AlarmStateValue::Alarm,
            previous: None,
            reason: None,
            state_time: Some(at("2026-11-27T11:00:00Z")),
            description: None,
            watched: crate::alarm::Watched::Unknown,
            threshold: None,
            comparison: None,
            suppressed: None,
            silenced: None,
            note: None,
            contributor: None,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            tags_known,
        }
    }

    #[test]
    fn a_negated_matcher_holds_nothing_whose_tags_are_unknown() {
        let s = vec![silence(vec![m("alarmName", "prefix", "db-", false), m("env", "exact", "prod", true)])
            .check()
            .unwrap()];
        let t = at("2026-11-27T11:00:00Z");
        let staging = transition(&[("env", "staging")], true);
        assert!(silencing(&s, &staging, &labels_of(&staging), t).is_some());
        let untagged = transition(&[], true);
        assert!(silencing(&s, &untagged, &labels_of(&untagged), t).is_some(), "known to have no env tag");
        let unknown = transition(&[], false);
        assert!(silencing(&s, &unknown, &labels_of(&unknown), t).is_none(), "perhaps prod's: not held");
        let mut ok = staging.clone();
        ok.state = AlarmStateValue::Ok;
        assert!(silencing(&s, &ok, &labels_of(&ok), t).is_none(), "an OK is never silenced");
    }

    fn labels_of(a: &AlarmTransition) -> Labels {
        super::labels(a, &[], None)
    }

    #[test]
    fn tags_stay_labels_where_routing_does_not_say_otherwise() {
        let a = transition(&[("application", "shop"), ("severity", "low"), ("alarmName", "spoofed")], true);
        let l = labels_of(&a);
        assert_eq!(l["application"], "shop");
        assert_eq!(l["severity"], "low");
        assert_eq!(l["alarmName"], "db-cpu", "built-in labels win over tags");
    }

    #[tokio::test]
    async fn the_cache_reads_json_and_yaml_and_skips_what_is_not_a_silence_of_its_name() {
        let store = pipewarden_shared::fakes::MemoryStore::new();
        let good = silence(vec![m("team", "exact", "web", false)]);
        store.seed(&good.key(), serde_json::to_vec(&good).unwrap());
        let yaml = "id: yaml-1\nmatchers: [{label: team, exact: api}]\nstartsAt: 2026-11-27T10:00:00Z\nendsAt: 2026-11-27T12:00:00Z\ncreatedBy: mary\ncomment: upgrade\n";
        store.seed("config/silences/yaml-1.json", yaml.as_bytes().to_vec());
        store.seed("config/silences/other-name.json", serde_json::to_vec(&good).unwrap());
        let mut ended = silence(vec![m("team", "exact", "web", false)]);
        ended.id = "ended".into();
        ended.ends_at = at("2026-11-27T10:30:00Z");
        store.seed(&ended.key(), serde_json::to_vec(&ended).unwrap());
        store.seed("config/silences/broken.json", b"{".to_vec());
        let cache = SilenceCache::new(Some(PREFIX.into()), StdDuration::from_secs(60));
        let read = cache.get(&store, at("2026-11-27T11:00:00Z")).await.unwrap();
        let ids: Vec<&str> = read.iter().map(|s| s.silence.id.as_str()).collect();
        assert_eq!(ids, ["maint-1", "yaml-1"]);
        assert!(SilenceCache::default().get(&store, at("2026-11-27T11:00:00Z")).await.unwrap().is_empty(), "off");
    }

    #[test]
    fn bad_silences_are_refused_with_the_reason() {
        assert!(silence(vec![]).check().unwrap_err().contains("at least one matcher"));
        assert!(silence(vec![m("a", "exact", "b", true)]).check().unwrap_err().contains("not negated"));
        assert!(silence(vec![m("a", "regex", "(", false)]).check().unwrap_err().contains("regex"));
        let mut both = m("a", "exact", "b", false);
        both.prefix = Some("c".into());
        assert!(silence(vec![both]).check().unwrap_err().contains("exactly one"));
        let mut backwards = silence(vec![m("a", "exact", "b", false)]);
        backwards.ends_at = backwards.starts_at;
        assert!(backwards.check().unwrap_err().contains("is not after"));
        let mut too_long = silence(vec![m("a", "exact", "b", false)]);
        too_long.ends_at = too_long.starts_at + chrono::Duration::days(91);
        assert!(too_long.check().unwrap_err().contains("90 days"));
        let mut bad_id = silence(vec![m("a", "exact", "b", false)]);
        bad_id.id = "../x".into();
        assert!(bad_id.check().unwrap_err().contains("id"));
    }
}
