//! pipewarden-validate: the deploy-validator's engine for an appspec `ValidateService` script.
//!
//! pipewarden-validate --spec FILE [--group APPLICATION/GROUP] [--deployment-id ID]
//!                     [--timeout SECONDS] [--json]
//!
//! Runs the spec's checks (the group's, else the default ones) and prints a readable report.
//! Exit status: 0 all checks passed, 1 a check failed, 2 the spec or the arguments are wrong.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use deploy_validator::engine::{self, Probes, Release};
use deploy_validator::function_scope::FunctionScope;
use deploy_validator::probes::{CloudWatchAlarmGate, LambdaInvoker, ReqwestProbe};
use deploy_validator::spec::Spec;
use pipewarden_shared::config::ProcessEnv;

const MAX_TIMEOUT_SECONDS: u64 = 3600;

struct Args {
    spec: String,
    group: Option<(String, String)>,
    deployment_id: Option<String>,
    timeout: Duration,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut spec = None;
    let mut group = None;
    let mut deployment_id = std::env::var("DEPLOYMENT_ID").ok();
    let mut timeout = Duration::from_secs(60);
    let mut json = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--spec" => spec = Some(value("--spec")?),
            "--group" => {
                let text = value("--group")?;
                let (app, grp) = text.split_once('/').ok_or("--group is APPLICATION/GROUP")?;
                group = Some((app.to_string(), grp.to_string()));
            }
            "--deployment-id" => deployment_id = Some(value("--deployment-id")?),
            "--timeout" => {
                let seconds: u64 = value("--timeout")?.parse().map_err(|_| "--timeout takes whole seconds")?;
                // An hour is CodeDeploy's longest script timeout; beyond it `Instant + timeout` could overflow.
                if !(1..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
                    return Err(format!("--timeout {seconds} must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"));
                }
                timeout = Duration::from_secs(seconds);
            }
            "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    // CodeDeploy's agent sets these for hook scripts.
    if group.is_none() {
        if let (Ok(app), Ok(grp)) = (std::env::var("APPLICATION_NAME"), std::env::var("DEPLOYMENT_GROUP_NAME")) {
            group = Some((app, grp));
        }
    }
    Ok(Args { spec: spec.ok_or("--spec FILE is required")?, group, deployment_id, timeout, json })
}

const USAGE: &str = "usage: pipewarden-validate --spec FILE [--group APPLICATION/GROUP] [--deployment-id ID] [--timeout SECONDS] [--json]";

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("pipewarden-validate: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let spec = match std::fs::read_to_string(&args.spec)
        .map_err(|e| e.to_string())
        .and_then(|t| Spec::parse(&t, &args.spec).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(problem) => {
            eprintln!("pipewarden-validate: {problem}");
            return ExitCode::from(2);
        }
    };
    // The CodeDeploy agent names the hook's event in LIFECYCLE_EVENT (ValidateService in the
    // reference appspec); that event's own checks if the spec has them.
    let event = std::env::var("LIFECYCLE_EVENT").ok().filter(|e| !e.is_empty());
    let event = event.as_deref().unwrap_or("ValidateService");
    let checks = match &args.group {
        Some((app, group)) => spec.checks_for(app, group, Some(event)),
        None => match spec.hooks.get(event) {
            Some(own) => Ok(own.checks.as_slice()),
            None if spec.checks.is_empty() => Err(format!(
                "the validation spec has no top-level checks for {event}: nothing would be validated (name the deployment group, or add checks)"
            )),
            None => Ok(spec.checks.as_slice()),
        },
    };
    let checks = match checks {
        Ok(checks) => checks,
        Err(problem) => {
            eprintln!("pipewarden-validate: {problem}");
            return ExitCode::from(2);
        }
    };
    let sdk = match pipewarden_shared::aws::load_config(&ProcessEnv).await {
        Ok(sdk) => sdk,
        Err(e) => {
            eprintln!("pipewarden-validate: {e}");
            return ExitCode::from(2);
        }
    };
    let probes = Probes {
        http: match ReqwestProbe::new(spec.allowed_hosts.clone()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("pipewarden-validate: HTTP client: {e}");
                return ExitCode::from(2);
            }
        },
        alarms: CloudWatchAlarmGate::new(aws_sdk_cloudwatch::Client::new(&sdk)),
        functions: LambdaInvoker::new(aws_sdk_lambda::Client::new(&sdk)),
        function_scope: match FunctionScope::from_vars(&ProcessEnv) {
            Ok(scope) => scope,
            Err(e) => {
                eprintln!("pipewarden-validate: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let release = Release { deployment_id: args.deployment_id.clone(), ..Release::default() };
    let results = engine::run(&spec, checks, &release, &probes, Instant::now() + args.timeout).await;
    if args.json {
        println!("{}", serde_json::json!({"passed": engine::all_passed(&results), "checks": results}));
    } else {
        println!("{}", engine::report_text(&results));
    }
    if engine::all_passed(&results) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
