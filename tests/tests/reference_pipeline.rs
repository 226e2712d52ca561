//! The reference Flask app's delivery (`examples/flask-app`: pipeline.yaml, buildspec.yml,
//! Jenkinsfile and the app's own tests), checked as a team would before standing it up: the
//! deployment group rolls back on a failed deployment and on any of the app's alarms; the alarms
//! watch the app's load balancer and instances and carry the tags Pipewarden routes on, with the
//! application its deployment context is keyed by; the pipeline is V2, source to build to deploy;
//! the buildspec and the Jenkinsfile test the app and build the revision with pipewarden-validate
//! (their build commands are run here, with a stand-in binary); the Jenkinsfile uploads the revision,
//! deploys it, waits, and fails the build when the deployment fails (run against a stand-in `aws`);
//! and the app's pytest suite passes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alarm_fanout::alarm::{AlarmTransition, MetricRef, Watched};
use alarm_fanout::rules::{RuleSet, Severity};
use pipewarden_devkit::groovy::{block, groovy_tokens, Token};
use pipewarden_devkit::{python, repo_root};
use pipewarden_shared::events::cloudwatch::AlarmStateValue;
use serde_json::{json, Value};

// ---- pipeline.yaml, read as CloudFormation reads it ----------------------------------------

/// YAML to JSON with CloudFormation's short forms spelled out: `!Ref X` is `{"Ref": "X"}`,
/// `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`, `!Sub ...` is `{"Fn::Sub": ...}`.
fn cfn_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Yaml;
    match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => json!(b),
        Yaml::Number(n) => n.as_i64().map(|i| json!(i)).unwrap_or_else(|| json!(n.as_f64())),
        Yaml::String(s) => json!(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(cfn_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter().map(|(k, v)| (k.as_str().expect("keys are strings").to_string(), cfn_json(v))).collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = cfn_json(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: inner }),
                "GetAtt" => {
                    let parts: Vec<Value> = match inner.as_str() {
                        Some(text) => text.splitn(2, '.').map(|p| json!(p)).collect(),
                        None => inner.as_array().cloned().unwrap_or_default(),
                    };
                    json!({ "Fn::GetAtt": parts })
                }
                _ => json!({ format!("Fn::{name}"): inner }),
            }
        }
    }
}

fn pipeline_template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("examples/flask-app/pipeline.yaml")).unwrap();
    cfn_json(serde_yaml_ng::from_str(&text).expect("pipeline.yaml is YAML"))
}

fn resources_of<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(name, r)| (name.as_str(), &r["Properties"]))
        .collect()
}

