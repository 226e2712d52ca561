//! What is being deployed right now, per application: written by pipeline-notifier (a pipeline's
//! deploy action starting, the execution ending) and deploy-validator (a CodeDeploy lifecycle hook,
//! a Failed report), read by alarm-fanout so an alarm that fires mid-deployment says which
//! deployment and commit.
//!
//! One key model: `deploy-context/<application>.json`, where the application is the CodeDeploy
//! application (what a deploy action's `ApplicationName` names, what `GetDeployment` returns, what
//! a routing rule's `application` or an alarm's `application` tag says). The pipeline and the hook
//! of one release merge into one record: the pipeline brings the execution and commit, the hook
//! the deployment id. [`apply`] decides each change purely; [`update`] writes it with conditional
//! writes, so concurrent writers never lose each other's part.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::LedgerError;
use crate::ports::{ObjectStore, PortError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    pub application: String,
    /// `pipeline-notifier` or `deploy-validator`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The CodeDeploy deployment group: a pipeline's release and a hook merge only within one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Set when it ended; an ended deployment is context for a short while only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl InFlight {
    pub fn key(application: &str) -> String {
        format!("deploy-context/{}.json", application.replace('/', "_"))
    }

    /// In flight at `at`: started before it, and not finished more than `grace` before it.
    pub fn covers(&self, at: DateTime<Utc>, grace: chrono::Duration) -> bool {
        self.started_at <= at && self.finished_at.map(|f| at <= f + grace).unwrap_or(true)
    }

    /// One line for a message: `CodeDeploy deployment d-X of flask-api, pipeline flask-web-app
    /// execution 8f2a... (commit 7c4a9e3f by Mary Major)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.deployment_id {
            parts.push(format!("CodeDeploy deployment {d} of {}", self.application));
        }
        if let (Some(p), Some(e)) = (&self.pipeline, &self.execution_id) {
            parts.push(format!("pipeline {p} execution {e}"));
        }
        let mut text =
            if parts.is_empty() { format!("a deployment of {}", self.application) } else { parts.join(", ") };
        if let Some(commit) = &self.commit {
            text.push_str(&format!(" (commit {}", crate::format::short_commit(commit)));
            if let Some(author) = &self.author {
                text.push_str(&format!(" by {author}"));
            }
            text.push(')');
        }
        text
    }
}

/// What a function saw that changes an application's deployment context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A pipeline's deploy action started: this execution (and its commit) is now the release.
    PipelineDeploying {
        pipeline: String,
        execution_id: String,
        deployment_group: Option<String>,
        commit: Option<String>,
        author: Option<String>,
        at: DateTime<Utc>,
    },
    /// A CodeDeploy lifecycle hook ran for this deployment.
    HookRan { deployment_id: String, deployment_group: Option<String>, at: DateTime<Utc> },
    /// The execution ended (any final state); it ends the context only if it is the one in flight.
    PipelineEnded { execution_id: String, at: DateTime<Utc> },
    /// The deployment ended (the hook reported Failed: CodeDeploy rolls back).
    DeploymentEnded { deployment_id: String, at: DateTime<Utc> },
}

