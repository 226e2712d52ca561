//! CloudWatch's classic alarm message (the `Message` of an alarm's SNS notification) read by hand.
//!
//! Every classic alarm alarm-fanout receives is one, and serde_json's typed parse of it (an
//! `Option` and a `String` per field, every key matched, every skipped value walked by its
//! visitor) was the largest part of an alarm's CPU once the SNS envelope was read by hand. Here
//! it is read in one pass over [`Cursor`], into the same [`ClassicAlarmMessage`].
//!
//! As the envelope's reader, this one answers only when it is sure: when it answers, it answers
//! what the serde model would (a property test in this file holds it to that); anything else is
//! `None`, and the serde model reads the message, and names what is wrong with it, as before.
//! Left to serde: a key with an escape, a key given twice, a value of another type than the one
//! AWS sends (a number as text, a struct as an array, a boolean as text, a tag that is not text),
//! a whole number with a fraction or beyond 18 digits, a lone surrogate in a read string, text
//! after the document.

use std::collections::BTreeMap;

use super::cloudwatch::{
    AlarmStateValue, ClassicAlarmMessage, ClassicChildState, ClassicDimension, ClassicMetric, ClassicMetricQuery,
    ClassicMetricStat, ClassicTrigger, ClassicTriggeringChild,
};
use super::cursor::{once, Cursor};

/// The message of `text`, when it reads here; `None`: ask the serde model.
pub(super) fn read(text: &str) -> Option<ClassicAlarmMessage> {
    let mut at = Cursor::new(text);
    let message = at.classic()?;
    at.finished().then_some(message)
}