fn the_one<'a>(template: &'a Value, kind: &str) -> (&'a str, &'a Value) {
    let found = resources_of(template, kind);
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn default_of(template: &Value, parameter: &str) -> String {
    let default = &template["Parameters"][parameter]["Default"];
    default.as_str().map(str::to_string).unwrap_or_else(|| panic!("parameter {parameter} has no default"))
}

/// What a deployer gives the parameters that have no default (what their AllowedPattern asks for).
const SAMPLE_PARAMETERS: [(&str, &str); 3] = [
    ("LoadBalancerFullName", "app/flask/0123456789abcdef"),
    ("TargetGroupFullName", "targetgroup/flask/0123456789abcdef"),
    ("AutoScalingGroupName", "flask-web-app"),
];

/// A value as the stack would have it with every parameter at its default (or its sample):
/// `Ref`s to parameters, `Fn::Sub` over parameters, and `Ref`s to alarms (their names).
fn with_defaults(template: &Value, value: &Value) -> String {
    if let Some(text) = value.as_str() {
        return text.to_string();
    }
    if let Some(name) = value["Ref"].as_str() {
        if let Some((_, sample)) = SAMPLE_PARAMETERS.iter().find(|(p, _)| *p == name) {
            return sample.to_string();
        }
        if template["Parameters"].get(name).is_some() {
            return default_of(template, name);
        }
        let resource = &template["Resources"][name];
        return match resource["Type"].as_str() {
            Some("AWS::CloudWatch::Alarm") => with_defaults(template, &resource["Properties"]["AlarmName"]),
            Some("AWS::CodeDeploy::Application") => with_defaults(template, &resource["Properties"]["ApplicationName"]),
            other => panic!("no default value for a Ref to {name} ({other:?})"),
        };
    }
    if let Some(text) = value["Fn::Sub"].as_str() {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}').expect("closed ${");
            out.push_str(&with_defaults(template, &json!({ "Ref": &rest[start + 2..end] })));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        return out;
    }
    panic!("no default value for {value}");
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

fn tags_of(properties: &Value) -> BTreeMap<String, Value> {
    properties["Tags"]
        .as_array()
        .map(|tags| tags.iter().map(|t| (t["Key"].as_str().unwrap().to_string(), t["Value"].clone())).collect())
        .unwrap_or_default()
}

fn dimensions_of(alarm: &Value) -> BTreeMap<String, Value> {
    alarm["Dimensions"]
        .as_array()
        .map(|ds| ds.iter().map(|d| (d["Name"].as_str().unwrap().to_string(), d["Value"].clone())).collect())
        .unwrap_or_default()
}

// ---- The deployment group and the alarms ----------------------------------------------------

#[test]
fn deployment_group_rolls_back_on_failure_and_on_alarm_and_watches_every_alarm_of_the_app() {
    let t = pipeline_template();
    let (_, group) = the_one(&t, "AWS::CodeDeploy::DeploymentGroup");

    let rollback = &group["AutoRollbackConfiguration"];
    assert_eq!(rollback["Enabled"], json!(true));
    let events: BTreeSet<&str> = rollback["Events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(events.contains("DEPLOYMENT_FAILURE"), "rolls back a failed deployment: {events:?}");
    assert!(events.contains("DEPLOYMENT_STOP_ON_ALARM"), "rolls back a deployment an alarm stopped: {events:?}");

    let alarms = &group["AlarmConfiguration"];
    assert_eq!(alarms["Enabled"], json!(true));
    assert_ne!(alarms["IgnorePollAlarmFailure"], json!(true), "unreadable alarms stop the deployment");
    let watched: BTreeSet<String> = alarms["Alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"]["Ref"].as_str().expect("each alarm is the template's, by Ref").to_string())
        .collect();
    let defined: BTreeSet<String> =
        resources_of(&t, "AWS::CloudWatch::Alarm").into_iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(watched, defined, "the group watches every alarm the template defines");
    assert!(watched.len() <= 10, "CodeDeploy takes at most 10 alarms per group");

    // The instances: by tag, in place, each one out of the load balancer while it is deployed to.
    assert_eq!(
        group["Ec2TagFilters"],
        json!([{ "Key": reference("InstanceTagKey"), "Value": reference("InstanceTagValue"), "Type": "KEY_AND_VALUE" }])
    );
    assert_eq!(
        group["DeploymentStyle"],
        json!({ "DeploymentType": "IN_PLACE", "DeploymentOption": "WITH_TRAFFIC_CONTROL" })
    );
    let target_group = &group["LoadBalancerInfo"]["TargetGroupInfoList"][0]["Name"];
    assert_eq!(target_group["Fn::Select"][1]["Fn::Split"][1], reference("TargetGroupFullName"));
    assert_eq!(group["ApplicationName"], reference("CodeDeployApplication"));
}

#[test]
fn the_alarms_watch_the_apps_load_balancer_and_instances() {
    let t = pipeline_template();
    let alarms = resources_of(&t, "AWS::CloudWatch::Alarm");
    let metrics: BTreeSet<(String, String)> = alarms
        .iter()
        .map(|(_, a)| (a["Namespace"].as_str().unwrap().to_string(), a["MetricName"].as_str().unwrap().to_string()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ApplicationELB", "TargetResponseTime"),
        ("AWS/ApplicationELB", "UnHealthyHostCount"),
        ("AWS/EC2", "CPUUtilization"),
    ]
    .into_iter()
    .map(|(n, m)| (n.to_string(), m.to_string()))
    .collect();
    assert_eq!(metrics, expected);

    for (name, alarm) in &alarms {
        let dimensions = dimensions_of(alarm);
        match alarm["Namespace"].as_str().unwrap() {
            // The app's target group behind its load balancer: the (LoadBalancer, TargetGroup)
            // dimensions AWS/ApplicationELB reports these metrics with.
            "AWS/ApplicationELB" => assert_eq!(
                dimensions,
                BTreeMap::from([
                    ("LoadBalancer".to_string(), reference("LoadBalancerFullName")),
                    ("TargetGroup".to_string(), reference("TargetGroupFullName")),
                ]),
                "{name}"
            ),
            _ => assert_eq!(
                dimensions,
                BTreeMap::from([("AutoScalingGroupName".to_string(), reference("AutoScalingGroupName"))]),
                "{name}"
            ),
        }
        let statistic = alarm["Statistic"].as_str().or(alarm["ExtendedStatistic"].as_str()).unwrap_or_default();
        let meaningful: &[&str] = match alarm["MetricName"].as_str().unwrap() {
            "HTTPCode_Target_5XX_Count" => &["Sum"],
            "UnHealthyHostCount" => &["Average", "Minimum", "Maximum"],
            "TargetResponseTime" => &["Average", "p90", "p95", "p99"],
            _ => &["Average", "Maximum"],
        };
        assert!(meaningful.contains(&statistic), "{name}: {statistic}");
        assert!(alarm["Period"].as_i64().unwrap() >= 60, "{name}");
        assert_eq!(
            alarm["AlarmActions"],
            json!({ "Fn::If": ["HasAlarmAction", [reference("AlarmActionArn")], reference("AWS::NoValue")] }),
            "{name}: Pipewarden's alarm-fanout (or its classic topic) as the action, when given"
        );
        assert_eq!(alarm["OKActions"], alarm["AlarmActions"], "{name}: the recovery goes the same way");
    }
}

#[test]
fn every_alarm_is_named_and_tagged_for_pipewarden_with_the_codedeploy_application() {
    let t = pipeline_template();
    let (_, application) = the_one(&t, "AWS::CodeDeploy::Application");
    assert_eq!(application["ApplicationName"], reference("ApplicationName"));
    let application_name = default_of(&t, "ApplicationName");
    assert_eq!(application_name, "flask-web-app", "the name examples/routing-rules.yaml and the validation spec use");

    for (name, alarm) in resources_of(&t, "AWS::CloudWatch::Alarm") {
        let tags = tags_of(alarm);
        assert_eq!(
            tags.get("application"),
            Some(&reference("ApplicationName")),
            "{name}: deployment context is keyed by the CodeDeploy application"
        );
        assert_eq!(tags.get("team"), Some(&reference("Team")), "{name}");
        let severity = tags.get("severity").and_then(Value::as_str).unwrap_or_default();
        assert!(["critical", "warning", "info"].contains(&severity), "{name}: severity {severity:?}");
        let alarm_name = with_defaults(&t, &alarm["AlarmName"]);
        assert!(alarm_name.starts_with(&format!("{application_name}-")), "{name}: {alarm_name}");
    }
}

/// An alarm of the template as alarm-fanout sees it when it goes into ALARM, every parameter at its
/// default.
fn transition(t: &Value, alarm: &Value) -> AlarmTransition {
    let tags: BTreeMap<String, String> = tags_of(alarm).into_iter().map(|(k, v)| (k, with_defaults(t, &v))).collect();
    let name = with_defaults(t, &alarm["AlarmName"]);
    AlarmTransition {
        source_id: "reference-pipeline".into(),
        alarm_arn: Some(format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}")),
        alarm_name: name,
        account: "123456789012".into(),
        region: "us-east-1".into(),
        state: AlarmStateValue::Alarm,
        previous: Some(AlarmStateValue::Ok),
        reason: None,
        state_time: None,
        description: None,
        watched: Watched::Metric(MetricRef {
            namespace: alarm["Namespace"].as_str().map(str::to_string),
            name: alarm["MetricName"].as_str().map(str::to_string),
            dimensions: dimensions_of(alarm).into_iter().map(|(k, v)| (k, with_defaults(t, &v))).collect(),
            stat: alarm["Statistic"].as_str().or(alarm["ExtendedStatistic"].as_str()).map(str::to_string),
            period: alarm["Period"].as_u64(),
        }),
        threshold: alarm["Threshold"].as_f64(),
        comparison: alarm["ComparisonOperator"].as_str().map(str::to_string),
        suppressed: None,
        silenced: None,
        note: None,
        contributor: None,
        tags,
        tags_known: true,
    }
}

fn topics() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("ALARM_CRITICAL_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:critical"),
        ("ALARM_WARNING_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:warning"),
        ("ALARM_INFO_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:info"),
    ])
}

