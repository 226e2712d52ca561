//! Lambda's SNS event read by hand, when it is exactly that: `{"Records": [{..., "Sns": {...,
//! "MessageId": "...", "TopicArn": "...", "Message": "..."}}, ...]}`.
//!
//! Every classic CloudWatch alarm reaches alarm-fanout in one, and its `Message` is JSON escaped
//! inside JSON: a backslash every few characters. serde_json's string reader stops at each one
//! (a search, a copy, the escape), which made the envelope the largest part of an alarm's CPU. Here
//! the body is read in one pass: strings are searched eight bytes at a time for a quote, a
//! backslash or a control character, the message is unescaped run by run, and everything that is
//! not read is checked and skipped.
//!
//! Anything this reader is not sure of is `None`, and the serde reader decides, as it always did:
//! another top-level key, a key with an escape in it, a key read twice, a
//! `null` or another type where text is expected, a lone surrogate in a read string, nesting
//! deeper than a hundred levels, text after the document. When it answers, it answers what the
//! serde reader would (a property test in this file holds it to that).

use super::cursor::{once, Cursor};
use super::sns::{SnsMessage, SnsRecord};

/// The SNS records of `text` when it is a plain SNS event; `None`: ask the serde reader.
pub fn read(text: &str) -> Option<Vec<SnsRecord>> {
    let mut at = Cursor::new(text);
    at.expect(b'{')?;
    // Lambda's SNS event has one top-level key.
    if at.key()? != b"Records" {
        return None;
    }
    at.expect(b'[')?;
    let mut records = Vec::new();
    at.members(b']', |at| {
        records.push(at.record()?);
        Some(())
    })?;
    // Any other key after it: the serde reader decides.
    at.expect(b'}')?;
    at.finished().then_some(records)
}