/// The context after `change`, or `None` when nothing is to be written. Pure: the same inputs
/// always give the same answer, whoever calls it and in whichever order events arrive.
pub fn apply(
    current: Option<&InFlight>,
    application: &str,
    change: &Change,
    max_age: chrono::Duration,
) -> Option<InFlight> {
    // A record still describes the release under way when it has not ended and is not stale.
    let open = |c: &InFlight, at: DateTime<Utc>| c.finished_at.is_none() && at - c.started_at < max_age;
    // Groups known on both sides must agree (staging and production of one application are two
    // releases); an unknown group does not keep them apart.
    let same_group = |a: &Option<String>, b: &Option<String>| a.is_none() || b.is_none() || a == b;
    match change {
        Change::PipelineDeploying { pipeline, execution_id, deployment_group, commit, author, at } => {
            if let Some(c) = current {
                if c.execution_id.as_deref() == Some(execution_id.as_str()) && c.finished_at.is_none_or(|f| f >= *at) {
                    // A second deploy action of the same execution, or a late start of one that
                    // has already ended: nothing new.
                    return None;
                }
                if c.execution_id.is_some() && c.started_at > *at {
                    return None; // a newer execution already took over
                }
            }
            // The hook of this release may have been handled first (events arrive in any order):
            // a hook-only record, still open, of the same group, whose hook ran after this deploy
            // action could have started it, is this release's deployment. An older one is not.
            let skew = chrono::Duration::minutes(1);
            let hook_of_this_release = current.filter(|c| {
                c.execution_id.is_none()
                    && open(c, *at)
                    && c.started_at + skew >= *at
                    && same_group(&c.deployment_group, deployment_group)
            });
            Some(InFlight {
                application: application.to_string(),
                source: "pipeline-notifier".to_string(),
                pipeline: Some(pipeline.clone()),
                execution_id: Some(execution_id.clone()),
                deployment_id: hook_of_this_release.and_then(|c| c.deployment_id.clone()),
                deployment_group: deployment_group
                    .clone()
                    .or_else(|| hook_of_this_release.and_then(|c| c.deployment_group.clone())),
                commit: commit.clone(),
                author: author.clone(),
                started_at: *at,
                finished_at: None,
            })
        }
        Change::HookRan { deployment_id, deployment_group, at } => {
            let release = current
                .filter(|c| open(c, *at) && c.started_at <= *at && same_group(&c.deployment_group, deployment_group));
            match release {
                Some(c) if c.deployment_id.as_deref() == Some(deployment_id.as_str()) => None,
                // The pipeline's release of this group is under way: this is its deployment.
                Some(c) if c.execution_id.is_some() => Some(InFlight {
                    deployment_id: Some(deployment_id.clone()),
                    deployment_group: c.deployment_group.clone().or_else(|| deployment_group.clone()),
                    ..c.clone()
                }),
                // Another deployment outside a pipeline (or of another group): a release of its own.
                _ => Some(InFlight {
                    application: application.to_string(),
                    source: "deploy-validator".to_string(),
                    pipeline: None,
                    execution_id: None,
                    deployment_id: Some(deployment_id.clone()),
                    deployment_group: deployment_group.clone(),
                    commit: None,
                    author: None,
                    started_at: *at,
                    finished_at: None,
                }),
            }
        }
        Change::PipelineEnded { execution_id, at } => current
            .filter(|c| c.execution_id.as_deref() == Some(execution_id.as_str()) && c.finished_at.is_none())
            .map(|c| InFlight { finished_at: Some(*at), ..c.clone() }),
        Change::DeploymentEnded { deployment_id, at } => current
            .filter(|c| c.deployment_id.as_deref() == Some(deployment_id.as_str()) && c.finished_at.is_none())
            .map(|c| InFlight { finished_at: Some(*at), ..c.clone() }),
    }
}

/// How long an unfinished record stays the context when nothing ends it (a deployment outside a
/// pipeline whose hook reported Succeeded). alarm-fanout has its own limit for reading.
pub const MAX_AGE_HOURS: i64 = 6;

/// Applies `change` to the application's context with a conditional write (re-read and re-applied
/// when another writer got there first). Returns the context as stored afterwards.
pub async fn update<S: ObjectStore>(
    store: &S,
    application: &str,
    change: &Change,
) -> Result<Option<InFlight>, LedgerError> {
    let max_age = chrono::Duration::hours(MAX_AGE_HOURS);
    let (stored, _) = crate::ledger::read_modify_write(
        store,
        &InFlight::key(application),
        || None::<InFlight>,
        |current: &mut Option<InFlight>| {
            let next = apply(current.as_ref(), application, change, max_age)?;
            *current = Some(next);
            Some(())
        },
    )
    .await?;
    Ok(stored)
}