#[test]
fn pipewarden_routes_every_alarm_and_names_the_deployment_of_its_application() {
    let t = pipeline_template();
    let application = default_of(&t, "ApplicationName");
    let example = std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml")).unwrap();
    let example = RuleSet::parse(&example, "examples/routing-rules.yaml", &topics()).unwrap();
    // Rules a team writes on the alarms' tags: the severity tag picks the topic.
    let by_tags = format!(
        "mode: first-match
rules:
  - name: app-critical
    match: {{tags: {{application: {application}, severity: critical}}}}
    severity: critical
    topics: [$ALARM_CRITICAL_TOPIC_ARN]
  - name: app-warning
    match: {{tags: {{application: {application}, severity: warning}}}}
    severity: warning
    topics: [$ALARM_WARNING_TOPIC_ARN]
default:
  severity: info
  topics: [$ALARM_INFO_TOPIC_ARN]
"
    );
    let by_tags = RuleSet::parse(&by_tags, "rules on tags", &topics()).unwrap();

    for (name, alarm) in resources_of(&t, "AWS::CloudWatch::Alarm") {
        let alarm = transition(&t, alarm);

        let routes = example.routes(&alarm);
        assert!(routes.iter().all(|r| r.rule != "default"), "{name}: a rule of examples/routing-rules.yaml matches");
        assert_eq!(example.application(&alarm).as_deref(), Some(application.as_str()), "{name}");

        let targets = by_tags.targets(&alarm);
        let severity = match alarm.tags["severity"].as_str() {
            "critical" => Severity::Critical,
            "warning" => Severity::Warning,
            _ => Severity::Info,
        };
        assert_eq!(targets.len(), 1, "{name}: {targets:?}");
        assert_eq!(targets[0].severity, severity, "{name}: routed by its severity tag");
        assert_ne!(targets[0].rule, "default", "{name}");
        assert_eq!(by_tags.application(&alarm).as_deref(), Some(application.as_str()), "{name}: from its tag");
    }
}

