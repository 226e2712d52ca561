//! An alarm's tags, for `tags:` rules, the message and deployment context.
//!
//! CloudWatch puts them in the event when the alarm's tag propagation is on (status `SUCCESS`).
//! Otherwise they are looked up with `ListTagsForResource` on the alarm's ARN, through
//! [`AlarmTagSource`], and kept per container for a while ([`CachedAlarmTags`]), so that a burst
//! of transitions of one alarm makes one call. A lookup that fails leaves the alarm routed without
//! its tags: a tag is worth less than the alarm.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::deadline;
use pipewarden_shared::events::cloudwatch::AlarmStateValue;
use pipewarden_shared::ports::PortError;

use crate::alarm::{AlarmTransition, MetricRef, Watched};

pub type Tags = BTreeMap<String, String>;

/// The longest a lookup may take (less when the invocation has less time left).
pub const LOOKUP_CAP: Duration = Duration::from_secs(3);

/// How many alarms' tags a container keeps before it forgets the expired ones.
const KEPT: usize = 1000;

/// What CloudWatch says of alarms: the tags of one (`ListTagsForResource`), and which are in
/// ALARM now (`DescribeAlarms`, for inhibit rules).
pub trait AlarmTagSource: Send + Sync {
    fn alarm_tags(&self, alarm_arn: &str) -> impl Future<Output = Result<Tags, PortError>> + Send;
    /// The alarms of this account and region in ALARM now, each as a transition into ALARM at its
    /// state's time, without its tags.
    fn in_alarm(&self) -> impl Future<Output = Result<Vec<AlarmTransition>, PortError>> + Send;
}

/// Pages of DescribeAlarms read at most (100 alarms a page).
pub const MAX_ALARM_PAGES: usize = 10;

/// The real one: CloudWatch, bounded by the invocation's deadline.
#[derive(Clone, Debug)]
pub struct CloudWatchAlarmTags {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAlarmTags {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }
}

impl AlarmTagSource for CloudWatchAlarmTags {
    async fn alarm_tags(&self, alarm_arn: &str) -> Result<Tags, PortError> {
        let request = self.client.list_tags_for_resource().resource_arn(alarm_arn);
        let output = deadline::bounded_optional("CloudWatch", "ListTagsForResource", LOOKUP_CAP, async {
            request.send().await.map_err(|e| classify_sdk_error("CloudWatch", "ListTagsForResource", &e))
        })
        .await?;
        Ok(output
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
            // CloudWatch never propagates aws: tags into events; rules see the same tags either way.
            .filter(|(k, _)| !k.starts_with("aws:"))
            .collect())
    }

