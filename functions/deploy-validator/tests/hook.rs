//! deploy-validator as CodeDeploy uses it, against the local emulator (which records every
//! PutLifecycleEventHookExecutionStatus) and real local HTTP servers.

mod common;

use std::time::{Duration, Instant};

use common::{deployment, hook, http_spec, validator, validator_with, BUCKET};
use deploy_validator::function_scope::FunctionScope;
use deploy_validator::hook::{Evidence, ValidatorError};
use deploy_validator::probes::{HttpProbe, HttpRequest, HttpResponse};
use deploy_validator::spec::Spec;
use deploy_validator::spec_source::read_on_demand;
use pipewarden_devkit::http::{closed_port, LocalHttp, Reply};
use pipewarden_devkit::Emulator;
use pipewarden_shared::deadline;
use pipewarden_shared::document::DocumentSource;
use pipewarden_shared::lambda::Retry;

fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

async fn statuses(aws: &Emulator) -> Vec<(String, String)> {
    aws.hook_statuses().await.into_iter().map(|s| (s.hook_execution_id, s.status)).collect()
}

#[tokio::test]
async fn healthy_target_reports_one_succeeded_with_evidence() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-HEALTHY1").await;
    let app = LocalHttp::start(Reply::ok(r#"{"status":"ok"}"#)).await;
    let spec =
        http_spec(&app.url("/health"), "    consecutiveSuccesses: 3\n    jsonField: {pointer: /status, equals: ok}\n");

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-HEALTHY1", "hook-ok").await, deadline_in(20))
        .await
        .unwrap();

    assert_eq!(out["status"], "Succeeded", "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-ok".to_string(), "Succeeded".to_string())]);
    assert_eq!(app.requests().len(), 3, "three passes in a row");
    let evidence: Evidence =
        serde_json::from_slice(&aws.object(BUCKET, &Evidence::key("d-HEALTHY1", "hook-ok")).await.unwrap()).unwrap();
    assert!(evidence.reported);
    assert_eq!(evidence.checks[0].attempts.len(), 3);
    assert_eq!(evidence.application.as_deref(), Some("flask-web-app"));
}

#[tokio::test]
async fn failing_target_reports_failed_and_publishes_a_notice() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-FAIL1").await;
    let topic = aws.topic_with_subscriber("deploy").await;
    let app = LocalHttp::start(Reply { status: 500, ..Reply::ok("boom") }).await;
    let spec = http_spec(&app.url("/health"), "    maxAttempts: 3\n");

    let out = validator(&aws, &spec, Some(topic.topic_arn.clone()))
        .handle(aws.issued_hook("d-FAIL1", "hook-bad").await, deadline_in(20))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("status 500 (expected [200])"), "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-bad".to_string(), "Failed".to_string())]);
    assert_eq!(app.requests().len(), 3, "retried up to maxAttempts");
    let notices = aws.received(&topic).await;
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0].subject.as_deref(),
        Some("[FAILED] deployment d-FAIL1 validation: flask-web-app/flask-web-app-group")
    );
    assert!(notices[0].message.contains("FAIL health (http"), "{}", notices[0].message);
    assert_eq!(notices[0].attributes["severity"], "critical");
}

#[tokio::test]
async fn slow_target_fails_its_latency_budget() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-SLOW1").await;
    let app = LocalHttp::start(Reply { delay: Duration::from_millis(400), ..Reply::ok("ok") }).await;
    let spec = http_spec(&app.url("/health"), "    latencyBudgetMs: 100\n    maxAttempts: 2\n");

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-SLOW1", "hook-slow").await, deadline_in(20))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("(budget 100 ms)"), "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-slow".to_string(), "Failed".to_string())]);
}

#[tokio::test]
async fn unreachable_target_fails_before_the_deadline() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-DOWN1").await;
    let spec = http_spec(&format!("http://127.0.0.1:{}/health", closed_port()), "    maxAttempts: 1000\n");
    let started = Instant::now();

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-DOWN1", "hook-down").await, deadline_in(4))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("connection failed"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(4), "reported after the deadline: {:?}", started.elapsed());
    assert_eq!(statuses(&aws).await, vec![("hook-down".to_string(), "Failed".to_string())]);
}