/// The README's worked example: with the example rules, the load balancer's 5xx alarm in ALARM
/// holds back the instances' alarm of the same application, and nothing else of the reference
/// deployment's alarms.
#[test]
fn the_5xx_alarm_holds_back_the_instances_alarm_and_nothing_else() {
    let t = pipeline_template();
    let example = std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml")).unwrap();
    let example = RuleSet::parse(&example, "examples/routing-rules.yaml", &topics()).unwrap();
    let labelled: Vec<(String, alarm_fanout::silences::Labels)> = resources_of(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, alarm)| {
            let alarm = transition(&t, alarm);
            let labels = alarm_fanout::silences::labels(
                &alarm,
                &example.targets(&alarm),
                example.application(&alarm).as_deref(),
            );
            (alarm.subject(), labels)
        })
        .collect();
    let firing_5xx: Vec<(String, alarm_fanout::silences::Labels)> =
        labelled.iter().filter(|(name, _)| name.ends_with("-5xx")).cloned().collect();
    assert_eq!(firing_5xx.len(), 1);
    let held: Vec<&str> = labelled
        .iter()
        .filter(|(name, labels)| {
            alarm_fanout::inhibit::inhibiting(&example.inhibit, name, labels, &firing_5xx).is_some()
        })
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(held, ["flask-web-app-cpu"]);
    let none: Vec<(String, alarm_fanout::silences::Labels)> = Vec::new();
    assert!(labelled.iter().all(|(n, l)| alarm_fanout::inhibit::inhibiting(&example.inhibit, n, l, &none).is_none()));
}

// ---- The pipeline ---------------------------------------------------------------------------

#[test]
fn pipeline_is_v2_source_build_deploy_on_the_build_project_and_deployment_group() {
    let t = pipeline_template();
    let (_, pipeline) = the_one(&t, "AWS::CodePipeline::Pipeline");
    assert_eq!(pipeline["PipelineType"], json!("V2"));
    assert_eq!(pipeline["ExecutionMode"], json!("QUEUED"), "each commit deployed, in order");
    assert_eq!(pipeline["ArtifactStore"], json!({ "Type": "S3", "Location": reference("ArtifactBucket") }));
    assert_eq!(with_defaults(&t, &pipeline["Name"]), "flask-web-app-pipeline");

    let stages = pipeline["Stages"].as_array().unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Source", "Build", "Deploy"]);
    let action = |stage: usize| {
        let actions = stages[stage]["Actions"].as_array().unwrap();
        assert_eq!(actions.len(), 1, "{}", names[stage]);
        &actions[0]
    };
    let (source, build, deploy) = (action(0), action(1), action(2));

    assert_eq!(source["ActionTypeId"]["Provider"], json!("CodeStarSourceConnection"));
    assert_eq!(source["Configuration"]["ConnectionArn"], reference("ConnectionArn"));
    assert_eq!(source["Configuration"]["FullRepositoryId"], reference("FullRepositoryId"));
    assert_eq!(source["Configuration"]["BranchName"], reference("BranchName"));

    assert_eq!(build["ActionTypeId"]["Provider"], json!("CodeBuild"));
    assert_eq!(build["Configuration"]["ProjectName"], reference("BuildProject"));
    assert_eq!(build["InputArtifacts"], source["OutputArtifacts"], "the build gets the source");

    assert_eq!(deploy["ActionTypeId"]["Provider"], json!("CodeDeploy"));
    assert_eq!(deploy["Configuration"]["ApplicationName"], reference("CodeDeployApplication"));
    assert_eq!(deploy["Configuration"]["DeploymentGroupName"], reference("DeploymentGroup"));
    assert_eq!(deploy["InputArtifacts"], build["OutputArtifacts"], "the deployment gets the build's revision");

    // A push to the branch starts it (a V2 trigger, which carries the commit into the execution).
    let trigger = &pipeline["Triggers"][0];
    assert_eq!(trigger["ProviderType"], json!("CodeStarSourceConnection"));
    assert_eq!(trigger["GitConfiguration"]["SourceActionName"], source["Name"]);
    assert_eq!(trigger["GitConfiguration"]["Push"][0]["Branches"]["Includes"], json!([reference("BranchName")]));

    let (_, project) = the_one(&t, "AWS::CodeBuild::Project");
    assert_eq!(project["Source"]["Type"], json!("CODEPIPELINE"));
    assert_eq!(project["Artifacts"]["Type"], json!("CODEPIPELINE"));
    let buildspec = project["Source"]["BuildSpec"].as_str().unwrap();
    assert_eq!(buildspec, "examples/flask-app/buildspec.yml");
    assert!(repo_root().join(buildspec).is_file(), "the project's buildspec, from the repository's root");
    for image in project["Environment"]["Image"]["Fn::If"].as_array().unwrap()[1..].iter() {
        let image = image.as_str().unwrap();
        assert!(image.starts_with("aws/codebuild/amazonlinux-"), "Amazon Linux 2023, the instances' glibc: {image}");
    }
}

