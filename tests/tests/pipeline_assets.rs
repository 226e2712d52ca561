//! The assets that ship Pipewarden: buildspec.yml has the phases CodeBuild runs and calls the
//! project's own commands; the Jenkinsfile is a well-formed declarative pipeline with the same
//! stages; the template wires what the functions read.

use pipewarden_tests::repo_root;
use serde_yaml_ng::Value;

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

fn commands(buildspec: &Value, phase: &str) -> Vec<String> {
    buildspec["phases"][phase]["commands"]
        .as_sequence()
        .unwrap_or_else(|| panic!("phase {phase} has no commands"))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn buildspec_has_every_phase_and_runs_tests_build_and_package() {
    let b = yaml("buildspec.yml");
    assert_eq!(b["version"].as_f64(), Some(0.2));
    for phase in ["install", "pre_build", "build", "post_build"] {
        assert!(!commands(&b, phase).is_empty(), "{phase}");
    }
    assert!(commands(&b, "pre_build").iter().any(|c| c == "make test"), "the README's test command");
    assert!(commands(&b, "build").iter().any(|c| c == "sam build"));
    assert!(commands(&b, "post_build").iter().any(|c| c.starts_with("sam package --s3-bucket \"$ARTIFACT_BUCKET\"")));
    assert_eq!(b["artifacts"]["files"][0].as_str(), Some("packaged.yaml"));
}

/// Tokens of a Groovy file, enough to check nesting: braces and parentheses outside strings and
/// comments. Returns the stage names of a declarative pipeline.
fn declarative_stages(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut stack = Vec::new();
    let mut stages = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 1;
            }
            '\'' | '"' => {
                let quote = if rest == "'''" || rest == "\"\"\"" { rest.clone() } else { chars[i].to_string() };
                let start = i;
                i += quote.len();
                loop {
                    if i >= chars.len() {
                        return Err(format!("unterminated string starting at character {start}"));
                    }
                    if chars[i] == '\\' {
                        i += 2;
                        continue;
                    }
                    let here: String = chars[i..chars.len().min(i + quote.len())].iter().collect();
                    if here == quote {
                        i += quote.len() - 1;
                        break;
                    }
                    i += 1;
                }
                let before: String = chars[..start].iter().collect();
                if before.trim_end().ends_with("stage(") {
                    stages.push(chars[start + 1..i].iter().collect());
                }
            }
            '{' | '(' | '[' => stack.push(chars[i]),
            '}' | ')' | ']' => {
                let open = stack.pop().ok_or(format!("unbalanced {} at character {i}", chars[i]))?;
                let expected = match open {
                    '{' => '}',
                    '(' => ')',
                    _ => ']',
                };
                if chars[i] != expected {
                    return Err(format!("{open} closed by {} at character {i}", chars[i]));
                }
            }
            _ => {}
        }
        i += 1;
    }
    if !stack.is_empty() {
        return Err(format!("{} unclosed bracket(s)", stack.len()));
    }
    Ok(stages)
}

#[test]
fn jenkinsfile_is_a_well_formed_declarative_pipeline_with_the_same_stages() {
    let text = std::fs::read_to_string(repo_root().join("Jenkinsfile")).unwrap();
    assert!(text.trim_start_matches(|c: char| c == '/' || c.is_whitespace()).contains("pipeline {"));
    let stages = declarative_stages(&text).unwrap();
    assert_eq!(stages, vec!["Test", "Build", "Package", "Deploy"]);
    assert!(text.contains("sh 'make test'"));
    assert!(declarative_stages("pipeline { stages { stage('x') { steps { sh 'a' } }").is_err(), "the check can fail");
    assert!(declarative_stages("pipeline { sh 'unterminated }").is_err());
}

#[test]
fn template_passes_each_function_the_configuration_it_reads() {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    for variable in [
        "PIPELINE_TOPIC_ARN",
        "NOTIFY_ON",
        "AUDIT_BUCKET",
        "DEPLOY_TOPIC_ARN",
        "VALIDATION_SPEC_S3_URI",
        "SAFETY_MARGIN_MS",
        "ROUTING_RULES_S3_URI",
        "ALARM_CRITICAL_TOPIC_ARN",
        "ALARM_WARNING_TOPIC_ARN",
        "ALARM_INFO_TOPIC_ARN",
    ] {
        assert!(text.contains(&format!("{variable}:")), "{variable} is not set in template.yaml");
    }
    for binary in ["pipeline-notifier", "deploy-validator", "alarm-fanout"] {
        assert!(text.contains(&format!("Binary: {binary}")), "{binary}");
    }
    assert!(
        text.contains("FunctionName: !Sub CodeDeployHook_"),
        "CodeDeploy's managed role invokes only CodeDeployHook_* functions"
    );
    let rules = std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml")).unwrap();
    for variable in ["$ALARM_CRITICAL_TOPIC_ARN", "$ALARM_WARNING_TOPIC_ARN", "$ALARM_INFO_TOPIC_ARN"] {
        assert!(rules.contains(variable), "example rules use {variable}");
    }
}

#[test]
fn example_rules_and_spec_are_valid() {
    let vars: std::collections::HashMap<&str, &str> = std::collections::HashMap::from([
        ("ALARM_CRITICAL_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:critical"),
        ("ALARM_WARNING_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:warning"),
        ("ALARM_INFO_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:info"),
    ]);
    let rules = std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml")).unwrap();
    let parsed = alarm_fanout::rules::RuleSet::parse(&rules, "examples/routing-rules.yaml", &vars).unwrap();
    assert_eq!(parsed.rules.len(), 3);
    let spec = std::fs::read_to_string(repo_root().join("examples/flask-app/validation.yaml")).unwrap();
    let spec = deploy_validator::spec::Spec::parse(&spec, "examples/flask-app/validation.yaml").unwrap();
    assert_eq!(spec.checks.len(), 2);
}
