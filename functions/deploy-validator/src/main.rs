use lambda_runtime::{run, service_fn, Diagnostic, LambdaEvent};
use pipewarden_shared::lambda::{diagnostic, Retry};
use serde_json::{json, Value};
use tracing::{info, info_span, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipewarden_shared::logging::init();
    run(service_fn(|event: LambdaEvent<Value>| async move {
        let hook = deploy_validator::parse_hook(event.payload).map_err(|e| {
            tracing::error!(error = %e, "bad event");
            diagnostic(&e, Retry::Useless)
        })?;
        let span = info_span!("hook", deployment_id = %hook.deployment_id);
        async { info!("received") }.instrument(span).await;
        Ok::<_, Diagnostic>(json!({ "deploymentId": hook.deployment_id }))
    }))
    .await
}
