//! Text helpers both message-writing functions use: safe subjects, chat escaping, durations.

use std::borrow::Cow;

/// A valid SNS subject: ASCII, no line breaks or control characters, at most 100 characters.
pub fn ascii_subject(text: &str) -> String {
    // Already a subject (the common case: printable ASCII, single spaces, none at either end, short
    // enough): copied as it is, without the pass below.
    let bytes = text.as_bytes();
    let clean = bytes.len() <= 100
        && bytes.first().is_none_or(|b| *b != b' ')
        && bytes.last().is_none_or(|b| *b != b' ')
        && printable_ascii(text)
        && !text.contains("  ");
    if clean {
        return text.to_string();
    }
    // One pass: printable ASCII kept, other whitespace a space, anything else `?`, runs of spaces
    // one space, none at either end.
    let mut cleaned = String::with_capacity(text.len().min(128));
    let mut space = false;
    for c in text.chars() {
        if c == ' ' || c.is_whitespace() {
            space = !cleaned.is_empty();
            continue;
        }
        if space {
            cleaned.push(' ');
            space = false;
        }
        cleaned.push(if c.is_ascii_graphic() { c } else { '?' });
    }
    if cleaned.len() > 100 {
        cleaned.truncate(97);
        cleaned.push_str("...");
    }
    cleaned
}

/// Only printable ASCII (space to `~`): nothing to replace for one line or a subject.
fn printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Characters that end a line somewhere: ASCII and C1 controls (`\n`, `\r`, NEL, ...) and
/// Unicode's line and paragraph separators, which mail and chat clients may show as line breaks.
fn breaks_lines(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Characters that reorder how the text around them is shown (bidirectional overrides, embeddings,
/// isolates and marks): untrusted text could make a name read as something else.
fn reorders_text(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Untrusted text as one line of plain text: whatever could break the line becomes a space, and
/// bidirectional controls are left out. Nothing is escaped: plain text (email, SNS) has no markup.
/// Text that is already one line (the common case) is returned as it is, not copied.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if printable_ascii(text) || !text.chars().any(|c| breaks_lines(c) || reorders_text(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().filter(|c| !reorders_text(*c)).map(|c| if breaks_lines(c) { ' ' } else { c }).collect())
}

/// One line of untrusted text (commit messages, alarm reasons) for plain text: see [`one_line`],
/// trimmed, at most `max` characters.
pub fn clean_text(text: &str, max: usize) -> Cow<'_, str> {
    let cleaned = one_line(text);
    let trimmed = cleaned.trim();
    // Counting characters only when the bytes alone could be too many.
    if trimmed.len() <= max || trimmed.chars().count() <= max {
        return match cleaned {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
            Cow::Owned(ref text) => Cow::Owned(text.trim().to_string()),
        };
    }
    Cow::Owned(format!("{}...", trimmed.chars().take(max.saturating_sub(3)).collect::<String>()))
}

/// Untrusted text for a chat notification's markdown, on one line (see [`one_line`]), so that it
/// shows as the text it is and does nothing else:
/// - `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;`: Slack's control characters, which it
///   decodes for display ("Formatting text for app surfaces", Escaping). Without them no
///   `<url|text>` link, `<!channel>`, `<!here>`, `<@U...>` or `<!subteam^...>` mention, no
///   `<at>` mention or HTML in Teams, and no `<url>` autolink can be made;
/// - the markdown characters backslash, `*`, `_`, `~`, backtick, `|`, `[` and `]` get a backslash
///   before them: no emphasis, strike-through, code, table cell or `[text](url)` link
///   (CommonMark's backslash escapes, which Teams' markdown follows). Slack has no escape for
///   these and shows the backslash: the text reads a little odd there, but cannot format or link.
///
/// Apply it once, to the event's text alone, never to markup we add or to text already escaped.
pub fn chat_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' | '[' | ']' | '|' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if breaks_lines(c) => out.push(' '),
            c if reorders_text(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// A link in Slack's markup, `<url|label>` (the form our chat notifications use), to a URL that is
/// https and holds nothing that would end the markup; the label is plain text and is
/// escaped here. `None` for any other URL: say the label without a link instead.
pub fn chat_link(url: &str, label: &str) -> Option<String> {
    let safe = url.starts_with("https://")
        && url.len() > "https://".len()
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || reorders_text(c) || matches!(c, '<' | '>' | '|'));
    safe.then(|| format!("<{url}|{}>", chat_escape(label)))
}

/// `16m 9s`, `2h 3m`, `45s`.
pub fn duration_words(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

/// The first 8 characters of a commit id.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..8).unwrap_or(commit)
}

/// An Amazon Q Developer in chat applications custom notification (schema version 1.0, `source`
/// `custom`, `textType` `client-markdown`: rendered in the channel's own markdown), the JSON that
/// Slack and Microsoft Teams channels show.
///
/// Two kinds of field. Markup (`title`, `description`, `next_steps`): the caller writes our markup
/// (`*Reason:*`, [`chat_link`]) around event text it passed through [`chat_escape`]. Plain text
/// (`keywords`, `summary`): given as the event said it; [`ChatNotification::to_json`] escapes it.
/// `id`, `thread_id`, `related_resources` and `additional_context` are identifiers the application
/// reads, not text it shows: they are sent as they are.
pub struct ChatNotification<'a> {
    pub id: String,
    pub title: String,
    pub description: Vec<String>,
    pub next_steps: Vec<String>,
    /// Plain text, escaped by [`ChatNotification::to_json`].
    pub keywords: Vec<String>,
    pub thread_id: String,
    /// Plain text, escaped by [`ChatNotification::to_json`].
    pub summary: String,
    pub event_type: &'a str,
    /// ARNs; [`ChatNotification::to_json`] leaves out any [`crate::links::Arn`] cannot read.
    pub related_resources: Vec<String>,
    /// A map of strings, as the custom notification schema defines `metadata.additionalContext`.
    pub additional_context: std::collections::BTreeMap<String, String>,
}

