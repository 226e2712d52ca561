//! Lenient models of every AWS event shape Pipewarden receives.
//!
//! Unknown fields are ignored; numbers that AWS sends as floats or strings are accepted; a missing
//! required field is an [`EventError`] that names the event and the field's path.

pub mod cloudwatch;
pub mod codedeploy;
pub mod codepipeline;
pub mod eventbridge;
pub mod lenient;
pub mod sns;

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
    let text: String = text?.chars().filter(|c| !c.is_whitespace()).collect();
    let text = text.as_str();
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Parses `value` as `T`, reporting the path of the field at fault.
pub fn parse_value<T: DeserializeOwned>(event: &str, value: serde_json::Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(event, e))
}

/// Parses JSON text as `T`, reporting the path of the field at fault.
pub fn parse_str<T: DeserializeOwned>(event: &str, json: &str) -> Result<T, EventError> {
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