#[tokio::test]
async fn hanging_target_is_cut_off_and_failed_before_the_deadline() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-HANG1").await;
    let app = LocalHttp::start(Reply { delay: Duration::from_secs(60), ..Reply::ok("late") }).await;
    let spec = http_spec(&app.url("/health"), "    requestTimeoutMs: 60000\n");
    let started = Instant::now();

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-HANG1", "hook-hang").await, deadline_in(4))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert_eq!(statuses(&aws).await, vec![("hook-hang".to_string(), "Failed".to_string())]);
}

#[tokio::test]
async fn invalid_spec_reports_failed_saying_why() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-SPEC1").await;

    let out = validator(&aws, "allowedHosts: [a]\nchecks: [{name: h, type: http, url: 'http://evil.example/'}]", None)
        .handle(aws.issued_hook("d-SPEC1", "hook-spec").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("not in allowedHosts"), "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-spec".to_string(), "Failed".to_string())]);
}

struct PanickingProbe;

impl HttpProbe for PanickingProbe {
    async fn send(&self, _: &HttpRequest) -> Result<HttpResponse, String> {
        panic!("probe exploded")
    }
}

#[tokio::test]
async fn a_panic_inside_a_check_reports_failed() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-PANIC1").await;
    let spec = Spec::parse(&http_spec("http://127.0.0.1:9/health", ""), "t").map_err(|e| e.to_string());

    let out = validator_with(&aws, spec, None, PanickingProbe)
        .handle(aws.issued_hook("d-PANIC1", "hook-panic").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("the check panicked: probe exploded"), "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-panic".to_string(), "Failed".to_string())]);
}

#[tokio::test]
async fn second_invocation_for_the_same_hook_reports_nothing_different() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-TWICE1").await;
    let app = LocalHttp::start(Reply { status: 503, ..Reply::ok("down") }).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), "    maxAttempts: 1\n"), None);

    let first = v.handle(aws.issued_hook("d-TWICE1", "hook-twice").await, deadline_in(10)).await.unwrap();
    app.set_reply(Reply::ok("ok"));
    let second = v.handle(aws.issued_hook("d-TWICE1", "hook-twice").await, deadline_in(10)).await.unwrap();

    assert_eq!(first["status"], "Failed");
    assert_eq!(second["status"], "Failed", "the decision stands");
    assert_eq!(statuses(&aws).await, vec![("hook-twice".to_string(), "Failed".to_string())]);
    assert_eq!(app.requests().len(), 1, "the retry did not validate again");
}

#[tokio::test]
async fn codedeploy_unreachable_until_the_deadline_fails_loudly_and_the_retry_reports_the_same_decision() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-NOREPORT").await;
    let app = LocalHttp::start(Reply { status: 500, ..Reply::ok("bad") }).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), "    maxAttempts: 1\n"), None);
    aws.inject_fault("PutLifecycleEventHookExecutionStatus", 503, "ServiceUnavailable", 1000).await;
    let started = Instant::now();

    let err = v.handle(aws.issued_hook("d-NOREPORT", "hook-unreported").await, deadline_in(4)).await.unwrap_err();

    assert!(matches!(err, ValidatorError::Report { .. }), "{err}");
    assert!(err.to_string().contains("hook-unreported"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(statuses(&aws).await.is_empty());

    aws.clear_faults().await;
    app.set_reply(Reply::ok("ok"));
    let retry = v.handle(aws.issued_hook("d-NOREPORT", "hook-unreported").await, deadline_in(10)).await.unwrap();
    assert_eq!(retry["status"], "Failed", "the recorded decision is reported, not a new one");
    assert_eq!(statuses(&aws).await, vec![("hook-unreported".to_string(), "Failed".to_string())]);
}

#[tokio::test]
async fn a_retry_with_a_recorded_decision_reports_it_without_waiting_for_codedeploy() {
    // GIVEN a hook whose decision was recorded but whose report CodeDeploy refused until the deadline
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-SLOWCD").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), "    maxAttempts: 1\n"), None);
    aws.inject_fault("PutLifecycleEventHookExecutionStatus", 503, "ServiceUnavailable", 1000).await;
    let first = v.handle(aws.issued_hook("d-SLOWCD", "hook-slow-cd").await, deadline_in(4)).await.unwrap_err();
    assert!(matches!(first, ValidatorError::Report { .. }), "{first}");
    aws.clear_faults().await;

    // WHEN Lambda retries it while CodeDeploy's reads take 8 s (the report itself is fast)
    aws.control_post("faults", serde_json::json!({"operation": "GetDeployment", "delayMs": 8000, "count": 100})).await;
    let started = Instant::now();
    let retry = v.handle(aws.issued_hook("d-SLOWCD", "hook-slow-cd").await, deadline_in(12)).await.unwrap();

    // THEN the recorded decision is reported at once: the retry does not wait for facts it does not need
    assert_eq!(retry["status"], "Succeeded", "{retry}");
    assert_eq!(statuses(&aws).await, vec![("hook-slow-cd".to_string(), "Succeeded".to_string())]);
    assert!(started.elapsed() < Duration::from_secs(4), "the retry took {:?}", started.elapsed());
}

#[tokio::test]
async fn unknown_deployment_reports_failed() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-KNOWN").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), None);

    // CodeDeploy refuses the report for a deployment it does not know: that is a loud error too.
    let err = v.handle(hook("d-UNKNOWN", "hook-x"), deadline_in(6)).await.unwrap_err();
    assert!(err.to_string().contains("DeploymentDoesNotExist"), "{err}");
    assert!(app.requests().is_empty(), "nothing validated without the deployment's facts");
}