impl ChatNotification<'_> {
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "version": "1.0",
            "source": "custom",
            "id": self.id,
            "content": {
                "textType": "client-markdown",
                "title": self.title,
                "description": self.description.join("\n"),
                "nextSteps": self.next_steps,
                "keywords": self.keywords.iter().map(|k| chat_escape(k)).collect::<Vec<_>>(),
            },
            "metadata": {
                "threadId": self.thread_id,
                "summary": chat_escape(&self.summary),
                "eventType": self.event_type,
                "relatedResources": self
                    .related_resources
                    .iter()
                    .filter(|arn| crate::links::Arn::parse(arn).is_some())
                    .collect::<Vec<_>>(),
                "additionalContext": self.additional_context,
            }
        })
        .to_string()
    }
}

/// The chat icon for a severity.
pub fn chat_icon(severity: &str) -> &'static str {
    match severity {
        "critical" => ":x:",
        "warning" => ":warning:",
        _ => ":white_check_mark:",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain versions the fast ones replaced: what they must still return, byte for byte.
    mod oracle {
        use super::super::{breaks_lines, reorders_text};

        pub fn ascii_subject(text: &str) -> String {
            let cleaned: String = text
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() || c == ' ' {
                        c
                    } else if c.is_whitespace() {
                        ' '
                    } else {
                        '?'
                    }
                })
                .collect();
            let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
            if cleaned.len() <= 100 {
                cleaned
            } else {
                format!("{}...", &cleaned[..97])
            }
        }

        pub fn one_line(text: &str) -> String {
            text.chars().filter(|c| !reorders_text(*c)).map(|c| if breaks_lines(c) { ' ' } else { c }).collect()
        }

        pub fn clean_text(text: &str, max: usize) -> String {
            let cleaned = one_line(text);
            let cleaned = cleaned.trim();
            if cleaned.chars().count() <= max {
                cleaned.to_string()
            } else {
                format!("{}...", cleaned.chars().take(max.saturating_sub(3)).collect::<String>())
            }
        }
    }

    /// Text as events carry it: mostly printable ASCII, with line breaks, controls, bidirectional
    /// marks, non-ASCII letters and runs of spaces mixed in.
    fn event_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[ -~]{0,12}",
            1 => Just("\n".to_string()),
            1 => Just("  \t ".to_string()),
            1 => Just("\u{202e}\u{2066}\u{200f}".to_string()),
            1 => Just("\u{85}\u{2028}\u{b}".to_string()),
            1 => "\\PC{0,4}",
            1 => Just("caf\u{e9} \u{1F600}".to_string()),
        ];
        prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn the_fast_text_helpers_return_what_the_plain_ones_did(text in event_text(), max in 0usize..150) {
            prop_assert_eq!(ascii_subject(&text), oracle::ascii_subject(&text));
            prop_assert_eq!(one_line(&text).into_owned(), oracle::one_line(&text));
            prop_assert_eq!(clean_text(&text, max).into_owned(), oracle::clean_text(&text, max));
        }

        #[test]
        fn printable_ascii_subjects_are_cleaned_as_before(text in "[ -~]{0,3}( {1,2}[ -~]{0,30}){0,5}") {
            // Around the fast path's edges: spaces at either end or two in a row, 100 characters.
            prop_assert_eq!(ascii_subject(&text), oracle::ascii_subject(&text));
        }
    }

    #[test]
    fn subjects_are_ascii_single_line_and_short() {
        let s = ascii_subject(&format!("[FAILED] caf\u{e9}\nline {}", "x".repeat(200)));
        assert!(s.is_ascii());
        assert!(!s.contains('\n'));
        assert_eq!(s.len(), 100);
        assert!(s.starts_with("[FAILED] caf? line"));
        // Printable ASCII already: kept up to 100 characters, cut beyond.
        assert_eq!(ascii_subject(&"a".repeat(100)), "a".repeat(100));
        assert_eq!(ascii_subject(&"a".repeat(101)), format!("{}...", "a".repeat(97)));
    }

    #[test]
    fn chat_text_cannot_inject_links_or_mentions() {
        assert_eq!(chat_escape("<!channel> *bold* <http://x|y>"), "&lt;!channel&gt; \\*bold\\* &lt;http://x\\|y&gt;");
        assert_eq!(
            chat_escape("[log in](https://evil.example) <@U024BE7LH> ~x~ `y` _z_ a\\b &amp;"),
            "\\[log in\\](https://evil.example) &lt;@U024BE7LH&gt; \\~x\\~ \\`y\\` \\_z\\_ a\\\\b &amp;amp;"
        );
    }

    #[test]
    fn untrusted_text_stays_on_its_line_and_in_its_order() {
        let forged = "a\nb\r\nc\u{85}d\u{2028}e\u{2029}f\u{b}g\u{c}h\ti";
        assert_eq!(chat_escape(forged), "a b  c d e f g h i");
        assert_eq!(one_line(forged), "a b  c d e f g h i");
        assert_eq!(clean_text(forged, 100), "a b  c d e f g h i");
        assert_eq!(chat_escape("admin\u{202e}txt.exe\u{2066}x\u{2069}"), "admintxt.exex");
        assert_eq!(clean_text("\u{200f}abc\u{202d}", 10), "abc");
    }

    #[test]
    fn chat_links_are_https_urls_that_cannot_end_the_markup_with_an_escaped_label() {
        assert_eq!(
            chat_link("https://us-east-1.console.aws.amazon.com/x?a=1#b", "the *alarm*").as_deref(),
            Some("<https://us-east-1.console.aws.amazon.com/x?a=1#b|the \\*alarm\\*>")
        );
        for url in [
            "http://example.com/",
            "https://",
            "javascript:alert(1)",
            "https://example.com/a|click here",
            "https://example.com/a>b",
            "https://example.com/<x",
            "https://example.com/a b",
            "https://example.com/a\nb",
            "https://example.com/\u{202e}",
        ] {
            assert_eq!(chat_link(url, "x"), None, "{url:?}");
        }
    }

    #[test]
    fn keywords_and_summary_are_escaped_once_and_unreadable_arns_left_out() {
        let json: serde_json::Value = serde_json::from_str(
            &ChatNotification {
                id: "id".into(),
                title: "t".into(),
                description: vec![],
                next_steps: vec![],
                keywords: vec!["<!here> a_b".into(), "ALARM".into()],
                thread_id: "th".into(),
                summary: "[ALARM] <https://evil.example|x> & more".into(),
                event_type: "e",
                related_resources: vec![
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a".into(),
                    "arn:aws:cloudwatch:evil.example/x?:123456789012:alarm:a".into(),
                    "arn:evil:cloudwatch:us-east-1:123456789012:alarm:a".into(),
                ],
                additional_context: Default::default(),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(json["content"]["keywords"], serde_json::json!(["&lt;!here&gt; a\\_b", "ALARM"]));
        assert_eq!(json["metadata"]["summary"], "\\[ALARM\\] &lt;https://evil.example\\|x&gt; &amp; more");
        assert_eq!(
            json["metadata"]["relatedResources"],
            serde_json::json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:a"])
        );
    }

    #[test]
    fn chat_json_uses_only_the_types_the_custom_notification_schema_defines() {
        let json: serde_json::Value = serde_json::from_str(
            &ChatNotification {
                id: "id".into(),
                title: "t".into(),
                description: vec!["a".into(), "b".into()],
                next_steps: vec!["n".into()],
                keywords: vec!["k".into()],
                thread_id: "th".into(),
                summary: "s".into(),
                event_type: "e",
                related_resources: vec!["arn:aws:sns:us-east-1:123456789012:t".into()],
                additional_context: [("attempt".to_string(), "2".to_string())].into(),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(json["version"], "1.0");
        assert_eq!(json["source"], "custom");
        assert_eq!(json["content"]["description"], "a\nb");
        let context = json["metadata"]["additionalContext"].as_object().unwrap();
        assert!(context.values().all(|v| v.is_string()), "{context:?}");
        for list in [&json["content"]["nextSteps"], &json["content"]["keywords"], &json["metadata"]["relatedResources"]]
        {
            assert!(list.as_array().unwrap().iter().all(|v| v.is_string()), "{list}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words(969), "16m 9s");
        assert_eq!(duration_words(45), "45s");
        assert_eq!(duration_words(7380), "2h 3m");
        assert_eq!(short_commit("a1b2c3d4e5f6"), "a1b2c3d4");
        assert_eq!(clean_text("a\u{7}b", 10), "a b");
    }
}
