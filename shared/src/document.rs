//! Configuration documents (routing rules, validation specs): given inline in one environment
//! variable or as `s3://bucket/key` in another, written as JSON or YAML.

use serde::de::DeserializeOwned;

use crate::config::{ConfigError, Vars};
use crate::ports::ObjectStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentSource {
    /// The text itself, from the named variable.
    Inline {
        variable: &'static str,
        text: String,
    },
    S3 {
        bucket: String,
        key: String,
    },
}

impl DocumentSource {
    /// Exactly one of `inline_var` (the text) and `uri_var` (`s3://bucket/key`) must be set.
    pub fn from_vars(vars: &impl Vars, inline_var: &'static str, uri_var: &'static str) -> Result<Self, ConfigError> {
        match (vars.optional(inline_var), vars.optional(uri_var)) {
            (Some(text), None) => Ok(DocumentSource::Inline { variable: inline_var, text }),
            (None, Some(uri)) => {
                parse_s3_uri(&uri).ok_or_else(|| ConfigError::new(uri_var, format!("{uri:?} is not s3://bucket/key")))
            }
            (Some(_), Some(_)) => {
                Err(ConfigError::new(inline_var, format!("set only one of {inline_var} and {uri_var}")))
            }
            (None, None) => Err(ConfigError::new(inline_var, format!("neither it nor {uri_var} is set"))),
        }
    }

    /// Where the document came from, for error messages.
    pub fn origin(&self) -> String {
        match self {
            DocumentSource::Inline { variable, .. } => variable.to_string(),
            DocumentSource::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// The document's text.
    pub async fn read(&self, s3: &aws_sdk_s3::Client) -> Result<String, String> {
        match self {
            DocumentSource::Inline { text, .. } => Ok(text.clone()),
            DocumentSource::S3 { bucket, key } => {
                let origin = self.origin();
                let store = crate::adapters::S3ObjectStore::new(s3.clone(), bucket.clone());
                match store.get(key).await {
                    Ok(Some(object)) => {
                        String::from_utf8(object.body).map_err(|_| format!("{origin} is not UTF-8 text"))
                    }
                    Ok(None) => Err(format!("{origin} does not exist")),
                    Err(e) => Err(format!("{origin} could not be read: {e}")),
                }
            }
        }
    }
}

pub fn parse_s3_uri(uri: &str) -> Option<DocumentSource> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty())
        .then(|| DocumentSource::S3 { bucket: bucket.to_string(), key: key.to_string() })
}

/// Parses JSON (text starting with `{`, errors give the field's path) or YAML. An error never
/// quotes a string value of the document (serde's "invalid type: string \"...\"" would echo a
/// header or a URL with its secret into logs, evidence and notices): it says "a string".
pub fn parse_json_or_yaml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let problem = if text.trim_start().starts_with('{') {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    };
    problem.map_err(|p| unquote_strings(&p))
}

/// Replaces every `string "..."` serde quotes in an error with `a string`.
fn unquote_strings(problem: &str) -> String {
    let mut out = String::with_capacity(problem.len());
    let mut rest = problem;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        let quoted = &rest[at + "string \"".len()..];
        // The quote ends at the first unescaped `"` (serde writes the value with Debug escapes).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(i) => rest = &quoted[i + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Check {
        headers: HashMap<String, String>,
    }

    #[test]
    fn errors_never_quote_a_string_of_the_document() {
        for text in [
            "headers: 'Authorization: Bearer sk-live-123'",
            r#"{"headers": "Authorization: Bearer sk-live-123 \" still"}"#,
        ] {
            let problem = parse_json_or_yaml::<Check>(text).unwrap_err();
            assert!(!problem.contains("sk-live-123"), "{problem}");
            assert!(problem.contains("invalid type: a string"), "{problem}");
        }
    }

    #[test]
    fn exactly_one_source() {
        let s3 = HashMap::from([("SPEC_URI", "s3://specs/flask/validation.yaml")]);
        assert_eq!(
            DocumentSource::from_vars(&s3, "SPEC", "SPEC_URI").unwrap(),
            DocumentSource::S3 { bucket: "specs".into(), key: "flask/validation.yaml".into() }
        );
        let none = HashMap::<&str, &str>::new();
        assert_eq!(DocumentSource::from_vars(&none, "SPEC", "SPEC_URI").unwrap_err().variable, "SPEC");
        let bad = HashMap::from([("SPEC_URI", "https://x/y")]);
        assert_eq!(DocumentSource::from_vars(&bad, "SPEC", "SPEC_URI").unwrap_err().variable, "SPEC_URI");
        let both = HashMap::from([("SPEC", "a"), ("SPEC_URI", "s3://b/k")]);
        assert!(DocumentSource::from_vars(&both, "SPEC", "SPEC_URI").is_err());
    }
}