#[tokio::test]
async fn event_data_cannot_steer_a_check_to_another_host() {
    let aws = Emulator::fresh().await;
    let sneaky = "d-X@169.254.169.254/latest";
    deployment(&aws, sneaky).await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let spec = http_spec(&app.url("/health?deployment={deploymentId}"), "");

    let out =
        validator(&aws, &spec, None).handle(aws.issued_hook(sneaky, "hook-ssrf").await, deadline_in(10)).await.unwrap();

    assert_eq!(out["status"], "Succeeded", "{out}");
    assert_eq!(
        app.requests(),
        vec!["GET /health?deployment=d%2DX%40169%2E254%2E169%2E254%2Flatest HTTP/1.1".to_string()]
    );
}

#[tokio::test]
async fn redirects_to_hosts_outside_the_spec_are_refused() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-REDIR").await;
    let app = LocalHttp::start(Reply {
        status: 302,
        location: Some("http://169.254.169.254/latest/meta-data/".into()),
        ..Reply::ok("")
    })
    .await;
    let spec = http_spec(&app.url("/health"), "    maxAttempts: 1\n");

    let out = validator(&aws, &spec, None)
        .handle(aws.issued_hook("d-REDIR", "hook-redir").await, deadline_in(10))
        .await
        .unwrap();

    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("not in allowedHosts"), "{out}");
}

#[tokio::test]
async fn alarm_gate_fails_while_a_watched_alarm_is_in_alarm() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-ALARM").await;
    let cw = aws_sdk_cloudwatch::Client::new(&aws.sdk);
    for name in ["flask-web-app-5xx", "flask-web-app-latency"] {
        cw.put_metric_alarm()
            .alarm_name(name)
            .metric_name("HTTPCode_Target_5XX_Count")
            .namespace("AWS/ApplicationELB")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(5.0)
            .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .unwrap();
    }
    cw.set_alarm_state()
        .alarm_name("flask-web-app-5xx")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let spec = "checks:\n  - name: quiet\n    type: alarms\n    alarmNamePrefix: flask-web-app-\n";

    let out = validator(&aws, spec, None)
        .handle(aws.issued_hook("d-ALARM", "hook-alarm").await, deadline_in(10))
        .await
        .unwrap();
    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("in ALARM: flask-web-app-5xx"), "{out}");

    cw.set_alarm_state()
        .alarm_name("flask-web-app-5xx")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let out = validator(&aws, spec, None)
        .handle(aws.issued_hook("d-ALARM", "hook-alarm-2").await, deadline_in(10))
        .await
        .unwrap();
    assert_eq!(out["status"], "Succeeded", "{out}");
}

#[tokio::test]
async fn lambda_check_without_a_target_or_with_a_missing_function_fails() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-LAMBDA").await;
    let spec = "checks:\n  - name: smoke\n    type: lambda\n    payload: {path: /health}\n";
    let out = validator(&aws, spec, None)
        .handle(aws.issued_hook("d-LAMBDA", "hook-l1").await, deadline_in(10))
        .await
        .unwrap();
    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("no function to invoke"), "{out}");

    let spec = "checks:\n  - name: smoke\n    type: lambda\n    function: flask-api:5\n";
    let out = validator(&aws, spec, None)
        .handle(aws.issued_hook("d-LAMBDA", "hook-l2").await, deadline_in(10))
        .await
        .unwrap();
    assert_eq!(out["status"], "Failed");
    assert!(out["reason"].as_str().unwrap().contains("could not invoke flask-api:5"), "{out}");
}

