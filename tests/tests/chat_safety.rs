//! What an event says cannot steer a chat channel or a reader: given alarm and pipeline events
//! whose text carries Slack and markdown markup, and ARNs or regions that are not AWS's, the chat
//! subscriber receives that text escaped, and every link in the message goes to the AWS console
//! (or there is no link); the email subscriber gets no forged lines and no link to another host.

use std::collections::HashMap;

use alarm_fanout::config::Config as FanoutConfig;
use alarm_fanout::deployments::CodeDeployDeployments;
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::tags::{CachedAlarmTags, CloudWatchAlarmTags};
use chrono::{Duration, Utc};
use pipeline_notifier::config::{parse_notify_on, Config as NotifierConfig, DEFAULT_NOTIFY_ON};
use pipeline_notifier::handler::Notifier;
use pipeline_notifier::lookups::{CodeDeployDiagnostics, CodePipelineActionHistory, CodePipelineExecutions};
use pipeline_notifier::metrics::MetricSink;
use pipewarden_devkit::{event, Emulator, Notification, Subscribed};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::document::DocumentSource;
use pipewarden_shared::format::{chat_escape, one_line};
use pipewarden_shared::links;
use proptest::prelude::*;
use serde_json::{json, Value};

const BUCKET: &str = "audit";

/// An ARN whose region field would put another host in front of `.console.aws.amazon.com`.
const EVIL_ARN: &str = "arn:aws:cloudwatch:evil.example/x?:123456789012:alarm:a";
const EVIL_REGION: &str = "evil.example/x?";

/// Markup a chat application would act on, if it reached the message unescaped.
const MARKUP: &str = "<!channel> [log in](https://evil.example/phish) <https://evil.example/a|the runbook> *now* `x`";

// ---------------------------------------------------------------------------------------------
// What a person reads in a chat notification, and every link its markup makes.

/// The strings of a custom notification that a chat channel shows.
fn rendered(doc: &Value) -> Vec<String> {
    let mut out = vec![
        doc["content"]["title"].as_str().unwrap_or_default().to_string(),
        doc["content"]["description"].as_str().unwrap_or_default().to_string(),
        doc["metadata"]["summary"].as_str().unwrap_or_default().to_string(),
    ];
    for list in [&doc["content"]["nextSteps"], &doc["content"]["keywords"]] {
        out.extend(list.as_array().into_iter().flatten().filter_map(|v| v.as_str()).map(str::to_string));
    }
    out
}

/// Every target the markup in `text` points at: Slack's `<target|label>` and `<target>` (links and
/// mentions alike) and markdown's `[label](target)`. Escaped brackets (`\[`, `&lt;`) make none.
fn markup_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let escaped = |i: usize| i > 0 && chars[i - 1] == '\\';
    for (i, c) in chars.iter().enumerate() {
        if *c == '<' {
            let inside: String = chars[i + 1..].iter().take_while(|c| **c != '>').collect();
            targets.push(inside.split('|').next().unwrap_or_default().to_string());
        }
        if *c == ']' && !escaped(i) && chars.get(i + 1) == Some(&'(') {
            targets.push(chars[i + 2..].iter().take_while(|c| **c != ')').collect());
        }
    }
    targets
}

