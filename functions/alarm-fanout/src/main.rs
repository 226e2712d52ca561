use lambda_runtime::{run, service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipewarden_shared::logging::init();
    run(service_fn(|event: LambdaEvent<Value>| async move {
        tracing::info!(shape = ?pipewarden_shared::events::eventbridge::Shape::of(&event.payload), "received");
        Ok::<_, Diagnostic>(json!({}))
    }))
    .await
}
