//! The EventBridge envelope shared by every AWS service event.

use serde::Deserialize;

use super::lenient;
use super::sns::{SnsEvent, SnsRecord};

/// `{version, id, detail-type, source, account, time, region, resources, detail}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct EventBridgeEvent<D> {
    #[serde(default, deserialize_with = "lenient::version")]
    pub version: Option<String>,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub account: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub region: String,
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub resources: Vec<String>,
    pub detail: D,
}

/// Which of the shapes Pipewarden handles a JSON document is, judged by its keys alone, so that a
/// caller (a function's entry point, `make replay`) can route it before parsing it fully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// EventBridge event from `aws.codepipeline`.
    CodePipelineEvent,
    /// CodeStar Notifications message about a pipeline (`detailType`, `additionalAttributes`).
    CodePipelineNotification,
    /// EventBridge `CloudWatch Alarm State Change` (or Contributor State Change).
    AlarmStateChange,
    /// The payload CloudWatch sends when an alarm invokes a Lambda function directly.
    AlarmLambdaAction,
    /// Lambda's SNS event whose (first) message is a classic CloudWatch alarm notification.
    SnsAlarmMessages,
    /// Lambda's SNS event whose (first) message is a CodeStar pipeline notification.
    SnsPipelineNotifications,
    /// CodeDeploy lifecycle hook invocation `{DeploymentId, LifecycleEventHookExecutionId}`.
    CodeDeployHook,
    /// EventBridge `Scheduled Event` from `aws.events` (a schedule rule: pipeline-notifier's digest).
    ScheduledEvent,
    /// alarm-fanout's own timer (an EventBridge Scheduler schedule it set): a reminder or a look
    /// again at an ALARM held back.
    AlarmFanoutTimer,
    Unknown,
}

/// What an SNS message is, told by its keys: a classic alarm message has `AlarmName` (its first
/// key, as CloudWatch writes it), a CodeStar pipeline notification `source` `aws.codepipeline` and
/// `detailType`. Read only as far as that: once `AlarmName` is seen the rest of the message is
/// left to the full parse that follows (which names what is wrong with it, if anything). Not an
/// object, a key twice (before the answer) or a `source` that is not text: neither.
fn inner_shape(message: &str) -> Shape {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    #[derive(Clone, Copy, PartialEq)]
    enum Key {
        AlarmName,
        Source,
        DetailType,
        Other,
    }
    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
            struct Name;
            impl Visitor<'_> for Name {
                type Value = Key;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                    Ok(match key {
                        "AlarmName" => Key::AlarmName,
                        "source" => Key::Source,
                        "detailType" => Key::DetailType,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_str(Name)
        }
    }
    // The answer is kept here: a visitor that stops early leaves the map unfinished, which the
    // deserializer then reports as an error.
    struct Keys<'a>(&'a std::cell::Cell<Shape>);
    impl<'de> Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let (mut pipeline, mut detail_type) = (None, false);
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::AlarmName => {
                        self.0.set(Shape::SnsAlarmMessages);
                        return Ok(());
                    }
                    Key::Source if pipeline.is_none() => {
                        // `null` is no source; any other value than text makes the message neither.
                        let source = map.next_value::<Option<std::borrow::Cow<str>>>()?;
                        pipeline = Some(source.as_deref() == Some("aws.codepipeline"));
                    }
                    Key::DetailType if !detail_type => {
                        detail_type = true;
                        map.next_value::<IgnoredAny>()?;
                    }
                    Key::Source | Key::DetailType => return Err(serde::de::Error::custom("a key twice")),
                    Key::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            if pipeline == Some(true) && detail_type {
                self.0.set(Shape::SnsPipelineNotifications);
            }
            Ok(())
        }
    }
    let found = std::cell::Cell::new(Shape::Unknown);
    let mut de = serde_json::Deserializer::from_str(message);
    match de.deserialize_map(Keys(&found)).and_then(|()| de.end()) {
        Ok(()) => found.get(),
        // Stopped at `AlarmName`, or a document that does not read: what was found, if anything.
        Err(_) if found.get() == Shape::SnsAlarmMessages => Shape::SnsAlarmMessages,
        Err(_) => Shape::Unknown,
    }
}

