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
//! another top-level key, a number anywhere, a key with an escape in it, a key read twice, a
//! `null` or another type where text is expected, a lone surrogate in a read string, nesting
//! deeper than a hundred levels, text after the document. When it answers, it answers what the
//! serde reader would (a property test in this file holds it to that).

use super::sns::{SnsMessage, SnsRecord};

/// The SNS records of `text` when it is a plain SNS event; `None`: ask the serde reader.
pub fn read(text: &str) -> Option<Vec<SnsRecord>> {
    let mut at = Cursor { text, bytes: text.as_bytes(), i: 0 };
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
    at.whitespace();
    (at.i == at.bytes.len()).then_some(records)
}

/// Deeper nesting in a skipped value is left to serde (whose tree stops at 128 levels).
const MAX_DEPTH: usize = 100;

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// JSON's whitespace (not Unicode's).
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.bytes.get(self.i).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// The members of an object or the elements of an array, from just after its opening byte:
    /// `each` reads one, commas between them (none trailing), up to and past `close`.
    fn members(&mut self, close: u8, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.end_of(close)? {
            return Some(());
        }
        loop {
            each(self)?;
            if self.end_of(close)? {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// `true` (and past it) when the next byte is `close`: an empty object or array, or its end.
    fn end_of(&mut self, close: u8) -> Option<bool> {
        let end = self.peek()? == close;
        if end {
            self.i += 1;
        }
        Some(end)
    }

    /// An object's key and its colon. A key with an escape is left to serde (which unescapes keys
    /// before matching them).
    fn key(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        self.i = next_special(self.bytes, start);
        if *self.bytes.get(self.i)? != b'"' {
            return None;
        }
        let key = &self.bytes[start..self.i];
        self.i += 1;
        self.expect(b':')?;
        Some(key)
    }

    /// One record: an object whose `Sns` is read, once; every other value skipped.
    fn record(&mut self) -> Option<SnsRecord> {
        self.expect(b'{')?;
        let mut sns = None;
        self.members(b'}', |at| {
            if at.key()? != b"Sns" {
                return at.skip(1);
            }
            if sns.is_some() {
                return None;
            }
            sns = Some(at.message()?);
            Some(())
        })?;
        Some(SnsRecord { sns: sns? })
    }

    /// The `Sns` object: `MessageId` and `Message` (text, required) and `TopicArn` (text, `null`
    /// or absent: empty), each once; every other value skipped.
    fn message(&mut self) -> Option<SnsMessage> {
        self.expect(b'{')?;
        let (mut message_id, mut topic_arn, mut message) = (None, None, None);
        self.members(b'}', |at| {
            let slot = match at.key()? {
                b"MessageId" => &mut message_id,
                b"TopicArn" => &mut topic_arn,
                b"Message" => &mut message,
                _ => return at.skip(2),
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(if at.peek()? == b'n' {
                at.literal(b"null")?;
                None
            } else {
                Some(at.string()?)
            });
            Some(())
        })?;
        Some(SnsMessage {
            // `null` is text missing: serde refuses it where text is required.
            message_id: message_id??,
            topic_arn: topic_arn.flatten().unwrap_or_default(),
            message: message??,
        })
    }

    /// A string read: checked as serde_json checks it, and unescaped. The text between escapes is
    /// found eight bytes at a time and copied as one piece.
    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let (text, bytes) = (self.text, self.bytes);
        let start = self.i;
        let mut i = next_special(bytes, start);
        if *bytes.get(i)? == b'"' {
            // No escape (ids, ARNs): the text as it is.
            self.i = i + 1;
            return Some(text[start..i].to_string());
        }
        // Unescaped, it is no longer than what is left of the document.
        let mut out: Vec<u8> = Vec::with_capacity((bytes.len() - start).min(1 << 16));
        let mut run = start;
        loop {
            out.extend_from_slice(&bytes[run..i]);
            match *bytes.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    // The text was UTF-8, cut only before ASCII, and escapes add whole characters.
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    self.i = i + 2;
                    match *bytes.get(i + 1)? {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => out.extend_from_slice(self.unicode_escape()?.encode_utf8(&mut [0; 4]).as_bytes()),
                        _ => return None,
                    }
                }
                // A control character: serde_json refuses it raw.
                _ => return None,
            }
            run = self.i;
            i = next_special(bytes, run);
        }
    }

    /// After `\u`: a character, a surrogate pair joined; a lone surrogate is `None` (serde_json
    /// refuses it in a string it reads).
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.i..self.i + 2)? != b"\\u" {
                    return None;
                }
                self.i += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return None,
            other => u32::from(other),
        };
        char::from_u32(code)
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.bytes.get(self.i..self.i + 4)?;
        self.i += 4;
        digits.iter().try_fold(0u16, |n, d| Some(n * 16 + (*d as char).to_digit(16)? as u16))
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.whitespace();
        (self.bytes.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
    }

    /// A value not read, checked as serde_json checks what it skips: strings (any escape's form,
    /// a `\u` as four hex digits), objects, arrays, `true`, `false`, `null`. A number is `None`:
    /// none is in an SNS envelope, and serde decides the rest.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                self.i += 1;
                self.members(b'}', |at| {
                    at.skip_string()?;
                    at.expect(b':')?;
                    at.skip(depth + 1)
                })
            }
            b'[' => {
                self.i += 1;
                self.members(b']', |at| at.skip(depth + 1))
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            self.i = next_special(self.bytes, self.i);
            let byte = *self.bytes.get(self.i)?;
            self.i += 1;
            match byte {
                b'"' => return Some(()),
                b'\\' => {
                    let escape = *self.bytes.get(self.i)?;
                    self.i += 1;
                    match escape {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        // Skipped, so not judged: serde_json checks only the four digits.
                        b'u' => {
                            self.hex4()?;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }
}

/// Where the next `"`, `\\` or control character is, from `i` (the end of `bytes` if none): eight
/// bytes at a time, each tested at once (as serde_json's reader does; the lowest flagged byte is
/// always a true one), then byte by byte.
#[inline(always)]
fn next_special(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let chunk = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = chunk ^ (ONES * u64::from(b'"'));
        let backslash = chunk ^ (ONES * u64::from(b'\\'));
        let flagged = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (chunk.wrapping_sub(ONES * 0x20) & !chunk))
            & HIGH;
        if flagged != 0 {
            return i + flagged.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while let Some(&byte) = bytes.get(i) {
        if matches!(byte, b'"' | b'\\' | 0..=0x1f) {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
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
            // A number anywhere, a key with an escape, a key twice.
            sns(r#""MessageId": "m", "Message": "x", "Size": 1"#),
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
            r#""MessageId": "m", "TopicArn": null, "Message": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "X": [true, false, null, {"k": "\udc00"}]"#,
        );
        let records = super::read(&text).expect("read by hand");
        assert_eq!(records[0].sns.message, "a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}");
        assert_eq!(records[0].sns.topic_arn, "");
        assert_eq!(Some(records), by_serde(&text));
    }

    /// Strings with everything a JSON string can hold, written raw or escaped in every way; one in
    /// ten also holds something serde refuses in a string it reads.
    fn json_string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zA-Z0-9 :{}\\[\\],.-]{0,12}".prop_map(|s| s.to_string()),
            2 => Just("\\\"".to_string()),
            1 => Just("\\\\".to_string()),
            1 => Just("\\/".to_string()),
            1 => prop::sample::select(vec!["\\b", "\\f", "\\n", "\\r", "\\t"]).prop_map(str::to_string),
            1 => "\\PC{0,3}".prop_map(|s| serde_json::to_string(&s).unwrap().trim_matches('"').to_string()),
            1 => (0u16..0xD800).prop_map(|u| format!("\\u{u:04x}")),
            1 => (0xE000u16..).prop_map(|u| format!("\\u{u:04X}")),
            1 => Just("\\uD83D\\uDE00".to_string()),
            // Raw bytes at the edges of what a string may hold.
            1 => prop::sample::select(vec!["\u{7f}", "\u{80}", "\u{10FFFF}", "caf\u{e9} \u{1F600}"]).prop_map(str::to_string),
        ];
        // What serde refuses in a read string (a lone or broken surrogate; a raw control
        // character, a bad escape, a short \u): some of it passes where a string is skipped.
        let refused = prop::sample::select(vec![
            "\\uD800\\n",
            "\\uDBFF\\u0041",
            "\\ud800x",
            "\\uDC00",
            "\u{0}",
            "\u{1f}",
            "\u{1}",
            "\\x",
            "\\u12",
            "\n",
        ])
        .prop_map(str::to_string);
        let pieces = prop::collection::vec(piece, 0..12);
        prop_oneof![
            9 => pieces.clone().prop_map(|p| format!("\"{}\"", p.concat())),
            1 => (prop::collection::vec(refused, 1..3), pieces).prop_map(|(bad, mut p)| {
                p.extend(bad);
                let half = p.len() / 2;
                p.rotate_left(half);
                format!("\"{}\"", p.concat())
            }),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => json_string(),
            1 => prop::sample::select(vec!["true", "false", "null", "true", "false", "null", "1", "-2.5e3", "tru"])
                .prop_map(str::to_string),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::vec((json_string(), inner), 0..4).prop_map(|kv| {
                    let pairs: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    format!("{{{}}}", pairs.join(", "))
                }),
            ]
        })
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
