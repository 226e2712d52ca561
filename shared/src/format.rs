//! Text helpers both message-writing functions use: safe subjects, chat escaping, durations.

/// A valid SNS subject: ASCII, no line breaks or control characters, at most 100 characters.
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

/// One line of untrusted text (commit messages, alarm reasons) for plain text: control
/// characters removed, at most `max` characters.
pub fn clean_text(text: &str, max: usize) -> String {
    let cleaned: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= max {
        cleaned.to_string()
    } else {
        format!("{}...", cleaned.chars().take(max.saturating_sub(3)).collect::<String>())
    }
}

/// Untrusted text for chat markdown (Slack, Teams): no links, mentions or formatting can be
/// injected through it.
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
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
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

/// An Amazon Q Developer in chat applications custom notification (schema version 1.0), the JSON
/// that Slack and Microsoft Teams channels render. Text in it must already be [`chat_escape`]d.
pub struct ChatNotification<'a> {
    pub id: String,
    pub title: String,
    pub description: Vec<String>,
    pub next_steps: Vec<String>,
    pub keywords: Vec<String>,
    pub thread_id: String,
    pub summary: String,
    pub event_type: &'a str,
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
                "keywords": self.keywords,
            },
            "metadata": {
                "threadId": self.thread_id,
                "summary": self.summary,
                "eventType": self.event_type,
                "relatedResources": self.related_resources,
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

    #[test]
    fn subjects_are_ascii_single_line_and_short() {
        let s = ascii_subject(&format!("[FAILED] caf\u{e9}\nline {}", "x".repeat(200)));
        assert!(s.is_ascii());
        assert!(!s.contains('\n'));
        assert_eq!(s.len(), 100);
        assert!(s.starts_with("[FAILED] caf? line"));
    }

    #[test]
    fn chat_text_cannot_inject_links_or_mentions() {
        assert_eq!(chat_escape("<!channel> *bold* <http://x|y>"), "&lt;!channel&gt; \\*bold\\* &lt;http://x\\|y&gt;");
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
