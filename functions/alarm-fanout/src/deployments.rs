//! Which CodeDeploy deployment a pipeline's release is, when no hook said so.
//!
//! The deployment context gets its deployment id from deploy-validator's lifecycle hook, which only
//! Lambda and ECS deployments run. A pipeline deploying to EC2/on-premises instances leaves a
//! context with its application and deployment group (from the action history) and no deployment.
//! For an alarm during such a release, CodeDeploy is asked ([`DeploymentLister`], one
//! `ListDeployments` call, then `BatchGetDeployments` for who created them) which deployments of
//! that group, created by a user (the pipeline) since the deploy action started, have not ended. A deployment group runs one deployment at a time (CodeDeploy's quota
//! "Concurrent deployments per deployment group" is 1, not adjustable), so one such deployment is
//! the release's. The lookup is bounded by the handler: a slow CodeDeploy costs the deployment's
//! name, never the alarm's message.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_codedeploy::primitives::DateTime as SdkDateTime;
use aws_sdk_codedeploy::types::{DeploymentCreator, DeploymentStatus, TimeRange};
use chrono::{DateTime, Utc};
use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::deploy_context::InFlight;
use pipewarden_shared::ports::{FailureKind, PortError};

/// The longest the lookup may take (less when the invocation has less time left).
pub const LOOKUP_CAP: Duration = Duration::from_secs(2);

/// How long before the deploy action's start its deployment may have been created (clocks differ).
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(1);

/// The statuses of a deployment that has not ended (CodeDeploy's `DeploymentStatus`): created and
/// not yet started, queued, running, baking after its traffic shift, or ready (blue/green,
/// waiting to reroute traffic). Not Succeeded, Failed or Stopped.
pub const IN_FLIGHT: [&str; 5] = ["Created", "Queued", "InProgress", "Baking", "Ready"];

/// What to ask CodeDeploy: the deployments of this group created since `created_after`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeploymentQuery {
    pub application: String,
    pub deployment_group: String,
    pub created_after: DateTime<Utc>,
}

/// The question to ask for a context, if it needs one: a release under way (not ended) that names
/// its deployment group and no deployment.
pub fn query_for(context: &InFlight) -> Option<DeploymentQuery> {
    if context.deployment_id.is_some() || context.finished_at.is_some() {
        return None;
    }
    Some(DeploymentQuery {
        application: context.application.clone(),
        deployment_group: context.deployment_group.clone()?,
        created_after: context.started_at - CLOCK_SKEW,
    })
}

/// The release's deployment among those CodeDeploy listed as in flight: the only one. Several (which
/// CodeDeploy's one-at-a-time rule leaves no room for) name none: `ListDeployments` gives neither
/// an order nor creation times to tell which is the newest, and a wrong name misleads more than
/// none.
pub fn the_deployment(listed: &[String]) -> Option<&str> {
    let first = listed.first()?;
    listed.iter().all(|id| id == first).then_some(first.as_str())
}

/// Lists a deployment group's deployments that have not ended (CodeDeploy `ListDeployments`).
pub trait DeploymentLister: Send + Sync {
    /// The ids of the deployments of `query`'s group created since `query.created_after` by a
    /// user (the pipeline's role; not a rollback, Auto Scaling or an auto-update) whose status is
    /// one of [`IN_FLIGHT`], every page.
    fn in_flight(&self, query: &DeploymentQuery) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
}

/// The real one: CodeDeploy.
#[derive(Clone, Debug)]
pub struct CodeDeployDeployments {
    client: aws_sdk_codedeploy::Client,
}

impl CodeDeployDeployments {
    pub fn new(client: aws_sdk_codedeploy::Client) -> Self {
        Self { client }
    }
}

impl DeploymentLister for CodeDeployDeployments {
    async fn in_flight(&self, query: &DeploymentQuery) -> Result<Vec<String>, PortError> {
        let since = TimeRange::builder().start(SdkDateTime::from_secs(query.created_after.timestamp())).build();
        let statuses = IN_FLIGHT.iter().map(|s| DeploymentStatus::from(*s)).collect();
        let listed: Vec<String> = self
            .client
            .list_deployments()
            .application_name(&query.application)
            .deployment_group_name(&query.deployment_group)
            .set_include_only_statuses(Some(statuses))
            .create_time_range(since)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify_sdk_error("CodeDeploy", "ListDeployments", &e))?;
        // Only what a user (the pipeline's role) created: a rollback, an Auto Scaling launch or an
        // auto-update of outdated instances is another deployment of the group, not the release's.
        let mut released = Vec::new();
        for ids in listed.chunks(BATCH_GET_MAX) {
            let got = self
                .client
                .batch_get_deployments()
                .set_deployment_ids(Some(ids.to_vec()))
                .send()
                .await
                .map_err(|e| classify_sdk_error("CodeDeploy", "BatchGetDeployments", &e))?;
            released.extend(got.deployments_info.unwrap_or_default().into_iter().filter_map(|d| {
                let by_user = d.creator.as_ref().is_none_or(|c| *c == DeploymentCreator::User);
                by_user.then_some(d.deployment_id).flatten()
            }));
        }
        Ok(released)
    }
}

