//! The `lambda` check against real functions: the deploy-validator binary, installed as the
//! template installs it (spec in the audit bucket, `LAMBDA_CHECK_FUNCTIONS`, `SAFETY_MARGIN_MS`),
//! runs as SAM's PreTraffic hook of a CodeDeploy Lambda deployment whose AppSpec is the one SAM
//! writes, and invokes the versions of a real function (`pipewarden-smoke-target`) that a local
//! Lambda serves at `AWS_ENDPOINT_URL_LAMBDA`. What a user looks at is asserted: the status
//! CodeDeploy was told, the evidence in S3, the notice, and which version was invoked.

use std::time::Duration;

use aws_sdk_codedeploy::types::{
    AppSpecContent, ComputePlatform, DeploymentOption, DeploymentStyle, DeploymentType, RevisionLocation,
    RevisionLocationType,
};
use deploy_validator::hook::Evidence;
use pipewarden_devkit::lambda_invoke::{smoke_target, Invoked, LocalLambda};
use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::{local, Emulator, Notification, Subscribed, ACCOUNT};
use pipewarden_shared::ports::HookStatus;
use serde_json::{json, Value};

/// The function under deployment, and the template's `LambdaCheckFunctions` that allows it.
const FUNCTION: &str = "flask-api-prod";
const LAMBDA_CHECK_FUNCTIONS: &str = "flask-api-*";
/// The validator's name as the template gives it (CodeDeploy may invoke only CodeDeployHook_*).
const HOOK_FUNCTION: &str = "CodeDeployHook_pipewarden-validator";
const SPEC_KEY: &str = "config/validation.yaml";

/// The AppSpec CloudFormation writes for a SAM function with `AutoPublishAlias: live` and a
/// `DeploymentPreference` whose PreTraffic and PostTraffic hooks are the validator: JSON, the
/// function under its logical id, versions as strings.
fn sam_appspec(function: &str, current: &str, target: &str) -> String {
    json!({
        "version": 0.0,
        "Resources": [{
            "FlaskApiFunction": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Name": function, "Alias": "live", "CurrentVersion": current, "TargetVersion": target}
            }
        }],
        "Hooks": [{"BeforeAllowTraffic": HOOK_FUNCTION}, {"AfterAllowTraffic": HOOK_FUNCTION}]
    })
    .to_string()
}

/// The application, deployment group and deployment SAM's DeploymentPreference has CloudFormation
/// create (CreateDeployment with the AppSpec as the revision); returns the deployment id.
async fn sam_deployment(aws: &Emulator, appspec: String) -> String {
    let cd = aws.codedeploy();
    let application = "pipewarden-demo-ServerlessDeploymentApplication-1X2Y3Z4W5V6U";
    let group = "pipewarden-demo-FlaskApiFunctionDeploymentGroup-7T8S9R0Q";
    cd.create_application()
        .application_name(application)
        .compute_platform(ComputePlatform::Lambda)
        .send()
        .await
        .unwrap();
    cd.create_deployment_group()
        .application_name(application)
        .deployment_group_name(group)
        .deployment_config_name("CodeDeployDefault.LambdaCanary10Percent5Minutes")
        .deployment_style(
            DeploymentStyle::builder()
                .deployment_type(DeploymentType::BlueGreen)
                .deployment_option(DeploymentOption::WithTrafficControl)
                .build(),
        )
        .service_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/pipewarden-demo-CodeDeployServiceRole-1A2B3C"))
        .send()
        .await
        .unwrap();
    let revision = RevisionLocation::builder()
        .revision_type(RevisionLocationType::AppSpecContent)
        .app_spec_content(AppSpecContent::builder().content(appspec).build())
        .build();
    cd.create_deployment()
        .application_name(application)
        .deployment_group_name(group)
        .revision(revision)
        .send()
        .await
        .unwrap()
        .deployment_id
        .expect("deployment id")
}

