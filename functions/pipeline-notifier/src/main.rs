use lambda_runtime::{run, service_fn, Diagnostic, LambdaEvent};
use pipewarden_shared::lambda::{diagnostic, Retry};
use serde_json::{json, Value};
use tracing::{info, info_span, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipewarden_shared::logging::init();
    run(service_fn(|event: LambdaEvent<Value>| async move {
        let events = pipeline_notifier::read_events(event.payload).map_err(|e| {
            tracing::error!(error = %e, "bad event");
            diagnostic(&e, Retry::Useless)
        })?;
        for e in &events {
            let span = info_span!("event", event_id = %e.event_id, execution_id = %e.detail.execution_id);
            async {
                info!(pipeline = %e.detail.pipeline, state = e.detail.state.as_str(), level = ?e.level, "received")
            }
            .instrument(span)
            .await;
        }
        Ok::<_, Diagnostic>(json!({ "received": events.len() }))
    }))
    .await
}
