//! The template deploys on a real account and wires what the README promises. Static linters
//! passed on a template whose log groups could not be created (the key policy did not let
//! CloudWatch Logs use the key), so these tests check the wiring itself: the project's cfn-lint
//! rule (tools/cfn-rules) on the template and on each defect it exists to catch, the IAM linter
//! (parliament, tools/iam_lint.py), and each permission a promised path needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use pipewarden_devkit::{repo_root, template_json};
use serde_json::{json, Value};

fn venv(tool: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(tool);
    assert!(path.exists(), "{} is missing: run `make test`, which installs it", path.display());
    path
}

fn template_text() -> String {
    std::fs::read_to_string(repo_root().join("template.yaml")).unwrap()
}

struct Lint {
    ok: bool,
    output: String,
}

/// cfn-lint with the project's rules, as `make test` runs it.
fn cfn_lint(template: &Path) -> Lint {
    let out = Command::new(venv("cfn-lint"))
        .arg("--append-rules")
        .arg(repo_root().join("tools/cfn-rules"))
        .arg("--")
        .arg(template)
        .output()
        .unwrap();
    Lint { ok: out.status.success(), output: String::from_utf8_lossy(&out.stdout).to_string() }
}

fn write_variant(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("pipewarden-template-{}-{name}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The template without the key-policy statement `sid` (its lines up to the next statement).
fn without_statement(text: &str, sid: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == format!("- Sid: {sid}")).unwrap_or_else(|| panic!("no {sid}"));
    let indent = lines[start].len() - lines[start].trim_start().len();
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let i = l.len() - l.trim_start().len();
            !l.trim().is_empty()
                && (i < indent || (i == indent && (l.trim_start().starts_with('-') || l.trim_start().starts_with('#'))))
        })
        .map(|p| start + 1 + p)
        .unwrap_or(lines.len());
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend_from_slice(&lines[end..]);
    out.join("\n") + "\n"
}

#[test]
fn key_policy_rule_passes_the_template_and_names_every_service_left_out() {
    let text = template_text();
    let lint = cfn_lint(&repo_root().join("template.yaml"));
    assert!(lint.ok, "the template must pass its own rules:\n{}", lint.output);

    // The defect of the first version: no statement for CloudWatch Logs. Creating the log groups,
    // and so the stack, failed.
    let variant = write_variant("no-logs", &without_statement(&text, "CloudWatchLogsEncryptsThisStacksLogGroups"));
    let lint = cfn_lint(&variant);
    assert!(!lint.ok);
    for group in ["PipelineNotifierLogs", "DeployValidatorLogs", "AlarmFanoutLogs"] {
        assert!(
            lint.output.contains(&format!(
                "E9101 {group} is encrypted with PipewardenKey, and logs.<region>.amazonaws.com must use it"
            )),
            "{group}:\n{}",
            lint.output
        );
    }

    // Alarms could no longer notify the encrypted topics.
    let variant = write_variant("no-cloudwatch", &without_statement(&text, "CloudWatchAlarmsPublishToEncryptedTopics"));
    let lint = cfn_lint(&variant);
    assert!(
        lint.output
            .contains("AlarmCriticalTopic is encrypted with PipewardenKey, and cloudwatch.amazonaws.com must use it"),
        "{}",
        lint.output
    );
    assert!(
        lint.output.contains("ClassicAlarmInputTopic is encrypted"),
        "the topic policy lets CloudWatch publish:\n{}",
        lint.output
    );

    // Undeliverable events and messages could no longer reach the encrypted dead-letter queues.
    let variant = write_variant("no-events", &without_statement(&text, "EventBridgeSendsToEncryptedDeadLetterQueues"));
    let lint = cfn_lint(&variant);
    assert!(
        lint.output
            .contains("PipelineNotifierDLQ is encrypted with PipewardenKey, and events.amazonaws.com must use it"),
        "{}",
        lint.output
    );
    let variant = write_variant("no-sns", &without_statement(&text, "SnsSendsToEncryptedDeadLetterQueues"));
    let lint = cfn_lint(&variant);
    assert!(
        lint.output.contains("SubscriptionDLQ is encrypted with PipewardenKey, and sns.amazonaws.com must use it"),
        "{}",
        lint.output
    );

    // And no more than needed: a grant to a service that writes nothing the key encrypts.
    let extra = text.replace(
        "          - Sid: CloudWatchAlarmsPublishToEncryptedTopics\n",
        "          - Sid: Needless\n            Effect: Allow\n            Principal: {Service: s3.amazonaws.com}\n            Action: kms:Decrypt\n            Resource: \"*\"\n          - Sid: CloudWatchAlarmsPublishToEncryptedTopics\n",
    );
    let lint = cfn_lint(&write_variant("needless", &extra));
    assert!(lint.output.contains("lets s3.amazonaws.com use it (Needless), but nothing PipewardenKey encrypts is written by s3.amazonaws.com"), "{}", lint.output);
}

