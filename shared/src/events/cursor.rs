//! A JSON reader for the documents read by hand (Lambda's SNS envelope, CloudWatch's classic alarm
//! message): it answers only what it is sure serde_json would answer the same way, and `None`
//! for everything else, which the serde reader then decides.
//!
//! Strings are searched eight bytes at a time for a quote, a backslash or a control character,
//! and unescaped run by run; what is not read is checked as serde_json checks what it skips.

use std::borrow::Cow;

/// Deeper nesting in a skipped value is left to serde (which skips any depth): a bound on this
/// reader's recursion.
pub(super) const MAX_DEPTH: usize = 100;

pub(super) struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Cursor { text, bytes: text.as_bytes(), i: 0 }
    }

    /// Nothing but whitespace is left (serde refuses text after the document).
    pub(super) fn finished(&mut self) -> bool {
        self.whitespace();
        self.i == self.bytes.len()
    }

    /// JSON's whitespace (not Unicode's).
    #[inline]
    pub(super) fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.bytes.get(self.i).copied()
    }

    #[inline]
    pub(super) fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// The members of an object or the elements of an array, from just after its opening byte:
    /// `each` reads one, commas between them (none trailing), up to and past `close`.
    pub(super) fn members(&mut self, close: u8, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
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
    #[inline]
    pub(super) fn end_of(&mut self, close: u8) -> Option<bool> {
        let end = self.peek()? == close;
        if end {
            self.i += 1;
        }
        Some(end)
    }

    /// An object's key and its colon. A key with an escape is left to serde (which unescapes keys
    /// before matching them).
    #[inline]
    pub(super) fn key(&mut self) -> Option<&'a [u8]> {
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

    /// An object, from its `{`: `each` reads the value of each key.
    pub(super) fn object(&mut self, mut each: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        self.members(b'}', |at| {
            let key = at.key()?;
            each(at, key)
        })
    }

    /// `null` (`Some(None)`), or what `read` reads.
    pub(super) fn or_null<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// Text or `null`: an `Option<String>` field.
    pub(super) fn text_or_null(&mut self) -> Option<Option<String>> {
        self.or_null(Self::string)
    }

    /// A string read: checked as serde_json checks it, and unescaped. The text between escapes is
    /// found eight bytes at a time and copied as one piece.
    pub(super) fn string(&mut self) -> Option<String> {
        self.text().map(Cow::into_owned)
    }

    /// [`Self::string`], borrowed from the document when it has no escape.
    pub(super) fn text(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let (text, bytes) = (self.text, self.bytes);
        let start = self.i;
        let mut i = next_special(bytes, start);
        if *bytes.get(i)? == b'"' {
            // No escape (ids, ARNs): the text as it is.
            self.i = i + 1;
            return Some(Cow::Borrowed(&text[start..i]));
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
                    return String::from_utf8(out).ok().map(Cow::Owned);
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

    #[inline]
    pub(super) fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.whitespace();
        (self.bytes.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
    }

    /// A value not read, checked as serde_json checks what it skips: strings (any escape's form,
    /// a `\u` as four hex digits), numbers, objects, arrays, `true`, `false`, `null`.
    pub(super) fn skip(&mut self, depth: usize) -> Option<()> {
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
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }

    /// A number, checked as serde_json checks one (a sign, one leading zero or none, a fraction
    /// and an exponent each with a digit at least): its text.
    pub(super) fn number(&mut self) -> Option<&'a str> {
        self.whitespace();
        let start = self.i;
        if self.bytes.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.bytes.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.digits() > 0 {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.bytes.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(&self.text[start..self.i])
    }

    /// Past the ASCII digits here: how many.
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.bytes.get(self.i) {
            self.i += 1;
        }
        self.i - start
    }

    pub(super) fn skip_string(&mut self) -> Option<()> {
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

/// A field's value, read once: a key given twice is serde's error, so `None`.
pub(super) fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
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

/// Generators of JSON text for the readers' property tests.
#[cfg(test)]
pub(super) mod generate {
    use proptest::prelude::*;

    /// Strings with everything a JSON string can hold, written raw or escaped in every way; one in
    /// ten also holds something serde refuses in a string it reads.
    pub fn json_string() -> impl Strategy<Value = String> {
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
        let pieces = prop::collection::vec(piece(), 0..12);
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

    /// [`json_string`] without what serde refuses.
    pub fn clean_json_string() -> impl Strategy<Value = String> {
        prop::collection::vec(piece(), 0..12).prop_map(|p| format!("\"{}\"", p.concat()))
    }

    /// A piece of a string's text: raw, or escaped in one of JSON's ways.
    fn piece() -> BoxedStrategy<String> {
        prop_oneof![
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
        ]
        .boxed()
    }

    /// A number in every form JSON has, now and then one serde refuses (`01`, `1.`, `-`, `1e`).
    pub fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (any::<bool>(), 0u64..1_000_000, prop::option::of(0u32..1000), prop::option::of((prop::sample::select(vec!["e", "E", "e+", "e-", "E-"]), 0u8..40)))
                .prop_map(|(negative, whole, fraction, exponent)| {
                    let mut n = if negative { format!("-{whole}") } else { whole.to_string() };
                    if let Some(f) = fraction {
                        n.push_str(&format!(".{f}"));
                    }
                    if let Some((e, x)) = exponent {
                        n.push_str(&format!("{e}{x}"));
                    }
                    n
                }),
            1 => prop::sample::select(vec!["0", "-0", "5.0", "60", "18446744073709551615", "123456789012345678", "1234567890123456789", "1e400", "0.1e-400", "01", "-01", "1.", "-", "1e", ".5", "+1", "1.5e+"])
                .prop_map(str::to_string),
            // Where float readers disagree in the last bit: long mantissas, the subnormal and
            // overflow edges, halfway cases.
            1 => prop::sample::select(vec![
                "2.2250738585072011e-308", "2.2250738585072012e-308", "4.9406564584124654e-324", "2.4703282292062328e-324",
                "1.7976931348623157e308", "1.7976931348623158e308", "9007199254740993", "0.30000000000000004441",
                "8.98846567431158e307", "7.038531e-26", "1.00000000000000011102230246251565404236316680908203125",
                "123456789012345678901234567890e-10", "0.000000000000000000000000000000000000001e38",
            ])
            .prop_map(str::to_string),
        ]
    }

    /// Any JSON value, now and then one serde refuses (`tru`).
    pub fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            4 => json_string().boxed(),
            1 => prop::sample::select(vec!["true", "false", "null", "true", "false", "null", "tru"])
                .prop_map(str::to_string)
                .boxed(),
            1 => number().boxed(),
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
}

#[cfg(test)]
mod tests {
    use super::generate::value;
    use super::*;
    use proptest::prelude::*;

    /// What the readers skip, this one skips exactly when serde_json would (`IgnoredAny`).
    fn skips_as_serde(text: &str) -> Result<(), TestCaseError> {
        let mut at = Cursor::new(text);
        let here = at.skip(1).is_some() && at.finished();
        let serde = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        prop_assert_eq!(here, serde, "{:?}", text);
        Ok(())
    }

    proptest! {
        #[test]
        fn a_value_is_skipped_exactly_when_serde_skips_it(
            value in value(),
            space in prop::sample::select(vec!["", " ", "\n\t\r ", "\u{c}", "\u{b}", "\u{a0}"]),
        ) {
            skips_as_serde(&value)?;
            skips_as_serde(&format!("{space}{value}{space}"))?;
            // Whitespace inside, after each comma and colon.
            skips_as_serde(&value.replace(", ", &format!("{space},{space}")).replace(": ", &format!("{space}:")))?;
        }
    }

    #[test]
    fn nesting_is_skipped_to_a_hundred_levels_and_left_to_serde_beyond() {
        let nested = |levels: usize| format!("{}1{}", "[{\"k\": ".repeat(levels), "}]".repeat(levels));
        // Two levels (an array and an object) a time, and the number within them: 99 levels.
        for levels in [1, 49] {
            skips_as_serde(&nested(levels)).unwrap();
            assert!(Cursor::new(&nested(levels)).skip(1).is_some());
        }
        assert_eq!(Cursor::new(&nested(50)).skip(1), None, "beyond a hundred levels");
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(&nested(50)).is_ok());
    }
}
