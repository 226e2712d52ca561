//! What the pipeline-notifier tests over in-memory fakes share.

use pipeline_notifier::lookups::{
    ActionHistory, DeployAction, DeploymentDiagnostics, ExecutionRevisions, FailedActionDetail, LifecycleFailure,
    SourceRevision,
};
use pipeline_notifier::metrics::MetricSink;
use pipewarden_shared::ports::PortError;
use serde_json::Value;

/// CodePipeline and CodeDeploy as far as a notification needs them: nothing to add; no metrics.
pub struct NoLookups;

impl ActionHistory for NoLookups {
    async fn failed_actions(&self, _: &str, _: &str) -> Result<Vec<FailedActionDetail>, PortError> {
        Ok(Vec::new())
    }

    async fn deploy_actions(&self, _: &str, _: &str) -> Result<Vec<DeployAction>, PortError> {
        Ok(Vec::new())
    }
}

impl DeploymentDiagnostics for NoLookups {
    async fn failed_lifecycle_events(&self, _: &str) -> Result<Vec<LifecycleFailure>, PortError> {
        Ok(Vec::new())
    }
}

impl ExecutionRevisions for NoLookups {
    async fn source_revisions(&self, _: &str, _: &str) -> Result<Vec<SourceRevision>, PortError> {
        Ok(Vec::new())
    }
}

impl MetricSink for NoLookups {
    fn emit(&self, _: &Value) {}
}
