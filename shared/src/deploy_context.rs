//! What is being deployed right now, per application: written by pipeline-notifier (pipeline
//! executions) and deploy-validator (CodeDeploy deployments), read by alarm-fanout so an alarm that
//! fires mid-deployment says which deployment and commit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::{ObjectStore, PortError, WriteCondition};

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

    /// One line for a message: `pipeline flask-web-app execution 8f2a... (commit 7c4a9e3f by Mary Major)`.
    pub fn describe(&self) -> String {
        let mut text = match (&self.pipeline, &self.execution_id, &self.deployment_id) {
            (Some(p), Some(e), _) => format!("pipeline {p} execution {e}"),
            (_, _, Some(d)) => format!("CodeDeploy deployment {d}"),
            _ => format!("a deployment of {}", self.application),
        };
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

/// Records what is in flight (last writer wins: the newest deployment is the context).
pub async fn record<S: ObjectStore>(store: &S, in_flight: &InFlight) -> Result<(), PortError> {
    let body = serde_json::to_vec(in_flight).expect("context serializes");
    store
        .put(&InFlight::key(&in_flight.application), body, "application/json", WriteCondition::Always)
        .await
        .map(|_| ())
}

/// What is in flight for an application, if anything was recorded.
pub async fn read<S: ObjectStore>(store: &S, application: &str) -> Result<Option<InFlight>, PortError> {
    Ok(store.get(&InFlight::key(application)).await?.and_then(|o| serde_json::from_slice(&o.body).ok()))
}