impl Cursor<'_> {
    /// One record: an object whose `Sns` is read, once; every other value skipped.
    fn record(&mut self) -> Option<SnsRecord> {
        let mut sns = None;
        self.object(|at, key| match key {
            b"Sns" => once(&mut sns, at.message()),
            _ => at.skip(1),
        })?;
        Some(SnsRecord { sns: sns? })
    }

    /// The `Sns` object: `MessageId` and `Message` (text, required) and `TopicArn` (text, `null`
    /// or absent: empty), each once; every other value skipped.
    fn message(&mut self) -> Option<SnsMessage> {
        let (mut message_id, mut topic_arn, mut message) = (None, None, None);
        self.object(|at, key| match key {
            b"MessageId" => once(&mut message_id, at.text_or_null()),
            b"TopicArn" => once(&mut topic_arn, at.text_or_null()),
            b"Message" => once(&mut message, at.text_or_null()),
            _ => at.skip(2),
        })?;
        Some(SnsMessage {
            // `null` is text missing: serde refuses it where text is required.
            message_id: message_id??,
            topic_arn: topic_arn.flatten().unwrap_or_default(),
            message: message??,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::cursor::generate::{json_string, value};
    use crate::events::eventbridge::Shape;
    use proptest::prelude::*;

    /// What the serde reader makes of `text`: its SNS records, or `None`.
    fn by_serde(text: &str) -> Option<Vec<SnsRecord>> {
        Shape::read_json_serde(text).1.map(|e| e.records)
    }

    #[test]
    fn every_sample_sns_event_is_read_here_as_serde_reads_it() {
        let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut read = 0;
        for entry in std::fs::read_dir(events).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.contains("\"Records\"") {
                continue;
            }
            let fast = super::read(&text);
            assert!(fast.is_some(), "{} is not read by hand", path.display());
            assert_eq!(fast, by_serde(&text), "{}", path.display());
            read += 1;
        }
        assert!(read >= 3, "only {read} SNS sample events");
    }

    #[test]
    fn what_it_is_not_sure_of_is_left_to_serde() {
        let sns = |inner: &str| format!(r#"{{"Records": [{{"Sns": {{{inner}}}}}]}}"#);
        for text in [
            // Another top-level key; text after the document.
            r#"{"Records": [], "source": "aws.codepipeline"}"#.to_string(),
            r#"{"Records": []} x"#.to_string(),
            // A number serde refuses, a key with an escape, a key twice.
            sns(r#""MessageId": "m", "Message": "x", "Size": 01"#),
            sns(r#""MessageId": "m", "Message": "x", "Size": 1."#),
            sns(r#""MessageId": "m", "Message": "x", "Size": -"#),
            sns(r#""MessageId": "m", "Mess\u0061ge": "x""#),
            sns(r#""MessageId": "m", "Message": "x", "Message": "y""#),
            // null where text is required; a lone surrogate in a read string.
            sns(r#""MessageId": null, "Message": "x""#),
            sns(r#""MessageId": "m", "Message": "\ud800""#),
            // An array where an object is expected.
            r#"{"Records": [[]]}"#.to_string(),
        ] {
            assert_eq!(super::read(&text), None, "{text}");
        }
        // Read here: a null or missing TopicArn is empty, escapes of every kind, skipped values.
        let text = sns(
            r#""MessageId": "m", "TopicArn": null, "Message": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "X": [true, false, null, {"k": "\udc00"}, 0, -1.5e-3, 10E+2]"#,
        );
        let records = super::read(&text).expect("read by hand");
        assert_eq!(records[0].sns.message, "a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}");
        assert_eq!(records[0].sns.topic_arn, "");
        assert_eq!(Some(records), by_serde(&text));
    }

    /// Keys as the envelope has them, now and then twice, escaped or unknown.
    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "\"TopicArn\"",
            "\"TopicArn\"",
            "\"Type\"",
            "\"Subject\"",
            "\"Signature\"",
            "\"MessageAttributes\"",
            "\"MessageId\"",
            "\"Message\"",
            "\"Mess\\u0061ge\"",
        ])
        .prop_map(str::to_string)
    }

    fn sns_fields() -> impl Strategy<Value = String> {
        let field = (key(), prop_oneof![4 => json_string(), 1 => value(), 1 => Just("null".to_string())]);
        (json_string(), json_string(), prop::collection::vec(field, 0..3), any::<u8>()).prop_map(
            |(id, message, extra, order)| {
                let mut fields = vec![format!("\"MessageId\": {id}"), format!("\"Message\": {message}")];
                fields.extend(extra.into_iter().map(|(k, v)| format!("{k}: {v}")));
                let turn = order as usize % fields.len();
                fields.rotate_left(turn);
                fields.join(",\n ")
            },
        )
    }

    fn envelope() -> impl Strategy<Value = String> {
        // Mostly as Lambda sends it; now and then `Sns` twice, missing, `null` or an array, a
        // record that is not an object, a trailing comma.
        let sns = prop_oneof![
            8 => sns_fields().prop_map(|f| format!("\"Sns\": {{{f}}}")),
            1 => sns_fields().prop_map(|f| format!("\"Sns\": {{{f}}}, \"Sns\": {{{f}}}")),
            1 => prop::sample::select(vec!["\"Sns\": null", "\"Sns\": []", "\"Type\": \"x\"", "\"Sns\": {},"])
                .prop_map(str::to_string),
        ];
        let record = prop_oneof![
            12 => (sns, prop::collection::vec(value(), 0..2)).prop_map(|(sns, others)| {
                let mut fields = vec![sns];
                fields.extend(others.into_iter().enumerate().map(|(i, v)| format!("\"Event{i}\": {v}")));
                format!("{{{}}}", fields.join(", "))
            }),
            1 => prop::sample::select(vec!["null", "[]", "\"x\"", "{}"]).prop_map(str::to_string),
        ];
        let head = prop::sample::select(vec![
            "{ \"Records\" : [",
            "{\"Records\":[",
            "{\r\n\"Records\": [",
            "{\"Records\": [",
            "{\"Records\": [",
            "{\"x\": 1, \"Records\": [",
        ]);
        let tail = prop::sample::select(vec!["]}", " ] } ", "]}\n\t", "]}", "]}", "], \"x\": 1}", "]} x", ",]}"]);
        prop_oneof![
            20 => (head, prop::collection::vec(record, 1..3), tail)
                .prop_map(|(head, records, tail)| format!("{head}{}{tail}", records.join(","))),
            1 => prop::sample::select(vec!["{\"Records\": null}", "{\"Records\": {}}"]).prop_map(str::to_string),
        ]
    }

    #[test]
    fn what_it_reads_is_what_serde_reads() {
        let config = ProptestConfig::default();
        let cases = config.cases;
        let mut runner = proptest::test_runner::TestRunner::new(config);
        let read = std::cell::Cell::new(0u32);
        runner
            .run(&envelope(), |text| {
                if let Some(records) = super::read(&text) {
                    // Counted: reads of a record whose message had an escape in it.
                    if records.iter().any(|r| r.sns.message.contains(['"', '\\', '/', '\n', '\u{8}', '\t'])) {
                        read.set(read.get() + 1);
                    }
                    prop_assert_eq!(Some(records), by_serde(&text), "{}", text);
                }
                Ok(())
            })
            .unwrap();
        // Not vacuous: a good share of the generated envelopes, with escaped messages, are read here.
        eprintln!("{} of {cases} envelopes read by hand with an escape in a message", read.get());
        assert!(read.get() * 40 >= cases, "only {} of {cases} envelopes read by hand", read.get());
    }
}