/// The top-level keys [`Shape::of`] reads, read from JSON text without building a tree: other keys
/// are skipped, SNS records are read in full (typed) since they are the event. Any other type where a
/// key is expected, or a record that does not read, is an error, and the caller falls back to
/// [`Shape::of`] on the whole document (which this must always agree with).
#[derive(Deserialize)]
struct TopKeys<'a> {
    #[serde(rename = "DeploymentId", default)]
    deployment_id: Present,
    #[serde(rename = "LifecycleEventHookExecutionId", default)]
    hook_execution_id: Present,
    #[serde(rename = "Records", default, deserialize_with = "records")]
    records: Option<Vec<SnsRecord>>,
    #[serde(rename = "alarmData", default)]
    alarm_data: Present,
    #[serde(borrow, default)]
    source: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "detailType", default)]
    detail_type_camel: Present,
    /// There (even `null`), and its text if it is text.
    #[serde(rename = "detail-type", borrow, default, deserialize_with = "there")]
    detail_type: Option<Option<std::borrow::Cow<'a, str>>>,
}

fn records<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<SnsRecord>>, D::Error> {
    #[derive(Deserialize)]
    struct Records(#[serde(deserialize_with = "lenient::objects")] Vec<SnsRecord>);
    Ok(Option::<Records>::deserialize(d)?.map(|r| r.0))
}

fn there<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A key that is there, whatever its value (`null` included), as `Value::get(..).is_some()`.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

impl Shape {
    /// [`Shape::of`] for JSON text, without reading it into a tree first (the common case: the
    /// invocation as Lambda hands it over).
    pub fn of_json(text: &str) -> Shape {
        Shape::read_json(text).0
    }

    /// [`Shape::of_json`], and the SNS event when the text is one, read in the same pass (not to
    /// be read again). `None` for an SNS event too unusual for that pass: parse it as usual.
    pub fn read_json(text: &str) -> (Shape, Option<SnsEvent>) {
        // Lambda's SNS event, read by hand when it is exactly that (every classic alarm comes in
        // one); anything else, or anything it is not sure of, is read as below.
        if let Some(records) = super::sns_envelope::read(text) {
            let message = records.first().map(|r| r.sns.message.as_str());
            let shape = Shape::judge(false, message, false, "", false, false, "");
            return (shape, Some(SnsEvent { records }));
        }
        Shape::read_json_serde(text)
    }

    /// [`Shape::read_json`] by serde alone: the top-level keys typed, and the tree when they do not
    /// read.
    pub(crate) fn read_json_serde(text: &str) -> (Shape, Option<SnsEvent>) {
        // Only an object has keys (a derived struct would also read an array, field by field).
        let object = text.trim_start().starts_with('{');
        match serde_json::from_str::<TopKeys>(text) {
            Ok(keys) if object => {
                let shape = Shape::judge(
                    keys.deployment_id.0 && keys.hook_execution_id.0,
                    keys.records.as_ref().and_then(|r| r.first()).map(|r| r.sns.message.as_str()),
                    keys.alarm_data.0,
                    keys.source.as_deref().unwrap_or(""),
                    keys.detail_type_camel.0,
                    keys.detail_type.is_some(),
                    keys.detail_type.as_ref().and_then(|t| t.as_deref()).unwrap_or(""),
                );
                (shape, keys.records.map(|records| SnsEvent { records }))
            }
            // An unusual document (a key of another type, a key twice, not an object): the tree
            // decides, as it always would.
            _ => {
                (serde_json::from_str::<serde_json::Value>(text).map(|v| Shape::of(&v)).unwrap_or(Shape::Unknown), None)
            }
        }
    }

    pub fn of(value: &serde_json::Value) -> Shape {
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("");
        Shape::judge(
            value.get("DeploymentId").is_some() && value.get("LifecycleEventHookExecutionId").is_some(),
            value.pointer("/Records/0/Sns/Message").and_then(|m| m.as_str()),
            value.get("alarmData").is_some(),
            text("source"),
            value.get("detailType").is_some(),
            value.get("detail-type").is_some(),
            text("detail-type"),
        )
    }

    fn judge(
        hook: bool,
        sns_message: Option<&str>,
        alarm_data: bool,
        source: &str,
        detail_type_camel: bool,
        detail_type_there: bool,
        detail_type: &str,
    ) -> Shape {
        if hook {
            return Shape::CodeDeployHook;
        }
        if let Some(message) = sns_message {
            // Only the keys that tell the shape: the message is parsed in full once, later.
            return inner_shape(message);
        }
        if alarm_data {
            return Shape::AlarmLambdaAction;
        }
        if source == "aws.codepipeline" && detail_type_camel {
            return Shape::CodePipelineNotification;
        }
        if source == "aws.codepipeline" && detail_type_there {
            return Shape::CodePipelineEvent;
        }
        if source == "aws.cloudwatch" && detail_type.starts_with("CloudWatch Alarm") {
            return Shape::AlarmStateChange;
        }
        if source == "aws.events" && detail_type == "Scheduled Event" {
            return Shape::ScheduledEvent;
        }
        if source == "pipewarden.alarm-fanout" && detail_type == "Alarm Timer" {
            return Shape::AlarmFanoutTimer;
        }
        Shape::Unknown
    }

    /// The function that handles this shape, if any.
    pub fn function(self) -> Option<&'static str> {
        match self {
            Shape::CodePipelineEvent
            | Shape::CodePipelineNotification
            | Shape::SnsPipelineNotifications
            | Shape::ScheduledEvent => Some("pipeline-notifier"),
            Shape::AlarmStateChange | Shape::AlarmLambdaAction | Shape::SnsAlarmMessages | Shape::AlarmFanoutTimer => {
                Some("alarm-fanout")
            }
            Shape::CodeDeployHook => Some("deploy-validator"),
            Shape::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{inner_shape, Shape};

    #[test]
    fn an_sns_message_is_told_by_its_keys_read_only_as_far_as_they_tell() {
        let alarm = r#"{"AlarmName": "web-5xx", "NewStateValue": "ALARM"}"#;
        assert_eq!(inner_shape(alarm), Shape::SnsAlarmMessages);
        // Read up to `AlarmName`: what follows is the full parse's to judge (it names the field).
        assert_eq!(inner_shape(r#"{"AlarmName": "web-5xx", "NewStateValue": }"#), Shape::SnsAlarmMessages);
        assert_eq!(inner_shape(r#"{"Trigger": {"Period": 60}, "AlarmName": "db"}"#), Shape::SnsAlarmMessages);
        assert_eq!(inner_shape(r#"{"source": null, "AlarmName": "db"}"#), Shape::SnsAlarmMessages);
        let pipeline = r#"{"account": "1", "detailType": "CodePipeline Pipeline Execution State Change", "source": "aws.codepipeline", "detail": {}}"#;
        assert_eq!(inner_shape(pipeline), Shape::SnsPipelineNotifications);
        assert_eq!(
            inner_shape(r#"{"source": "aws.codepipeline", "detailType": null}"#),
            Shape::SnsPipelineNotifications
        );
        for neither in [
            r#"{"source": "aws.codepipeline"}"#,
            r#"{"source": "aws.codebuild", "detailType": "x"}"#,
            r#"{"source": 1, "detailType": "x"}"#,
            r#"{"source": "aws.codepipeline", "detailType": "x", "source": "aws.codepipeline"}"#,
            r#"{"source": "aws.codepipeline", "detailType": "x""#,
            r#"["AlarmName"]"#,
            "AlarmName",
            "",
        ] {
            assert_eq!(inner_shape(neither), Shape::Unknown, "{neither}");
        }
    }
}
