//! Structured JSON logs through `tracing`, in the shape Lambda's JSON log format expects
//! (`timestamp`, `level`, `message`, fields), with the spans that carry correlation ids
//! (`requestId` from the runtime, and our event, execution or deployment id) on every line.

use tracing_subscriber::EnvFilter;

/// The filter: `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging controls) wins, then
/// `RUST_LOG`, then `info`.
pub fn filter_directive(aws_lambda_log_level: Option<&str>, rust_log: Option<&str>) -> String {
    if let Some(level) = aws_lambda_log_level.map(str::trim).filter(|l| !l.is_empty()) {
        return match level.to_ascii_lowercase().as_str() {
            "fatal" => "error".to_string(),
            other => other.to_string(),
        };
    }
    rust_log.map(str::trim).filter(|l| !l.is_empty()).unwrap_or("info").to_string()
}

/// Installs the JSON subscriber for this process. A second call (tests) is a no-op.
pub fn init() {
    let directive = filter_directive(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// Shortens a URL for logging: scheme, host and path only; never query strings (tokens, signed
/// URLs) nor user info.
pub fn redact_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or("");
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) =
                rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => without_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_log_level_wins_over_rust_log() {
        assert_eq!(filter_directive(Some("DEBUG"), Some("warn")), "debug");
        assert_eq!(filter_directive(Some("FATAL"), None), "error");
        assert_eq!(filter_directive(None, Some("pipeline_notifier=trace")), "pipeline_notifier=trace");
        assert_eq!(filter_directive(None, None), "info");
    }

    #[test]
    fn redacted_urls_keep_no_credentials_or_query() {
        assert_eq!(
            redact_url("https://user:secret@hooks.example.com/services/T0/B0?token=abc"),
            "https://hooks.example.com/services/T0/B0"
        );
        assert_eq!(redact_url("http://127.0.0.1:8080/health"), "http://127.0.0.1:8080/health");
    }
}
