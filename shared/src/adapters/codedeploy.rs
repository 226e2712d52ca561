use aws_sdk_codedeploy::types::LifecycleEventStatus;

use super::classify;
use crate::deadline::bounded;
use crate::ports::{HookReporter, HookStatus, PortError};

/// Reports hook outcomes with `PutLifecycleEventHookExecutionStatus`.
#[derive(Clone, Debug)]
pub struct CodeDeployHookReporter {
    client: aws_sdk_codedeploy::Client,
}

impl CodeDeployHookReporter {
    pub fn new(client: aws_sdk_codedeploy::Client) -> Self {
        Self { client }
    }
}

impl HookReporter for CodeDeployHookReporter {
    async fn report(&self, deployment_id: &str, hook_execution_id: &str, status: HookStatus) -> Result<(), PortError> {
        let status = match status {
            HookStatus::Succeeded => LifecycleEventStatus::Succeeded,
            HookStatus::Failed => LifecycleEventStatus::Failed,
        };
        let request = self
            .client
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(deployment_id)
            .lifecycle_event_hook_execution_id(hook_execution_id)
            .status(status);
        bounded("CodeDeploy", "PutLifecycleEventHookExecutionStatus", async {
            request.send().await.map_err(|e| classify("CodeDeploy", "PutLifecycleEventHookExecutionStatus", &e))
        })
        .await?;
        Ok(())
    }
}
