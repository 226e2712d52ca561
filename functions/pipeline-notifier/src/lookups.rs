//! What the notifier asks AWS when an event alone does not say why a run failed, or what it ran.

use std::future::Future;
use std::time::Duration;

use aws_sdk_codedeploy::types::TargetStatus;
use chrono::{DateTime, Utc};
use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::deadline::{bounded, bounded_optional};
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

/// A source revision an execution ran, as `GetPipelineExecution`'s `artifactRevisions` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceRevision {
    /// The artifact's name, such as `SourceArtifact`.
    pub artifact: Option<String>,
    /// The commit id for Git sources (an object version for S3, an image digest for ECR).
    pub revision_id: Option<String>,
    /// The commit message for Git sources (the provider's text for others).
    pub summary: Option<String>,
    /// When the revision was created: for Git sources, the commit's time.
    pub created: Option<DateTime<Utc>>,
    /// The commit's page, for GitHub, GitLab, Bitbucket and CodeCommit sources.
    pub url: Option<String>,
}

/// CodePipeline `GetPipelineExecution`, for the source revisions one execution ran.
pub trait ExecutionRevisions: Send + Sync {
    fn source_revisions(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Vec<SourceRevision>, PortError>> + Send;
}

/// A deploy action of an execution and the CodeDeploy application it deploys (its configuration's
/// `ApplicationName`), as CodePipeline's action history tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployAction {
    pub stage: String,
    pub action: String,
    pub application: String,
    pub deployment_group: Option<String>,
}

/// CodePipeline `ListActionExecutions`: the failed actions of one execution, and its deploy actions.
pub trait ActionHistory: Send + Sync {
    fn failed_actions(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Vec<FailedActionDetail>, PortError>> + Send;

    fn deploy_actions(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Vec<DeployAction>, PortError>> + Send;

    /// A manual approval action of an execution: what it asks (its configuration) and, once
    /// decided, who decided and the comment; with `token`, the token a `PutApprovalResult` for
    /// it needs while it waits (`GetPipelineState`). A history that cannot say gives `None`.
    fn approval(
        &self,
        pipeline: &str,
        execution_id: &str,
        stage: &str,
        action: &str,
        token: bool,
    ) -> impl Future<Output = Result<Option<ApprovalDetail>, PortError>> + Send {
        let _ = (pipeline, execution_id, stage, action, token);
        async { Ok(None) }
    }
}

/// A manual approval action, as CodePipeline's action history and pipeline state tell it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApprovalDetail {
    /// The action's `CustomData`: what the reviewer is asked.
    pub summary: Option<String>,
    /// The action's `ExternalEntityLink`: what to review.
    pub review_url: Option<String>,
    /// Who approved or rejected (`updatedBy`, an ARN).
    pub by: Option<String>,
    /// The reviewer's comment (`externalExecutionSummary` of the result).
    pub comment: Option<String>,
    /// For `PutApprovalResult` while the action waits.
    pub token: Option<String>,
    /// Who can approve, from the configuration (`APPROVERS`), not the history.
    pub approvers: Option<String>,
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
    page_size: Option<i32>,
}

impl CodePipelineActionHistory {
    pub fn new(client: aws_sdk_codepipeline::Client) -> Self {
        Self { client, page_size: None }
    }

    /// Asks for pages of at most `size` action executions (CodePipeline's default is 100).
    pub fn with_page_size(self, size: i32) -> Self {
        Self { page_size: Some(size), ..self }
    }
}

impl ActionHistory for CodePipelineActionHistory {
    async fn failed_actions(&self, pipeline: &str, execution_id: &str) -> Result<Vec<FailedActionDetail>, PortError> {
        bounded("CodePipeline", "ListActionExecutions", self.list_failed(pipeline, execution_id)).await
    }

    async fn approval(
        &self,
        pipeline: &str,
        execution_id: &str,
        stage: &str,
        action: &str,
        token: bool,
    ) -> Result<Option<ApprovalDetail>, PortError> {
        let lookup = self.approval_detail(pipeline, execution_id, stage, action, token);
        bounded("CodePipeline", "ListActionExecutions", lookup).await
    }