#[test]
fn logs_grant_is_scoped_to_this_stacks_log_groups() {
    let t = template_json();
    let statement = t["Resources"]["PipewardenKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "CloudWatchLogsEncryptsThisStacksLogGroups")
        .cloned()
        .unwrap();
    let scope = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"].as_str().unwrap();
    assert!(scope.ends_with(":log-group:/pipewarden/${AWS::StackName}/*"), "{scope}");
    for group in ["PipelineNotifierLogs", "DeployValidatorLogs", "AlarmFanoutLogs"] {
        let name = t["Resources"][group]["Properties"]["LogGroupName"]["Fn::Sub"].as_str().unwrap();
        assert!(name.starts_with("/pipewarden/${AWS::StackName}/"), "{group} is outside the key's grant: {name}");
    }
}

#[test]
fn iam_policies_pass_parliament_and_the_linter_catches_what_it_should() {
    let python = repo_root().join(".venv-checks/bin/python");
    assert!(python.exists(), "run `make test`, which installs parliament into .venv-checks");
    let lint = |template: &Path| {
        let out = Command::new(&python)
            .arg(repo_root().join("tools/iam_lint.py"))
            .arg(template)
            .args(["--allow", repo_root().join("tools/iam-lint-allow.yaml").to_str().unwrap()])
            .args(["--param", "LambdaCheckFunctions=flask-api-*"])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, output) = lint(&repo_root().join("template.yaml"));
    assert!(ok, "{output}");
    assert!(output.contains("iam-lint: ") && !output.contains("iam-lint: 0 policies"), "{output}");

    // The first version scoped PutLifecycleEventHookExecutionStatus to deployment groups: an action
    // without resource-level permissions, so every hook report was AccessDenied on a real account.
    let scoped = template_text().replace(
        "              Action: codedeploy:PutLifecycleEventHookExecutionStatus\n              Resource: \"*\"",
        "              Action: codedeploy:PutLifecycleEventHookExecutionStatus\n              Resource: !Sub \"arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:*\"",
    );
    assert_ne!(scoped, template_text(), "the variant differs");
    let (ok, output) = lint(&write_variant("scoped-report", &scoped));
    assert!(!ok, "{output}");
    assert!(
        output.contains("RESOURCE_MISMATCH") && output.contains("PutLifecycleEventHookExecutionStatus"),
        "{output}"
    );

    // An action that does not exist (a typo parliament knows from the IAM reference) fails.
    let typo = template_text().replace("Action: cloudwatch:DescribeAlarms", "Action: cloudwatch:DescribeAlarm");
    let (ok, output) = lint(&write_variant("typo", &typo));
    assert!(!ok, "{output}");
    assert!(output.contains("UNKNOWN_ACTION"), "{output}");
}

fn statements_of(function: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for policy in function["Properties"]["Policies"].as_array().unwrap() {
        for statement in policy["Statement"].as_array().unwrap() {
            match statement.get("Fn::If") {
                Some(branches) => {
                    out.extend(branches.as_array().unwrap()[1..].iter().filter(|b| b.get("Ref").is_none()).cloned())
                }
                None => out.push(statement.clone()),
            }
        }
    }
    out
}

#[test]
fn the_validator_may_invoke_only_the_functions_the_deployer_names() {
    let t = template_json();
    let validator = &t["Resources"]["DeployValidatorFunction"];
    let invoke: Vec<Value> =
        statements_of(validator).into_iter().filter(|s| s["Action"] == "lambda:InvokeFunction").collect();
    assert_eq!(invoke.len(), 1, "{invoke:?}");
    for resource in invoke[0]["Resource"].as_array().unwrap() {
        let arn = resource["Fn::Sub"].as_str().unwrap();
        assert!(arn.contains(":function:${LambdaCheckFunctions}"), "{arn}");
    }
    assert_eq!(
        t["Conditions"]["HasLambdaCheckFunctions"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "LambdaCheckFunctions"}, ""]}]})
    );
    assert_eq!(
        validator["Properties"]["Environment"]["Variables"]["LAMBDA_CHECK_FUNCTIONS"],
        json!({"Ref": "LambdaCheckFunctions"})
    );
    assert_eq!(t["Parameters"]["LambdaCheckFunctions"]["Default"], "", "off unless the deployer names functions");
    // No statement of any function grants a service action on every resource of a kind.
    for function in ["PipelineNotifierFunction", "DeployValidatorFunction", "AlarmFanoutFunction"] {
        for statement in statements_of(&t["Resources"][function]) {
            let text = statement.to_string();
            assert!(!text.contains(":function:*"), "{function}: {text}");
        }
    }
}

