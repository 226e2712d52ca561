//! What CodeDeploy says about the deployment under validation.

use std::future::Future;

use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::ports::PortError;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentFacts {
    pub application: String,
    pub group: String,
    pub compute_platform: Option<String>,
    /// `function:version` that traffic is shifting to, for Lambda deployments.
    pub lambda_target: Option<String>,
}

/// CodeDeploy `GetDeployment`.
pub trait DeploymentLookup: Send + Sync {
    fn deployment(&self, deployment_id: &str) -> impl Future<Output = Result<DeploymentFacts, PortError>> + Send;
}

pub struct CodeDeployLookup {
    client: aws_sdk_codedeploy::Client,
}

impl CodeDeployLookup {
    pub fn new(client: aws_sdk_codedeploy::Client) -> Self {
        Self { client }
    }
}

impl DeploymentLookup for CodeDeployLookup {
    async fn deployment(&self, deployment_id: &str) -> Result<DeploymentFacts, PortError> {
        let info = self
            .client
            .get_deployment()
            .deployment_id(deployment_id)
            .send()
            .await
            .map_err(|e| classify_sdk_error("CodeDeploy", "GetDeployment", &e))?
            .deployment_info
            .ok_or_else(|| {
                PortError::new(
                    "CodeDeploy",
                    "GetDeployment",
                    pipewarden_shared::ports::FailureKind::Rejected,
                    "no deploymentInfo in the answer",
                )
            })?;
        let appspec =
            info.revision.as_ref().and_then(|r| r.app_spec_content.as_ref()).and_then(|c| c.content.as_deref());
        Ok(DeploymentFacts {
            application: info.application_name.unwrap_or_default(),
            group: info.deployment_group_name.unwrap_or_default(),
            compute_platform: info.compute_platform.map(|p| p.as_str().to_string()),
            lambda_target: appspec.and_then(lambda_target),
        })
    }
}

/// The Lambda function and version traffic shifts to, from an AppSpec (YAML or JSON):
/// `Resources: [{name: {Type: AWS::Lambda::Function, Properties: {Name, Alias, TargetVersion}}}]`.
/// An ECS AppSpec's `AWS::ECS::Service` names no function: `None`.
pub fn lambda_target(appspec: &str) -> Option<String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(appspec).ok()?;
    let resources = doc.get("Resources")?.as_sequence()?;
    resources.iter().filter_map(|r| r.as_mapping()).flat_map(|m| m.values()).find_map(|resource| {
        let kind = resource.get("Type").and_then(|t| t.as_str());
        if kind.is_some_and(|k| !k.eq_ignore_ascii_case("AWS::Lambda::Function")) {
            return None;
        }
        let properties = resource.get("Properties")?;
        let name = properties.get("Name")?.as_str()?;
        let target = properties.get("TargetVersion").and_then(|v| match v {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Some(match target {
            Some(version) => format!("{name}:{version}"),
            None => name.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn target_version_from_sam_appspec() {
        let appspec = r#"version: 0.0
Resources:
  - flaskApi:
      Type: AWS::Lambda::Function
      Properties:
        Name: flask-api
        Alias: live
        CurrentVersion: 4
        TargetVersion: 5
"#;
        assert_eq!(super::lambda_target(appspec).as_deref(), Some("flask-api:5"));
        let json = r#"{"version":0.0,"Resources":[{"fn":{"Type":"AWS::Lambda::Function","Properties":{"Name":"api","Alias":"live","TargetVersion":"7"}}}]}"#;
        assert_eq!(super::lambda_target(json).as_deref(), Some("api:7"));
        assert_eq!(super::lambda_target("not: [an appspec"), None);
    }

    #[test]
    fn ecs_appspec_names_no_function() {
        let appspec = r#"version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        Name: not-a-function
        TaskDefinition: "arn:aws:ecs:us-east-1:123456789012:task-definition/flask-web-app:7"
        LoadBalancerInfo:
          ContainerName: flask
          ContainerPort: 8000
"#;
        assert_eq!(super::lambda_target(appspec), None);
    }
}
