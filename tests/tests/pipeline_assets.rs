//! The assets that ship Pipewarden: buildspec.yml has the phases CodeBuild runs and calls the
//! project's own commands; the Jenkinsfile is a well-formed declarative pipeline with the same
//! stages; both pipelines' install and build commands work on a clean agent (they are run here, not
//! only read); the template wires what the functions read.

use pipewarden_devkit::groovy::{block, groovy_tokens, Token};
use pipewarden_devkit::repo_root;
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
    assert!(commands(&b, "build").iter().any(|c| c == "scripts/sam-build.sh"));
    assert!(commands(&b, "post_build").iter().any(|c| c.contains("sam package --s3-bucket \"$ARTIFACT_BUCKET\"")));
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
    let tokens = groovy_tokens(&text).unwrap();
    assert!(sh_steps(&tokens, "Test").iter().any(|s| s.ends_with("make test")), "the README's test command");
    assert_eq!(sh_steps(&tokens, "Build"), vec!["scripts/sam-build.sh"]);
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
    assert_eq!(parsed.inhibit.len(), 1);
    assert!(parsed.repeats());
    let spec = std::fs::read_to_string(repo_root().join("examples/flask-app/validation.yaml")).unwrap();
    let spec = deploy_validator::spec::Spec::parse(&spec, "examples/flask-app/validation.yaml").unwrap();
    assert_eq!(spec.checks.len(), 2);
}

// ---- The pipelines' commands, run on a clean agent ----
//
// CodeBuild's standard image and a bare Jenkins agent have no .venv, no cargo-lambda, no zig and no
// arm64 Rust target, and nothing of the project's on PATH. The tests below run the commands the two
// files name, as each runner would, with only the system tools and cargo on PATH and an empty HOME.
// They leave out only what cannot run here: `make test` (these tests run inside it) and the steps
// that need AWS (sam package, sam deploy). The first of the two builds is a real arm64 release build
// of the three functions; the second runs the same commands on its cached target/.

/// The scripts of the `sh '...'` steps of a stage, in order.
fn sh_steps(tokens: &[Token], stage: &str) -> Vec<String> {
    let start = tokens
        .windows(4)
        .position(|w| {
            w[0] == Token::Word("stage".into()) && w[1] == Token::Punct('(') && w[2] == Token::Str(stage.into())
        })
        .unwrap_or_else(|| panic!("no stage('{stage}')"));
    block(tokens, start)
        .windows(2)
        .filter_map(|w| match w {
            [Token::Word(sh), Token::Str(script)] if sh == "sh" => Some(script.clone()),
            _ => None,
        })
        .collect()
}

/// The pipeline-level `environment { NAME = 'value' }` variables.
fn jenkins_environment(tokens: &[Token]) -> Vec<(String, String)> {
    let Some(start) = tokens.iter().position(|t| *t == Token::Word("environment".into())) else {
        return Vec::new();
    };
    block(tokens, start)
        .windows(3)
        .filter_map(|w| match w {
            [Token::Word(name), Token::Punct('='), Token::Str(value)] => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

/// A build agent with nothing of the project's: an empty HOME, PATH with only the system folders and
/// the folder of this machine's cargo (a stock image has no Rust; the pipelines install it with
/// rustup when `cargo` is missing, which this machine cannot download), and RUSTUP_HOME/CARGO_HOME
/// naming this machine's toolchain, which an empty HOME would otherwise hide.
struct CleanAgent {
    env: Vec<(String, String)>,
    logs: std::path::PathBuf,
}

impl CleanAgent {
    fn new(name: &str) -> CleanAgent {
        let cargo_bin = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .find(|dir| dir.join("cargo").is_file() && dir.join("rustup").is_file())
            .expect("rustup's cargo is on PATH");
        let cargo_home = std::env::var("CARGO_HOME")
            .unwrap_or_else(|_| cargo_bin.parent().expect("cargo's bin folder has a parent").display().to_string());
        let rustup_home = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| {
            let out = std::process::Command::new(cargo_bin.join("rustup")).args(["show", "home"]).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        });
        let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("clean-agent-{name}"));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let path = format!("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:{}", cargo_bin.display());
        let env = vec![
            ("HOME".to_string(), home.display().to_string()),
            ("PATH".to_string(), path),
            ("CARGO_HOME".to_string(), cargo_home),
            ("RUSTUP_HOME".to_string(), rustup_home),
        ];
        CleanAgent { env, logs: root }
    }

    /// Runs `shell args...` in the repository with this agent's environment (and `vars`) only,
    /// output to a log; panics with the log's end when it fails or takes longer than `limit`.
    fn run(&self, what: &str, shell: &[&str], vars: &[(String, String)], limit: std::time::Duration) {
        use std::os::unix::process::CommandExt;
        let log_path = self.logs.join(format!("{}.log", what.replace(|c: char| !c.is_alphanumeric(), "-")));
        let log = std::fs::File::create(&log_path).unwrap();
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new(shell[0])
            .args(&shell[1..])
            .current_dir(repo_root())
            .env_clear()
            .envs(self.env.iter().chain(vars).map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > limit {
                let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        };
        let elapsed = started.elapsed().as_secs();
        if status.is_some_and(|s| s.success()) {
            eprintln!("{what}: passed in {elapsed} s (log: {})", log_path.display());
            return;
        }
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        let how = status.map_or(format!("did not finish in {} s", limit.as_secs()), |s| format!("failed ({s})"));
        panic!("{what} {how} on a clean agent after {elapsed} s; end of {}:\n{tail}", log_path.display());
    }
}

/// The three functions as `sam build` left them: fresh arm64 Linux executables.
fn assert_built_for_lambda() {
    for function in ["PipelineNotifierFunction", "DeployValidatorFunction", "AlarmFanoutFunction"] {
        let path = repo_root().join(".aws-sam/build").join(function).join("bootstrap");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&bytes[..4], b"\x7fELF", "{} is an executable", path.display());
        assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 0xb7, "{} is built for aarch64", path.display());
    }
}