#[test]
fn only_the_named_principal_may_write_the_configuration() {
    let t = template_json();
    let statements =
        t["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap().clone();
    let deny =
        statements.iter().find(|s| s["Sid"] == "ConfigWrittenOnlyByTheConfigWriter").expect("a config write guard");
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Principal"], "*");
    for action in ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"] {
        assert!(deny["Action"].as_array().unwrap().contains(&json!(action)), "{action}");
    }
    assert_eq!(deny["Resource"], json!({"Fn::Sub": "${AuditBucket.Arn}/config/*"}));
    assert_eq!(deny["Condition"], json!({"ArnNotLike": {"aws:PrincipalArn": {"Ref": "ConfigWriterArn"}}}));
    assert!(t["Parameters"]["ConfigWriterArn"].get("Default").is_none(), "the deployer must name the writer");
    // aws:PrincipalArn of a role session is the role's ARN: an sts assumed-role ARN would never
    // match, and would lock everyone out of config/.
    let pattern = t["Parameters"]["ConfigWriterArn"]["AllowedPattern"].as_str().unwrap();
    assert!(pattern.contains(":iam::") && !pattern.contains("sts"), "{pattern}");
    // The lifecycle never expires the current configuration: only what the functions write, and
    // the silences (which last at most 90 days by design, and are deleted after 91).
    for rule in t["Resources"]["AuditBucket"]["Properties"]["LifecycleConfiguration"]["Rules"].as_array().unwrap() {
        if rule.get("ExpirationInDays").is_some() {
            let prefix = rule["Prefix"].as_str().unwrap_or("");
            assert!(
                ["pipeline-notifier/", "deploy-validator/", "alarm-fanout/", "deploy-context/", "config/silences/"]
                    .contains(&prefix),
                "rule {} expires {prefix:?}, which reaches config/",
                rule["Id"]
            );
            if prefix == "config/silences/" {
                assert!(rule["ExpirationInDays"].as_u64().unwrap() > 90, "a silence may last 90 days");
            }
        }
    }
    // The documents the guard protects are where it looks, and never where silences expire.
    for key in ["RoutingRulesKey", "ValidationSpecKey"] {
        let p = &t["Parameters"][key];
        let pattern = p["AllowedPattern"].as_str().unwrap();
        assert!(pattern.starts_with("^config/(?!silences/)"), "{key}: {pattern}");
        assert!(p["Default"].as_str().unwrap().starts_with("config/"), "{key}");
        assert!(!p["Default"].as_str().unwrap().starts_with("config/silences/"), "{key}");
    }
    // The functions only read the configuration.
    for function in ["PipelineNotifierFunction", "DeployValidatorFunction", "AlarmFanoutFunction"] {
        for statement in statements_of(&t["Resources"][function]) {
            if statement.to_string().contains("s3:PutObject") {
                assert!(!statement.to_string().contains("config"), "{function} may write config: {statement}");
            }
        }
    }
}

#[test]
fn alarm_lambda_actions_may_invoke_alarm_fanout_from_this_account_only() {
    let t = template_json();
    let permission = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| {
            r["Type"] == "AWS::Lambda::Permission"
                && r["Properties"]["Principal"] == "lambda.alarms.cloudwatch.amazonaws.com"
        })
        .expect("a permission for CloudWatch alarm actions");
    let p = &permission["Properties"];
    assert_eq!(p["FunctionName"], json!({"Ref": "AlarmFanoutFunction"}));
    assert_eq!(p["Action"], "lambda:InvokeFunction");
    assert_eq!(p["SourceAccount"], json!({"Ref": "AWS::AccountId"}));
    assert_eq!(
        p["SourceArn"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AlarmActionAlarmNames}"})
    );
    assert_eq!(t["Parameters"]["AlarmActionAlarmNames"]["Default"], "*");
    assert_eq!(t["Outputs"]["AlarmFanoutFunctionArn"]["Value"], json!({"Fn::GetAtt": ["AlarmFanoutFunction", "Arn"]}));
}