/// The most deployment ids one `BatchGetDeployments` call takes.
const BATCH_GET_MAX: usize = 25;

/// One deployment as the in-memory CodeDeploy knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDeployment {
    pub id: String,
    pub application: String,
    pub deployment_group: String,
    pub status: String,
    pub created: DateTime<Utc>,
    /// CodeDeploy's `creator`: `user`, `codeDeployRollback`, `autoscaling`, ...
    pub creator: String,
}

/// In memory, for tests: known deployments, filtered as CodeDeploy filters them; an optional
/// failure, or a hang; a count of calls.
#[derive(Debug, Default)]
pub struct MemoryDeployments {
    pub deployments: Vec<KnownDeployment>,
    pub failure: Option<PortError>,
    pub hang: bool,
    calls: AtomicUsize,
}

impl MemoryDeployments {
    pub fn with(deployments: Vec<KnownDeployment>) -> Self {
        Self { deployments, ..Self::default() }
    }

    pub fn failing(failure: PortError) -> Self {
        Self { failure: Some(failure), ..Self::default() }
    }

    /// Never answers: the caller's bound stops it.
    pub fn hanging() -> Self {
        Self { hang: true, ..Self::default() }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl DeploymentLister for MemoryDeployments {
    async fn in_flight(&self, query: &DeploymentQuery) -> Result<Vec<String>, PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if !self.deployments.iter().any(|d| d.application == query.application) {
            return Err(PortError::new(
                "CodeDeploy",
                "ListDeployments",
                FailureKind::Rejected,
                "ApplicationDoesNotExistException",
            ));
        }
        Ok(self
            .deployments
            .iter()
            .filter(|d| d.application == query.application && d.deployment_group == query.deployment_group)
            .filter(|d| IN_FLIGHT.contains(&d.status.as_str()) && d.created >= query.created_after)
            .filter(|d| d.creator == "user")
            .map(|d| d.id.clone())
            .collect())
    }
}

/// What one invocation already asked, so that a batch of alarms of one release makes one call.
pub type Asked = BTreeMap<DeploymentQuery, Option<Vec<String>>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    fn context() -> InFlight {
        InFlight {
            application: "flask-api".into(),
            source: "pipeline-notifier".into(),
            pipeline: Some("flask-web-app".into()),
            execution_id: Some("e1".into()),
            deployment_id: None,
            deployment_group: Some("flask-api-servers".into()),
            commit: Some("7c4a9e3f00".into()),
            author: None,
            started_at: at(10),
            finished_at: None,
        }
    }

    #[test]
    fn only_a_release_under_way_with_a_group_and_no_deployment_is_asked_about() {
        assert_eq!(
            query_for(&context()),
            Some(DeploymentQuery {
                application: "flask-api".into(),
                deployment_group: "flask-api-servers".into(),
                created_after: at(9),
            })
        );
        let named = InFlight { deployment_id: Some("d-1".into()), ..context() };
        let no_group = InFlight { deployment_group: None, ..context() };
        let ended = InFlight { finished_at: Some(at(20)), ..context() };
        for c in [named, no_group, ended] {
            assert_eq!(query_for(&c), None, "{c:?}");
        }
    }

    #[test]
    fn one_deployment_in_flight_is_the_release_s_and_several_are_none() {
        assert_eq!(the_deployment(&[]), None);
        assert_eq!(the_deployment(&["d-1".into()]), Some("d-1"));
        assert_eq!(the_deployment(&["d-1".into(), "d-1".into()]), Some("d-1"), "a repeat across pages");
        assert_eq!(the_deployment(&["d-1".into(), "d-2".into()]), None);
    }

    #[tokio::test]
    async fn the_fake_filters_as_codedeploy_does() {
        let known = |id: &str, group: &str, status: &str, minutes: i64| KnownDeployment {
            id: id.into(),
            application: "flask-api".into(),
            deployment_group: group.into(),
            status: status.into(),
            created: at(minutes),
            creator: "user".into(),
        };
        let fake = MemoryDeployments::with(vec![
            known("d-OLD", "flask-api-servers", "InProgress", 0),
            known("d-DONE", "flask-api-servers", "Succeeded", 11),
            known("d-OTHER", "flask-api-staging", "InProgress", 11),
            known("d-NOW", "flask-api-servers", "Created", 11),
            KnownDeployment {
                creator: "codeDeployRollback".into(),
                ..known("d-BACK", "flask-api-servers", "InProgress", 12)
            },
        ]);
        let query = query_for(&context()).unwrap();
        assert_eq!(fake.in_flight(&query).await.unwrap(), vec!["d-NOW".to_string()]);
        let unknown = DeploymentQuery { application: "nope".into(), ..query };
        assert_eq!(fake.in_flight(&unknown).await.unwrap_err().kind, FailureKind::Rejected);
        assert_eq!(fake.calls(), 2);
    }
}