    async fn in_alarm(&self) -> Result<Vec<AlarmTransition>, PortError> {
        use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_ALARM_PAGES {
            let request = self
                .client
                .describe_alarms()
                .state_value(StateValue::Alarm)
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .max_records(100)
                .set_next_token(token.take());
            let page = deadline::bounded_optional("CloudWatch", "DescribeAlarms", LOOKUP_CAP, async {
                request.send().await.map_err(|e| classify_sdk_error("CloudWatch", "DescribeAlarms", &e))
            })
            .await?;
            for a in page.metric_alarms() {
                let watched = match a.metric_name() {
                    Some(name) => Watched::Metric(MetricRef {
                        namespace: a.namespace().map(str::to_string),
                        name: Some(name.to_string()),
                        dimensions: a
                            .dimensions()
                            .iter()
                            .map(|d| {
                                (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string())
                            })
                            .collect(),
                        stat: a
                            .statistic()
                            .map(|s| s.as_str().to_string())
                            .or(a.extended_statistic().map(str::to_string)),
                        period: a.period().and_then(|p| u64::try_from(p).ok()),
                    }),
                    None => Watched::Expression {
                        expression: a.metrics().iter().find_map(|m| m.expression()).unwrap_or_default().to_string(),
                        label: None,
                        metrics: a
                            .metrics()
                            .iter()
                            .filter_map(|m| m.metric_stat())
                            .map(|stat| MetricRef {
                                namespace: stat.metric().and_then(|m| m.namespace()).map(str::to_string),
                                name: stat.metric().and_then(|m| m.metric_name()).map(str::to_string),
                                ..MetricRef::default()
                            })
                            .collect(),
                    },
                };
                out.extend(firing(a.alarm_name(), a.alarm_arn(), watched, a.state_updated_timestamp()));
            }
            for a in page.composite_alarms() {
                let watched =
                    Watched::Composite { rule: a.alarm_rule().unwrap_or_default().to_string(), triggering: vec![] };
                out.extend(firing(a.alarm_name(), a.alarm_arn(), watched, a.state_updated_timestamp()));
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
        tracing::warn!(pages = MAX_ALARM_PAGES, "more alarms in ALARM than are read: the first only");
        Ok(out)
    }
}

/// An alarm DescribeAlarms says is in ALARM, as a transition into ALARM (its account and region
/// from its ARN: `arn:aws:cloudwatch:<region>:<account>:alarm:<name>`).
fn firing(
    name: Option<&str>,
    arn: Option<&str>,
    watched: Watched,
    since: Option<&aws_smithy_types::DateTime>,
) -> Option<AlarmTransition> {
    let (name, arn) = (name?, arn?);
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let (region, account) = (parts.get(3)?.to_string(), parts.get(4)?.to_string());
    Some(AlarmTransition {
        source_id: format!("DescribeAlarms {name}"),
        alarm_name: name.to_string(),
        alarm_arn: Some(arn.to_string()),
        account,
        region,
        state: AlarmStateValue::Alarm,
        previous: None,
        reason: None,
        state_time: since.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        description: None,
        watched,
        threshold: None,
        comparison: None,
        suppressed: None,
        silenced: None,
        note: None,
        contributor: None,
        tags: Tags::new(),
        tags_known: false,
    })
}

/// In memory, for tests: known alarms' tags, an optional failure, and a count of lookups.
#[derive(Debug, Default)]
pub struct MemoryAlarmTags {
    pub tags: HashMap<String, Tags>,
    pub failure: Option<PortError>,
    /// What `in_alarm` answers.
    pub firing: Vec<AlarmTransition>,
    lookups: AtomicUsize,
}

impl MemoryAlarmTags {
    pub fn with(alarm_arn: &str, tags: &[(&str, &str)]) -> Self {
        let tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self { tags: HashMap::from([(alarm_arn.to_string(), tags)]), ..Self::default() }
    }

    pub fn failing(failure: PortError) -> Self {
        Self { failure: Some(failure), ..Self::default() }
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl AlarmTagSource for MemoryAlarmTags {
    async fn alarm_tags(&self, alarm_arn: &str) -> Result<Tags, PortError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.tags.get(alarm_arn).cloned().ok_or_else(|| {
            PortError::new(
                "CloudWatch",
                "ListTagsForResource",
                pipewarden_shared::ports::FailureKind::Rejected,
                "ResourceNotFound",
            )
        })
    }

    async fn in_alarm(&self) -> Result<Vec<AlarmTransition>, PortError> {
        match &self.failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(self.firing.clone()),
        }
    }
}

/// A tag source whose answers are kept for `ttl` (0: not kept). Failures are not kept: the next
/// transition tries again.
#[derive(Debug)]
pub struct CachedAlarmTags<T> {
    source: T,
    ttl: Duration,
    kept: Mutex<HashMap<String, (Instant, Tags)>>,
}

impl<T: AlarmTagSource> CachedAlarmTags<T> {
    pub fn new(source: T, ttl: Duration) -> Self {
        Self { source, ttl, kept: Mutex::new(HashMap::new()) }
    }

    pub fn source(&self) -> &T {
        &self.source
    }

    /// The alarms in ALARM now (not kept: each call asks).
    pub async fn in_alarm(&self) -> Result<Vec<AlarmTransition>, PortError> {
        self.source.in_alarm().await
    }

    pub async fn get(&self, alarm_arn: &str) -> Result<Tags, PortError> {
        if let Some(tags) = self.fresh(alarm_arn) {
            return Ok(tags);
        }
        let tags = self.source.alarm_tags(alarm_arn).await?;
        if !self.ttl.is_zero() {
            let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if kept.len() >= KEPT {
                let ttl = self.ttl;
                kept.retain(|_, (at, _)| at.elapsed() < ttl);
                if kept.len() >= KEPT {
                    kept.clear(); // every entry still fresh: start over rather than grow without bound
                }
            }
            kept.insert(alarm_arn.to_string(), (Instant::now(), tags.clone()));
        }
        Ok(tags)
    }

    fn fresh(&self, alarm_arn: &str) -> Option<Tags> {
        let kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.get(alarm_arn).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, tags)| tags.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipewarden_shared::ports::FailureKind;

    const ARN: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx";

    #[tokio::test]
    async fn answers_are_kept_for_the_cache_time_and_failures_are_not() {
        let cached = CachedAlarmTags::new(MemoryAlarmTags::with(ARN, &[("team", "web")]), Duration::from_secs(300));
        assert_eq!(cached.get(ARN).await.unwrap()["team"], "web");
        assert_eq!(cached.get(ARN).await.unwrap()["team"], "web");
        assert_eq!(cached.source().lookups(), 1);

        let other = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:unknown";
        assert!(cached.get(other).await.is_err());
        assert!(cached.get(other).await.is_err());
        assert_eq!(cached.source().lookups(), 3);
    }

    #[tokio::test]
    async fn a_zero_cache_time_looks_up_every_time() {
        let cached = CachedAlarmTags::new(MemoryAlarmTags::with(ARN, &[]), Duration::ZERO);
        cached.get(ARN).await.unwrap();
        cached.get(ARN).await.unwrap();
        assert_eq!(cached.source().lookups(), 2);
    }

    #[tokio::test]
    async fn expired_answers_are_looked_up_again() {
        let cached = CachedAlarmTags::new(MemoryAlarmTags::with(ARN, &[]), Duration::from_millis(30));
        cached.get(ARN).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        cached.get(ARN).await.unwrap();
        assert_eq!(cached.source().lookups(), 2);
        let failing =
            MemoryAlarmTags::failing(PortError::new("CloudWatch", "ListTagsForResource", FailureKind::Throttled, "x"));
        assert_eq!(failing.alarm_tags(ARN).await.unwrap_err().kind, FailureKind::Throttled);
    }
}
