//! An alarm during a pipeline's EC2/on-premises release names its CodeDeploy deployment, over the
//! in-memory fakes: no lifecycle hook runs for such a deployment, so the deployment context has
//! the release's deployment group and no deployment id, and alarm-fanout asks CodeDeploy which
//! deployment of that group is in flight. A CodeDeploy that hangs or fails costs the name, never
//! the message; a batch of alarms of one release asks once.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use alarm_fanout::config::Config;
use alarm_fanout::deployments::{KnownDeployment, MemoryDeployments};
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::tags::{CachedAlarmTags, MemoryAlarmTags};
use chrono::{DateTime, Duration, Utc};
use pipewarden_devkit::event;
use pipewarden_shared::deadline;
use pipewarden_shared::deploy_context::InFlight;
use pipewarden_shared::document::DocumentSource;
use pipewarden_shared::fakes::{MemoryPublisher, MemoryStore};
use pipewarden_shared::ports::{FailureKind, PortError};
use serde_json::Value;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:critical";
const RULES: &str =
    "mode: first-match\ndefault:\n  severity: critical\n  topics: [$CRITICAL]\n  application: flask-api\n";
const GROUP: &str = "flask-api-servers";

type TestFanout =
    Fanout<MemoryPublisher, MemoryStore, MemoryAlarmTags, MemoryDeployments, alarm_fanout::timers::NoTimers>;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn fanout(deployments: MemoryDeployments) -> TestFanout {
    let vars = HashMap::from([("CRITICAL".to_string(), TOPIC.to_string())]);
    Fanout {
        config: Config {
            rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: RULES.into() },
            bucket: "audit".into(),
            flap_window: Duration::seconds(900),
            claim_ttl: Duration::seconds(120),
            deploy_context_max_age: Duration::seconds(3600),
            alarm_tags_cache: StdDuration::from_secs(300),
            silences_prefix: None,
            schedule: None,
        },
        rules: RuleSet::parse(RULES, "test", &vars).unwrap(),
        publisher: MemoryPublisher::new(),
        store: MemoryStore::new(),
        // The events carry their tags, or have none to look up.
        tags: CachedAlarmTags::new(MemoryAlarmTags::default(), StdDuration::from_secs(300)),
        silences: Default::default(),
        timers: alarm_fanout::timers::NoTimers,
        deployments,
    }
}

/// What pipeline-notifier records when the pipeline's CodeDeploy action to EC2 starts: the
/// execution, the commit and the deployment group from the action history; no deployment id.
fn release(fanout: &TestFanout, started_at: &str) {
    let context = InFlight {
        application: "flask-api".into(),
        source: "pipeline-notifier".into(),
        pipeline: Some("flask-web-app".into()),
        execution_id: Some("8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33".into()),
        deployment_id: None,
        deployment_group: Some(GROUP.into()),
        commit: Some("7c4a9e3f1b2d6e5a8c0f3b9d2e1a4c6b8d0e2f13".into()),
        author: Some("Mary Major".into()),
        started_at: t(started_at),
        finished_at: None,
    };
    fanout.store.seed(&InFlight::key("flask-api"), serde_json::to_vec(&context).unwrap());
}

fn deployment(id: &str, status: &str, created: &str) -> KnownDeployment {
    KnownDeployment {
        id: id.into(),
        application: "flask-api".into(),
        deployment_group: GROUP.into(),
        status: status.into(),
        created: t(created),
        creator: "user".into(),
    }
}

/// ServerCpuTooHigh going into ALARM at 2026-11-20 17:04:40.
fn alarm() -> Value {
    event("cloudwatch-alarm-metric.json")
}

async fn handle(fanout: &TestFanout, payload: Value) -> Value {
    let lambda_deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    deadline::within(lambda_deadline, fanout.handle(payload, "req-1", Utc::now())).await.unwrap()
}

fn messages(fanout: &TestFanout) -> Vec<String> {
    fanout.publisher.on(TOPIC).into_iter().map(|p| p.message.body).collect()
}

#[tokio::test(start_paused = true)]
async fn an_alarm_during_an_ec2_release_names_the_deployment_codedeploy_has_in_flight() {
    let fanout = fanout(MemoryDeployments::with(vec![
        // A deployment of the group before this release, still listed as in progress, and one of
        // this release that ended: neither is the one in flight now.
        deployment("d-BEFORE0001", "InProgress", "2026-11-20T15:00:00Z"),
        deployment("d-ENDED00001", "Failed", "2026-11-20T16:50:30Z"),
        deployment("d-EC2RELEASE", "InProgress", "2026-11-20T16:50:40Z"),
    ]));
    release(&fanout, "2026-11-20T16:50:00Z");

    handle(&fanout, alarm()).await;

    let got = messages(&fanout);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].contains(
            "CodeDeploy deployment d-EC2RELEASE of flask-api, pipeline flask-web-app execution 8f2a1c3e-0000-4a6b-9c1d-aa11bb22cc33 (commit 7c4a9e3f by Mary Major)"
        ),
        "{}",
        got[0]
    );
}