/// One build at a time: both pipelines build into the same target/ and .aws-sam/.
static BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fresh_build_output() {
    let _ = std::fs::remove_dir_all(repo_root().join(".aws-sam/build"));
    let _ = std::fs::remove_file(repo_root().join(".aws-sam/build.toml"));
}

const BUILD_LIMIT: std::time::Duration = std::time::Duration::from_secs(40 * 60);

#[test]
fn buildspec_install_and_build_phases_work_on_a_clean_agent() {
    let _one_build = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let b = yaml("buildspec.yml");
    // CodeBuild (buildspec 0.2) runs every command of a build in one shell, /bin/sh unless
    // env.shell says otherwise, and fails the phase at the first command that exits non-zero.
    let shell = b["env"]["shell"].as_str().unwrap_or("/bin/sh").to_string();
    let mut vars: Vec<(String, String)> = b["env"]["variables"]
        .as_mapping()
        .map(|m| m.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), yaml_scalar(v))).collect())
        .unwrap_or_default();
    // Set on the build project, which overrides the buildspec's empty default.
    vars.retain(|(k, _)| k != "ARTIFACT_BUCKET");
    vars.push(("ARTIFACT_BUCKET".into(), "pipewarden-artifacts-example".into()));
    let mut script = String::new();
    // post_build is left out: sam package uploads to S3.
    for phase in ["install", "pre_build", "build"] {
        for command in commands(&b, phase) {
            if command.trim() == "make test" {
                continue; // this test runs inside `make test`
            }
            script.push_str(&command);
            script.push_str(&format!(
                "\nstatus=$?; if [ $status -ne 0 ]; then echo \"buildspec: {phase} failed (exit $status)\" >&2; exit $status; fi\n"
            ));
        }
    }
    fresh_build_output();
    CleanAgent::new("codebuild").run("buildspec.yml install+build", &[&shell, "-c", &script], &vars, BUILD_LIMIT);
    assert_built_for_lambda();
}

#[test]
fn jenkinsfile_test_and_build_stage_steps_work_on_a_clean_agent() {
    let _one_build = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(repo_root().join("Jenkinsfile")).unwrap();
    let tokens = groovy_tokens(&text).unwrap();
    let vars = jenkins_environment(&tokens);
    let agent = CleanAgent::new("jenkins");
    fresh_build_output();
    let build_steps = sh_steps(&tokens, "Build");
    assert!(!build_steps.is_empty(), "the Build stage has sh steps");
    // Each `sh` step is a new `sh -xe` process that starts from the agent's environment. The Test
    // stage's steps other than `make test` (which runs these tests) come first, as on Jenkins;
    // Package and Deploy need AWS.
    let steps = sh_steps(&tokens, "Test").into_iter().filter(|s| !s.contains("make test")).chain(build_steps);
    for (n, step) in steps.enumerate() {
        agent.run(
            &format!("Jenkinsfile step {} `{}`", n + 1, step.trim()),
            &["/bin/sh", "-xe", "-c", &step],
            &vars,
            BUILD_LIMIT,
        );
    }
    assert_built_for_lambda();
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
    }
}

#[test]
fn groovy_tokens_read_single_quoted_steps_and_refuse_interpolated_ones() {
    let tokens = groovy_tokens(
        "stage('B') { steps { sh 'a \\'b\\'' // sh 'commented'\n sh '''\n x \\\n y\n''' } }\nstage('C') { steps { sh 'c' } }",
    )
    .unwrap();
    assert_eq!(sh_steps(&tokens, "B"), vec!["a 'b'".to_string(), "\n x  y\n".to_string()]);
    assert_eq!(sh_steps(&tokens, "C"), vec!["c"]);
    assert!(groovy_tokens("sh \"$HOME\"").is_err());
    assert!(groovy_tokens("sh 'open").is_err());
}
