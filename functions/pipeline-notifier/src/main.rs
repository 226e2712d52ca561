use pipeline_notifier::config::Config;
use pipeline_notifier::handler::Notifier;
use pipeline_notifier::lookups::{CodeDeployDiagnostics, CodePipelineActionHistory, CodePipelineExecutions};
use pipeline_notifier::metrics::StdoutMetrics;
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::aws;
use pipewarden_shared::config::ProcessEnv;
use pipewarden_shared::deadline;
use pipewarden_shared::lambda::{diagnostic, run_on_body, Invocation};

// One thread: Lambda hands a function one event at a time, and what runs concurrently within it
// is I/O. No worker threads to start makes the cold start shorter and smaller.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipewarden_shared::logging::init();
    let config = Config::from_vars(&ProcessEnv)?;
    let sdk = aws::load_config(&ProcessEnv).await?;
    let codepipeline = aws_sdk_codepipeline::Client::new(&sdk);
    let notifier = Notifier {
        publisher: SnsPublisher::new(aws::sns_client(&sdk)),
        store: S3ObjectStore::new(aws::s3_client(&sdk), config.bucket.clone()),
        history: CodePipelineActionHistory::new(codepipeline.clone()),
        diagnostics: CodeDeployDiagnostics::new(aws::codedeploy_client(&sdk)),
        revisions: CodePipelineExecutions::new(codepipeline),
        metrics: StdoutMetrics,
        config,
    };
    let notifier = &notifier;
    // The invocation's body as Lambda sent it, read once into the typed event (no `Value` tree).
    run_on_body(move |event: Invocation| async move {
        let text = event.text()?;
        // Boxed: the handler's future is deep, and one allocation per invocation is nothing.
        let work = Box::pin(notifier.handle(text, &event.context.request_id, chrono::Utc::now()));
        deadline::within(deadline::instant_of(event.context.deadline), work)
            .await
            .map_err(|e| diagnostic(&e, e.retry()))
    })
    .await
}