    async fn deploy_actions(&self, pipeline: &str, execution_id: &str) -> Result<Vec<DeployAction>, PortError> {
        let details = bounded("CodePipeline", "ListActionExecutions", self.list(pipeline, execution_id)).await?;
        Ok(details
            .into_iter()
            .filter_map(|d| {
                let input = d.input?;
                if input.action_type_id.as_ref().map(|t| t.category.as_str()) != Some("Deploy") {
                    return None;
                }
                // CodeDeploy and CodeDeployToECS actions name their application and group so; the
                // resolved configuration has pipeline variables (#{...}) filled in.
                let configuration = input.resolved_configuration.or(input.configuration)?;
                let application = configuration.get("ApplicationName")?.clone();
                let deployment_group = configuration.get("DeploymentGroupName").cloned();
                Some(DeployAction { stage: d.stage_name?, action: d.action_name?, application, deployment_group })
            })
            .collect())
    }
}

impl CodePipelineActionHistory {
    async fn approval_detail(
        &self,
        pipeline: &str,
        execution_id: &str,
        stage: &str,
        action: &str,
        token: bool,
    ) -> Result<Option<ApprovalDetail>, PortError> {
        let details = self.list(pipeline, execution_id).await?;
        // The latest execution of the action (a retried stage runs it again).
        let Some(detail) = details
            .into_iter()
            .filter(|d| d.stage_name.as_deref() == Some(stage) && d.action_name.as_deref() == Some(action))
            .max_by_key(|d| d.start_time.map(|t| (t.secs(), t.subsec_nanos())))
        else {
            return Ok(None);
        };
        let configuration =
            detail.input.as_ref().and_then(|i| i.resolved_configuration.as_ref().or(i.configuration.as_ref()));
        let setting = |name: &str| configuration.and_then(|c| c.get(name)).filter(|v| !v.is_empty()).cloned();
        let comment = detail
            .output
            .as_ref()
            .and_then(|o| o.execution_result.as_ref())
            .and_then(|r| r.external_execution_summary.clone())
            .filter(|c| !c.is_empty());
        let mut approval = ApprovalDetail {
            summary: setting("CustomData"),
            review_url: setting("ExternalEntityLink"),
            by: detail.updated_by.clone().filter(|b| !b.is_empty()),
            comment,
            token: None,
            approvers: None,
        };
        if token {
            let state = self
                .client
                .get_pipeline_state()
                .name(pipeline)
                .send()
                .await
                .map_err(|e| classify_sdk_error("CodePipeline", "GetPipelineState", &e))?;
            approval.token = state
                .stage_states()
                .iter()
                .filter(|s| s.stage_name() == Some(stage))
                .flat_map(|s| s.action_states())
                .filter(|a| a.action_name() == Some(action))
                .filter_map(|a| a.latest_execution())
                .filter(|e| e.status().map(|s| s.as_str()) == Some("InProgress"))
                // This execution's approval, not another's waiting at the same action (PARALLEL
                // mode, or an older event retried after a newer execution reached it).
                .find(|e| e.action_execution_id().is_some() && e.action_execution_id() == detail.action_execution_id())
                .and_then(|e| e.token().map(str::to_string));
        }
        Ok(Some(approval))
    }

    async fn list(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Vec<aws_sdk_codepipeline::types::ActionExecutionDetail>, PortError> {
        let filter =
            aws_sdk_codepipeline::types::ActionExecutionFilter::builder().pipeline_execution_id(execution_id).build();
        let mut pages = self.client.list_action_executions().pipeline_name(pipeline).filter(filter).into_paginator();
        if let Some(size) = self.page_size {
            pages = pages.page_size(size);
        }
        pages
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify_sdk_error("CodePipeline", "ListActionExecutions", &e))
    }

