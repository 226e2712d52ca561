//! What the notifier asks AWS when an event alone does not say why a run failed.

use std::future::Future;

use aws_sdk_codedeploy::types::TargetStatus;
use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::deadline::bounded;
use pipewarden_shared::ports::PortError;
use serde::{Deserialize, Serialize};

/// A failed action of an execution, as CodePipeline's action history tells it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FailedActionDetail {
    pub stage: String,
    pub action: String,
    pub provider: Option<String>,
    pub error_code: Option<String>,
    pub summary: Option<String>,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
}

/// A lifecycle event that failed on one deployment target (for EC2: one instance's appspec hook).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LifecycleFailure {
    pub target_id: String,
    pub lifecycle_event: String,
    pub script_name: Option<String>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub log_tail: Option<String>,
}

/// CodePipeline `ListActionExecutions`, for the failed actions of one execution.
pub trait ActionHistory: Send + Sync {
    fn failed_actions(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Vec<FailedActionDetail>, PortError>> + Send;
}

/// CodeDeploy `ListDeploymentTargets` and `BatchGetDeploymentTargets`, for what failed where.
pub trait DeploymentDiagnostics: Send + Sync {
    fn failed_lifecycle_events(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<Vec<LifecycleFailure>, PortError>> + Send;
}

pub struct CodePipelineActionHistory {
    client: aws_sdk_codepipeline::Client,
}

impl CodePipelineActionHistory {
    pub fn new(client: aws_sdk_codepipeline::Client) -> Self {
        Self { client }
    }
}

impl ActionHistory for CodePipelineActionHistory {
    async fn failed_actions(&self, pipeline: &str, execution_id: &str) -> Result<Vec<FailedActionDetail>, PortError> {
        bounded("CodePipeline", "ListActionExecutions", self.list_failed(pipeline, execution_id)).await
    }
}

impl CodePipelineActionHistory {
    async fn list_failed(&self, pipeline: &str, execution_id: &str) -> Result<Vec<FailedActionDetail>, PortError> {
        let filter =
            aws_sdk_codepipeline::types::ActionExecutionFilter::builder().pipeline_execution_id(execution_id).build();
        let output = self
            .client
            .list_action_executions()
            .pipeline_name(pipeline)
            .filter(filter)
            .send()
            .await
            .map_err(|e| classify_sdk_error("CodePipeline", "ListActionExecutions", &e))?;
        let failed = output
            .action_execution_details
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.status.as_ref().map(|s| s.as_str() == "Failed").unwrap_or(false))
            .map(|d| {
                let result = d.output.as_ref().and_then(|o| o.execution_result.as_ref());
                FailedActionDetail {
                    stage: d.stage_name.clone().unwrap_or_default(),
                    action: d.action_name.clone().unwrap_or_default(),
                    provider: d.input.as_ref().and_then(|i| i.action_type_id.as_ref()).map(|t| t.provider.clone()),
                    error_code: result.and_then(|r| r.error_details.as_ref()).and_then(|e| e.code.clone()),
                    summary: result
                        .and_then(|r| r.external_execution_summary.clone())
                        .or_else(|| result.and_then(|r| r.error_details.as_ref()).and_then(|e| e.message.clone())),
                    external_id: result.and_then(|r| r.external_execution_id.clone()),
                    external_url: result.and_then(|r| r.external_execution_url.clone()),
                }
            })
            .collect();
        Ok(failed)
    }
}

pub struct CodeDeployDiagnostics {
    client: aws_sdk_codedeploy::Client,
}

impl CodeDeployDiagnostics {
    pub fn new(client: aws_sdk_codedeploy::Client) -> Self {
        Self { client }
    }
}

impl DeploymentDiagnostics for CodeDeployDiagnostics {
    async fn failed_lifecycle_events(&self, deployment_id: &str) -> Result<Vec<LifecycleFailure>, PortError> {
        bounded("CodeDeploy", "BatchGetDeploymentTargets", self.list_failures(deployment_id)).await
    }
}

impl CodeDeployDiagnostics {
    async fn list_failures(&self, deployment_id: &str) -> Result<Vec<LifecycleFailure>, PortError> {
        let ids = self
            .client
            .list_deployment_targets()
            .deployment_id(deployment_id)
            .send()
            .await
            .map_err(|e| classify_sdk_error("CodeDeploy", "ListDeploymentTargets", &e))?
            .target_ids
            .unwrap_or_default();
        let mut failures = Vec::new();
        // BatchGetDeploymentTargets takes at most 25 ids.
        for chunk in ids.chunks(25) {
            let targets = self
                .client
                .batch_get_deployment_targets()
                .deployment_id(deployment_id)
                .set_target_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify_sdk_error("CodeDeploy", "BatchGetDeploymentTargets", &e))?
                .deployment_targets
                .unwrap_or_default();
            for target in targets {
                let (target_id, status, events) = if let Some(t) = target.instance_target {
                    (t.target_id, t.status, t.lifecycle_events)
                } else if let Some(t) = target.lambda_target {
                    (t.target_id, t.status, t.lifecycle_events)
                } else if let Some(t) = target.ecs_target {
                    (t.target_id, t.status, t.lifecycle_events)
                } else if let Some(t) = target.cloud_formation_target {
                    (t.target_id, t.status, t.lifecycle_events)
                } else {
                    continue;
                };
                if status.as_ref().map(|s| *s != TargetStatus::Failed).unwrap_or(false) && events.is_none() {
                    continue;
                }
                for event in events.unwrap_or_default() {
                    if event.status.as_ref().map(|s| s.as_str() == "Failed").unwrap_or(false) {
                        let diagnostics = event.diagnostics.as_ref();
                        failures.push(LifecycleFailure {
                            target_id: target_id.clone().unwrap_or_default(),
                            lifecycle_event: event.lifecycle_event_name.clone().unwrap_or_default(),
                            script_name: diagnostics.and_then(|d| d.script_name.clone()),
                            error_code: diagnostics.and_then(|d| d.error_code.as_ref()).map(|c| c.as_str().to_string()),
                            message: diagnostics.and_then(|d| d.message.clone()),
                            log_tail: diagnostics.and_then(|d| d.log_tail.clone()),
                        });
                    }
                }
            }
        }
        Ok(failures)
    }
}