/// The review of issue 21: the release's deployment failed and CodeDeploy rolled back (a new
/// deployment, created by `codeDeployRollback`) before the pipeline's FAILED was recorded; the
/// rollback redeploys the previous revision and is not the release's deployment.
#[tokio::test(start_paused = true)]
async fn a_rollback_in_flight_is_not_named_as_the_release_s_deployment() {
    let fanout = fanout(MemoryDeployments::with(vec![
        deployment("d-EC2RELEASE", "Failed", "2026-11-20T16:50:40Z"),
        KnownDeployment {
            creator: "codeDeployRollback".into(),
            ..deployment("d-ROLLBACK01", "InProgress", "2026-11-20T17:02:00Z")
        },
    ]));
    release(&fanout, "2026-11-20T16:50:00Z");

    handle(&fanout, alarm()).await;

    let got = messages(&fanout);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(!got[0].contains("d-ROLLBACK01"), "{}", got[0]);
    assert!(got[0].contains("pipeline flask-web-app execution 8f2a1c3e"), "the release is still named: {}", got[0]);
}

#[tokio::test(start_paused = true)]
async fn a_codedeploy_that_hangs_or_fails_costs_the_name_not_the_message() {
    for (how, lister) in [
        ("hangs", MemoryDeployments::hanging()),
        (
            "fails",
            MemoryDeployments::failing(PortError::new(
                "CodeDeploy",
                "ListDeployments",
                FailureKind::Throttled,
                "slow down",
            )),
        ),
    ] {
        let fanout = fanout(lister);
        release(&fanout, "2026-11-20T16:50:00Z");
        let started = tokio::time::Instant::now();

        handle(&fanout, alarm()).await;

        assert!(started.elapsed() <= StdDuration::from_secs(2), "{how}: waited {:?}", started.elapsed());
        let got = messages(&fanout);
        assert_eq!(got.len(), 1, "{how}: {got:#?}");
        assert!(got[0].contains("pipeline flask-web-app execution 8f2a1c3e"), "{how}: {}", got[0]);
        assert!(!got[0].contains("CodeDeploy deployment"), "{how}: {}", got[0]);
        assert_eq!(fanout.deployments.calls(), 1, "{how}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_context_that_names_its_deployment_or_no_group_asks_nothing() {
    let fanout =
        fanout(MemoryDeployments::with(vec![deployment("d-OTHER00001", "InProgress", "2026-11-20T16:50:40Z")]));
    let hooked = InFlight {
        application: "flask-api".into(),
        source: "deploy-validator".into(),
        pipeline: None,
        execution_id: None,
        deployment_id: Some("d-HOOKED0001".into()),
        deployment_group: Some(GROUP.into()),
        commit: None,
        author: None,
        started_at: t("2026-11-20T16:50:00Z"),
        finished_at: None,
    };
    fanout.store.seed(&InFlight::key("flask-api"), serde_json::to_vec(&hooked).unwrap());

    handle(&fanout, alarm()).await;

    assert!(
        messages(&fanout)[0].contains("CodeDeploy deployment d-HOOKED0001 of flask-api"),
        "{:?}",
        messages(&fanout)
    );
    assert_eq!(fanout.deployments.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn several_alarms_of_one_release_in_one_event_ask_codedeploy_once() {
    let fanout =
        fanout(MemoryDeployments::with(vec![deployment("d-EC2RELEASE", "InProgress", "2026-11-22T15:30:05Z")]));
    release(&fanout, "2026-11-22T15:30:00Z");
    let batch = event("sns-classic-alarm-batch.json");
    let records = batch["Records"].as_array().unwrap().len();
    assert!(records >= 2, "the sample batch carries several alarms");

    handle(&fanout, batch).await;

    let got = messages(&fanout);
    assert_eq!(got.len(), records, "{got:#?}");
    for message in &got {
        assert!(message.contains("CodeDeploy deployment d-EC2RELEASE of flask-api"), "{message}");
    }
    assert_eq!(fanout.deployments.calls(), 1);
}