#[test]
fn artifact_bucket_is_encrypted_versioned_private_and_tls_only() {
    let t = pipeline_template();
    let (name, bucket) = the_one(&t, "AWS::S3::Bucket");
    let encryption =
        &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"];
    assert!(["aws:kms", "AES256"].contains(&encryption["SSEAlgorithm"].as_str().unwrap_or_default()));
    assert_eq!(bucket["VersioningConfiguration"]["Status"], json!("Enabled"), "CodePipeline needs a versioned bucket");
    for setting in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(bucket["PublicAccessBlockConfiguration"][setting], json!(true), "{setting}");
    }
    let (_, policy) = the_one(&t, "AWS::S3::BucketPolicy");
    assert_eq!(policy["Bucket"], reference(name));
    let tls_only = policy["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Condition"]["Bool"]["aws:SecureTransport"] == json!("false"))
        .expect("a statement on aws:SecureTransport");
    assert_eq!(tls_only["Effect"], json!("Deny"));
    assert_eq!(tls_only["Principal"], json!("*"));
    assert_eq!(tls_only["Action"], json!("s3:*"));
    assert_eq!(tls_only["Resource"].as_array().unwrap().len(), 2, "the bucket and its objects");
}

// ---- buildspec.yml ------------------------------------------------------------------------

