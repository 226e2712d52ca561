//! What CodeDeploy says about the deployment under validation.

use std::future::Future;

use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::ports::{HookStatus, PortError};
use tracing::warn;

use crate::canary::{CanaryFacts, LambdaShift, TaskSet};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentFacts {
    pub application: String,
    pub group: String,
    pub compute_platform: Option<String>,
    /// `function:version` that traffic is shifting to, for Lambda deployments.
    pub lambda_target: Option<String>,
    /// The lifecycle event whose hook is running (BeforeAllowTraffic, AfterAllowTraffic, ...):
    /// CodeDeploy leaves it out of the hook's payload, so it is read from the deployment target's
    /// lifecycle events, where it is the one in progress. `None` when that could not be told.
    pub lifecycle_event: Option<String>,
    /// The status CodeDeploy already holds for this deployment's hooks once the deployment has
    /// ended (see [`already_reported`]): a report now would be refused. `None` while it goes on,
    /// or when that could not be told.
    pub already_reported: Option<HookStatus>,
    /// The versions or task sets the canary check compares, and when the deployment began.
    pub canary: CanaryFacts,
}

/// The lifecycle events CodeDeploy can run a hook function for (Lambda and ECS deployments), as
/// PutLifecycleEventHookExecutionStatus's documentation lists them. AllowTraffic, Install and
/// AllowTestTraffic are CodeDeploy's own steps and run no hook.
pub const HOOK_EVENTS: [&str; 5] =
    ["BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic"];

/// One lifecycle event of a deployment target, as BatchGetDeploymentTargets describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetEvent {
    pub name: String,
    pub status: String,
}

/// The hook event in progress on the deployment's targets: the one a hook invoked now serves.
/// Several in progress at once (never seen: a Lambda or ECS deployment has one target and runs its
/// events in order) or none: `None`, rather than a guess.
pub fn hook_in_progress(events: &[TargetEvent]) -> Option<String> {
    let mut running = events
        .iter()
        .filter(|e| e.status == "InProgress" && HOOK_EVENTS.contains(&e.name.as_str()))
        .map(|e| e.name.clone());
    let first = running.next()?;
    running.all(|other| other == first).then_some(first)
}

/// The status the deployment's ended hook events agree on (`None`: none ended, or they differ).
fn hooks_completed(events: &[TargetEvent]) -> Option<HookStatus> {
    let hooks = || events.iter().filter(|e| HOOK_EVENTS.contains(&e.name.as_str()));
    if hooks().any(|e| e.status == "InProgress") {
        return None;
    }
    let mut ended = hooks().filter_map(|e| match e.status.as_str() {
        "Succeeded" => Some(HookStatus::Succeeded),
        "Failed" => Some(HookStatus::Failed),
        _ => None,
    });
    let first = ended.next()?;
    ended.all(|other| other == first).then_some(first)
}

/// What CodeDeploy holds for a hook invoked for a deployment that has ended (`Succeeded`,
/// `Failed` or `Stopped`), with no hook event waiting for a status and the hook events that ended
/// agreeing on one: the hook was reported, by an earlier invocation whose decision may not have
/// been recorded (S3 failed it), and deciding afresh could contradict it. `None` otherwise: while
/// the deployment goes on (a hook whose event shows ended cannot be told from a lagging one by its
/// payload), or when its hooks ended differently (which one this hook is cannot be told: a
/// BeforeAllowTraffic that succeeded and an AfterAllowTraffic that failed seconds later, say). It
/// then decides and reports, and CodeDeploy's refusal of a second status names the one it keeps.
pub fn already_reported(deployment_status: Option<&str>, events: &[TargetEvent]) -> Option<HookStatus> {
    matches!(deployment_status?, "Succeeded" | "Failed" | "Stopped").then(|| hooks_completed(events))?
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
        // Independent of each other: asked together.
        let (info, events) = tokio::join!(
            self.client.get_deployment().deployment_id(deployment_id).send(),
            self.target_events(deployment_id)
        );
        let info = info
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
        let canary = CanaryFacts {
            lambda: appspec.and_then(lambda_shift),
            task_sets: events.as_ref().map(|(_, sets)| sets.clone()).unwrap_or_default(),
            deployment_created: info
                .create_time
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        };
        Ok(DeploymentFacts {
            canary,
            application: info.application_name.unwrap_or_default(),
            group: info.deployment_group_name.unwrap_or_default(),
            compute_platform: info.compute_platform.map(|p| p.as_str().to_string()),
            lambda_target: appspec.and_then(lambda_target),
            lifecycle_event: events.as_ref().ok().and_then(|(events, _)| hook_in_progress(events)),
            already_reported: events
                .inspect_err(
                    |e| warn!(error = %e, "lifecycle event not known: the deployment's targets are unreadable"),
                )
                .ok()
                .and_then(|(events, _)| already_reported(info.status.as_ref().map(|s| s.as_str()), &events)),
        })
    }
}

