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

/// What stands in a shown URL where a secret was.
pub const REDACTED: &str = "***";

/// A URL as it may be shown in a log, a result or a notice: no user info, no query values (their
/// names stay), no fragment. See [`redact_url_with`].
pub fn redact_url(url: &str) -> String {
    redact_url_with(url, &[])
}

/// A URL as it may be shown: user info becomes `***@`, each query value `***` (the names stay, so
/// `?token=abc&env=prod` shows as `?token=***&env=***`; a parameter without `=` may be a value on
/// its own and shows as `***`), the fragment is dropped, and the path segments at
/// `secret_path_segments` (counted from 1: in `/keys/abc/health`, `abc` is 2) become `***`.
///
/// Works on the text, so it also redacts what is not a valid URL (the text of a spec's invalid
/// `url`, which error messages quote): where the text is ambiguous it hides more, never less. An
/// `@` is in the path or query when the text before the first `/`, `\`, `?` or `#` is a plain
/// `host[:port]`, as a URL parser reads it too; otherwise there is user info, and everything up
/// to the last `@` is hidden.
pub fn redact_url_with(url: &str, secret_path_segments: &[usize]) -> String {
    let (scheme, rest) = split_scheme(url);
    let (had_userinfo, rest) = strip_userinfo(rest);
    let authority_end = rest.find(is_delimiter).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after_path) = tail.split_at(path_end);
    let query = after_path.strip_prefix('?').map(|q| q.split('#').next().unwrap_or(""));

    let mut shown = String::with_capacity(url.len());
    shown.push_str(scheme);
    if had_userinfo {
        shown.push_str(REDACTED);
        shown.push('@');
    }
    shown.push_str(authority);
    shown.push_str(&redact_path(path, secret_path_segments));
    if let Some(query) = query {
        shown.push('?');
        shown.push_str(&redact_query(query));
    }
    shown
}

fn is_delimiter(c: char) -> bool {
    matches!(c, '/' | '\\' | '?' | '#')
}

/// `("http://", "rest")` when the text starts with a scheme and at least one slash (or is
/// scheme-relative, `//host`); otherwise no scheme (`user:pw@host` is user info, not a scheme).
fn split_scheme(url: &str) -> (&str, &str) {
    if url.starts_with("//") {
        return url.split_at(2);
    }
    let Some(colon) = url.find(':') else { return ("", url) };
    let name = &url[..colon];
    let is_scheme = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let slashes = url[colon + 1..].chars().take_while(|c| matches!(c, '/' | '\\')).count();
    if is_scheme && slashes > 0 {
        url.split_at(colon + 1 + slashes)
    } else {
        ("", url)
    }
}

/// The text after the user info, and whether there was any.
fn strip_userinfo(rest: &str) -> (bool, &str) {
    let Some(first_at) = rest.find('@') else { return (false, rest) };
    if let Some(delimiter) = rest.find(is_delimiter).filter(|d| *d < first_at) {
        if looks_like_host(&rest[..delimiter]) {
            return (false, rest);
        }
    }
    // A URL parser ends the user info at the last `@` before the authority ends; a password that
    // holds `@` and then `/`, `?` or `#` is not a valid URL but is still a password: hide through
    // the last `@` of all (a path or query with an `@` after user info is hidden too).
    let last_at = rest.rfind('@').unwrap_or(first_at);
    (true, &rest[last_at + 1..])
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, nothing else.
fn looks_like_host(text: &str) -> bool {
    let (host, port) = match text.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((inside, after)) if inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') => {
                match after {
                    "" => return !inside.is_empty(),
                    _ => ("x", after.strip_prefix(':').unwrap_or("not a port")),
                }
            }
            _ => return false,
        },
        None => text.split_once(':').unwrap_or((text, "")),
    };
    !host.is_empty()
        && host.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%'))
        && port.chars().all(|c| c.is_ascii_digit())
}

fn redact_path(path: &str, secret_path_segments: &[usize]) -> String {
    let mut shown = String::with_capacity(path.len());
    let separators = path.char_indices().filter(|(_, c)| matches!(c, '/' | '\\'));
    let mut start = 0;
    // Segment 0 is the text before the first separator (none, in a path from a URL).
    for (number, (end, separator)) in separators.chain(std::iter::once((path.len(), '/'))).enumerate() {
        let segment = &path[start..end];
        let secret = number > 0 && !segment.is_empty() && secret_path_segments.contains(&number);
        shown.push_str(if secret { REDACTED } else { segment });
        if end < path.len() {
            shown.push(separator);
        }
        start = end + separator.len_utf8();
    }
    shown
}

