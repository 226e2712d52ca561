//! Lenient models of every AWS event shape Pipewarden receives.
//!
//! Unknown fields are ignored; numbers that AWS sends as floats or strings are accepted; a missing
//! required field is an [`EventError`] that names the event and the field's path.

mod classic_alarm;
pub mod cloudwatch;
pub mod codedeploy;
pub mod codepipeline;
mod cursor;
pub mod eventbridge;
pub mod lenient;
pub mod sns;
mod sns_envelope;

use serde::de::DeserializeOwned;

/// An event that could not be read, naming the event and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {event} event: {problem} (at `{field}`)")]
pub struct EventError {
    /// Which event we were reading, for example "CodePipeline Pipeline Execution State Change".
    pub event: String,
    /// The JSON path of the field at fault (`.` for the whole document).
    pub field: String,
    /// What was wrong with it.
    pub problem: String,
}

impl EventError {
    pub fn new(event: impl Into<String>, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { event: event.into(), field: field.into(), problem: problem.into() }
    }
}

/// Reads the timestamps AWS events use: RFC 3339, or CloudWatch's `2026-11-22T15:43:07.150+0000`
/// (no colon in the offset).
///
/// Spaces inside are dropped: AWS's own example payloads carry `2023-08-04T12: 56: 46.138+0000`.
pub fn parse_time(text: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = text?;
    let text: std::borrow::Cow<str> = if text.contains(char::is_whitespace) {
        text.chars().filter(|c| !c.is_whitespace()).collect::<String>().into()
    } else {
        text.into()
    };
    // `+0000` (CloudWatch's) is RFC 3339's `+00:00` without its colon: the colon is added rather
    // than a format read, and before a first attempt that could only fail.
    let bytes = text.as_bytes();
    let n = bytes.len();
    let no_colon = n > 5 && matches!(bytes[n - 5], b'+' | b'-') && bytes[n - 4..].iter().all(u8::is_ascii_digit);
    // On the stack: CloudWatch's times are 28 bytes.
    let mut fixed = [0u8; 48];
    let rfc3339 = if no_colon && n < fixed.len() {
        fixed[..n - 2].copy_from_slice(&bytes[..n - 2]);
        fixed[n - 2] = b':';
        fixed[n - 1..=n].copy_from_slice(&bytes[n - 2..]);
        // Only an ASCII colon was put between whole characters.
        chrono::DateTime::parse_from_rfc3339(std::str::from_utf8(&fixed[..=n]).unwrap_or_default())
    } else if no_colon {
        chrono::DateTime::parse_from_rfc3339(&format!("{}:{}", &text[..n - 2], &text[n - 2..]))
    } else {
        chrono::DateTime::parse_from_rfc3339(&text)
    };
    rfc3339
        .or_else(|_| chrono::DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A JSON document as a function gets it: the invocation's text as Lambda sends it (read in one
/// pass, no intermediate tree), or a [`serde_json::Value`] already read (tests, `make replay`).
pub trait Document {
    /// Parses the document as `T`, reporting the path of the field at fault.
    fn parse<T: DeserializeOwned>(self, event: &str) -> Result<T, EventError>;
    /// Which shape the document is (see [`eventbridge::Shape`]).
    fn shape(&self) -> eventbridge::Shape {
        self.classify().0
    }
    /// Its shape, and the SNS event it is if that could be read on the way ([`parse_sns`] it
    /// otherwise).
    ///
    /// [`parse_sns`]: sns::parse_sns
    fn classify(&self) -> (eventbridge::Shape, Option<sns::SnsEvent>);
}

impl Document for serde_json::Value {
    fn parse<T: DeserializeOwned>(self, event: &str) -> Result<T, EventError> {
        parse_value(event, self)
    }
    fn classify(&self) -> (eventbridge::Shape, Option<sns::SnsEvent>) {
        (eventbridge::Shape::of(self), None)
    }
}

impl Document for &str {
    fn parse<T: DeserializeOwned>(self, event: &str) -> Result<T, EventError> {
        parse_str(event, self)
    }
    fn classify(&self) -> (eventbridge::Shape, Option<sns::SnsEvent>) {
        eventbridge::Shape::read_json(self)
    }
}

/// Parses `value` as `T`, reporting the path of the field at fault.
pub fn parse_value<T: DeserializeOwned>(event: &str, value: serde_json::Value) -> Result<T, EventError> {
    // Read once without tracking the path (it costs an allocation per key); a value that does
    // not read is read again, tracking it, for the error's field path.
    match T::deserialize(&value) {
        Ok(parsed) => Ok(parsed),
        Err(_) => serde_path_to_error::deserialize(value).map_err(|e| path_error(event, e)),
    }
}

/// Parses JSON text as `T`, reporting the path of the field at fault.
pub fn parse_str<T: DeserializeOwned>(event: &str, json: &str) -> Result<T, EventError> {
    if let Ok(parsed) = serde_json::from_str(json) {
        return Ok(parsed);
    }
    // Read as a tree, as it always was: a key given twice is its last value there (a typed read
    // refuses it), and an error names its field the same way, without a position in the text.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(json) {
        return parse_value(event, value);
    }
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(event, e))
}

fn path_error<E: std::fmt::Display>(event: &str, e: serde_path_to_error::Error<E>) -> EventError {
    let field = e.path().to_string();
    let inner = e.inner().to_string();
    // serde reports a missing field from the parent; name the missing field itself.
    let field = match inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
        Some(missing) if field == "." => missing.to_string(),
        Some(missing) => format!("{field}.{missing}"),
        None => field,
    };
    EventError::new(event, field, inner)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    fn utc(text: &str) -> Option<String> {
        parse_time(Some(text)).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    #[test]
    fn times_are_read_in_every_form_aws_sends_with_their_offset() {
        assert_eq!(utc("2026-11-22T15:43:07.150+0000").as_deref(), Some("2026-11-22T15:43:07.150Z"));
        assert_eq!(utc("2026-11-22T15:43:07.150+0530").as_deref(), Some("2026-11-22T10:13:07.150Z"));
        assert_eq!(utc("2026-11-22T15:43:07-0130").as_deref(), Some("2026-11-22T17:13:07.000Z"));
        assert_eq!(utc("2026-11-22T15:43:07Z").as_deref(), Some("2026-11-22T15:43:07.000Z"));
        assert_eq!(utc("2026-11-22T15:43:07.5+01:00").as_deref(), Some("2026-11-22T14:43:07.500Z"));
        assert_eq!(utc("2023-08-04T12: 56: 46.138+0000").as_deref(), Some("2023-08-04T12:56:46.138Z"));
        assert_eq!(utc("2026-11-22T15:43:07.150+00"), None);
        assert_eq!(utc("+0000"), None);
        assert_eq!(utc("yesterday"), None);
        assert_eq!(parse_time(None), None);
    }
}