#[tokio::test]
async fn bad_hook_event_is_a_clear_error() {
    let aws = Emulator::fresh().await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let err = validator(&aws, &http_spec(&app.url("/"), ""), None)
        .handle(serde_json::json!({"DeploymentId": "d-1"}), deadline_in(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("LifecycleEventHookExecutionId"), "{err}");
    assert_eq!(err.retry(), pipewarden_shared::lambda::Retry::Useless);
}

#[tokio::test]
async fn codedeploy_hanging_until_the_deadline_fails_loudly_before_it() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-HANGING").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), None);
    // Every report hangs without an answer for longer than the invocation has.
    aws.inject_hang("PutLifecycleEventHookExecutionStatus", 8_000, 100).await;
    let started = Instant::now();

    let err = v.handle(aws.issued_hook("d-HANGING", "hook-hanging").await, deadline_in(4)).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(4), "returned after {:?}", started.elapsed());
    assert!(matches!(err, ValidatorError::Report { .. }), "{err}");
    assert!(err.to_string().contains("hook-hanging"), "{err}");
    assert!(statuses(&aws).await.is_empty());
}

#[tokio::test]
async fn dropped_report_connections_are_retried_and_report_exactly_once() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-DROPPED").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), None);
    aws.inject_drop("PutLifecycleEventHookExecutionStatus", 4).await;

    let out = v.handle(aws.issued_hook("d-DROPPED", "hook-dropped").await, deadline_in(20)).await.unwrap();

    assert_eq!(out["status"], "Succeeded", "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-dropped".to_string(), "Succeeded".to_string())]);
}

#[tokio::test]
async fn throttled_reports_are_retried_and_report_exactly_once() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-THROTTLED").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), None);
    // More throttled answers than the SDK's own attempts: the validator's report loop goes on.
    aws.inject_fault("PutLifecycleEventHookExecutionStatus", 400, "ThrottlingException", 4).await;

    let out = v.handle(aws.issued_hook("d-THROTTLED", "hook-throttled").await, deadline_in(20)).await.unwrap();

    assert_eq!(out["status"], "Succeeded", "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-throttled".to_string(), "Succeeded".to_string())]);
}

#[tokio::test]
async fn lambda_check_refuses_a_target_outside_the_deployers_scope() {
    // GIVEN a hook allowed to invoke only flask-api-* (LAMBDA_CHECK_FUNCTIONS, from the template)
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-SCOPE").await;
    let spec = "checks:\n  - name: smoke\n    type: lambda\n    function: payroll-admin:1\n";
    let mut scoped = validator(&aws, spec, None);
    scoped.probes.function_scope = FunctionScope::Only(vec!["flask-api-*".to_string()]);
    // WHEN a deployment steers the Lambda check at another function of the account
    let out = scoped.handle(aws.issued_hook("d-SCOPE", "hook-scope-1").await, deadline_in(10)).await.unwrap();
    // THEN CodeDeploy is told Failed, with the reason, and the function is never called
    assert_eq!(out["status"], "Failed", "{out}");
    let reason = out["reason"].as_str().unwrap();
    assert!(reason.contains("payroll-admin:1 is outside the functions this hook may invoke"), "{out}");
    assert!(!reason.contains("could not invoke"), "refused before any call: {out}");
    assert_eq!(aws.hook_statuses().await[0].status, "Failed");

    // A function inside the scope is invoked (and here fails only because it does not exist).
    let spec = "checks:\n  - name: smoke\n    type: lambda\n    function: flask-api-prod:5\n";
    let mut scoped = validator(&aws, spec, None);
    scoped.probes.function_scope = FunctionScope::Only(vec!["flask-api-*".to_string()]);
    let out = scoped.handle(aws.issued_hook("d-SCOPE", "hook-scope-2").await, deadline_in(10)).await.unwrap();
    assert!(out["reason"].as_str().unwrap().contains("could not invoke flask-api-prod:5"), "{out}");
}

