//! The digest when a pipeline's health does not read, over the in-memory fakes: a read that fails
//! leaves that pipeline's digest to the retry (the invocation fails, retryable, after sending the
//! others, which the retry does not send again); an object that is not a health at all is left out
//! and said, without failing.

mod common;
use common::NoLookups;

use std::sync::atomic::{AtomicUsize, Ordering};

use pipeline_notifier::config::{parse_notify_on, Config, DEFAULT_NOTIFY_ON};
use pipeline_notifier::digest::{Period, Scope};
use pipeline_notifier::handler::Notifier;
use pipewarden_devkit::event;
use pipewarden_shared::fakes::{MemoryPublisher, MemoryStore};
use pipewarden_shared::lambda::Retry;
use pipewarden_shared::ports::{FailureKind, ObjectStore, PortError, PutOutcome, StoredObject, WriteCondition};
use serde_json::json;

const TEXT: &str = "arn:aws:sns:us-west-2:123456789012:pipeline";
const CHAT: &str = "arn:aws:sns:us-west-2:123456789012:chat";

/// The fake bucket, whose first `fail` reads of `web`'s health fail as a 503 would.
#[derive(Default)]
struct Store {
    fake: MemoryStore,
    fail: AtomicUsize,
}

impl ObjectStore for Store {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        let web = key == "pipeline-notifier/pipelines/web.json";
        if web && self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(PortError::new("S3", "GetObject", FailureKind::ServerError, "503 Slow Down"));
        }
        self.fake.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<PutOutcome, PortError> {
        self.fake.put(key, body, content_type, condition).await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, PortError> {
        self.fake.list(prefix, limit).await
    }
}

#[tokio::test]
async fn a_health_that_does_not_read_is_left_to_the_retry_and_the_others_go_once() {
    let notifier = Notifier {
        config: Config {
            topic_arn: TEXT.into(),
            chat_topic_arn: Some(CHAT.into()),
            bucket: "audit".into(),
            notify_on: parse_notify_on(DEFAULT_NOTIFY_ON).unwrap(),
            claim_ttl_seconds: 120,
            digest: Some((Period::Daily, Scope::EachPipeline)),
            approvals: Default::default(),
        },
        publisher: MemoryPublisher::new(),
        store: Store::default(),
        history: NoLookups,
        diagnostics: NoLookups,
        revisions: NoLookups,
        metrics: NoLookups,
    };
    for (pipeline, execution) in [("api", "a1"), ("web", "w1")] {
        let mut e = event("codepipeline-pipeline-succeeded-v2.json");
        e["id"] = json!(execution);
        e["time"] = json!("2026-11-26T12:00:00Z");
        e["detail"]["pipeline"] = json!(pipeline);
        e["detail"]["execution-id"] = json!(execution);
        notifier.handle(e, execution, chrono::Utc::now()).await.unwrap();
    }
    // Not a pipeline's health at all: left out, said, and no reason to retry.
    notifier.store.fake.seed("pipeline-notifier/pipelines/junk.json", b"not json".to_vec());
    let sent_before = notifier.publisher.published().len();
    let mut schedule = event("eventbridge-scheduled-event.json");
    schedule["time"] = json!("2026-11-27T08:00:00Z");

    notifier.store.fail.store(1, Ordering::SeqCst);
    let err = notifier.handle(schedule.clone(), "req-1", chrono::Utc::now()).await.unwrap_err();
    assert_eq!(err.retry(), Retry::Helps, "{err}");
    assert!(err.to_string().contains("web (its health was not read)"), "{err}");
    let digests = |publisher: &MemoryPublisher| -> Vec<String> {
        publisher.published()[sent_before..]
            .iter()
            .filter_map(|p| p.message.attributes.get("pipeline").map(|name| format!("{name}@{}", p.topic_arn)))
            .collect()
    };
    assert_eq!(
        digests(&notifier.publisher),
        [format!("api@{TEXT}"), format!("api@{CHAT}")].map(|s| s.to_string()).to_vec()
    );

    let answer = notifier.handle(schedule, "req-2", chrono::Utc::now()).await.unwrap();
    assert_eq!(answer["unreadable"], json!(["junk"]), "{answer}");
    let mut all = digests(&notifier.publisher);
    all.sort();
    assert_eq!(all, [format!("api@{CHAT}"), format!("api@{TEXT}"), format!("web@{CHAT}"), format!("web@{TEXT}")]);
}
