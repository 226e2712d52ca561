//! The pure per-event work of Pipewarden, without I/O: parse the event, decide or route, and
//! format every message it leads to. What the CPU-per-event benchmark measures and what the
//! parser fuzz tests drive.

use alarm_fanout::handler::transitions_of;
use alarm_fanout::memory::AlarmMemory;
use alarm_fanout::rules::RuleSet;
use pipeline_notifier::config::{parse_notify_on, Format, NotifyOn, Target};
use pipeline_notifier::decide;
use pipeline_notifier::timeline::Timeline;
use pipewarden_shared::events::codedeploy::parse_hook;
use pipewarden_shared::events::{Document, EventError};
use pipewarden_shared::ports::OutboundMessage;

/// Every notification a pipeline outcome can send.
pub const NOTIFY_ON_ALL: &str =
    "pipeline:STARTED,pipeline:SUCCEEDED,pipeline:FAILED,pipeline:STOPPED,pipeline:SUPERSEDED,stage:FAILED,action:FAILED,approval";

/// The routing rules of `examples/routing-rules.yaml`, with placeholder topics.
pub const SAMPLE_TOPICS: [(&str, &str); 3] = [
    ("ALARM_CRITICAL_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:critical"),
    ("ALARM_WARNING_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:warning"),
    ("ALARM_INFO_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:info"),
];

/// The request id the decisions claim for.
const TOKEN: &str = "bench";

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn ttl() -> chrono::Duration {
    chrono::Duration::seconds(120)
}

pub struct Workload {
    pub notify_on: Vec<NotifyOn>,
    pub rules: RuleSet,
}

/// What one event led to.
#[derive(Debug, Default)]
pub struct Rendered {
    pub messages: Vec<OutboundMessage>,
    /// Records of a batch that could not be read (the handler logs and skips them).
    pub rejected: Vec<EventError>,
}

impl Workload {
    /// The sample configuration: every pipeline outcome, and the example routing rules.
    pub fn sample() -> Workload {
        let path = crate::repo_root().join("examples/routing-rules.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let vars: std::collections::HashMap<String, String> =
            SAMPLE_TOPICS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Workload {
            notify_on: parse_notify_on(NOTIFY_ON_ALL).expect("NOTIFY_ON_ALL parses"),
            rules: RuleSet::parse(&text, "examples/routing-rules.yaml", &vars).expect("the example rules parse"),
        }
    }

    /// Parses one invocation payload, routes it to the function its shape belongs to, and
    /// formats every message that function would send for it (as if it were the first event of
    /// its execution or alarm).
    pub fn render(&self, payload: impl Document) -> Result<Rendered, EventError> {
        // Classified once, as each function's handler does.
        let (shape, sns) = payload.classify();
        use pipewarden_shared::events::eventbridge::Shape;
        if matches!(shape, Shape::ScheduledEvent | Shape::AlarmFanoutTimer) {
            // The digest, an alarm-fanout timer: what they send is read from S3, not from the event.
            return Ok(Rendered::default());
        }
        match shape.function() {
            Some("pipeline-notifier") => {
                let mut out = Rendered::default();
                let targets = [
                    Target { topic_arn: "arn:aws:sns:us-east-1:123456789012:pipeline".into(), format: Format::Text },
                    Target { topic_arn: "arn:aws:sns:us-east-1:123456789012:chat".into(), format: Format::Chat },
                ];
                for event in pipeline_notifier::events_of(payload, shape, sns)? {
                    let mut timeline = Timeline::new(&event);
                    // The handler's own decision: record, decide, claim.
                    let decision =
                        decide::on_event(&mut timeline, &event, &self.notify_on, &targets, TOKEN, now(), ttl());
                    let Some(outcome) = decision.and_then(|d| d.outcome) else { continue };
                    let failure = decide::failure_from_timeline(&timeline, outcome.attempt).map(|mut f| {
                        f.link = decide::failure_link(&timeline.region, &f);
                        f
                    });
                    // No lookups: what the events alone say.
                    let report = decide::report(&timeline, &outcome, event.time.as_ref(), failure, Vec::new());
                    for format in [Format::Text, Format::Chat] {
                        out.messages.push(pipeline_notifier::format::message(&report, format));
                    }
                }
                Ok(out)
            }
            Some("alarm-fanout") => {
                let (alarms, rejected) = transitions_of(payload, shape, sns)?;
                let mut out = Rendered { rejected, ..Rendered::default() };
                for alarm in &alarms {
                    // The handler's own decision over a fresh memory: decide, claim. Every routed
                    // target is formatted, as if its ALARM had been sent before an OK, so an OK
                    // costs what it costs the handler when it is sent (the Python peer sends it).
                    let mut memory = AlarmMemory { subject: alarm.subject(), ..AlarmMemory::default() };
                    let targets = self.rules.targets(alarm);
                    let window = chrono::Duration::minutes(15);
                    std::hint::black_box(memory.plan(alarm, &targets, TOKEN, now(), window, ttl()));
                    for target in &targets {
                        out.messages.push(alarm_fanout::format::message(alarm, target, None));
                    }
                }
                Ok(out)
            }
            Some(_) => {
                parse_hook(payload)?;
                Ok(Rendered::default())
            }
            None => Err(EventError::new("invocation payload", "source", "a shape no Pipewarden function handles")),
        }
    }
}