#[tokio::test]
async fn a_report_accepted_then_its_answer_lost_is_already_reported_not_an_error() {
    // GIVEN CodeDeploy records the first report, then the answer is lost (connection reset)
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-ACCEPTED").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), None);
    aws.inject_drop_after("PutLifecycleEventHookExecutionStatus", 1).await;

    // WHEN the SDK retries and CodeDeploy answers LifecycleEventAlreadyCompletedException
    let out = v.handle(aws.issued_hook("d-ACCEPTED", "hook-accepted").await, deadline_in(20)).await.unwrap();

    // THEN the invocation succeeds, the evidence says reported, and exactly one status is recorded
    assert_eq!(out["status"], "Succeeded", "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-accepted".to_string(), "Succeeded".to_string())]);
    assert!(
        aws.calls().await["PutLifecycleEventHookExecutionStatus"] >= 2,
        "the SDK retried the report whose answer was lost"
    );
    let evidence: Evidence =
        serde_json::from_slice(&aws.object(BUCKET, &Evidence::key("d-ACCEPTED", "hook-accepted")).await.unwrap())
            .unwrap();
    assert!(evidence.reported);

    // A Lambda retry of the same hook reports nothing more.
    v.handle(aws.issued_hook("d-ACCEPTED", "hook-accepted").await, deadline_in(10)).await.unwrap();
    assert_eq!(statuses(&aws).await.len(), 1);
}

#[tokio::test]
async fn a_hook_completed_by_someone_else_with_another_status_is_only_already_completed() {
    // GIVEN someone else (an operator, another tool) already reported Failed for the hook
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-OTHER").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), ""), None);
    let hook = aws.issued_hook("d-OTHER", "hook-other").await;
    aws.codedeploy()
        .put_lifecycle_event_hook_execution_status()
        .deployment_id("d-OTHER")
        .lifecycle_event_hook_execution_id("hook-other")
        .status(aws_sdk_codedeploy::types::LifecycleEventStatus::Failed)
        .send()
        .await
        .unwrap();

    // WHEN the validator decides Succeeded and reports it
    let out = v.handle(hook, deadline_in(20)).await.unwrap();

    // THEN CodeDeploy keeps the first status; the invocation is done (a retry cannot change it),
    // and what it answers and records is the status CodeDeploy acts on, with its own checks' view
    assert_eq!(out["status"], "Failed", "{out}");
    assert!(out["reason"].as_str().unwrap().contains("CodeDeploy already has Failed"), "{out}");
    assert_eq!(statuses(&aws).await, vec![("hook-other".to_string(), "Failed".to_string())]);
    let evidence: Evidence =
        serde_json::from_slice(&aws.object(BUCKET, &Evidence::key("d-OTHER", "hook-other")).await.unwrap()).unwrap();
    assert_eq!(evidence.status, pipewarden_shared::ports::HookStatus::Failed, "the evidence agrees with CodeDeploy");
}

#[tokio::test]
async fn a_notice_that_hangs_holds_neither_the_report_nor_the_invocation_past_its_deadline() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-NOTICEHANG").await;
    let topic = aws.topic_with_subscriber("deploy").await;
    let app = LocalHttp::start(Reply { status: 500, ..Reply::ok("down") }).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), "    maxAttempts: 1\n"), Some(topic.topic_arn.clone()));
    let hook = aws.issued_hook("d-NOTICEHANG", "hook-notice-hang").await;
    // SNS takes the notice's connection and never answers, far longer than the invocation has.
    aws.inject_hang("Publish", 30_000, 1).await;
    let started = Instant::now();
    let lambda_deadline = started + Duration::from_secs(5);

    // As `main` runs it: under the shared work deadline.
    let err = deadline::within(lambda_deadline, v.handle(hook.clone(), lambda_deadline)).await.unwrap_err();

    let took = started.elapsed();
    assert!(took < Duration::from_secs(5) - deadline::MARGIN / 2, "ended {took:?} into a 5 s invocation");
    assert!(matches!(err, ValidatorError::Notice { .. }), "{err}");
    assert_eq!(err.retry(), Retry::Helps, "Lambda's retry sends the notice");
    assert_eq!(statuses(&aws).await, vec![("hook-notice-hang".to_string(), "Failed".to_string())]);
    let evidence: Evidence =
        serde_json::from_slice(&aws.object(BUCKET, &Evidence::key("d-NOTICEHANG", "hook-notice-hang")).await.unwrap())
            .unwrap();
    assert!(evidence.reported && !evidence.notice_sent, "{evidence:?}");
    assert!(aws.received(&topic).await.is_empty());

    // Lambda's retry: the decision is already reported; only the notice is sent.
    let retry_deadline = Instant::now() + Duration::from_secs(5);
    let out = deadline::within(retry_deadline, v.handle(hook, retry_deadline)).await.unwrap();

    assert_eq!(out["status"], "Failed");
    assert_eq!(aws.received(&topic).await.len(), 1);
    assert_eq!(statuses(&aws).await.len(), 1, "reported once");
    assert_eq!(app.requests().len(), 1, "the retry did not validate again");
}