impl CodeDeployLookup {
    /// The lifecycle events of the deployment's targets (ListDeploymentTargets, then
    /// BatchGetDeploymentTargets for the first 25: a Lambda or ECS deployment has one target),
    /// and an ECS target's task sets.
    async fn target_events(&self, deployment_id: &str) -> Result<(Vec<TargetEvent>, Vec<TaskSet>), PortError> {
        let listed = self
            .client
            .list_deployment_targets()
            .deployment_id(deployment_id)
            .send()
            .await
            .map_err(|e| classify_sdk_error("CodeDeploy", "ListDeploymentTargets", &e))?;
        let ids: Vec<String> = listed.target_ids.unwrap_or_default().into_iter().take(25).collect();
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let targets = self
            .client
            .batch_get_deployment_targets()
            .deployment_id(deployment_id)
            .set_target_ids(Some(ids))
            .send()
            .await
            .map_err(|e| classify_sdk_error("CodeDeploy", "BatchGetDeploymentTargets", &e))?
            .deployment_targets
            .unwrap_or_default();
        let task_sets: Vec<TaskSet> = targets
            .iter()
            .filter_map(|t| t.ecs_target.as_ref())
            .flat_map(|t| t.task_sets_info.iter().flatten())
            .filter_map(|set| {
                Some(TaskSet {
                    label: set.task_set_label.as_ref()?.as_str().to_string(),
                    target_group: set.target_group.as_ref()?.name.clone()?,
                })
            })
            .collect();
        let events = targets.into_iter().flat_map(|target| {
            // An ECS blue/green deployment made by CloudFormation's AWS::CodeDeploy::BlueGreen
            // hook has a CloudFormation target, with the same lifecycle events.
            let events = target
                .lambda_target
                .and_then(|t| t.lifecycle_events)
                .or_else(|| target.ecs_target.and_then(|t| t.lifecycle_events))
                .or_else(|| target.cloud_formation_target.and_then(|t| t.lifecycle_events))
                .unwrap_or_default();
            events.into_iter().map(|e| TargetEvent {
                name: e.lifecycle_event_name.unwrap_or_default(),
                status: e.status.map(|s| s.as_str().to_string()).unwrap_or_default(),
            })
        });
        Ok((events.collect(), task_sets))
    }
}

/// The Lambda function and version traffic shifts to, from an AppSpec (YAML or JSON):
/// `Resources: [{name: {Type: AWS::Lambda::Function, Properties: {Name, Alias, TargetVersion}}}]`.
/// An ECS AppSpec's `AWS::ECS::Service` names no function: `None`.
pub fn lambda_target(appspec: &str) -> Option<String> {
    lambda_resource(appspec, |name, properties| {
        Some(match version(properties, "TargetVersion") {
            Some(version) => format!("{name}:{version}"),
            None => name.to_string(),
        })
    })
}