    async fn list_failed(&self, pipeline: &str, execution_id: &str) -> Result<Vec<FailedActionDetail>, PortError> {
        let failed = self
            .list(pipeline, execution_id)
            .await?
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

/// The longest the revision lookup may take (and never more than a quarter of the invocation's time
/// left): it only adds detail, and the notification it adds to must still go out if it hangs.
/// CodePipeline answers in well under a second; this leaves room for the SDK's retries.
pub const REVISIONS_LOOKUP_CAP: Duration = Duration::from_secs(5);

pub struct CodePipelineExecutions {
    client: aws_sdk_codepipeline::Client,
}

impl CodePipelineExecutions {
    pub fn new(client: aws_sdk_codepipeline::Client) -> Self {
        Self { client }
    }
}

impl ExecutionRevisions for CodePipelineExecutions {
    async fn source_revisions(&self, pipeline: &str, execution_id: &str) -> Result<Vec<SourceRevision>, PortError> {
        let call = self.get_revisions(pipeline, execution_id);
        bounded_optional("CodePipeline", "GetPipelineExecution", REVISIONS_LOOKUP_CAP, call).await
    }
}

impl CodePipelineExecutions {
    async fn get_revisions(&self, pipeline: &str, execution_id: &str) -> Result<Vec<SourceRevision>, PortError> {
        let output = self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
            .map_err(|e| classify_sdk_error("CodePipeline", "GetPipelineExecution", &e))?;
        let revisions = output
            .pipeline_execution
            .and_then(|e| e.artifact_revisions)
            .unwrap_or_default()
            .into_iter()
            .map(|r| SourceRevision {
                artifact: r.name,
                revision_id: r.revision_id.filter(|id| !id.trim().is_empty()),
                summary: r.revision_summary.as_deref().and_then(summary_text),
                created: r.created.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                url: r.revision_url.filter(|u| !u.trim().is_empty()),
            })
            .collect();
        Ok(revisions)
    }
}

/// The readable text of a `revisionSummary`. Sources through a CodeStar connection (GitHub,
/// GitLab, Bitbucket) put a JSON object there, `{"ProviderType":"GitHub","CommitMessage":"..."}`;
/// CodeCommit and S3 put the text itself.
pub fn summary_text(summary: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Connection {
        #[serde(rename = "CommitMessage")]
        commit_message: String,
    }
    let text = match serde_json::from_str::<Connection>(summary) {
        Ok(connection) => connection.commit_message,
        Err(_) => summary.to_string(),
    };
    Some(text).filter(|t| !t.trim().is_empty())
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
    /// Every target of the deployment, page by page. CodeDeploy's API sets the page size itself
    /// and the SDK has no paginator for it: the loop follows `nextToken` until there is none, and
    /// stops if a token comes back twice rather than asking forever.
    async fn list_targets(&self, deployment_id: &str) -> Result<Vec<String>, PortError> {
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_deployment_targets()
                .deployment_id(deployment_id)
                .set_next_token(next_token.clone())
                .send()
                .await
                .map_err(|e| classify_sdk_error("CodeDeploy", "ListDeploymentTargets", &e))?;
            ids.extend(page.target_ids.unwrap_or_default());
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(token) if next_token.as_ref() != Some(&token) => next_token = Some(token),
                _ => return Ok(ids),
            }
        }
    }

    async fn list_failures(&self, deployment_id: &str) -> Result<Vec<LifecycleFailure>, PortError> {
        let ids = self.list_targets(deployment_id).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_connection_sources_are_their_commit_message() {
        assert_eq!(
            summary_text(
                r#"{"ProviderType":"GitHub","CommitMessage":"Fix health check path\n\nnginx answers /health"}"#
            )
            .as_deref(),
            Some("Fix health check path\n\nnginx answers /health")
        );
        assert_eq!(summary_text("Serve static files from nginx").as_deref(), Some("Serve static files from nginx"));
        assert_eq!(summary_text(r#"{"ProviderType":"GitHub"}"#).as_deref(), Some(r#"{"ProviderType":"GitHub"}"#));
        assert_eq!(summary_text("  "), None);
    }
}