/// alarm-fanout's timers: schedules only in its own group, passing only its scheduler role, only
/// to Scheduler; that role assumable by Scheduler for this account's group only, and allowed to
/// invoke alarm-fanout and nothing else; the function told the group and the role.
#[test]
fn alarm_fanout_timers_are_wired_and_scoped() {
    let t = template_json();
    let r = &t["Resources"];
    assert_eq!(r["AlarmFanoutSchedules"]["Type"], "AWS::Scheduler::ScheduleGroup");
    let fanout = &r["AlarmFanoutFunction"];
    let env = &fanout["Properties"]["Environment"]["Variables"];
    assert_eq!(env["SCHEDULE_GROUP"], json!({"Ref": "AlarmFanoutSchedules"}));
    assert_eq!(env["SCHEDULER_ROLE_ARN"], json!({"Fn::GetAtt": ["AlarmFanoutSchedulerRole", "Arn"]}));
    let statements = statements_of(fanout);
    let create: Vec<&Value> = statements.iter().filter(|s| s["Action"] == "scheduler:CreateSchedule").collect();
    assert_eq!(create.len(), 1);
    assert_eq!(
        create[0]["Resource"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${AlarmFanoutSchedules}/*"})
    );
    let pass: Vec<&Value> = statements.iter().filter(|s| s["Action"] == "iam:PassRole").collect();
    assert_eq!(pass.len(), 1);
    assert_eq!(pass[0]["Resource"], json!({"Fn::GetAtt": ["AlarmFanoutSchedulerRole", "Arn"]}));
    assert_eq!(pass[0]["Condition"], json!({"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}));
    let trust = &r["AlarmFanoutSchedulerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(trust.as_array().unwrap().len(), 1);
    assert_eq!(trust[0]["Principal"], json!({"Service": "scheduler.amazonaws.com"}));
    assert_eq!(trust[0]["Condition"]["StringEquals"]["aws:SourceAccount"], json!({"Ref": "AWS::AccountId"}));
    assert_eq!(
        trust[0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!({"Fn::GetAtt": ["AlarmFanoutSchedules", "Arn"]})
    );
    assert!(r["AlarmFanoutSchedulerRole"]["Properties"].get("Policies").is_none(), "its only policy is the invoke");
    let invoke = &r["AlarmFanoutSchedulerInvoke"]["Properties"];
    assert_eq!(invoke["RoleName"], json!({"Ref": "AlarmFanoutSchedulerRole"}));
    let statement = &invoke["PolicyDocument"]["Statement"];
    assert_eq!(statement.as_array().unwrap().len(), 1);
    assert_eq!(statement[0]["Action"], "lambda:InvokeFunction");
    assert_eq!(
        statement[0]["Resource"],
        json!([{"Fn::GetAtt": ["AlarmFanoutFunction", "Arn"]}, {"Fn::Sub": "${AlarmFanoutFunction.Arn}:*"}])
    );
}

#[test]
fn codestar_notifications_reach_the_notifier_when_asked_for() {
    let t = template_json();
    let r = &t["Resources"];
    for name in [
        "PipelineNotificationInputTopic",
        "PipelineNotificationInputTopicPolicy",
        "PipelineNotificationInputSubscription",
        "PipelineNotificationInputPermission",
    ] {
        assert_eq!(r[name]["Condition"], "WantsCodeStar", "{name}");
    }
    let statement = &r["PipelineNotificationInputTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Principal"], json!({"Service": "codestar-notifications.amazonaws.com"}));
    assert_eq!(statement["Action"], "sns:Publish");
    assert_eq!(statement["Condition"], json!({"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}));
    let subscription = &r["PipelineNotificationInputSubscription"]["Properties"];
    assert_eq!(subscription["Protocol"], "lambda");
    assert_eq!(subscription["Endpoint"], json!({"Fn::GetAtt": ["PipelineNotifierFunction", "Arn"]}));
    let permission = &r["PipelineNotificationInputPermission"]["Properties"];
    assert_eq!(permission["Principal"], "sns.amazonaws.com");
    assert_eq!(permission["SourceArn"], json!({"Ref": "PipelineNotificationInputTopic"}));
    assert_eq!(t["Outputs"]["PipelineNotificationInputTopicArn"]["Condition"], "WantsCodeStar");
}

/// `sam build` builds through cargo-lambda, which adds `profile.release.panic="abort"` to cargo's
/// command line when the release profile does not say otherwise (seen in its build command here).
/// With abort, a check that panics kills deploy-validator before it reports, and CodeDeploy waits
/// an hour; with unwind the engine turns the panic into a Failed report.
#[test]
fn release_builds_unwind_panics_so_the_hook_can_report_them() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let release = manifest.split("[profile.release]").nth(1).expect("a release profile");
    let section = release.split("\n[").next().unwrap();
    let panic: Vec<&str> = section.lines().filter(|l| l.trim_start().starts_with("panic")).map(str::trim).collect();
    assert_eq!(panic, vec!["panic = \"unwind\""], "[profile.release] must say panic = \"unwind\"");
}

/// alarm-fanout asks CodeDeploy which deployment of an EC2 release's group is in flight:
/// `ListDeployments`, and `BatchGetDeployments` for who created each, on deployment groups of the
/// stack's account and region, nothing more.
#[test]
fn alarm_fanout_may_list_the_deployments_of_deployment_groups_only() {
    let t = template_json();
    let statements: Vec<Value> = statements_of(&t["Resources"]["AlarmFanoutFunction"])
        .into_iter()
        .filter(|s| s.to_string().contains("codedeploy:"))
        .collect();
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Action"], json!(["codedeploy:ListDeployments", "codedeploy:BatchGetDeployments"]));
    assert_eq!(
        statements[0]["Resource"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:*"})
    );
}

/// Each AWS call a function makes is allowed by its role (the calls the code makes, by name).
#[test]
fn every_lookup_the_functions_make_is_allowed() {
    let t = template_json();
    let allows = |function: &str, action: &str| {
        statements_of(&t["Resources"][function]).iter().any(|s| match &s["Action"] {
            Value::String(a) => a == action,
            Value::Array(list) => list.iter().any(|a| a == action),
            _ => false,
        })
    };
    for (function, action) in [
        ("AlarmFanoutFunction", "cloudwatch:ListTagsForResource"),
        ("AlarmFanoutFunction", "codedeploy:ListDeployments"),
        ("AlarmFanoutFunction", "codedeploy:BatchGetDeployments"),
        ("AlarmFanoutFunction", "sns:Publish"),
        ("AlarmFanoutFunction", "scheduler:CreateSchedule"),
        ("AlarmFanoutFunction", "cloudwatch:DescribeAlarms"),
        ("AlarmFanoutFunction", "iam:PassRole"),
        ("PipelineNotifierFunction", "codepipeline:ListActionExecutions"),
        ("PipelineNotifierFunction", "codepipeline:GetPipelineExecution"),
        ("PipelineNotifierFunction", "codedeploy:ListDeploymentTargets"),
        ("PipelineNotifierFunction", "codedeploy:BatchGetDeploymentTargets"),
        ("DeployValidatorFunction", "codedeploy:GetDeployment"),
        ("DeployValidatorFunction", "codedeploy:PutLifecycleEventHookExecutionStatus"),
        ("DeployValidatorFunction", "codedeploy:ListDeploymentTargets"),
        ("DeployValidatorFunction", "codedeploy:BatchGetDeploymentTargets"),
        ("DeployValidatorFunction", "cloudwatch:DescribeAlarms"),
    ] {
        assert!(allows(function, action), "{function} may not call {action}");
    }
}

/// The trust store is the deployer's choice (README, Configuration): every function gets the
/// template's `TrustStore` and `CaBundlePath`, and the layer holding the bundle when one is named.
#[test]
fn every_function_gets_the_trust_store_the_deployer_chose() {
    let t = template_json();
    let vars = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(vars["PIPEWARDEN_TRUST_STORE"], json!({"Ref": "TrustStore"}));
    assert_eq!(vars["PIPEWARDEN_CA_BUNDLE"], json!({"Ref": "CaBundlePath"}));
    assert_eq!(t["Parameters"]["TrustStore"]["AllowedValues"], json!(["mozilla", "system"]));
    assert_eq!(t["Parameters"]["TrustStore"]["Default"], "mozilla");
    for function in ["PipelineNotifierFunction", "DeployValidatorFunction", "AlarmFanoutFunction"] {
        let properties = &t["Resources"][function]["Properties"];
        assert!(properties["Environment"]["Variables"].get("PIPEWARDEN_TRUST_STORE").is_none(), "{function}");
        assert_eq!(
            properties["Layers"],
            json!({"Fn::If": ["HasCaBundleLayer", [{"Ref": "CaBundleLayerArn"}], {"Ref": "AWS::NoValue"}]}),
            "{function}"
        );
    }
}