impl Cursor<'_> {
    /// A list of objects (`null`: empty), as `lenient::null_as_default` reads one.
    fn list<T>(&mut self, mut each: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let items = self.or_null(|at| {
            at.expect(b'[')?;
            let mut items = Vec::new();
            at.members(b']', |at| {
                items.push(each(at)?);
                Some(())
            })?;
            Some(items)
        })?;
        Some(items.unwrap_or_default())
    }

    /// An alarm state, read from the text where it lies.
    fn state(&mut self) -> Option<AlarmStateValue> {
        self.text().map(|text| AlarmStateValue::parse(&text))
    }

    /// `lenient::whole_number`, for the plain digits AWS sends (`60`); `null`: none.
    fn whole(&mut self) -> Option<Option<u64>> {
        self.or_null(|at| {
            let number = at.number()?;
            // 18 digits always fit, and are read exactly as serde reads them.
            (number.len() <= 18 && number.bytes().all(|b| b.is_ascii_digit())).then(|| number.parse().ok())?
        })
    }

    /// `lenient::decimal`, for a number; `null`: none.
    fn decimal(&mut self) -> Option<Option<f64>> {
        // serde_json's own reading of the number's text: its float algorithm, not the standard
        // library's, so that the last bit is the same.
        self.or_null(|at| serde_json::from_str::<f64>(at.number()?).ok())
    }

    /// `lenient::boolean`, for `true` and `false`; `null`: none.
    fn boolean(&mut self) -> Option<Option<bool>> {
        self.or_null(|at| match at.peek()? {
            b't' => at.literal(b"true").map(|()| true),
            _ => at.literal(b"false").map(|()| false),
        })
    }

    fn classic(&mut self) -> Option<ClassicAlarmMessage> {
        let (mut name, mut new_state, mut old_state) = (None, None, None);
        let (mut description, mut account, mut reason, mut time, mut arn, mut rule, mut tags_status) =
            (None, None, None, None, None, None, None);
        let (mut trigger, mut children, mut tags) = (None, None, None);
        self.object(|at, key| match key {
            b"AlarmName" => once(&mut name, at.string()),
            b"AlarmDescription" => once(&mut description, at.text_or_null()),
            b"AWSAccountId" => once(&mut account, at.text_or_null()),
            b"NewStateValue" => once(&mut new_state, at.state()),
            b"NewStateReason" => once(&mut reason, at.text_or_null()),
            b"StateChangeTime" => once(&mut time, at.text_or_null()),
            b"AlarmArn" => once(&mut arn, at.text_or_null()),
            b"OldStateValue" => once(&mut old_state, at.or_null(Self::state)),
            b"Trigger" => once(&mut trigger, at.or_null(Self::trigger)),
            b"AlarmRule" => once(&mut rule, at.text_or_null()),
            b"TriggeringChildren" => once(&mut children, at.list(Self::child)),
            b"AlarmTags" => once(&mut tags, at.tags()),
            b"AlarmTagsStatus" => once(&mut tags_status, at.text_or_null()),
            _ => at.skip(1),
        })?;
        Some(ClassicAlarmMessage {
            alarm_name: name?,
            alarm_description: description.flatten(),
            aws_account_id: account.flatten(),
            new_state_value: new_state?,
            new_state_reason: reason.flatten(),
            state_change_time: time.flatten(),
            alarm_arn: arn.flatten(),
            old_state_value: old_state.flatten(),
            trigger: trigger.flatten(),
            alarm_rule: rule.flatten(),
            triggering_children: children.unwrap_or_default(),
            alarm_tags: tags.unwrap_or_default(),
            alarm_tags_status: tags_status.flatten(),
        })
    }

    fn trigger(&mut self) -> Option<ClassicTrigger> {
        let (mut metric_name, mut namespace, mut statistic, mut extended, mut operator) =
            (None, None, None, None, None);
        let (mut dimensions, mut period, mut threshold, mut metrics) = (None, None, None, None);
        self.object(|at, key| match key {
            b"MetricName" => once(&mut metric_name, at.text_or_null()),
            b"Namespace" => once(&mut namespace, at.text_or_null()),
            b"Statistic" => once(&mut statistic, at.text_or_null()),
            b"ExtendedStatistic" => once(&mut extended, at.text_or_null()),
            b"Dimensions" => once(&mut dimensions, at.list(Self::dimension)),
            b"Period" => once(&mut period, at.whole()),
            b"ComparisonOperator" => once(&mut operator, at.text_or_null()),
            b"Threshold" => once(&mut threshold, at.decimal()),
            b"Metrics" => once(&mut metrics, at.list(Self::metric_query)),
            _ => at.skip(2),
        })?;
        Some(ClassicTrigger {
            metric_name: metric_name.flatten(),
            namespace: namespace.flatten(),
            statistic: statistic.flatten(),
            extended_statistic: extended.flatten(),
            dimensions: dimensions.unwrap_or_default(),
            period: period.flatten(),
            comparison_operator: operator.flatten(),
            threshold: threshold.flatten(),
            metrics: metrics.unwrap_or_default(),
        })
    }

    /// `{"name": ..., "value": ...}` (or `Name`, `Value`; either, not both): a name is text, a
    /// value text or `null`, and either may be missing (empty).
    fn dimension(&mut self) -> Option<ClassicDimension> {
        let (mut name, mut value) = (None, None);
        self.object(|at, key| match key {
            b"name" | b"Name" => once(&mut name, at.string()),
            b"value" | b"Value" => once(&mut value, at.text_or_null()),
            _ => at.skip(5),
        })?;
        Some(ClassicDimension { name: name.unwrap_or_default(), value: value.flatten().unwrap_or_default() })
    }

    fn metric_query(&mut self) -> Option<ClassicMetricQuery> {
        let (mut id, mut expression, mut label, mut return_data, mut metric_stat) = (None, None, None, None, None);
        self.object(|at, key| match key {
            b"Id" => once(&mut id, at.text_or_null()),
            b"Expression" => once(&mut expression, at.text_or_null()),
            b"Label" => once(&mut label, at.text_or_null()),
            b"ReturnData" => once(&mut return_data, at.boolean()),
            b"MetricStat" => once(&mut metric_stat, at.or_null(Self::metric_stat)),
            _ => at.skip(5),
        })?;
        Some(ClassicMetricQuery {
            id: id.flatten(),
            expression: expression.flatten(),
            label: label.flatten(),
            return_data: return_data.flatten(),
            metric_stat: metric_stat.flatten(),
        })
    }

    fn metric_stat(&mut self) -> Option<ClassicMetricStat> {
        let (mut metric, mut period, mut stat) = (None, None, None);
        self.object(|at, key| match key {
            // An object: the model has no `null` for it.
            b"Metric" => once(&mut metric, at.metric()),
            b"Period" => once(&mut period, at.whole()),
            b"Stat" => once(&mut stat, at.text_or_null()),
            _ => at.skip(6),
        })?;
        Some(ClassicMetricStat { metric: metric.unwrap_or_default(), period: period.flatten(), stat: stat.flatten() })
    }

    fn metric(&mut self) -> Option<ClassicMetric> {
        let (mut namespace, mut metric_name, mut dimensions) = (None, None, None);
        self.object(|at, key| match key {
            b"Namespace" => once(&mut namespace, at.text_or_null()),
            b"MetricName" => once(&mut metric_name, at.text_or_null()),
            b"Dimensions" => once(&mut dimensions, at.list(Self::dimension)),
            _ => at.skip(7),
        })?;
        Some(ClassicMetric {
            namespace: namespace.flatten(),
            metric_name: metric_name.flatten(),
            dimensions: dimensions.unwrap_or_default(),
        })
    }

    /// A composite alarm's child: its ARN (text, required) and state.
    fn child(&mut self) -> Option<ClassicTriggeringChild> {
        let (mut arn, mut state) = (None, None);
        self.object(|at, key| match key {
            b"Arn" => once(&mut arn, at.string()),
            b"State" => once(&mut state, at.or_null(Self::child_state)),
            _ => at.skip(3),
        })?;
        Some(ClassicTriggeringChild { arn: arn?, state: state.flatten() })
    }

    fn child_state(&mut self) -> Option<ClassicChildState> {
        let (mut value, mut timestamp) = (None, None);
        self.object(|at, key| match key {
            b"Value" => once(&mut value, at.state()),
            b"Timestamp" => once(&mut timestamp, at.text_or_null()),
            _ => at.skip(4),
        })?;
        Some(ClassicChildState { value: value?, timestamp: timestamp.flatten() })
    }

    /// `AlarmTags` as an object of text (`null`: none); a key given twice keeps its last value,
    /// as the model's tree does. A list of `{Key, Value}`, or a value that is not text: serde's.
    fn tags(&mut self) -> Option<BTreeMap<String, String>> {
        let tags = self.or_null(|at| {
            let mut tags = BTreeMap::new();
            at.object(|at, key| {
                // serde_json's tree gives keys of this form a meaning of their own when its
                // `raw_value` feature is on: left to it.
                if key.starts_with(b"$serde_json::private::") {
                    return None;
                }
                let key = std::str::from_utf8(key).ok()?.to_owned();
                tags.insert(key, at.string()?);
                Some(())
            })?;
            Some(tags)
        })?;
        Some(tags.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::cursor::generate::{clean_json_string, json_string, number, value};
    use proptest::prelude::*;

    /// What the serde model makes of `text` in a typed read (stricter than `parse_str`, whose tree
    /// takes the last of a key given twice; a typed read refuses it, and so must this reader).
    fn by_serde(text: &str) -> Option<ClassicAlarmMessage> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn every_sample_classic_alarm_is_read_here_as_serde_reads_it() {
        let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut read = 0;
        for entry in std::fs::read_dir(events).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            for record in event["Records"].as_array().into_iter().flatten() {
                let message = record["Sns"]["Message"].as_str().unwrap_or_default();
                if message.contains("\"AlarmName\"") {
                    assert_eq!(super::read(message), by_serde(message), "{message}");
                    assert!(super::read(message).is_some(), "not read by hand: {message}");
                    read += 1;
                }
            }
        }
        // The metric alarm, the composite and the two metric-math alarms of the batch.
        assert!(read >= 4, "only {read} classic alarm messages");
    }

    #[test]
    fn what_it_is_not_sure_of_is_left_to_serde() {
        let message = |fields: &str| format!(r#"{{"AlarmName": "web", "NewStateValue": "ALARM", {fields}}}"#);
        for text in [
            // A key with an escape, a key twice (also by its other spelling), text after it.
            r#"{"Alarm\u004eame": "web", "NewStateValue": "ALARM"}"#.to_string(),
            message(r#""AlarmArn": "a", "AlarmArn": "b""#),
            message(r#""Trigger": {"Dimensions": [{"name": "a", "Name": "b"}]}"#),
            format!("{} x", message(r#""X": 1"#)),
            // Required text missing or null; a lone surrogate in read text.
            r#"{"AlarmName": "web"}"#.to_string(),
            r#"{"AlarmName": null, "NewStateValue": "ALARM"}"#.to_string(),
            message(r#""AlarmDescription": "\ud800""#),
            // Other types than AWS sends: numbers as text, a fraction, a struct as an array,
            // a boolean as text, tags as a list or not text.
            message(r#""Trigger": {"Period": "60"}"#),
            message(r#""Trigger": {"Period": 60.0}"#),
            message(r#""Trigger": {"Period": 1234567890123456789}"#),
            message(r#""Trigger": {"Threshold": "5.0"}"#),
            message(r#""Trigger": ["m"]"#),
            message(r#""Trigger": {"Metrics": [{"ReturnData": "true"}]}"#),
            message(r#""AlarmTags": [{"Key": "team", "Value": "web"}]"#),
            message(r#""AlarmTags": {"tier": 1}"#),
            // What serde refuses: a number it does not read.
            message(r#""X": 01"#),
        ] {
            assert_eq!(super::read(&text), None, "{text}");
        }
        // Read here: nulls, escapes, numbers in every form, tags, skipped values of every kind.
        let text = message(
            r#""AlarmDescription": null, "NewStateReason": "a\"b\u00e9\n", "OldStateValue": null, "Trigger": {"Period": 60, "Threshold": -2.5e-1, "Dimensions": null, "Metrics": [{"ReturnData": true, "MetricStat": {"Metric": {"Dimensions": [{"Value": null}]}, "Period": 0}}]}, "AlarmTags": {"team": "web", "team": "api"}, "X": [1, -0.5E+3, {"y": null}]"#,
        );
        let read = super::read(&text).expect("read by hand");
        assert_eq!(read.new_state_reason.as_deref(), Some("a\"b\u{e9}\n"));
        assert_eq!(read.trigger.as_ref().and_then(|t| t.threshold), Some(-0.25));
        assert_eq!(read.alarm_tags["team"], "api", "the last of a key given twice");
        assert_eq!(Some(read), by_serde(&text));
    }

    /// An object of `fields` (the first `required` always there, the others four times in five, in
    /// any order), with keys the model does not know, and now and then a key given twice or escaped.
    fn object_of(required: usize, fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
        let present: Vec<_> = fields
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let odds = if i < required { 1.0 } else { 0.8 };
                (prop::bool::weighted(odds), value).prop_map(move |(p, v)| p.then(|| format!("\"{key}\": {v}")))
            })
            .collect();
        let unknown_value = prop_oneof![6 => clean_json_string().boxed(), 2 => number().boxed(), 1 => value().boxed()];
        let unknown = prop::collection::vec(
            (prop::sample::select(vec!["Region", "OKActions", "EvaluationPeriods", "Unit", "name"]), unknown_value),
            0..3,
        );
        (present, unknown, any::<u64>(), 0u8..60)
            .prop_map(|(present, unknown, mut seed, twist)| {
                let mut fields: Vec<String> = present.into_iter().flatten().collect();
                fields.extend(unknown.into_iter().map(|(k, v)| format!("\"{k}\": {v}")));
                if let (0, Some(first)) = (twist, fields.first().cloned()) {
                    fields.push(first);
                }
                if let (1, Some(first)) = (twist, fields.first_mut()) {
                    *first = first.replacen('e', "\\u0065", 1);
                }
                for i in (1..fields.len()).rev() {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    fields.swap(i, (seed >> 33) as usize % (i + 1));
                }
                // JSON's four whitespace characters around the punctuation, and now and then a
                // form feed or a vertical tab, which serde refuses there.
                let pick = |seed: &mut u64| {
                    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    match (*seed >> 33) % 4096 {
                        0 => "\u{c}",
                        1 => "\u{b}",
                        roll @ 2..200 => ["\n  ", "\t", "\r\n", "  ", " \t\n"][roll as usize % 5],
                        roll => ["", " "][roll as usize % 2],
                    }
                };
                let mut text = String::from("{");
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        text.push_str(pick(&mut seed));
                        text.push(',');
                    }
                    text.push_str(pick(&mut seed));
                    // The colon after the key (the first `": ` of the field, whose key has no escaped quote).
                    let colon = field.find("\": ").map_or(0, |at| at + 1);
                    text.push_str(&field[..colon]);
                    text.push_str(pick(&mut seed));
                    text.push(':');
                    text.push_str(&field[colon + 2..]);
                }
                text.push_str(pick(&mut seed));
                text.push('}');
                text
            })
            .boxed()
    }

    /// Text as AWS sends it, now and then text serde refuses, `null` or another type.
    fn text() -> BoxedStrategy<String> {
        prop_oneof![40 => clean_json_string().boxed(), 1 => json_string().boxed(), 2 => Just("null".to_string()).boxed(), 1 => value().boxed()].boxed()
    }

    fn state() -> BoxedStrategy<String> {
        prop_oneof![
            20 => prop::sample::select(vec!["\"ALARM\"", "\"OK\"", "\"INSUFFICIENT_DATA\"", "\"alarm\"", "\"AL\\u0041RM\""])
                .prop_map(str::to_string),
            1 => text(),
        ]
        .boxed()
    }

    fn list(element: BoxedStrategy<String>) -> BoxedStrategy<String> {
        prop_oneof![
            16 => prop::collection::vec(element, 0..3).prop_map(|v| format!("[{}]", v.join(", "))).boxed(),
            1 => Just("null".to_string()).boxed(),
            1 => value().boxed(),
        ]
        .boxed()
    }

    fn or_null(strategy: BoxedStrategy<String>) -> BoxedStrategy<String> {
        prop_oneof![16 => strategy, 1 => Just("null".to_string()).boxed(), 1 => value().boxed()].boxed()
    }

    fn numeric() -> BoxedStrategy<String> {
        let plain = (0u64..100_000).prop_map(|n| n.to_string());
        prop_oneof![20 => plain.boxed(), 3 => number().boxed(), 1 => Just("null".to_string()).boxed(), 1 => value().boxed()].boxed()
    }

    fn dimension() -> BoxedStrategy<String> {
        prop_oneof![
            4 => object_of(0, vec![("name", text()), ("value", text())]),
            1 => object_of(0, vec![("Name", text()), ("Value", text())]),
        ]
        .boxed()
    }

    fn trigger() -> BoxedStrategy<String> {
        let metric =
            object_of(0, vec![("Namespace", text()), ("MetricName", text()), ("Dimensions", list(dimension()))]);
        let stat = object_of(0, vec![("Metric", or_null(metric)), ("Period", numeric()), ("Stat", text())]);
        let boolean = prop::sample::select(vec!["true", "false", "true", "false", "null", "\"true\"", "1"])
            .prop_map(str::to_string);
        let query = object_of(
            0,
            vec![
                ("Id", text()),
                ("Expression", text()),
                ("Label", text()),
                ("ReturnData", boolean.boxed()),
                ("MetricStat", or_null(stat)),
            ],
        );
        object_of(
            0,
            vec![
                ("MetricName", text()),
                ("Namespace", text()),
                ("Statistic", text()),
                ("ExtendedStatistic", text()),
                ("Dimensions", list(dimension())),
                ("Period", numeric()),
                ("ComparisonOperator", text()),
                ("Threshold", numeric()),
                ("Metrics", list(query)),
            ],
        )
    }

    fn classic() -> BoxedStrategy<String> {
        let child_state = object_of(1, vec![("Value", state()), ("Timestamp", text())]);
        let child = object_of(1, vec![("Arn", text()), ("State", or_null(child_state))]);
        let tag = (clean_json_string(), prop_oneof![6 => clean_json_string().boxed(), 1 => value().boxed()]);
        let tags = prop_oneof![
            6 => prop::collection::vec(tag, 0..3).prop_map(|kv| {
                let pairs: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", pairs.join(", "))
            }),
            1 => Just("null".to_string()),
            1 => Just(r#"[{"Key": "team", "Value": "web"}]"#.to_string()),
        ];
        let message = object_of(
            2,
            vec![
                ("AlarmName", prop_oneof![12 => clean_json_string().boxed(), 1 => text()].boxed()),
                ("NewStateValue", state()),
                ("AlarmDescription", text()),
                ("AWSAccountId", text()),
                ("NewStateReason", text()),
                ("StateChangeTime", text()),
                ("AlarmArn", text()),
                ("OldStateValue", state()),
                ("Trigger", or_null(trigger())),
                ("AlarmRule", text()),
                ("TriggeringChildren", list(child)),
                ("AlarmTags", tags.boxed()),
                ("AlarmTagsStatus", text()),
            ],
        );
        let tail = prop::sample::select(vec!["", "", "", "", "", "\n", " \r\n\t", " x", ","]);
        (message, tail).prop_map(|(m, t)| format!("{m}{t}")).boxed()
    }

    #[test]
    fn what_it_reads_is_what_serde_reads() {
        // A thousand cases at least (PROPTEST_CASES may ask for more): an eighth of them are read
        // here, and the share checked below must not depend on the luck of a small run.
        let config = ProptestConfig { cases: ProptestConfig::default().cases.max(1000), ..ProptestConfig::default() };
        let cases = config.cases;
        let mut runner = proptest::test_runner::TestRunner::new(config);
        let (read, with_trigger) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
        runner
            .run(&classic(), |text| {
                if let Some(message) = super::read(&text) {
                    read.set(read.get() + 1);
                    if message.trigger.as_ref().is_some_and(|t| !t.dimensions.is_empty() || !t.metrics.is_empty()) {
                        with_trigger.set(with_trigger.get() + 1);
                    }
                    prop_assert_eq!(Some(message), by_serde(&text), "{}", text);
                }
                Ok(())
            })
            .unwrap();
        // Not vacuous: a good share of the generated messages, triggers with lists among them, are read here.
        eprintln!("{} of {cases} messages read by hand, {} with a trigger's list", read.get(), with_trigger.get());
        assert!(read.get() * 20 >= cases, "only {} of {cases} messages read by hand", read.get());
        assert!(with_trigger.get() * 100 >= cases, "only {} of {cases} with a trigger's list", with_trigger.get());
    }
}