/// The host of an https URL: what follows `https://` up to the path, query or fragment.
fn host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// The AWS console, in any region of the commercial partition, China or GovCloud.
fn is_console_host(host: &str) -> bool {
    let regional = host
        .strip_suffix(".console.aws.amazon.com")
        .map(|region| {
            !region.is_empty() && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .unwrap_or(false);
    regional || host == "console.amazonaws.cn" || host == "console.amazonaws-us-gov.com"
}

/// The chat message links only to the console, mentions no one, and lets no markup through.
fn assert_chat_is_safe(doc: &Value) {
    for text in rendered(doc) {
        for target in markup_targets(&text) {
            let host = host(&target).unwrap_or_else(|| panic!("markup that is no https link: <{target}> in {text:?}"));
            assert!(is_console_host(host), "a link to {host}: {text:?}");
        }
        assert!(!text.contains('\n') || text == doc["content"]["description"], "a line break in {text:?}");
    }
}

/// Every URL in a plain text message, whole.
fn urls(text: &str) -> Vec<&str> {
    text.match_indices("https://").map(|(i, _)| text[i..].split_whitespace().next().unwrap_or_default()).collect()
}

/// Every console link the email holds goes to the console. (A URL the event's own text holds, in a
/// name or a reason, is shown as the text it is: plain text has no markup to hide a link behind.)
fn assert_console_links_go_to_the_console(message: &str) {
    for url in urls(message).into_iter().filter(|u| u.contains("console")) {
        let host = host(url).unwrap_or_default();
        assert!(is_console_host(host), "a console link to {host}: {message}");
    }
}

// ---------------------------------------------------------------------------------------------
// alarm-fanout: every alarm goes to one email topic and one chat topic.

const RULES: &str = r#"
mode: all-matches
default:
  severity: critical
  topics: [$TEXT]
  chatTopics: [$CHAT]
"#;

struct Alarms {
    aws: Emulator,
    text: Subscribed,
    chat: Subscribed,
}

impl Alarms {
    async fn new() -> Alarms {
        let aws = Emulator::fresh().await;
        aws.bucket(BUCKET).await;
        Alarms { text: aws.topic_with_subscriber("text").await, chat: aws.topic_with_subscriber("chat").await, aws }
    }

    fn fanout(
        &self,
    ) -> Fanout<SnsPublisher, S3ObjectStore, CloudWatchAlarmTags, CodeDeployDeployments, alarm_fanout::timers::NoTimers>
    {
        let vars: HashMap<String, String> =
            HashMap::from([("TEXT".into(), self.text.topic_arn.clone()), ("CHAT".into(), self.chat.topic_arn.clone())]);
        let cache = std::time::Duration::from_secs(300);
        Fanout {
            config: FanoutConfig {
                rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: RULES.into() },
                bucket: BUCKET.into(),
                flap_window: Duration::seconds(900),
                claim_ttl: Duration::seconds(120),
                deploy_context_max_age: Duration::seconds(3600),
                alarm_tags_cache: cache,
                silences_prefix: None,
                schedule: None,
            },
            rules: RuleSet::parse(RULES, "test", &vars).unwrap(),
            publisher: SnsPublisher::new(self.aws.sns()),
            store: S3ObjectStore::new(self.aws.s3(), BUCKET),
            tags: CachedAlarmTags::new(CloudWatchAlarmTags::new(aws_sdk_cloudwatch::Client::new(&self.aws.sdk)), cache),
            silences: Default::default(),
            timers: alarm_fanout::timers::NoTimers,
            deployments: CodeDeployDeployments::new(self.aws.codedeploy()),
        }
    }

    /// Hands `payload` to alarm-fanout; returns what the email and the chat subscriber received.
    async fn deliver(&self, payload: Value) -> (Vec<Notification>, Vec<Value>) {
        self.fanout().handle(payload, "request-1", Utc::now()).await.expect("handled");
        let text = self.aws.received(&self.text).await;
        let chat = self.aws.received(&self.chat).await;
        let chat = chat.iter().map(|n| serde_json::from_str(&n.message).expect("chat message is JSON")).collect();
        (text, chat)
    }
}

/// A classic alarm notification (what CloudWatch publishes to an SNS topic) with these fields of
/// its message replaced.
fn classic_alarm(replace: Value) -> Value {
    let mut payload = event("sns-classic-alarm-metric.json");
    let mut message: Value =
        serde_json::from_str(payload["Records"][0]["Sns"]["Message"].as_str().unwrap()).expect("message JSON");
    for (field, value) in replace.as_object().unwrap() {
        message[field] = value.clone();
    }
    payload["Records"][0]["Sns"]["Message"] = json!(message.to_string());
    payload
}

#[tokio::test]
async fn alarm_name_reason_and_state_reach_chat_escaped_in_title_description_keywords_and_summary() {
    let world = Alarms::new().await;

    let (_, chat) = world
        .deliver(classic_alarm(json!({
            "AlarmName": format!("web-5xx {MARKUP}"),
            "NewStateReason": format!("Threshold Crossed {MARKUP}\n*Reason:* all clear"),
            "NewStateValue": "<https://evil.example|ok>",
        })))
        .await;

    assert_eq!(chat.len(), 1, "{chat:#?}");
    let doc = &chat[0];
    assert_chat_is_safe(doc);
    let title = doc["content"]["title"].as_str().unwrap();
    assert!(title.starts_with(":x: &lt;HTTPS://EVIL.EXAMPLE\\|OK&gt; web-5xx &lt;!channel&gt;"), "{title}");
    let keywords = doc["content"]["keywords"].to_string();
    assert!(keywords.contains("web-5xx &lt;!channel&gt; \\\\[log in\\\\](https://evil.example/phish)"), "{keywords}");
    let description = doc["content"]["description"].as_str().unwrap();
    assert!(
        description
            .starts_with("*Reason:* Threshold Crossed &lt;!channel&gt; \\[log in\\](https://evil.example/phish)"),
        "{description}"
    );
    assert!(
        description.contains("\\*now\\* \\`x\\` \\*Reason:\\* all clear"),
        "the reason stays on its line: {description}"
    );
    assert_eq!(description.matches("*Reason:*").count(), 1, "{description}");
    let summary = doc["metadata"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("\\[&lt;HTTPS://EVIL.EXAMPLE\\|OK&gt;\\] web-5xx &lt;!channel&gt;"), "{summary}");
    assert!(!doc.to_string().contains("&amp;lt;"), "escaped once, not twice: {doc}");
}

#[tokio::test]
async fn a_classic_alarm_whose_arn_names_another_host_gets_no_console_link_but_is_delivered() {
    let world = Alarms::new().await;

    let (text, chat) = world.deliver(classic_alarm(json!({"AlarmArn": EVIL_ARN}))).await;

    assert_eq!((text.len(), chat.len()), (1, 1), "the alarm is still told: {text:#?} {chat:#?}");
    assert_chat_is_safe(&chat[0]);
    assert!(!chat[0].to_string().contains(".console.aws.amazon.com"), "no console link at all: {}", chat[0]);
    assert_eq!(chat[0]["metadata"]["relatedResources"], json!([]), "an ARN outside every partition is not passed on");
    assert_console_links_go_to_the_console(&text[0].message);
    assert!(text[0].message.contains("ALARM: \"flask-web-app-5xx\" in evil.example/x?"), "{}", text[0].message);
}

#[tokio::test]
async fn a_lambda_alarm_action_and_an_eventbridge_event_with_a_bogus_region_get_no_console_link() {
    let world = Alarms::new().await;
    let mut action = event("cloudwatch-alarm-lambda-action.json");
    action["alarmArn"] = json!(EVIL_ARN);
    action.as_object_mut().unwrap().remove("region");
    let mut eventbridge = event("cloudwatch-alarm-metric.json");
    eventbridge["region"] = json!(EVIL_REGION);
    eventbridge["resources"] = json!([EVIL_ARN]);

    for payload in [action, eventbridge] {
        let (text, chat) = world.deliver(payload).await;

        assert_eq!((text.len(), chat.len()), (1, 1), "{text:#?} {chat:#?}");
        assert_chat_is_safe(&chat[0]);
        assert!(!chat[0].to_string().contains("evil.example/x?.console"), "{}", chat[0]);
        assert_console_links_go_to_the_console(&text[0].message);
    }
}

/// The lines a mail client may show: besides `\n`, Unicode's line and paragraph separators and NEL
/// end a line in some, and CloudWatch allows them in an alarm name (it refuses only ASCII control
/// characters).
fn shown_lines(text: &str) -> Vec<&str> {
    text.split(['\n', '\r', '\u{0b}', '\u{0c}', '\u{85}', '\u{2028}', '\u{2029}']).collect()
}

#[tokio::test]
async fn a_line_separator_in_an_alarm_name_cannot_forge_lines_of_the_email() {
    let world = Alarms::new().await;

    let (text, _) = world
        .deliver(classic_alarm(json!({
            "AlarmName": "web-5xx\u{2028}Severity:     info (rule all-clear)\u{85}Console:      https://evil.example/",
        })))
        .await;

    let message = &text[0].message;
    let lines = shown_lines(message);
    assert_eq!(lines.iter().filter(|l| l.starts_with("Severity:")).count(), 1, "{message}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("Console:")).count(), 1, "{message}");
    assert!(lines[0].starts_with("ALARM: \"web-5xx Severity:     info (rule all-clear) Console:"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// pipeline-notifier: every outcome goes to one email topic and one chat topic.

#[derive(Default)]
struct NoMetrics;

impl MetricSink for NoMetrics {
    fn emit(&self, _document: &Value) {}
}

struct Pipelines {
    aws: Emulator,
    text: Subscribed,
    chat: Subscribed,
}

impl Pipelines {
    async fn new() -> Pipelines {
        let aws = Emulator::fresh().await;
        aws.bucket(BUCKET).await;
        Pipelines {
            text: aws.topic_with_subscriber("pipeline").await,
            chat: aws.topic_with_subscriber("chat").await,
            aws,
        }
    }

    fn notifier(
        &self,
    ) -> Notifier<
        SnsPublisher,
        S3ObjectStore,
        CodePipelineActionHistory,
        CodeDeployDiagnostics,
        CodePipelineExecutions,
        NoMetrics,
    > {
        Notifier {
            config: NotifierConfig {
                topic_arn: self.text.topic_arn.clone(),
                chat_topic_arn: Some(self.chat.topic_arn.clone()),
                bucket: BUCKET.to_string(),
                notify_on: parse_notify_on(DEFAULT_NOTIFY_ON).unwrap(),
                claim_ttl_seconds: 120,
                digest: None,
                approvals: Default::default(),
            },
            publisher: SnsPublisher::new(self.aws.sns()),
            store: S3ObjectStore::new(self.aws.s3(), BUCKET),
            history: CodePipelineActionHistory::new(aws_sdk_codepipeline::Client::new(&self.aws.sdk)),
            diagnostics: CodeDeployDiagnostics::new(self.aws.codedeploy()),
            revisions: CodePipelineExecutions::new(aws_sdk_codepipeline::Client::new(&self.aws.sdk)),
            metrics: NoMetrics,
        }
    }

    async fn deliver(&self, payloads: Vec<Value>) -> (Vec<Notification>, Vec<Value>) {
        let notifier = self.notifier();
        for (i, payload) in payloads.into_iter().enumerate() {
            notifier.handle(payload, &format!("request-{i}"), Utc::now()).await.expect("handled");
        }
        let text = self.aws.received(&self.text).await;
        let chat = self.aws.received(&self.chat).await;
        let chat = chat.iter().map(|n| serde_json::from_str(&n.message).expect("chat message is JSON")).collect();
        (text, chat)
    }
}

#[tokio::test]
async fn a_pipeline_failure_with_a_bogus_region_is_told_without_console_links() {
    let world = Pipelines::new().await;
    let events: Vec<Value> = [
        "codepipeline-action-build-failed.json",
        "codepipeline-stage-build-failed.json",
        "codepipeline-pipeline-failed-v1.json",
    ]
    .into_iter()
    .map(|name| {
        let mut e = event(name);
        e["region"] = json!(EVIL_REGION);
        if e["detail"].get("region").is_some() {
            e["detail"]["region"] = json!(EVIL_REGION);
        }
        e
    })
    .collect();

    let (text, chat) = world.deliver(events).await;

    assert_eq!((text.len(), chat.len()), (1, 1), "the failure is still told: {text:#?} {chat:#?}");
    assert_chat_is_safe(&chat[0]);
    assert!(!chat[0].to_string().contains("evil.example/x?.console"), "{}", chat[0]);
    assert_eq!(chat[0]["metadata"]["relatedResources"], json!([]), "no ARN is made of a bogus region");
    let description = chat[0]["content"]["description"].as_str().unwrap();
    assert!(description.contains("*Execution:* 3b9e7d21-1111-4c2d-8e3f-dd44ee55ff66"), "{description}");
    assert_console_links_go_to_the_console(&text[0].message);
    assert!(text[0].message.contains("Failed:     stage Build, action Build (CodeBuild)"), "{}", text[0].message);
}

#[tokio::test]
async fn a_codestar_notification_with_markup_in_its_names_reaches_chat_escaped() {
    let world = Pipelines::new().await;
    let mut payload = event("sns-codestar-pipeline-notification.json");
    let mut message: Value = serde_json::from_str(payload["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["detail"]["pipeline"] = json!("web <!here> [ok](https://evil.example/)");
    message["region"] = json!(EVIL_REGION);
    message["additionalAttributes"]["failedStage"] = json!("Deploy <@U024BE7LH>");
    payload["Records"][0]["Sns"]["Message"] = json!(message.to_string());

    let (text, chat) = world.deliver(vec![payload]).await;

    assert_eq!((text.len(), chat.len()), (1, 1), "{text:#?} {chat:#?}");
    let doc = &chat[0];
    assert_chat_is_safe(doc);
    let keywords = doc["content"]["keywords"].to_string();
    assert!(keywords.contains("web &lt;!here&gt; \\\\[ok\\\\](https://evil.example/)"), "{keywords}");
    let summary = doc["metadata"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("\\[FAILED\\] web &lt;!here&gt; \\[ok\\](https://evil.example/)"), "{summary}");
    assert!(doc["content"]["description"].as_str().unwrap().contains("*Failed:* stage Deploy &lt;@U024BE7LH&gt;"));
    assert_console_links_go_to_the_console(&text[0].message);
}

// ---------------------------------------------------------------------------------------------
// The same, for any text: properties over the escaping, the links and both chat formats.

/// Text made mostly of what markup, links and line breaks are made of.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "(?s)[a-zA-Z0-9 <>&|*_~`\\[\\]()!@#:/.?=\\\\\n\r\t\u{85}\u{2028}\u{2029}\u{202e}\u{2066}-]{0,40}",
        1 => any::<String>(),
    ]
}

/// Regions, and near misses: a real region with something after or around it.
fn region_like() -> impl Strategy<Value = String> {
    let real =
        prop::sample::select(vec!["us-east-1", "us-gov-west-1", "cn-north-1", "eusc-de-east-1", "us-isob-east-1"]);
    prop_oneof![
        real.clone().prop_map(str::to_string),
        (real, "[a-z0-9./?#@:%-]{1,12}").prop_map(|(r, junk)| format!("{r}{junk}")),
        "[a-z./?#@:%-]{0,24}",
        hostile_text(),
    ]
}

/// Reads chat text back: `&lt;`, `&gt;`, `&amp;` and backslash escapes undone.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some((entity, plain)) =
            [("&lt;", '<'), ("&gt;", '>'), ("&amp;", '&')].into_iter().find(|(e, _)| rest.starts_with(e))
        {
            out.push(plain);
            rest = &rest[entity.len()..];
        } else if c == '\\' {
            let next = rest[1..].chars().next().ok_or("a backslash at the end")?;
            if !"\\*_~`[]|".contains(next) {
                return Err(format!("a backslash before {next:?}"));
            }
            out.push(next);
            rest = &rest[1 + next.len_utf8()..];
        } else if "<>&*_~`[]|".contains(c) {
            return Err(format!("{c:?} unescaped in {text:?}"));
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Ok(out)
}

fn any_alarm(
    name: String,
    state: String,
    reason: String,
    region: String,
    arn: String,
) -> alarm_fanout::alarm::AlarmTransition {
    use alarm_fanout::alarm::{AlarmTransition, MetricRef, Watched};
    use pipewarden_shared::events::cloudwatch::AlarmStateValue;
    AlarmTransition {
        source_id: "m".into(),
        alarm_name: name.clone(),
        alarm_arn: Some(arn),
        account: "123456789012".into(),
        region,
        state: AlarmStateValue::parse(&state),
        previous: Some(AlarmStateValue::parse(&state)),
        reason: Some(reason.clone()),
        state_time: None,
        description: Some(reason),
        watched: Watched::Metric(MetricRef {
            namespace: Some(name.clone()),
            name: Some(state),
            dimensions: vec![(name.clone(), name)],
            stat: None,
            period: Some(60),
        }),
        threshold: Some(1.0),
        comparison: None,
        suppressed: None,
        silenced: None,
        note: None,
        contributor: None,
        tags: Default::default(),
        tags_known: true,
    }
}

fn any_report(pipeline: String, stage: String, region: String, account: String) -> pipeline_notifier::decide::Report {
    use pipeline_notifier::decide::{failure_link, report, FailureReport, Outcome};
    use pipeline_notifier::lookups::FailedActionDetail;
    use pipeline_notifier::timeline::Timeline;
    use pipewarden_shared::events::codepipeline::{ExecutionState, Level};
    let mut failure = FailureReport {
        failed: FailedActionDetail {
            stage: stage.clone(),
            action: stage.clone(),
            provider: Some("CodeBuild".into()),
            summary: Some(stage.clone()),
            external_id: Some(format!("{pipeline}:{stage}")),
            ..FailedActionDetail::default()
        },
        ..FailureReport::default()
    };
    failure.link = failure_link(&region, &failure);
    let timeline = Timeline {
        pipeline: pipeline.clone(),
        execution_id: stage.clone(),
        account,
        region,
        entries: vec![],
        deliveries: Default::default(),
    };
    let outcome = Outcome {
        key: "pipeline:FAILED:attempt-1".into(),
        level: Level::Pipeline,
        state: ExecutionState::Failed,
        stage: Some(stage.clone()),
        action: Some(stage),
        approval: false,
        attempt: 1,
    };
    report(&timeline, &outcome, None, Some(failure), vec![])
}

proptest! {
    #[test]
    fn escaped_text_reads_back_as_the_one_line_it_was_and_makes_no_markup(text in hostile_text()) {
        let escaped = chat_escape(&text);
        prop_assert_eq!(unescape(&escaped).map_err(TestCaseError::fail)?, one_line(&text));
        prop_assert!(markup_targets(&escaped).is_empty(), "{:?}", escaped);
        prop_assert!(!escaped.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}')), "{:?}", escaped);
    }

    #[test]
    fn any_region_gives_a_console_link_or_none(region in region_like(), name in hostile_text()) {
        let made = [
            links::cloudwatch_alarm(&region, &name),
            links::pipeline_execution(&region, &name, &name),
            links::codebuild_build(&region, &name),
            links::codedeploy_deployment(&region, &name),
        ];
        for url in made.into_iter().flatten() {
            let host = host(&url).unwrap_or_default();
            prop_assert!(is_console_host(host), "{:?} made {}", region, url);
            prop_assert!(!url.chars().any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '|')), "{}", url);
        }
        if let Some(arn) = links::arn("cloudwatch", &region, "123456789012", &name) {
            prop_assert!(links::Arn::parse(&arn).is_some(), "{}", arn);
        }
    }

    #[test]
    fn any_alarm_reaches_chat_linked_only_to_the_console(
        name in hostile_text(), state in hostile_text(), reason in hostile_text(), region in region_like(), arn in hostile_text(),
    ) {
        use alarm_fanout::rules::{Severity, Target};
        let alarm = any_alarm(name, state, reason, region, arn);
        let target = Target { topic_arn: "t".into(), chat: true, severity: Severity::Warning, rule: "r".into() };
        let doc: Value = serde_json::from_str(&alarm_fanout::format::chat(&alarm, &target, None)).unwrap();
        assert_chat_is_safe(&doc);
        let text = alarm_fanout::format::text(&alarm, &target, None);
        assert_console_links_go_to_the_console(&text);
        prop_assert_eq!(shown_lines(&text).iter().filter(|l| l.starts_with("Severity:")).count(), 1, "{}", text);
    }

    #[test]
    fn any_pipeline_outcome_reaches_chat_linked_only_to_the_console(
        pipeline in hostile_text(), stage in hostile_text(), region in region_like(), account in hostile_text(),
    ) {
        let report = any_report(pipeline, stage, region, account);
        let doc: Value = serde_json::from_str(&pipeline_notifier::format::chat(&report)).unwrap();
        assert_chat_is_safe(&doc);
        let text = pipeline_notifier::format::text(&report);
        assert_console_links_go_to_the_console(&text);
        prop_assert_eq!(shown_lines(&text).iter().filter(|l| l.starts_with("Account:")).count(), 1, "{}", text);
    }
}
