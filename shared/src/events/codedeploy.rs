//! The CodeDeploy lifecycle hook invocation.

use serde::Deserialize;

use super::{Document, EventError};

/// `{DeploymentId, LifecycleEventHookExecutionId}`, as CodeDeploy invokes a hook function.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct HookInvocation {
    #[serde(rename = "DeploymentId")]
    pub deployment_id: String,
    #[serde(rename = "LifecycleEventHookExecutionId")]
    pub lifecycle_event_hook_execution_id: String,
}

pub fn parse_hook(document: impl Document) -> Result<HookInvocation, EventError> {
    let hook: HookInvocation = document.parse("CodeDeploy lifecycle hook")?;
    for (field, text) in [
        ("DeploymentId", &hook.deployment_id),
        ("LifecycleEventHookExecutionId", &hook.lifecycle_event_hook_execution_id),
    ] {
        if text.trim().is_empty() {
            return Err(EventError::new("CodeDeploy lifecycle hook", field, "must not be empty"));
        }
    }
    Ok(hook)
}