fn redact_query(query: &str) -> String {
    let parameters = query.split('&').map(|parameter| match parameter.split_once('=') {
        Some((name, "")) => format!("{name}="),
        Some((name, _)) => format!("{name}={REDACTED}"),
        None if parameter.is_empty() => String::new(),
        None => REDACTED.to_string(),
    });
    parameters.collect::<Vec<_>>().join("&")
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
    fn redacted_urls_keep_no_credentials_or_query_values() {
        assert_eq!(
            redact_url("https://user:secret@hooks.example.com/services/T0/B0?token=abc"),
            "https://***@hooks.example.com/services/T0/B0?token=***"
        );
        assert_eq!(redact_url("http://127.0.0.1:8080/health"), "http://127.0.0.1:8080/health");
        assert_eq!(
            redact_url("http://h/p?token=abc&empty=&flag&&b=c#frag-secret"),
            "http://h/p?token=***&empty=&***&&b=***"
        );
        assert_eq!(redact_url("http://h/users/a@b/x?mail=a@b"), "http://h/users/a@b/x?mail=***");
        assert_eq!(redact_url("http://[::1]:8080/a@b"), "http://[::1]:8080/a@b");
        assert_eq!(redact_url("http://u:p@ss@h:1/x"), "http://***@h:1/x");
        // With user info, an `@` further on may still be the password's: hidden through it.
        assert_eq!(redact_url("http://u:p@h/x?mail=a@b"), "http://***@b");
    }

    #[test]
    fn secret_path_segments_are_hidden_by_position() {
        assert_eq!(
            redact_url_with("https://api.internal/keys/abc123/health?x=1", &[2]),
            "https://api.internal/keys/***/health?x=***"
        );
        assert_eq!(redact_url_with("http://h/a/b/c", &[1, 3]), "http://h/***/b/***");
        assert_eq!(redact_url_with("http://h/a/b", &[7]), "http://h/a/b");
        assert_eq!(redact_url_with("http://h", &[1]), "http://h");
        assert_eq!(redact_url_with("http://h/a\\b", &[2]), "http://h/a\\***");
    }

    /// What a spec's invalid `url` may look like: none of it may show its secret.
    #[test]
    fn text_that_is_not_a_url_is_redacted_too() {
        let cases = [
            ("http://checker:pw-1@127.0.0.1:99999/health?token=tk-1", "http://***@127.0.0.1:99999/health?token=***"),
            ("http://u:pw/2@host/x", "http://***@host/x"),
            ("http://u:pw?3@host/x", "http://***@host/x"),
            ("http://u:pw#4@host/x", "http://***@host/x"),
            ("http://u:pw 5@ho st/x?t=tk 2", "http://***@ho st/x?t=***"),
            ("checker:pw-6@127.0.0.1/health", "***@127.0.0.1/health"),
            ("http:u:pw-7@host/", "***@host/"),
            ("//u:pw-8@host/", "//***@host/"),
            ("http://h:8080/{deploymentId/x?token={tk-3", "http://h:8080/{deploymentId/x?token=***"),
            ("not a url at all", "not a url at all"),
            ("", ""),
        ];
        for (text, shown) in cases {
            assert_eq!(redact_url(text), shown, "{text}");
        }
        assert_eq!(redact_url_with("http://u:pw@h/k/tk-4/%zz", &[2]), "http://***@h/k/***/%zz");
    }

    /// Passwords holding every pair of the characters that end an authority, a path or a query:
    /// the redacted text never shows the password or any part of it.
    #[test]
    fn no_password_shows_whatever_it_holds() {
        let specials = ['/', '\\', '?', '#', '@', ':', '%', ' ', '&', '=', '[', ']'];
        for a in specials {
            for b in specials {
                let url = format!("http://user:pwA{a}pwB{b}pwC@app.internal:8080/health?token=tkD");
                let shown = redact_url(&url);
                for part in ["pwA", "pwB", "pwC", "tkD"] {
                    assert!(!shown.contains(part), "{url} shows {part}: {shown}");
                }
            }
        }
    }
}