/// A version as an AppSpec gives it: a string, or a number in YAML.
fn version(properties: &serde_yaml_ng::Value, key: &str) -> Option<String> {
    properties.get(key).and_then(|v| match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The function, alias and versions of a Lambda AppSpec, when it names all four.
pub fn lambda_shift(appspec: &str) -> Option<LambdaShift> {
    lambda_resource(appspec, |name, properties| {
        Some(LambdaShift {
            function: name.to_string(),
            alias: properties.get("Alias")?.as_str()?.to_string(),
            current_version: version(properties, "CurrentVersion")?,
            target_version: version(properties, "TargetVersion")?,
        })
    })
}

/// What `read` makes of the first `AWS::Lambda::Function` resource's name and properties.
fn lambda_resource<T>(appspec: &str, read: impl Fn(&str, &serde_yaml_ng::Value) -> Option<T>) -> Option<T> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(appspec).ok()?;
    let resources = doc.get("Resources")?.as_sequence()?;
    resources.iter().filter_map(|r| r.as_mapping()).flat_map(|m| m.values()).find_map(|resource| {
        let kind = resource.get("Type").and_then(|t| t.as_str());
        if kind.is_some_and(|k| !k.eq_ignore_ascii_case("AWS::Lambda::Function")) {
            return None;
        }
        let properties = resource.get("Properties")?;
        let name = properties.get("Name")?.as_str()?;
        read(name, properties)
    })
}

#[cfg(test)]
mod tests {
    use super::{already_reported, hook_in_progress, HookStatus, TargetEvent};

    fn events(list: &[(&str, &str)]) -> Vec<TargetEvent> {
        list.iter().map(|(n, s)| TargetEvent { name: n.to_string(), status: s.to_string() }).collect()
    }

    #[test]
    fn a_hook_of_an_ended_deployment_was_reported_with_the_status_its_hooks_ended_with() {
        let failed =
            events(&[("BeforeAllowTraffic", "Failed"), ("AllowTraffic", "Skipped"), ("AfterAllowTraffic", "Skipped")]);
        assert_eq!(already_reported(Some("Failed"), &failed), Some(HookStatus::Failed));
        let done = events(&[
            ("BeforeAllowTraffic", "Succeeded"),
            ("AllowTraffic", "Succeeded"),
            ("AfterAllowTraffic", "Succeeded"),
        ]);
        assert_eq!(already_reported(Some("Succeeded"), &done), Some(HookStatus::Succeeded));
        // Going on, or a hook still waiting, or hooks that ended differently: decided and reported.
        let shifting = events(&[
            ("BeforeAllowTraffic", "Succeeded"),
            ("AllowTraffic", "InProgress"),
            ("AfterAllowTraffic", "Pending"),
        ]);
        assert_eq!(already_reported(Some("InProgress"), &shifting), None);
        let waiting = events(&[("BeforeAllowTraffic", "InProgress")]);
        assert_eq!(already_reported(Some("Stopped"), &waiting), None);
        // Hooks that ended differently: which one is invoked again cannot be told (a retry of the
        // BeforeAllowTraffic that succeeded, after AfterAllowTraffic failed the deployment).
        let second_failed = events(&[("BeforeAllowTraffic", "Succeeded"), ("AfterAllowTraffic", "Failed")]);
        assert_eq!(already_reported(Some("Failed"), &second_failed), None);
        assert_eq!(already_reported(Some("Stopped"), &second_failed), None);
        let first_failed = events(&[("BeforeAllowTraffic", "Failed"), ("AfterAllowTraffic", "Pending")]);
        assert_eq!(already_reported(Some("Failed"), &first_failed), Some(HookStatus::Failed));
        assert_eq!(already_reported(Some("Failed"), &[]), None);
        assert_eq!(already_reported(None, &done), None);
    }

    #[test]
    fn the_hook_in_progress_is_the_one_served() {
        let lambda = events(&[
            ("BeforeAllowTraffic", "Succeeded"),
            ("AllowTraffic", "Succeeded"),
            ("AfterAllowTraffic", "InProgress"),
        ]);
        assert_eq!(hook_in_progress(&lambda).as_deref(), Some("AfterAllowTraffic"));
        let ecs = events(&[
            ("BeforeInstall", "Succeeded"),
            ("Install", "Succeeded"),
            ("AfterInstall", "Succeeded"),
            ("AllowTestTraffic", "Succeeded"),
            ("AfterAllowTestTraffic", "InProgress"),
            ("BeforeAllowTraffic", "Pending"),
        ]);
        assert_eq!(hook_in_progress(&ecs).as_deref(), Some("AfterAllowTestTraffic"));
        // CodeDeploy's own step in progress runs no hook; two different ones in progress is no answer.
        assert_eq!(hook_in_progress(&events(&[("AllowTraffic", "InProgress")])), None);
        assert_eq!(
            hook_in_progress(&events(&[("BeforeAllowTraffic", "InProgress"), ("AfterAllowTraffic", "InProgress")])),
            None
        );
        assert_eq!(hook_in_progress(&[]), None);
    }
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
        // YAML numbers, as a hand-written AppSpec gives them.
        let shift = super::lambda_shift(appspec).expect("function, alias and both versions");
        assert_eq!(
            (
                shift.function.as_str(),
                shift.alias.as_str(),
                shift.current_version.as_str(),
                shift.target_version.as_str()
            ),
            ("flask-api", "live", "4", "5")
        );
        assert_eq!(super::lambda_shift("Resources: [{f: {Type: AWS::Lambda::Function, Properties: {Name: a}}}]"), None);
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
