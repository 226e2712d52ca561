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
use pipewarden_shared::ports::PortError;

pub type Tags = BTreeMap<String, String>;

/// The longest a lookup may take (less when the invocation has less time left).
pub const LOOKUP_CAP: Duration = Duration::from_secs(3);

/// How many alarms' tags a container keeps before it forgets the expired ones.
const KEPT: usize = 1000;

/// Reads the tags of an alarm (CloudWatch `ListTagsForResource`).
pub trait AlarmTagSource: Send + Sync {
    fn alarm_tags(&self, alarm_arn: &str) -> impl Future<Output = Result<Tags, PortError>> + Send;
}

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
}

/// In memory, for tests: known alarms' tags, an optional failure, and a count of lookups.
#[derive(Debug, Default)]
pub struct MemoryAlarmTags {
    pub tags: HashMap<String, Tags>,
    pub failure: Option<PortError>,
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
