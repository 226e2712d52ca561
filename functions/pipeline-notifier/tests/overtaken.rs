//! Outcomes an ended attempt overtook, decided over plain data (`decide::on_event`): what the
//! property tests cannot show, because their quiet phase moves the clock past the claim TTL and
//! delivers every event again, which AWS never does.

use chrono::{Duration, TimeZone, Utc};
use pipeline_notifier::config::{parse_notify_on, Format, Target};
use pipeline_notifier::decide;
use pipeline_notifier::timeline::Timeline;
use pipewarden_devkit::event;
use pipewarden_shared::events::codepipeline::PipelineEvent;
use pipewarden_shared::ledger::{delivery_key, Delivery};

const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:pipeline";

fn parsed(name: &str) -> PipelineEvent {
    pipeline_notifier::read_events(event(name)).unwrap().remove(0)
}

fn targets() -> Vec<Target> {
    vec![Target { topic_arn: TOPIC.to_string(), format: Format::Text }]
}

/// The review of issue 15: invocation "x" claims the Deploy action's FAILED and dies before
/// sending; the pipeline's FAILED is recorded; Lambda's retry of "x" (same request id, a minute
/// later, inside the claim TTL) finds the event already recorded. Its claim is superseded then,
/// not left held for good (nothing else would ever touch it).
#[test]
fn a_retry_finds_its_own_dead_claim_superseded_once_the_attempt_ended() {
    let rules = parse_notify_on("pipeline:FAILED,action:FAILED").unwrap();
    let (action, failed) =
        (parsed("codepipeline-action-deploy-failed.json"), parsed("codepipeline-pipeline-deploy-failed-v2.json"));
    let ttl = Duration::seconds(120);
    let t0 = Utc.with_ymd_and_hms(2026, 11, 21, 14, 22, 0).unwrap();
    let mut timeline = Timeline::new(&action);

    let first = decide::on_event(&mut timeline, &action, &rules, &targets(), "x", t0, ttl).unwrap();
    assert_eq!(first.claimed.len(), 1, "x claims the action's FAILED");
    let key = delivery_key(&first.outcome.unwrap().key, TOPIC);
    // x dies here; the pipeline's FAILED is handled by another invocation.
    decide::on_event(&mut timeline, &failed, &rules, &targets(), "y", t0 + Duration::seconds(5), ttl).unwrap();
    assert!(matches!(timeline.deliveries.get(&key), Some(Delivery::Claimed { .. })), "x's claim is alive then");

    let retry = decide::on_event(&mut timeline, &action, &rules, &targets(), "x", t0 + Duration::seconds(65), ttl);

    assert!(retry.is_some(), "the change is stored");
    assert!(matches!(timeline.deliveries.get(&key), Some(Delivery::Superseded { .. })), "{:?}", timeline.deliveries);
}

/// The review of issue 15: a pipeline STARTED notification not yet sent when the attempt ends is
/// never sent after the FAILED (it was left out of the sweep, and its dead claim held).
#[test]
fn a_started_not_sent_before_the_end_is_superseded_too() {
    let rules = parse_notify_on("pipeline:STARTED,pipeline:FAILED").unwrap();
    let mut started = parsed("codepipeline-pipeline-deploy-failed-v2.json");
    started.detail.state = pipewarden_shared::events::codepipeline::ExecutionState::Started;
    started.event_id = "started-1".into();
    let failed = parsed("codepipeline-pipeline-deploy-failed-v2.json");
    let ttl = Duration::seconds(120);
    let t0 = Utc.with_ymd_and_hms(2026, 11, 21, 14, 0, 0).unwrap();
    let mut timeline = Timeline::new(&started);

    let first = decide::on_event(&mut timeline, &started, &rules, &targets(), "s", t0, ttl).unwrap();
    let key = delivery_key(&first.outcome.unwrap().key, TOPIC);
    // "s" dies holding the claim; the FAILED is handled well after the TTL.
    decide::on_event(&mut timeline, &failed, &rules, &targets(), "f", t0 + Duration::seconds(300), ttl).unwrap();

    assert!(matches!(timeline.deliveries.get(&key), Some(Delivery::Superseded { .. })), "{:?}", timeline.deliveries);
}
