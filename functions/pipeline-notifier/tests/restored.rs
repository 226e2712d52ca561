//! A success that ends a failing streak says so, over the in-memory fakes: given a FAILED
//! execution of a pipeline and a later SUCCEEDED one, the SUCCEEDED message says since when the
//! pipeline had been failing, also when its first send failed and Lambda's retry sends it (the
//! first invocation had already recorded the success in the pipeline's health), and a health read
//! that hangs costs that line, never the message.

mod common;
use common::NoLookups;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use pipeline_notifier::config::{parse_notify_on, Config, DEFAULT_NOTIFY_ON};
use pipeline_notifier::handler::{Notifier, NotifierError};
use pipeline_notifier::metrics::PipelineHealth;
use pipewarden_devkit::event;
use pipewarden_shared::deadline;
use pipewarden_shared::fakes::{Fault, MemoryPublisher, MemoryStore, PUBLISH};
use pipewarden_shared::ports::{FailureKind, ObjectStore, PortError, PutOutcome, StoredObject, WriteCondition};
use serde_json::{json, Value};

const TEXT: &str = "arn:aws:sns:us-west-2:123456789012:pipeline";
const CHAT: &str = "arn:aws:sns:us-west-2:123456789012:chat";
const RESTORED: &str =
    "Restored:   the pipeline had been failing since 2026-11-21 14:21:09 UTC (34 minutes, 1 failed execution)";

/// The fake bucket, whose first `hang` reads of the pipeline's health never answer.
#[derive(Default)]
struct Store {
    fake: MemoryStore,
    hang: AtomicUsize,
}

impl ObjectStore for Store {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        let health = key.starts_with("pipeline-notifier/pipelines/");
        if health && self.hang.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return deadline::bounded("S3", "GetObject", std::future::pending()).await;
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
}

fn notifier() -> Notifier<MemoryPublisher, Store, NoLookups, NoLookups, NoLookups, NoLookups> {
    Notifier {
        config: Config {
            topic_arn: TEXT.into(),
            chat_topic_arn: Some(CHAT.into()),
            bucket: "audit".into(),
            notify_on: parse_notify_on(DEFAULT_NOTIFY_ON).unwrap(),
            claim_ttl_seconds: 120,
            digest: None,
            approvals: Default::default(),
        },
        publisher: MemoryPublisher::new(),
        store: Store::default(),
        history: NoLookups,
        diagnostics: NoLookups,
        revisions: NoLookups,
        metrics: NoLookups,
    }
}

/// flask-web-app's execution that failed at 2026-11-21 14:21:09.
fn failed() -> Value {
    event("codepipeline-pipeline-deploy-failed-v2.json")
}

/// A later execution of flask-web-app succeeding, 34 minutes 11 seconds after that failure.
fn succeeded() -> Value {
    let mut e = event("codepipeline-pipeline-succeeded-v2.json");
    e["time"] = json!("2026-11-21T14:55:20Z");
    e["region"] = json!("us-west-2");
    e["detail"]["start-time"] = json!("2026-11-21T14:40:00.000Z");
    e
}

/// Runs an invocation as Lambda does: bounded by a deadline 10 s away (tokio's paused clock).
async fn invoke(
    notifier: &Notifier<MemoryPublisher, Store, NoLookups, NoLookups, NoLookups, NoLookups>,
    payload: Value,
    token: &str,
) -> Result<Value, NotifierError> {
    let now = chrono::Utc::now();
    deadline::within(std::time::Instant::now() + StdDuration::from_secs(10), notifier.handle(payload, token, now)).await
}

fn health(notifier: &Notifier<MemoryPublisher, Store, NoLookups, NoLookups, NoLookups, NoLookups>) -> PipelineHealth {
    let body = notifier.store.fake.body(&PipelineHealth::key("flask-web-app")).expect("pipeline health");
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_success_after_a_failure_says_since_when_in_text_and_chat() {
    let notifier = notifier();
    invoke(&notifier, failed(), "req-1").await.unwrap();

    invoke(&notifier, succeeded(), "req-2").await.unwrap();

    let text = notifier.publisher.on(TEXT);
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(!text[0].message.body.contains("Restored"), "{}", text[0].message.body);
    let body = &text[1].message.body;
    assert!(body.starts_with(&format!("Pipeline flask-web-app SUCCEEDED\n\n{RESTORED}\n")), "{body}");
    let chat: Value = serde_json::from_str(&notifier.publisher.on(CHAT)[1].message.body).unwrap();
    let description = chat["content"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("*Restored:* failing since 2026-11-21 14:21 UTC (34 minutes, 1 failed execution)\n"),
        "{description}"
    );

    // The next success ended nothing.
    let mut next = succeeded();
    next["id"] = json!("next-success");
    next["time"] = json!("2026-11-21T16:00:00Z");
    next["detail"]["execution-id"] = json!("aaaaaaaa-0000-4a6b-9c1d-000000000009");
    invoke(&notifier, next, "req-3").await.unwrap();
    let text = notifier.publisher.on(TEXT);
    assert!(!text[2].message.body.contains("Restored"), "{}", text[2].message.body);
}

/// The first invocation records the success in the pipeline's health although its send failed:
/// the retry no longer finds the pipeline failing, and must still say what the success ended.
#[tokio::test(start_paused = true)]
async fn the_retry_of_a_failed_send_still_says_the_pipeline_was_restored() {
    let notifier = notifier();
    invoke(&notifier, failed(), "req-1").await.unwrap();
    notifier.publisher.faults.then(PUBLISH, Fault::Fail(FailureKind::ServerError));
    notifier.publisher.faults.then(PUBLISH, Fault::Fail(FailureKind::ServerError));

    let err = invoke(&notifier, succeeded(), "req-2").await.unwrap_err();
    assert!(matches!(err, NotifierError::Delivery { .. }), "{err}");
    assert_eq!(health(&notifier).failing_since, None, "the failed invocation recorded the success");

    invoke(&notifier, succeeded(), "req-2").await.unwrap();

    for topic in [TEXT, CHAT] {
        let got = notifier.publisher.on(topic);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[1].message.body.contains("Restored"), "{topic}: {}", got[1].message.body);
    }
    assert!(notifier.publisher.on(TEXT)[1].message.body.contains(RESTORED));
}

#[tokio::test(start_paused = true)]
async fn a_health_read_that_hangs_costs_the_line_not_the_notification() {
    let notifier = notifier();
    invoke(&notifier, failed(), "req-1").await.unwrap();
    notifier.store.hang.store(1, Ordering::SeqCst);
    let started = tokio::time::Instant::now();

    invoke(&notifier, succeeded(), "req-2").await.unwrap();

    assert!(started.elapsed() <= StdDuration::from_secs(3), "waited {:?} for the health", started.elapsed());
    let text = notifier.publisher.on(TEXT);
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(text[1].message.body.starts_with("Pipeline flask-web-app SUCCEEDED"), "{}", text[1].message.body);
    assert!(!text[1].message.body.contains("Restored"), "{}", text[1].message.body);
    assert_eq!(health(&notifier).failing_since, None, "the success is still recorded");
}