fn buildspec() -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(repo_root().join("examples/flask-app/buildspec.yml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("buildspec.yml is YAML")
}

fn phase_commands(b: &serde_yaml_ng::Value, phase: &str) -> Vec<String> {
    b["phases"][phase]["commands"]
        .as_sequence()
        .unwrap_or_else(|| panic!("phase {phase} has no commands"))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn buildspec_tests_the_app_with_pytest_and_publishes_the_revision_built_with_pipewarden_validate() {
    let b = buildspec();
    assert_eq!(b["version"].as_f64(), Some(0.2));
    let install = phase_commands(&b, "install").join("\n");
    assert!(install.contains("-r examples/flask-app/requirements-dev.txt"), "installs the app and pytest: {install}");
    let tests = phase_commands(&b, "pre_build").join("\n");
    assert!(tests.contains("-m pytest examples/flask-app/tests"), "runs the app's tests: {tests}");
    let build = phase_commands(&b, "build").join("\n");
    assert!(build.contains("scripts/flask-bundle.sh"), "builds the revision as `make flask-bundle` does: {build}");

    // The artifact is the unpacked revision, so CodeDeploy finds appspec.yml at the root of the zip
    // CodePipeline makes of it.
    assert_eq!(b["artifacts"]["base-directory"].as_str(), Some("target/flask-app-revision"));
    assert_eq!(b["artifacts"]["files"][0].as_str(), Some("**/*"));

    // The pytest report goes where the report group reads it.
    let report = &b["reports"]["flask-app-tests"];
    assert_eq!(report["file-format"].as_str(), Some("JUNITXML"));
    let report_file =
        format!("{}/{}", report["base-directory"].as_str().unwrap(), report["files"][0].as_str().unwrap());
    assert!(tests.contains(&format!("--junitxml={report_file}")), "{tests}");
}

/// A throwaway copy of what the revision is built from (scripts/flask-bundle.sh and
/// examples/flask-app), so a build run here writes nothing into the repository's target/.
fn workspace(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("reference-pipeline-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::copy(repo_root().join("scripts/flask-bundle.sh"), root.join("scripts/flask-bundle.sh")).unwrap();
    copy_tree(&repo_root().join("examples/flask-app"), &root.join("examples/flask-app"));
    std::fs::create_dir_all(root.join("home")).unwrap();
    root
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name == ".pytest_cache" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// An executable standing in for pipewarden-validate (the real one is built and run by
/// `cargo test -p deploy-validator --test revision`).
fn stand_in_validator(workspace: &Path) -> PathBuf {
    let path = workspace.join("stand-in-pipewarden-validate");
    std::fs::write(&path, "#!/bin/sh\necho 'pipewarden-validate stand-in'\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// What CodeDeploy needs of a revision's root: appspec.yml, every hook script it names
/// (executable), the validator its ValidateService hook runs, the app and its spec.
fn assert_is_a_revision(root: &Path) {
    let appspec = std::fs::read_to_string(root.join("appspec.yml"))
        .unwrap_or_else(|e| panic!("no appspec.yml at the revision's root {}: {e}", root.display()));
    let appspec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&appspec).unwrap();
    let hooks = appspec["hooks"].as_mapping().unwrap();
    assert!(hooks.len() >= 4, "{hooks:?}");
    for (event, scripts) in hooks {
        for script in scripts.as_sequence().unwrap() {
            let location = script["location"].as_str().unwrap();
            assert!(is_executable(&root.join(location)), "{event:?}: {location} is missing or not executable");
        }
    }
    assert!(is_executable(&root.join("bin/pipewarden-validate")), "bin/pipewarden-validate");
    for file in ["app.py", "requirements.txt", "validation.yaml", "nginx/flask-app.conf"] {
        assert!(root.join(file).is_file(), "{file}");
    }
}

fn run(what: &str, cwd: &Path, program: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn buildspec_build_phase_leaves_a_revision_codedeploy_accepts() {
    let b = buildspec();
    let ws = workspace("codebuild");
    let validator = stand_in_validator(&ws);
    // CodeBuild runs a build's commands in one shell (env.shell) and stops at the first that fails.
    let shell = b["env"]["shell"].as_str().unwrap_or("sh");
    let script = phase_commands(&b, "build").join("\n");
    let env = [
        ("HOME", ws.join("home").display().to_string()),
        ("PIPEWARDEN_VALIDATE_BINARY", validator.display().to_string()),
    ];

    let out = run("buildspec build phase", &ws, shell, &["-e", "-c", &script], &env);

    assert!(out.status.success(), "the build phase failed");
    assert_is_a_revision(&ws.join(b["artifacts"]["base-directory"].as_str().unwrap()));
}

// ---- The Jenkinsfile ----------------------------------------------------------------------

struct Jenkinsfile {
    tokens: Vec<Token>,
}

impl Jenkinsfile {
    fn read() -> Jenkinsfile {
        let text = std::fs::read_to_string(repo_root().join("examples/flask-app/Jenkinsfile")).unwrap();
        let tokens = groovy_tokens(&text).unwrap_or_else(|e| panic!("examples/flask-app/Jenkinsfile: {e}"));
        let (mut depth, mut lowest) = (0i32, 0i32);
        for t in &tokens {
            match t {
                Token::Punct('{') | Token::Punct('(') | Token::Punct('[') => depth += 1,
                Token::Punct('}') | Token::Punct(')') | Token::Punct(']') => depth -= 1,
                _ => {}
            }
            lowest = lowest.min(depth);
        }
        assert!(depth == 0 && lowest == 0, "the Jenkinsfile's brackets are balanced");
        assert_eq!(tokens.first(), Some(&Token::Word("pipeline".into())), "a declarative pipeline");
        Jenkinsfile { tokens }
    }

    fn stages(&self) -> Vec<String> {
        self.tokens
            .windows(3)
            .filter_map(|w| match w {
                [Token::Word(stage), Token::Punct('('), Token::Str(name)] if stage == "stage" => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn stage(&self, name: &str) -> &[Token] {
        let start = self
            .tokens
            .windows(3)
            .position(|w| w[0] == Token::Word("stage".into()) && w[2] == Token::Str(name.into()))
            .unwrap_or_else(|| panic!("no stage('{name}')"));
        block(&self.tokens, start)
    }

    /// The scripts of a stage's `sh '...'` steps, in order.
    fn sh_steps(&self, stage: &str) -> Vec<String> {
        self.stage(stage)
            .windows(2)
            .filter_map(|w| match w {
                [Token::Word(sh), Token::Str(script)] if sh == "sh" => Some(script.clone()),
                _ => None,
            })
            .collect()
    }

    /// The job's parameters and their defaults: `string(name: 'X', defaultValue: 'Y', ...)`.
    fn parameters(&self) -> BTreeMap<String, String> {
        let start = self.tokens.iter().position(|t| *t == Token::Word("parameters".into())).expect("parameters");
        let mut out = BTreeMap::new();
        let mut name = None;
        for w in block(&self.tokens, start).windows(3) {
            match w {
                [Token::Word(key), Token::Punct(':'), Token::Str(value)] if key == "name" => name = Some(value.clone()),
                [Token::Word(key), Token::Punct(':'), Token::Str(value)] if key == "defaultValue" => {
                    out.insert(name.take().expect("name before defaultValue"), value.clone());
                }
                _ => {}
            }
        }
        out
    }
}

#[test]
fn jenkinsfile_checks_out_tests_builds_uploads_and_deploys_the_pipeline_yaml_names() {
    let j = Jenkinsfile::read();
    assert_eq!(j.stages(), ["Checkout", "Test", "Build", "Upload", "Deploy"]);
    assert!(
        j.stage("Checkout").windows(2).any(|w| w == [Token::Word("checkout".into()), Token::Word("scm".into())]),
        "checks out the job's repository"
    );
    let test = j.sh_steps("Test").join("\n");
    assert!(test.contains("-r examples/flask-app/requirements-dev.txt"), "{test}");
    assert!(test.contains("-m pytest examples/flask-app/tests"), "runs the app's tests: {test}");
    assert!(j.sh_steps("Build").join("\n").contains("scripts/flask-bundle.sh"), "builds the same revision");
    assert!(j.sh_steps("Upload").join("\n").contains("aws s3api put-object --bucket \"$ARTIFACT_BUCKET\""));
    let deploy = j.sh_steps("Deploy").join("\n");
    assert!(deploy.contains("aws deploy create-deployment"), "{deploy}");
    assert!(deploy.contains("aws deploy wait deployment-successful"), "{deploy}");

    // Its defaults are what pipeline.yaml creates with its own.
    let t = pipeline_template();
    let parameters = j.parameters();
    assert_eq!(parameters["APPLICATION_NAME"], default_of(&t, "ApplicationName"));
    assert_eq!(parameters["DEPLOYMENT_GROUP"], default_of(&t, "DeploymentGroupName"));
    // What JenkinsDeployPolicy lets the agent write.
    let (_, policy) = resources_of(&t, "AWS::IAM::ManagedPolicy")
        .into_iter()
        .find(|(name, _)| *name == "JenkinsDeployPolicy")
        .expect("JenkinsDeployPolicy");
    let put = policy["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == json!("s3:PutObject"))
        .expect("s3:PutObject");
    assert_eq!(put["Resource"]["Fn::Sub"], json!("${ArtifactBucket.Arn}/jenkins/${ApplicationName}/*"));
    assert!(j.sh_steps("Upload").join("\n").contains("key=\"jenkins/$APPLICATION_NAME/"), "uploads where it may");
}

#[test]
fn jenkins_build_stage_leaves_the_revision_zip() {
    let j = Jenkinsfile::read();
    let ws = workspace("jenkins-build");
    let validator = stand_in_validator(&ws);
    let env = [
        ("HOME", ws.join("home").display().to_string()),
        ("PIPEWARDEN_VALIDATE_BINARY", validator.display().to_string()),
    ];

    for script in j.sh_steps("Build") {
        // Jenkins runs an `sh` step without a #! line as `sh -xe`.
        let out = run("Jenkins Build stage", &ws, "/bin/sh", &["-xe", "-c", &script], &env);
        assert!(out.status.success(), "the Build stage failed");
    }

    let unpacked = ws.join("unpacked");
    let status = Command::new(python())
        .args(["-c", "import os, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z:\n    for i in z.infolist():\n        z.extract(i, sys.argv[2])\n        os.chmod(os.path.join(sys.argv[2], i.filename), (i.external_attr >> 16) & 0o777)"])
        .arg(ws.join("target/flask-app-revision.zip"))
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success(), "target/flask-app-revision.zip unpacks");
    assert_is_a_revision(&unpacked);
}

/// A stand-in `aws` CLI: records each call in calls.log and answers as AWS would for a deployment
/// that FAKE_DEPLOYMENT says succeeds or fails.
fn stand_in_aws(ws: &Path) -> PathBuf {
    let bin = ws.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = r#"#!/bin/sh
echo "aws $*" >>"$FAKE_AWS_LOG"
case "$1 $2" in
  "s3api put-object") echo 3HL4kqtJlcpXroDTDmjVBH40Nrjfkd ;;
  "deploy create-deployment") echo d-FAKE0001 ;;
  "deploy wait") [ "$FAKE_DEPLOYMENT" = succeeded ] || { echo "Waiter DeploymentSuccessful failed: Waiter encountered a terminal failure state" >&2; exit 255; } ;;
  "deploy get-deployment") printf 'Failed\tHEALTH_CONSTRAINTS\tThe overall deployment failed because too many individual instances failed deployment\n' ;;
  "deploy list-deployment-targets") printf 'i-0123456789abcdef0\n' ;;
  "deploy batch-get-deployment-targets") printf 'ValidateService\tscripts/validate_service\tScript at specified location: scripts/validate_service run as user root failed with exit code 1\t[stdout]health: FAILED after 10 attempts\n' ;;
  *) echo "unexpected call: aws $*" >&2; exit 2 ;;
esac
"#;
    std::fs::write(bin.join("aws"), script).unwrap();
    std::fs::set_permissions(bin.join("aws"), std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

struct JenkinsRun {
    ok: bool,
    output: String,
    calls: Vec<String>,
}

/// Runs a stage's `sh` steps as Jenkins would (`sh -xe`, the job's parameters and Jenkins' own
/// variables in the environment), with the stand-in `aws` first on PATH.
fn jenkins_stage(j: &Jenkinsfile, stage: &str, ws: &Path, overrides: &[(&str, &str)]) -> JenkinsRun {
    let log = ws.join("calls.log");
    let _ = std::fs::remove_file(&log);
    let mut env: BTreeMap<String, String> = j.parameters();
    env.extend([
        ("JOB_NAME".to_string(), "flask-web-app".to_string()),
        ("BUILD_NUMBER".to_string(), "42".to_string()),
        ("GIT_COMMIT".to_string(), "0123456789abcdef0123456789abcdef01234567".to_string()),
        ("HOME".to_string(), ws.join("home").display().to_string()),
        ("FAKE_AWS_LOG".to_string(), log.display().to_string()),
    ]);
    env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", stand_in_aws(ws).display());
    let mut output = String::new();
    let mut ok = true;
    for script in j.sh_steps(stage) {
        let out = Command::new("/bin/sh")
            .args(["-xe", "-c", &script])
            .current_dir(ws)
            .env_clear()
            .envs(&env)
            .env("PATH", &path)
            .output()
            .unwrap();
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            ok = false;
            break;
        }
    }
    let calls = std::fs::read_to_string(&log).unwrap_or_default().lines().map(str::to_string).collect();
    eprintln!("Jenkins {stage} stage: ok={ok}\n{output}");
    JenkinsRun { ok, output, calls }
}

#[test]
fn jenkins_uploads_the_revision_deploys_it_and_waits_for_the_deployment() {
    let j = Jenkinsfile::read();
    let ws = workspace("jenkins-deploy");
    std::fs::create_dir_all(ws.join("target")).unwrap();
    std::fs::write(ws.join("target/flask-app-revision.zip"), b"PK").unwrap();

    let upload = jenkins_stage(&j, "Upload", &ws, &[("ARTIFACT_BUCKET", "flask-web-app-artifacts")]);
    assert!(upload.ok, "{}", upload.output);
    let key = "jenkins/flask-web-app/42-0123456789abcdef0123456789abcdef01234567.zip";
    assert_eq!(
        upload.calls,
        [format!(
            "aws s3api put-object --bucket flask-web-app-artifacts --key {key} --body target/flask-app-revision.zip --query VersionId --output text"
        )]
    );

    let deploy = jenkins_stage(&j, "Deploy", &ws, &[("FAKE_DEPLOYMENT", "succeeded")]);
    assert!(deploy.ok, "a deployment that succeeds passes the build: {}", deploy.output);
    assert_eq!(deploy.calls.len(), 2, "{:?}", deploy.calls);
    let create = &deploy.calls[0];
    assert!(
        create.starts_with(
            "aws deploy create-deployment --application-name flask-web-app --deployment-group-name production"
        ),
        "{create}"
    );
    assert!(
        create.contains(&format!("--s3-location bucket=flask-web-app-artifacts,key={key},bundleType=zip,version=3HL4kqtJlcpXroDTDmjVBH40Nrjfkd")),
        "deploys the version just uploaded: {create}"
    );
    assert!(create.contains("commit 0123456789abcdef0123456789abcdef01234567"), "{create}");
    assert_eq!(deploy.calls[1], "aws deploy wait deployment-successful --deployment-id d-FAKE0001");
}

#[test]
fn jenkins_fails_the_build_when_the_deployment_fails_and_says_where() {
    let j = Jenkinsfile::read();
    let ws = workspace("jenkins-failed-deploy");
    std::fs::create_dir_all(ws.join("target")).unwrap();
    std::fs::write(
        ws.join("target/flask-app-revision.location"),
        "bucket=flask-web-app-artifacts,key=jenkins/flask-web-app/42.zip,bundleType=zip,version=v1\n",
    )
    .unwrap();

    let deploy = jenkins_stage(&j, "Deploy", &ws, &[("FAKE_DEPLOYMENT", "failed")]);

    assert!(!deploy.ok, "a failed deployment fails the build");
    assert!(deploy.calls.iter().any(|c| c.starts_with("aws deploy get-deployment --deployment-id d-FAKE0001")));
    assert!(deploy.calls.iter().any(
        |c| c.contains("batch-get-deployment-targets --deployment-id d-FAKE0001 --target-ids i-0123456789abcdef0")
    ));
    // The build log says which deployment, why, and which script failed on which instance.
    for shown in [
        "d-FAKE0001",
        "HEALTH_CONSTRAINTS",
        "i-0123456789abcdef0",
        "ValidateService",
        "scripts/validate_service",
        "health: FAILED",
    ] {
        assert!(deploy.output.contains(shown), "the log shows {shown:?}:\n{}", deploy.output);
    }

    let no_bucket = jenkins_stage(&j, "Upload", &ws, &[("ARTIFACT_BUCKET", "")]);
    assert!(!no_bucket.ok, "no bucket, no upload");
    assert!(no_bucket.output.contains("ArtifactBucketName"), "says where the bucket's name is: {}", no_bucket.output);
    assert!(no_bucket.calls.is_empty());
}

// ---- The app's own tests ------------------------------------------------------------------

/// `name==version` pins of a requirements file.
fn pins(path: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap()
        .lines()
        .filter_map(|l| l.split('#').next().unwrap().trim().split_once("=="))
        .map(|(name, version)| (name.trim().to_lowercase(), version.trim().to_string()))
        .collect()
}

#[test]
fn the_app_is_tested_here_with_the_flask_it_ships_with() {
    let app = pins("examples/flask-app/requirements.txt");
    let tools = pins("tools/requirements.txt");
    assert_eq!(app.get("flask"), tools.get("flask"), "the .venv the tests use has the app's Flask");
    let dev = std::fs::read_to_string(repo_root().join("examples/flask-app/requirements-dev.txt")).unwrap();
    assert!(dev.lines().any(|l| l.trim() == "-r requirements.txt"), "the build installs the app's own pins");
    let pytest = pins("examples/flask-app/requirements-dev.txt").remove("pytest");
    assert!(pytest.is_some(), "the build pins pytest");
    if let Some(here) = tools.get("pytest") {
        assert_eq!(pytest.as_ref(), Some(here), "the app's tests run here with the pytest the build installs");
    }
}

#[test]
fn the_flask_apps_own_tests_pass() {
    let has_pytest = Command::new(python()).args(["-c", "import pytest, flask"]).status().is_ok_and(|s| s.success());
    let pytest = pins("examples/flask-app/requirements-dev.txt").remove("pytest").unwrap_or_default();
    assert!(
        has_pytest,
        "{} has no pytest: add `pytest=={pytest}` (examples/flask-app/requirements-dev.txt's pin) to tools/requirements.txt",
        python().display()
    );
    let out = Command::new(python())
        .args(["-m", "pytest", "examples/flask-app/tests", "-p", "no:cacheprovider", "-q"])
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("APP_MODE")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pytest failed:\n{text}");
    let passed: u32 = text
        .lines()
        .find_map(|l| l.split(" passed").next().filter(|_| l.contains(" passed")).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0);
    assert!(passed >= 6, "the app's tests ran ({passed} passed):\n{text}");
}
