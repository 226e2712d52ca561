//! The audit timeline of one pipeline execution: every event recorded once, and every
//! notification claimed or sent. It is what makes dedup, order-independence and duration work
//! across invocations; it lives in S3 and is written with conditional writes.

use chrono::{DateTime, Utc};
use pipewarden_shared::events::codepipeline::{ExecutionState, ExecutionTrigger, Level, PipelineEvent};
use pipewarden_shared::events::parse_time;
use pipewarden_shared::ledger::Deliveries;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub pipeline: String,
    pub execution_id: String,
    pub account: String,
    pub region: String,
    /// Every distinct event, ordered by time (then event id), whatever order they arrived in.
    pub entries: Vec<Entry>,
    /// Notifications by `outcome key|topic ARN`.
    #[serde(default)]
    pub deliveries: Deliveries,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub event_id: String,
    pub level: Level,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub attempt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// CodeStar notifications name the failed stage and actions directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_actions: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<String>,
}

/// What started the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Trigger {
    pub trigger_type: Option<String>,
    pub trigger_detail: Option<String>,
    pub commit_id: Option<String>,
    pub commit_message: Option<String>,
    pub author: Option<String>,
    pub branch: Option<String>,
    pub tag: Option<String>,
    pub repository: Option<String>,
    #[serde(default)]
    pub commit_time: Option<String>,
}

impl From<&ExecutionTrigger> for Trigger {
    fn from(t: &ExecutionTrigger) -> Self {
        Trigger {
            trigger_type: t.trigger_type.clone(),
            trigger_detail: t.trigger_detail.clone(),
            commit_id: t.commit_id.clone(),
            commit_message: t.commit_message.clone(),
            author: t.author_display_name.clone().or_else(|| t.author_id.clone()),
            branch: t.branch_name.clone(),
            tag: t.tag_name.clone(),
            repository: t.full_repository_name.clone(),
            commit_time: t.author_date.clone(),
        }
    }
}

impl Entry {
    pub fn from_event(event: &PipelineEvent) -> Entry {
        let d = &event.detail;
        let result = d.execution_result.clone().unwrap_or_default();
        let additional = event.additional.clone().unwrap_or_default();
        Entry {
            event_id: event.event_id.clone(),
            level: event.level,
            state: d.state.as_str().to_string(),
            time: event.time.clone(),
            attempt: event.attempt(),
            stage: d.stage.clone(),
            action: d.action.clone(),
            provider: d.action_type.as_ref().and_then(|t| t.provider.clone()),
            category: d.action_type.as_ref().and_then(|t| t.category.clone()),
            error_code: result.error_code,
            summary: result.external_execution_summary,
            external_id: result.external_execution_id,
            external_url: result.external_execution_url,
            start_time: d.start_time.clone(),
            trigger: d.execution_trigger.as_ref().map(Trigger::from),
            failed_actions: additional
                .failed_actions
                .iter()
                .map(|a| (a.action.clone().unwrap_or_default(), a.additional_information.clone().unwrap_or_default()))
                .collect(),
            failed_stage: additional.failed_stage,
        }
    }

    pub fn state(&self) -> ExecutionState {
        ExecutionState::parse(&self.state)
    }
}

impl Timeline {
    pub fn new(event: &PipelineEvent) -> Timeline {
        Timeline {
            pipeline: event.detail.pipeline.clone(),
            execution_id: event.detail.execution_id.clone(),
            account: event.account.clone(),
            region: event.region.clone(),
            entries: Vec::new(),
            deliveries: Deliveries::new(),
        }
    }

    /// The S3 key of an execution's timeline.
    pub fn key(pipeline: &str, execution_id: &str) -> String {
        format!("pipeline-notifier/executions/{pipeline}/{execution_id}.json")
    }

    /// Records an event; `false` if it was already recorded (a duplicate delivery).
    pub fn record(&mut self, event: &PipelineEvent) -> bool {
        if self.entries.iter().any(|e| e.event_id == event.event_id) {
            return false;
        }
        if self.account.is_empty() {
            self.account = event.account.clone();
        }
        if self.region.is_empty() {
            self.region = event.region.clone();
        }
        self.entries.push(Entry::from_event(event));
        self.entries.sort_by(|a, b| {
            (parse_time(a.time.as_deref()), &a.event_id).cmp(&(parse_time(b.time.as_deref()), &b.event_id))
        });
        true
    }

    fn pipeline_entries(&self, attempt: u64) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.level == Level::Pipeline && e.attempt == attempt)
    }

    /// The final state of an attempt, if one was recorded.
    pub fn final_state(&self, attempt: u64) -> Option<&Entry> {
        self.pipeline_entries(attempt).find(|e| e.state().is_final())
    }

    /// When the execution started: V2 events carry `start-time`; else the recorded STARTED event.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(|e| parse_time(e.start_time.as_deref())).min().or_else(|| {
            self.entries
                .iter()
                .filter(|e| e.level == Level::Pipeline && e.state == "STARTED")
                .filter_map(|e| parse_time(e.time.as_deref()))
                .min()
        })
    }

    /// The trigger, from whichever event carried it.
    pub fn trigger(&self) -> Option<&Trigger> {
        self.entries.iter().filter_map(|e| e.trigger.as_ref()).max_by_key(|t| t.commit_id.is_some() as u8)
    }

    /// Failed actions recorded from action-level events, in the order they happened.
    pub fn failed_actions(&self, attempt: u64) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.level == Level::Action && e.state == "FAILED" && e.attempt == attempt)
            .collect()
    }

    /// The failed stage and actions a CodeStar notification named.
    pub fn notification_failure(&self) -> Option<(&str, &[(String, String)])> {
        self.entries.iter().find_map(|e| e.failed_stage.as_deref().map(|s| (s, e.failed_actions.as_slice())))
    }
}