#[tokio::test]
async fn a_spec_read_that_failed_is_read_again_by_the_next_hook_and_kept() {
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-SPECREAD").await;
    let app = LocalHttp::start(Reply::ok("ok")).await;
    aws.bucket("specs").await;
    let spec_text = http_spec(&app.url("/health"), "");
    aws.s3()
        .put_object()
        .bucket("specs")
        .key("validation.yaml")
        .body(spec_text.into_bytes().into())
        .send()
        .await
        .unwrap();
    let source = DocumentSource::S3 { bucket: "specs".into(), key: "validation.yaml".into() };
    let (spec, http) = read_on_demand(Ok(source), aws.s3());
    let v = validator_with(&aws, spec, None, http);
    // S3 throttles the spec read (all three of the SDK's attempts), once.
    aws.inject_fault("GetObject", 503, "SlowDown", 3).await;

    let first = v.handle(aws.issued_hook("d-SPECREAD", "hook-spec-1").await, deadline_in(20)).await.unwrap();

    assert_eq!(first["status"], "Failed", "{first}");
    let reason = first["reason"].as_str().unwrap();
    assert!(reason.contains("s3://specs/validation.yaml could not be read"), "{reason}");
    assert!(app.requests().is_empty());

    let second = v.handle(aws.issued_hook("d-SPECREAD", "hook-spec-2").await, deadline_in(20)).await.unwrap();

    assert_eq!(second["status"], "Succeeded", "{second}");
    assert_eq!(app.requests().len(), 1);

    // Kept once read: the object gone, the next hook still validates.
    aws.s3().delete_object().bucket("specs").key("validation.yaml").send().await.unwrap();
    let third = v.handle(aws.issued_hook("d-SPECREAD", "hook-spec-3").await, deadline_in(20)).await.unwrap();
    assert_eq!(third["status"], "Succeeded", "{third}");
    assert_eq!(
        statuses(&aws).await,
        vec![
            ("hook-spec-1".to_string(), "Failed".to_string()),
            ("hook-spec-2".to_string(), "Succeeded".to_string()),
            ("hook-spec-3".to_string(), "Succeeded".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_hook_invoked_again_after_its_failed_deployment_without_a_recorded_decision_reports_nothing() {
    // GIVEN a release whose health check fails, and S3 refusing every write while it is validated
    let aws = Emulator::fresh().await;
    deployment(&aws, "d-NORECORD").await;
    let app = LocalHttp::start(Reply { status: 500, ..Reply::ok("boom") }).await;
    let v = validator(&aws, &http_spec(&app.url("/health"), "    maxAttempts: 2\n"), None);
    // The deployment's first hook (BeforeAllowTraffic): no other hook event has ended before it.
    aws.hook_execution("d-NORECORD", "hook-norecord", "BeforeAllowTraffic").await;
    let hook = hook("d-NORECORD", "hook-norecord");
    aws.inject_fault("PutObject", 503, "SlowDown", 1000).await;

    // WHEN it reports Failed without its decision recorded, CodeDeploy fails the deployment, and the
    // hook is invoked again once the release answers well (Lambda's retry, or a second delivery)
    let first = v.handle(hook.clone(), deadline_in(20)).await;
    assert!(first.is_ok_and(|out| out["status"] == "Failed"));
    assert!(aws.object(BUCKET, &Evidence::key("d-NORECORD", "hook-norecord")).await.is_none(), "no decision recorded");
    aws.clear_faults().await;
    app.set_reply(Reply::ok("ok"));
    let again = v.handle(hook, deadline_in(20)).await.unwrap();

    // THEN CodeDeploy got one report, Failed, and no other; the record says what CodeDeploy keeps
    assert_eq!(statuses(&aws).await, vec![("hook-norecord".to_string(), "Failed".to_string())]);
    assert_eq!(again["status"], "Failed", "{again}");
    let evidence: Evidence =
        serde_json::from_slice(&aws.object(BUCKET, &Evidence::key("d-NORECORD", "hook-norecord")).await.unwrap())
            .unwrap();
    assert_eq!(evidence.status, pipewarden_shared::ports::HookStatus::Failed);
    assert!(evidence.reported);
    assert!(evidence.reason.contains("earlier invocation"), "{}", evidence.reason);
}