/// What is in flight for an application, if anything was recorded.
pub async fn read<S: ObjectStore>(store: &S, application: &str) -> Result<Option<InFlight>, PortError> {
    Ok(store.get(&InFlight::key(application)).await?.and_then(|o| serde_json::from_slice(&o.body).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    fn deploying(execution: &str, minutes: i64) -> Change {
        Change::PipelineDeploying {
            pipeline: "flask-web-app".into(),
            execution_id: execution.into(),
            deployment_group: Some("production".into()),
            commit: Some("7c4a9e3f00".into()),
            author: Some("Mary Major".into()),
            at: at(minutes),
        }
    }

    fn hook(deployment: &str, minutes: i64) -> Change {
        Change::HookRan {
            deployment_id: deployment.into(),
            deployment_group: Some("production".into()),
            at: at(minutes),
        }
    }

    fn run(changes: &[Change]) -> Option<InFlight> {
        let mut current = None;
        for change in changes {
            if let Some(next) = apply(current.as_ref(), "flask-api", change, chrono::Duration::hours(6)) {
                current = Some(next);
            }
        }
        current
    }

    #[test]
    fn pipeline_then_hook_is_one_release_with_commit_and_deployment() {
        let c = run(&[deploying("e1", 0), hook("d-1", 2)]).unwrap();
        assert_eq!(c.execution_id.as_deref(), Some("e1"));
        assert_eq!(c.deployment_id.as_deref(), Some("d-1"));
        assert_eq!(c.commit.as_deref(), Some("7c4a9e3f00"));
        assert_eq!(
            c.describe(),
            "CodeDeploy deployment d-1 of flask-api, pipeline flask-web-app execution e1 (commit 7c4a9e3f by Mary Major)"
        );
    }

    #[test]
    fn hook_handled_first_then_the_deploy_start_still_merges() {
        // The hook runs after its deploy action started, but its invocation may be handled first.
        let c = run(&[hook("d-1", 3), deploying("e1", 2)]).unwrap();
        assert_eq!((c.execution_id.as_deref(), c.deployment_id.as_deref()), (Some("e1"), Some("d-1")));
        let ended =
            run(&[hook("d-1", 3), deploying("e1", 2), Change::PipelineEnded { execution_id: "e1".into(), at: at(9) }])
                .unwrap();
        assert_eq!(ended.finished_at, Some(at(9)), "the execution's end closes the merged record");
    }

    #[test]
    fn an_older_deployment_is_not_inherited_by_a_new_execution() {
        // A manual deployment whose hook reported Succeeded hours ago, still open.
        let c = run(&[hook("d-OLD", 0), deploying("e2", 120)]).unwrap();
        assert_eq!((c.execution_id.as_deref(), c.deployment_id), (Some("e2"), None));
    }

    #[test]
    fn a_hook_of_another_group_is_a_release_of_its_own() {
        let staging =
            Change::HookRan { deployment_id: "d-S".into(), deployment_group: Some("staging".into()), at: at(2) };
        let c = run(&[deploying("e1", 0), staging]).unwrap();
        assert_eq!((c.execution_id, c.deployment_id.as_deref()), (None, Some("d-S")), "not paired with e1's commit");
    }

    #[test]
    fn a_late_deploy_start_does_not_reopen_an_ended_execution() {
        let c = run(&[
            deploying("e1", 0),
            Change::PipelineEnded { execution_id: "e1".into(), at: at(10) },
            deploying("e1", 5),
        ])
        .unwrap();
        assert_eq!(c.finished_at, Some(at(10)));
    }

    #[test]
    fn only_the_execution_in_flight_ends_it_and_a_late_old_one_changes_nothing() {
        let c = run(&[
            deploying("e1", 0),
            deploying("e2", 10),
            Change::PipelineEnded { execution_id: "e1".into(), at: at(11) },
        ])
        .unwrap();
        assert_eq!((c.execution_id.as_deref(), c.finished_at), (Some("e2"), None));
        let ended =
            run(&[deploying("e2", 10), Change::PipelineEnded { execution_id: "e2".into(), at: at(20) }]).unwrap();
        assert_eq!(ended.finished_at, Some(at(20)));
        let late = run(&[deploying("e2", 10), deploying("e1", 5)]).unwrap();
        assert_eq!(late.execution_id.as_deref(), Some("e2"), "an older execution's late deploy does not take over");
    }

    #[test]
    fn a_failed_report_ends_the_deployment_and_a_new_hook_after_an_ended_release_starts_afresh() {
        let c = run(&[
            deploying("e1", 0),
            hook("d-1", 2),
            Change::DeploymentEnded { deployment_id: "d-1".into(), at: at(3) },
        ])
        .unwrap();
        assert_eq!(c.finished_at, Some(at(3)));
        let next = apply(Some(&c), "flask-api", &hook("d-2", 30), chrono::Duration::hours(6)).unwrap();
        assert_eq!(
            (next.deployment_id.as_deref(), next.execution_id.as_deref(), next.finished_at),
            (Some("d-2"), None, None)
        );
    }

    #[test]
    fn duplicates_write_nothing() {
        let c = run(&[deploying("e1", 0)]).unwrap();
        assert!(apply(Some(&c), "flask-api", &deploying("e1", 1), chrono::Duration::hours(6)).is_none());
        let h = run(&[hook("d-1", 0)]).unwrap();
        assert!(apply(Some(&h), "flask-api", &hook("d-1", 1), chrono::Duration::hours(6)).is_none());
    }
}
