use deploy_validator::config::Config;
use deploy_validator::deployment::CodeDeployLookup;
use deploy_validator::engine::Probes;
use deploy_validator::hook::{self, Validator};
use deploy_validator::probes::{CloudWatchAlarmGate, LambdaInvoker};
use deploy_validator::spec_source;
use lambda_runtime::{run, service_fn, LambdaEvent};
use pipewarden_shared::adapters::{CodeDeployHookReporter, S3ObjectStore, SnsPublisher};
use pipewarden_shared::aws;
use pipewarden_shared::config::ProcessEnv;
use pipewarden_shared::deadline;
use serde_json::Value;

// One thread: Lambda hands a function one event at a time, and what runs concurrently within it
// is I/O. No worker threads to start makes the cold start shorter and smaller.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipewarden_shared::logging::init();
    let mut config = Config::from_vars(&ProcessEnv);
    let sdk = match aws::load_config(&ProcessEnv).await {
        Ok(sdk) => sdk,
        // The hook must still answer CodeDeploy: it reports Failed, naming the variable.
        Err(problem) => {
            config.spec_source = Err(problem);
            aws::load_config_with_system_store(&ProcessEnv).await
        }
    };
    let s3 = aws::s3_client(&sdk);
    let (spec, http) = spec_source::read_on_demand(config.spec_source.clone(), s3.clone());
    // Read at cold start, as before; a read that fails here is tried again by the first hook.
    if let Err(problem) = spec.get().await {
        tracing::error!(problem = %problem, "no usable validation spec yet: a hook without one reports Failed");
    }
    let validator = Validator {
        safety_margin: config.safety_margin,
        topic_arn: config.topic_arn.clone(),
        reporter: CodeDeployHookReporter::new(aws::codedeploy_client(&sdk)),
        store: config.bucket.clone().map(|bucket| S3ObjectStore::new(s3.clone(), bucket)),
        publisher: SnsPublisher::new(aws::sns_client(&sdk)),
        lookup: CodeDeployLookup::new(aws::codedeploy_client(&sdk)),
        probes: Probes {
            http,
            alarms: CloudWatchAlarmGate::new(aws_sdk_cloudwatch::Client::new(&sdk)),
            functions: LambdaInvoker::new(aws_sdk_lambda::Client::new(&sdk)),
            function_scope: config.function_scope.clone(),
        },
        spec,
    };
    let validator = &validator;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline::instant_of(event.context.deadline);
        // Boxed: the handler's future is deep, and one allocation per invocation is nothing.
        // The request id names this invocation in claims; Lambda's retries of it keep the id.
        let work =
            Box::pin(validator.handle_as(event.payload, deadline, &event.context.request_id, chrono::Utc::now()));
        hook::answer(deadline::within(deadline, work).await)
    }))
    .await
}