/// The validator as installed: its spec in the audit bucket, the template's variables, the
/// Lambda API at the local Lambda. Returns it, cold-started, and its notice topic's subscriber.
async fn installed_validator(aws: &Emulator, lambda: &LocalLambda, spec: &str) -> (LambdaProcess, Subscribed) {
    let mut env = local::prepare(aws).await;
    aws.s3()
        .put_object()
        .bucket(local::BUCKET)
        .key(SPEC_KEY)
        .body(spec.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let topic_arn = env.iter().find(|(k, _)| k == "DEPLOY_TOPIC_ARN").map(|(_, v)| v.clone()).unwrap();
    let queue_url = format!("{}/{ACCOUNT}/pipewarden-deploy-subscriber", aws.endpoint);
    env.extend(
        [
            ("VALIDATION_SPEC_S3_URI", format!("s3://{}/{SPEC_KEY}", local::BUCKET)),
            ("SAFETY_MARGIN_MS", "5000".to_string()),
            ("LAMBDA_CHECK_FUNCTIONS", LAMBDA_CHECK_FUNCTIONS.to_string()),
            ("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let log = std::env::temp_dir().join(format!("deploy-validator-lambda-check-{}.log", std::process::id()));
    let program = env!("CARGO_BIN_EXE_deploy-validator");
    let validator = LambdaProcess::start(HOOK_FUNCTION, program.as_ref(), &[], &env, &log).await.unwrap();
    validator.init(Duration::from_secs(30)).await.unwrap();
    (validator, Subscribed { topic_arn, queue_url })
}

/// CodeDeploy runs the PreTraffic hook: it issues a BeforeAllowTraffic hook execution and invokes
/// the validator with the event it sends hook functions. Returns what the validator answered.
async fn pre_traffic_hook(aws: &Emulator, validator: &mut LambdaProcess, deployment_id: &str, hook_id: &str) -> Value {
    aws.hook_execution(deployment_id, hook_id, "BeforeAllowTraffic").await;
    let event = json!({"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": hook_id});
    let answer = validator.invoke(hook_id, &event, Duration::from_secs(60)).await.unwrap();
    assert!(answer.ok, "the hook invocation failed: {}\n{}", answer.body, validator.logs());
    serde_json::from_str(&answer.body).unwrap()
}

/// The statuses CodeDeploy was told, as (hook execution, lifecycle event, status).
async fn reported(aws: &Emulator) -> Vec<(String, String, String)> {
    aws.hook_statuses().await.into_iter().map(|s| (s.hook_execution_id, s.lifecycle_event, s.status)).collect()
}

async fn evidence(aws: &Emulator, deployment_id: &str, hook_id: &str) -> Evidence {
    let body = aws.object(local::BUCKET, &Evidence::key(deployment_id, hook_id)).await.expect("the hook's evidence");
    serde_json::from_slice(&body).unwrap()
}

fn invoked(version: &str, payload: Value) -> Invoked {
    Invoked {
        function: FUNCTION.to_string(),
        qualifier: Some(version.to_string()),
        version: version.to_string(),
        invocation_type: "RequestResponse".to_string(),
        payload,
    }
}

fn one(status: &str, hook_id: &str) -> Vec<(String, String, String)> {
    vec![(hook_id.to_string(), "BeforeAllowTraffic".to_string(), status.to_string())]
}

const SMOKE_SPEC: &str = "checks:
  - name: smoke
    type: lambda
    payload: {path: /health}
    jsonField: {pointer: /status, equals: ok}
";

#[tokio::test]
async fn a_healthy_target_version_passes_and_codedeploy_is_told_succeeded() {
    // GIVEN a SAM deployment shifting `live` from version 4 to a healthy version 5
    let aws = Emulator::fresh().await;
    let lambda = LocalLambda::start().await;
    let smoke = smoke_target().await;
    lambda.publish(FUNCTION, "4", &smoke, &[]).await;
    lambda.publish(FUNCTION, "5", &smoke, &[]).await;
    let deployment = sam_deployment(&aws, sam_appspec(FUNCTION, "4", "5")).await;
    let (mut validator, notices) = installed_validator(&aws, &lambda, SMOKE_SPEC).await;

    // WHEN CodeDeploy runs the PreTraffic hook
    let answer = pre_traffic_hook(&aws, &mut validator, &deployment, "hook-pass").await;

    // THEN version 5 got the check's payload, answered {"status": "ok"}, and the hook succeeded
    assert_eq!(answer["status"], "Succeeded", "{answer}\n{}", validator.logs());
    assert_eq!(lambda.invocations(), vec![invoked("5", json!({"path": "/health"}))]);
    assert_eq!(reported(&aws).await, one("Succeeded", "hook-pass"));
    let evidence = evidence(&aws, &deployment, "hook-pass").await;
    assert_eq!(evidence.status, HookStatus::Succeeded);
    assert!(evidence.reported);
    assert_eq!(evidence.lifecycle_event.as_deref(), Some("BeforeAllowTraffic"));
    let check = &evidence.checks[0];
    assert!(check.passed, "{check:?}");
    assert_eq!((check.kind.as_str(), check.detail.as_str()), ("lambda", "flask-api-prod:5 answered as expected"));
    assert!(aws.received(&notices).await.is_empty(), "no notice for a release that passed");
}

#[tokio::test]
async fn the_version_invoked_is_the_target_version_of_the_appspec_not_the_live_one() {
    // GIVEN live on a healthy version 6 and $LATEST broken; the deployment shifts to version 7
    let aws = Emulator::fresh().await;
    let lambda = LocalLambda::start().await;
    let smoke = smoke_target().await;
    lambda.publish(FUNCTION, "$LATEST", &smoke, &[("SMOKE_FAILURE", "work in progress")]).await;
    lambda.publish(FUNCTION, "6", &smoke, &[]).await;
    lambda.publish(FUNCTION, "7", &smoke, &[]).await;
    let deployment = sam_deployment(&aws, sam_appspec(FUNCTION, "6", "7")).await;
    // The check names no function: it invokes the deployment's target.
    let spec = "checks:\n  - name: smoke\n    type: lambda\n    jsonField: {pointer: /version, equals: '7'}\n";
    let (mut validator, _) = installed_validator(&aws, &lambda, spec).await;

    // WHEN the PreTraffic hook runs
    let answer = pre_traffic_hook(&aws, &mut validator, &deployment, "hook-target").await;

    // THEN only version 7 was invoked, by the qualifier CodeDeploy's AppSpec names, and it passed
    assert_eq!(answer["status"], "Succeeded", "{answer}\n{}", validator.logs());
    assert_eq!(lambda.invocations(), vec![invoked("7", json!({}))]);
    assert_eq!(reported(&aws).await, one("Succeeded", "hook-target"));
    let evidence = evidence(&aws, &deployment, "hook-target").await;
    assert_eq!(evidence.checks[0].detail, "flask-api-prod:7 answered as expected");
}

#[tokio::test]
async fn a_target_version_that_fails_is_reported_failed_with_the_functions_error() {
    // GIVEN the deployment's target version 8 fails every invocation (Lambda's FunctionError)
    let aws = Emulator::fresh().await;
    let lambda = LocalLambda::start().await;
    let smoke = smoke_target().await;
    lambda.publish(FUNCTION, "7", &smoke, &[]).await;
    lambda.publish(FUNCTION, "8", &smoke, &[("SMOKE_FAILURE", "cannot reach the orders table")]).await;
    let deployment = sam_deployment(&aws, sam_appspec(FUNCTION, "7", "8")).await;
    let (mut validator, notices) = installed_validator(&aws, &lambda, SMOKE_SPEC).await;

    // WHEN the PreTraffic hook runs
    let answer = pre_traffic_hook(&aws, &mut validator, &deployment, "hook-broken").await;

    // THEN CodeDeploy is told Failed, and the evidence and the notice say the function failed, how
    assert_eq!(answer["status"], "Failed", "{answer}\n{}", validator.logs());
    assert_eq!(lambda.invocations(), vec![invoked("8", json!({"path": "/health"}))]);
    assert_eq!(reported(&aws).await, one("Failed", "hook-broken"));
    let evidence = evidence(&aws, &deployment, "hook-broken").await;
    assert_eq!(evidence.status, HookStatus::Failed);
    let detail = &evidence.checks[0].detail;
    assert!(detail.starts_with("flask-api-prod:8 failed (Unhandled): "), "{detail}");
    assert!(detail.contains("SmokeCheckFailed") && detail.contains("cannot reach the orders table"), "{detail}");
    let notices: Vec<Notification> = aws.received(&notices).await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert!(notices[0].message.contains("FAIL smoke (lambda"), "{}", notices[0].message);
    assert!(notices[0].message.contains("cannot reach the orders table"), "{}", notices[0].message);
}

#[tokio::test]
async fn a_json_field_that_differs_fails_naming_the_pointer_and_the_value() {
    // GIVEN target version 9 runs but reports itself degraded
    let aws = Emulator::fresh().await;
    let lambda = LocalLambda::start().await;
    let smoke = smoke_target().await;
    lambda.publish(FUNCTION, "8", &smoke, &[]).await;
    lambda.publish(FUNCTION, "9", &smoke, &[("SMOKE_STATUS", "degraded")]).await;
    let deployment = sam_deployment(&aws, sam_appspec(FUNCTION, "8", "9")).await;
    let (mut validator, _) = installed_validator(&aws, &lambda, SMOKE_SPEC).await;

    // WHEN the PreTraffic hook runs
    let answer = pre_traffic_hook(&aws, &mut validator, &deployment, "hook-degraded").await;

    // THEN Failed, saying which field had which value
    assert_eq!(answer["status"], "Failed", "{answer}\n{}", validator.logs());
    assert_eq!(lambda.invocations(), vec![invoked("9", json!({"path": "/health"}))]);
    assert_eq!(reported(&aws).await, one("Failed", "hook-degraded"));
    let evidence = evidence(&aws, &deployment, "hook-degraded").await;
    assert_eq!(evidence.checks[0].detail, r#"flask-api-prod:9: /status is "degraded", expected "ok""#);
    assert!(evidence.reason.contains(r#"/status is "degraded", expected "ok""#), "{}", evidence.reason);
}

#[tokio::test]
async fn a_check_may_name_its_function_in_every_form_invoke_accepts() {
    // GIVEN checks naming the function by name, name:version, full ARN and partial ARN
    let aws = Emulator::fresh().await;
    let lambda = LocalLambda::start().await;
    let smoke = smoke_target().await;
    lambda.publish(FUNCTION, "$LATEST", &smoke, &[]).await;
    lambda.publish(FUNCTION, "5", &smoke, &[]).await;
    let deployment = sam_deployment(&aws, sam_appspec(FUNCTION, "4", "5")).await;
    let forms = [
        FUNCTION.to_string(),
        format!("{FUNCTION}:5"),
        format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}:5"),
        format!("{ACCOUNT}:function:{FUNCTION}"),
    ];
    let checks: Vec<Value> = forms
        .iter()
        .enumerate()
        .map(|(i, f)| json!({"name": format!("form-{i}"), "type": "lambda", "function": f, "jsonField": {"pointer": "/status", "equals": "ok"}}))
        .collect();
    let (mut validator, _) = installed_validator(&aws, &lambda, &json!({ "checks": checks }).to_string()).await;

    // WHEN the PreTraffic hook runs
    let answer = pre_traffic_hook(&aws, &mut validator, &deployment, "hook-forms").await;

    // THEN each reached the version it named ($LATEST when none)
    let evidence = evidence(&aws, &deployment, "hook-forms").await;
    let details: Vec<&str> = evidence.checks.iter().map(|c| c.detail.as_str()).collect();
    assert_eq!(answer["status"], "Succeeded", "{details:#?}");
    let mut reached: Vec<(String, Option<String>)> =
        lambda.invocations().into_iter().map(|i| (i.function, i.qualifier)).collect();
    reached.sort();
    let q = |v: Option<&str>| (FUNCTION.to_string(), v.map(str::to_string));
    assert_eq!(reached, vec![q(None), q(None), q(Some("5")), q(Some("5"))]);
}

#[tokio::test]
async fn a_target_outside_lambda_check_functions_is_refused_and_never_invoked() {
    // GIVEN a deployment of payroll-admin, a function the local Lambda serves but the deployer did
    // not allow (LAMBDA_CHECK_FUNCTIONS is flask-api-*)
    let aws = Emulator::fresh().await;
    let lambda = LocalLambda::start().await;
    let smoke = smoke_target().await;
    lambda.publish("payroll-admin", "3", &smoke, &[]).await;
    let deployment = sam_deployment(&aws, sam_appspec("payroll-admin", "2", "3")).await;
    let (mut validator, _) = installed_validator(&aws, &lambda, SMOKE_SPEC).await;

    // WHEN the PreTraffic hook runs
    let answer = pre_traffic_hook(&aws, &mut validator, &deployment, "hook-scope").await;

    // THEN Failed, naming the function and the allowed pattern, and nothing was invoked
    assert_eq!(answer["status"], "Failed", "{answer}");
    assert_eq!(lambda.invocations(), Vec::<Invoked>::new());
    assert_eq!(reported(&aws).await, one("Failed", "hook-scope"));
    let detail = &evidence(&aws, &deployment, "hook-scope").await.checks[0].detail;
    assert!(
        detail.starts_with(
            "payroll-admin:3 is outside the functions this hook may invoke (LAMBDA_CHECK_FUNCTIONS: flask-api-*)"
        ),
        "{detail}"
    );
}

#[tokio::test]
async fn a_target_version_lambda_does_not_have_fails_with_lambdas_answer() {
    // GIVEN an AppSpec naming version 12, which was never published
    let aws = Emulator::fresh().await;
    let lambda = LocalLambda::start().await;
    let smoke = smoke_target().await;
    lambda.publish(FUNCTION, "11", &smoke, &[]).await;
    let deployment = sam_deployment(&aws, sam_appspec(FUNCTION, "11", "12")).await;
    let (mut validator, _) = installed_validator(&aws, &lambda, SMOKE_SPEC).await;

    // WHEN the PreTraffic hook runs
    let answer = pre_traffic_hook(&aws, &mut validator, &deployment, "hook-missing").await;

    // THEN Failed, with Lambda's ResourceNotFoundException as the reason
    assert_eq!(answer["status"], "Failed", "{answer}");
    assert_eq!(reported(&aws).await, one("Failed", "hook-missing"));
    let detail = &evidence(&aws, &deployment, "hook-missing").await.checks[0].detail;
    assert!(detail.starts_with("could not invoke flask-api-prod:12: "), "{detail}");
    assert!(
        detail.contains(&format!(
            "ResourceNotFoundException (HTTP 404): Function not found: arn:aws:lambda:us-east-1:{ACCOUNT}:function:flask-api-prod:12"
        )),
        "{detail}"
    );
}
