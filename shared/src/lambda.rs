//! The Lambda boundary: how our errors reach the runtime.

use lambda_runtime::Diagnostic;

/// Whether Lambda (or EventBridge, or the DLQ) should try the event again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A dependency failed; the same event may well succeed later.
    Helps,
    /// The event itself is wrong; trying again cannot help.
    Useless,
}

/// A diagnostic whose `errorType` says whether a retry can help.
pub fn diagnostic(error: &dyn std::error::Error, retry: Retry) -> Diagnostic {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Diagnostic {
        error_type: match retry {
            Retry::Helps => "Pipewarden.RetryableError".to_string(),
            Retry::Useless => "Pipewarden.BadEvent".to_string(),
        },
        error_message: message,
    }
}
