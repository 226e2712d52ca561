//! The real SDK adapters against the local emulator: what a subscriber, the bucket and CodeDeploy
//! see.

use std::collections::BTreeMap;

use pipewarden_devkit::Emulator;
use pipewarden_shared::adapters::{CodeDeployHookReporter, S3ObjectStore, SnsPublisher};
use pipewarden_shared::ports::{
    FailureKind, HookReporter, HookStatus, ObjectStore, OutboundMessage, Publisher, PutOutcome, WriteCondition,
};

fn message(subject: &str, body: &str, severity: &str) -> OutboundMessage {
    OutboundMessage {
        subject: Some(subject.to_string()),
        body: body.to_string(),
        attributes: BTreeMap::from([("severity", severity.to_string()), ("pipeline", "web".to_string())]),
    }
}

#[tokio::test]
async fn published_message_reaches_the_subscriber_with_attributes() {
    let aws = Emulator::fresh().await;
    let topic = aws.topic_with_subscriber("ops").await;
    let publisher = SnsPublisher::new(aws.sns());

    let id = publisher.publish(&topic.topic_arn, &message("Deploy failed", "details", "critical")).await.unwrap();

    assert!(!id.is_empty());
    let got = aws.received(&topic).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subject.as_deref(), Some("Deploy failed"));
    assert_eq!(got[0].message, "details");
    assert_eq!(got[0].attributes["severity"], "critical");
    assert_eq!(got[0].attributes["pipeline"], "web");
}

#[tokio::test]
async fn batch_publish_delivers_each_message() {
    let aws = Emulator::fresh().await;
    let topic = aws.topic_with_subscriber("batch").await;
    let publisher = SnsPublisher::new(aws.sns());
    let messages = vec![message("one", "1", "info"), message("two", "2", "warning")];

    let outcomes = publisher.publish_batch(&topic.topic_arn, &messages).await.unwrap();

    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    let mut bodies: Vec<String> = aws.received(&topic).await.into_iter().map(|n| n.message).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["1", "2"]);
}

#[tokio::test]
async fn publishing_to_a_missing_topic_is_a_rejected_error() {
    let aws = Emulator::fresh().await;
    let publisher = SnsPublisher::new(aws.sns());
    let err = publisher
        .publish("arn:aws:sns:us-east-1:123456789012:does-not-exist", &message("x", "y", "info"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Rejected, "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn throttled_publish_is_retryable() {
    let aws = Emulator::fresh().await;
    let topic = aws.topic_with_subscriber("throttled").await;
    // The SDK retries throttling itself (3 attempts by default); make all of them fail.
    aws.inject_fault("Publish", 400, "Throttling", 5).await;
    let err = SnsPublisher::new(aws.sns()).publish(&topic.topic_arn, &message("x", "y", "info")).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::Throttled, "{err}");
    assert!(err.is_retryable());
    assert!(aws.received(&topic).await.is_empty());
}

#[tokio::test]
async fn conditional_writes_let_only_the_first_writer_win() {
    let aws = Emulator::fresh().await;
    aws.bucket("audit").await;
    let store = S3ObjectStore::new(aws.s3(), "audit");

    assert_eq!(store.get("timeline/a.json").await.unwrap(), None);
    let first =
        store.put("timeline/a.json", b"v1".to_vec(), "application/json", WriteCondition::IfAbsent).await.unwrap();
    let PutOutcome::Written { etag } = first else { panic!("first write lost: {first:?}") };
    let second =
        store.put("timeline/a.json", b"v2".to_vec(), "application/json", WriteCondition::IfAbsent).await.unwrap();
    assert_eq!(second, PutOutcome::ConditionFailed);

    let read = store.get("timeline/a.json").await.unwrap().unwrap();
    assert_eq!(read.body, b"v1");
    let update = store
        .put("timeline/a.json", b"v3".to_vec(), "application/json", WriteCondition::IfMatches(read.etag.clone()))
        .await
        .unwrap();
    assert!(matches!(update, PutOutcome::Written { .. }));
    let stale = store
        .put("timeline/a.json", b"v4".to_vec(), "application/json", WriteCondition::IfMatches(etag))
        .await
        .unwrap();
    assert_eq!(stale, PutOutcome::ConditionFailed);
    assert_eq!(aws.object("audit", "timeline/a.json").await.unwrap(), b"v3");
}

#[tokio::test]
async fn a_conditional_write_that_races_another_is_a_lost_race_to_read_again() {
    // S3 answers 409 ConditionalRequestConflict when a concurrent operation on the key wins during
    // a conditional write; AWS says to retry, which the ledger does by reading again and deciding.
    let aws = Emulator::fresh().await;
    aws.bucket("audit").await;
    let store = S3ObjectStore::new(aws.s3(), "audit");
    aws.inject_fault("PutObject", 409, "ConditionalRequestConflict", 1).await;
    let raced =
        store.put("timeline/b.json", b"v1".to_vec(), "application/json", WriteCondition::IfAbsent).await.unwrap();
    assert_eq!(raced, PutOutcome::ConditionFailed);
    assert_eq!(aws.object("audit", "timeline/b.json").await, None, "the raced write did not land");
    let again =
        store.put("timeline/b.json", b"v1".to_vec(), "application/json", WriteCondition::IfAbsent).await.unwrap();
    assert!(matches!(again, PutOutcome::Written { .. }), "{again:?}");
}

#[tokio::test]
async fn hook_status_is_recorded_by_the_emulator_extension() {
    let aws = Emulator::fresh().await;
    let deployment_id = aws.deployment("web", "Lambda").await;
    aws.hook_execution(&deployment_id, "hook-1", "AfterAllowTraffic").await;
    let reporter = CodeDeployHookReporter::new(aws.codedeploy());

    reporter.report(&deployment_id, "hook-1", HookStatus::Succeeded).await.unwrap();
    let again = reporter.report(&deployment_id, "hook-1", HookStatus::Failed).await.unwrap_err();

    assert_eq!(again.kind, FailureKind::Rejected, "{again}");
    assert!(again.message.contains("LifecycleEventAlreadyCompletedException"), "{again}");
    let recorded = aws.hook_statuses().await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].deployment_id, deployment_id);
    assert_eq!(recorded[0].hook_execution_id, "hook-1");
    assert_eq!(recorded[0].status, "Succeeded");
}

#[tokio::test]
async fn reporting_for_an_unknown_deployment_fails() {
    let aws = Emulator::fresh().await;
    let err =
        CodeDeployHookReporter::new(aws.codedeploy()).report("d-NOPE", "hook-x", HookStatus::Failed).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(aws.hook_statuses().await.is_empty());
}
