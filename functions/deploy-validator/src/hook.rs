//! The Lambda hook: decide, record, and always report Succeeded or Failed before the deadline.
//!
//! Exactly one status per hook execution: the decision is written to S3 (if absent) before it is
//! reported; a retried invocation reads it back and reports that same decision, or nothing if it
//! was already reported. CodeDeploy itself refuses a second report
//! (`LifecycleEventAlreadyCompletedException`), which we take as "already done".
//!
//! Lambda and ECS deployments are validated alike (CodeDeploy invokes both with the same payload;
//! ECS at AfterAllowTestTraffic, AfterAllowTraffic and the like). An EC2/on-premises deployment has
//! no Lambda hooks and refuses a status report, so its hook is answered with an error naming the
//! platform, never reported, and not retried ([`answer`]).
//!
//! Time: the checks end `safety_margin` before Lambda's deadline; the report has from then until
//! the shared work deadline (`main` runs each invocation in `deadline::within`), which nothing
//! else may take. The evidence saves, the deploy-context write and the notice are best effort in
//! what is left, each bounded; a notice not sent fails the invocation so Lambda's retry sends it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lambda_runtime::Diagnostic;
use pipewarden_shared::events::codedeploy::{parse_hook, HookInvocation};
use pipewarden_shared::events::EventError;
use pipewarden_shared::lambda::{diagnostic, Retry};
use pipewarden_shared::ledger::{self, Deliveries, Delivery, LedgerError};
use pipewarden_shared::ports::{
    FailureKind, HookReporter, HookStatus, ObjectStore, OutboundMessage, PortError, Publisher, PutOutcome,
    WriteCondition,
};
use pipewarden_shared::{deadline, deploy_context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument};

use crate::deployment::{DeploymentFacts, DeploymentLookup};
use crate::engine::{self, CheckResult, Probes, Release};
use crate::probes::{AlarmGate, FunctionInvoker, HttpProbe, MetricSource};
use crate::spec::Spec;
use crate::spec_source::SpecSlot;

/// What was decided for one hook execution, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub deployment_id: String,
    pub hook_execution_id: String,
    pub application: Option<String>,
    pub deployment_group: Option<String>,
    /// The lifecycle event the hook served (BeforeAllowTraffic, AfterAllowTraffic, ...), when
    /// CodeDeploy's deployment target told it.
    #[serde(default)]
    pub lifecycle_event: Option<String>,
    pub status: HookStatus,
    pub reason: String,
    pub checks: Vec<CheckResult>,
    pub started_at: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
    pub reported: bool,
    pub notice_sent: bool,
    /// The failure notice's delivery under the shared protocol (`notice|<topic>`: claimed by one
    /// invocation, then sent or released), so two invocations of the hook never both send it.
    #[serde(default, skip_serializing_if = "Deliveries::is_empty")]
    pub deliveries: Deliveries,
}

impl Evidence {
    pub fn key(deployment_id: &str, hook_execution_id: &str) -> String {
        let safe = |s: &str| s.replace(['/', '\\'], "_");
        format!("deploy-validator/hooks/{}/{}.json", safe(deployment_id), safe(hook_execution_id))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error("cannot report: {0}")]
    BadEvent(#[from] EventError),
    #[error("deployment {deployment_id} hook {hook_execution_id}: status {status} could not be reported: {source}")]
    Report { deployment_id: String, hook_execution_id: String, status: &'static str, source: PortError },
    #[error("deployment {deployment_id} hook {hook_execution_id}: failure notice not delivered: {source}")]
    Notice { deployment_id: String, hook_execution_id: String, source: PortError },
    #[error(
        "CodeDeploy runs appspec scripts on EC2/on-premises instances, not Lambda hooks: deployment {deployment_id} is {platform}; hook {hook_execution_id} is neither validated nor reported (run pipewarden-validate from the appspec's ValidateService hook instead)"
    )]
    UnsupportedPlatform { deployment_id: String, hook_execution_id: String, platform: String },
}

impl ValidatorError {
    pub fn retry(&self) -> Retry {
        match self {
            ValidatorError::BadEvent(_) | ValidatorError::UnsupportedPlatform { .. } => Retry::Useless,
            _ => Retry::Helps,
        }
    }

    /// Whether the invocation is answered as done despite the error: nothing can be reported for
    /// it and no retry can change that, so the error is logged and the answer, rather than the
    /// dead-letter queue, carries it.
    pub fn acknowledged(&self) -> bool {
        matches!(self, ValidatorError::UnsupportedPlatform { .. })
    }
}

/// What the Lambda runtime is told: the result, the error of an acknowledged invocation inside a
/// result, or an error whose type says whether Lambda's retry can help.
pub fn answer(result: Result<Value, ValidatorError>) -> Result<Value, Diagnostic> {
    match result {
        Ok(value) => Ok(value),
        Err(e) if e.acknowledged() => Ok(json!({"status": "NotValidated", "error": e.to_string()})),
        Err(e) => Err(diagnostic(&e, e.retry())),
    }
}

/// Whether CodeDeploy runs Lambda hooks for a deployment on this compute platform: Lambda and ECS
/// do; Server (EC2/on-premises) runs appspec scripts instead.
fn runs_lambda_hooks(platform: &str) -> bool {
    !platform.eq_ignore_ascii_case("Server")
}

pub struct Validator<R, S, P, L, H, A, F> {
    /// The spec, or why there is none; a read that failed is tried again by the next hook.
    pub spec: SpecSlot,
    pub safety_margin: Duration,
    pub topic_arn: Option<String>,
    pub reporter: R,
    pub store: Option<S>,
    pub publisher: P,
    pub lookup: L,
    pub probes: Probes<H, A, F>,
}

impl<R, S, P, L, H, A, F> Validator<R, S, P, L, H, A, F>
where
    R: HookReporter,
    S: ObjectStore,
    P: Publisher,
    L: DeploymentLookup,
    H: HttpProbe,
    A: AlarmGate + MetricSource,
    F: FunctionInvoker,
{
    /// Handles one hook invocation that must be answered by `deadline`.
    pub async fn handle(&self, payload: Value, deadline: Instant) -> Result<Value, ValidatorError> {
        self.handle_as(payload, deadline, &invocation_token(), Utc::now()).await
    }

    /// [`Self::handle`] for the invocation `token` names in claims: the Lambda request id, which
    /// Lambda's retries of an invocation keep, so a retry may take up what its first try claimed.
    /// `now` is the wall-clock time the invocation starts (claims expire by it and the time since).
    pub async fn handle_as(
        &self,
        payload: Value,
        deadline: Instant,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, ValidatorError> {
        let clock = Clock { started: Instant::now(), at: now };
        let hook =
            parse_hook(payload).inspect_err(|e| error!(error = %e, "bad hook event: nothing can be reported"))?;
        let span = info_span!(
            "hook",
            deployment_id = %hook.deployment_id,
            hook_execution_id = %hook.lifecycle_event_hook_execution_id
        );
        self.handle_hook(&hook, deadline, Claimant { token, clock }).instrument(span).await
    }

    async fn handle_hook(
        &self,
        hook: &HookInvocation,
        deadline: Instant,
        claimant: Claimant<'_>,
    ) -> Result<Value, ValidatorError> {
        let key = Evidence::key(&hook.deployment_id, &hook.lifecycle_event_hook_execution_id);
        let work_deadline = deadline.checked_sub(self.safety_margin).unwrap_or_else(Instant::now);
        // Every call stops here (the shared work deadline, when `main` set it with the same margin),
        // leaving time to answer the runtime; the report has from `work_deadline` to here.
        let end = deadline.checked_sub(deadline::MARGIN.min(self.safety_margin / 2)).unwrap_or_else(Instant::now);
        info!(
            time_left_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
            safety_margin_ms = self.safety_margin.as_millis() as u64,
            "validating"
        );
        // Read first, before anything else reaches S3: a spec a cold start could not read is read now.
        let spec = self.read_spec(work_deadline).await;
        // Boxed: each half holds SDK futures that are deep in a debug build.
        let decided = Box::pin(self.decide_once(hook, &key, spec, work_deadline, end)).await?;
        // From here on, the time reserved for settling: the checks may have used all of theirs.
        Box::pin(deadline::settling(self.settle(hook, &key, decided, end, claimant))).await
    }

    /// The decision for this hook: the one recorded by an earlier invocation, or a new one.
    async fn decide_once(
        &self,
        hook: &HookInvocation,
        key: &str,
        spec: Result<&Spec, String>,
        work_deadline: Instant,
        end: Instant,
    ) -> Result<Evidence, ValidatorError> {
        let started_at = Utc::now();
        // CodeDeploy's facts are asked for while the evidence is read: they are needed unless a
        // decision is recorded (a retry). A recorded decision does not wait for them: a retry
        // often follows a slow or throttled CodeDeploy, and the report needs the time.
        let facts = self.read_deployment(hook, work_deadline);
        let mut facts = std::pin::pin!(facts);
        let mut known = None;
        let previous = {
            let evidence = self.read_evidence(key, work_deadline);
            let mut evidence = std::pin::pin!(evidence);
            loop {
                tokio::select! {
                    previous = &mut evidence => break previous,
                    read = &mut facts, if known.is_none() => known = Some(read),
                }
            }
        };
        Ok(match previous {
            Some(previous) => {
                info!(
                    status = previous.status.as_str(),
                    reported = previous.reported,
                    "decision already made for this hook"
                );
                previous
            }
            None => {
                let facts = match known {
                    Some(facts) => facts,
                    None => facts.await,
                };
                let decided = self.decide(hook, spec, facts, started_at, work_deadline).await?;
                deadline::settling(self.record_decision(key, decided, end)).await
            }
        })
    }

    /// Reports the decision, then saves the evidence, the deployment context and the notice in
    /// what is left before `end`.
    async fn settle(
        &self,
        hook: &HookInvocation,
        key: &str,
        mut evidence: Evidence,
        end: Instant,
        claimant: Claimant<'_>,
    ) -> Result<Value, ValidatorError> {
        if !evidence.reported {
            if let Some(kept) = self.report(hook, evidence.status, end).await? {
                // CodeDeploy kept another status from an earlier report whose decision this
                // invocation could not read: the record and the notice follow what CodeDeploy
                // acts on, never the contradicting decision made afresh.
                evidence.reason = format!(
                    "CodeDeploy already has {} for this hook from an earlier report (this invocation's own checks said {}: {})",
                    kept.as_str(),
                    evidence.status.as_str(),
                    evidence.reason
                );
                evidence.status = kept;
            }
            evidence.reported = true;
            // Best effort from here on, each in what is left before `end`.
            self.save(key, &evidence, end).await;
            // A Failed report makes CodeDeploy roll back: this deployment is no longer the context.
            if let (HookStatus::Failed, Some(application)) = (evidence.status, &evidence.application) {
                let ended = deploy_context::Change::DeploymentEnded {
                    deployment_id: hook.deployment_id.clone(),
                    at: Utc::now(),
                };
                self.update_deploy_context(application, ended, end).await;
            }
        }
        if evidence.status == HookStatus::Failed && !evidence.notice_sent {
            if let Some(topic) = &self.topic_arn {
                // Not sent is an error: Lambda retries the invocation, which finds the decision
                // reported and sends only the notice. Bounded, so this invocation still ends in time.
                self.announce(key, &mut evidence, topic, end, claimant).await.map_err(|source| {
                    ValidatorError::Notice {
                        deployment_id: hook.deployment_id.clone(),
                        hook_execution_id: hook.lifecycle_event_hook_execution_id.clone(),
                        source,
                    }
                })?;
            }
        }
        Ok(json!({
            "deploymentId": evidence.deployment_id,
            "status": evidence.status.as_str(),
            "reason": evidence.reason,
            "checks": evidence.checks,
        }))
    }

    /// Decides the status: every problem is a Failed with its reason, except a deployment whose
    /// platform has no Lambda hooks, which is an error, with nothing to report.
    async fn decide(
        &self,
        hook: &HookInvocation,
        spec: Result<&Spec, String>,
        facts: Result<DeploymentFacts, String>,
        started_at: DateTime<Utc>,
        work_deadline: Instant,
    ) -> Result<Evidence, ValidatorError> {
        if let Ok(DeploymentFacts { compute_platform: Some(platform), .. }) = &facts {
            if !runs_lambda_hooks(platform) {
                let e = ValidatorError::UnsupportedPlatform {
                    deployment_id: hook.deployment_id.clone(),
                    hook_execution_id: hook.lifecycle_event_hook_execution_id.clone(),
                    platform: platform.clone(),
                };
                error!(compute_platform = %platform, error = %e, "not a Lambda hook deployment: nothing validated or reported");
                return Err(e);
            }
        }
        if let Ok(DeploymentFacts { already_reported: Some(kept), application, group, .. }) = &facts {
            // No decision was found, yet CodeDeploy has this deployment's hooks reported and the
            // deployment ended: an earlier invocation reported and could not record its decision.
            // Nothing is reported again; the record follows what CodeDeploy keeps.
            warn!(status = kept.as_str(), "the deployment has ended and its hooks were reported: an earlier invocation reported this hook without recording its decision; not reported again");
            return Ok(Evidence {
                deployment_id: hook.deployment_id.clone(),
                hook_execution_id: hook.lifecycle_event_hook_execution_id.clone(),
                application: Some(application.clone()),
                deployment_group: Some(group.clone()),
                lifecycle_event: None,
                status: *kept,
                reason: format!(
                    "CodeDeploy already has {} for this hook and the deployment has ended: reported by an earlier invocation whose decision could not be recorded",
                    kept.as_str()
                ),
                checks: Vec::new(),
                started_at,
                decided_at: Utc::now(),
                reported: true,
                notice_sent: false,
                deliveries: Deliveries::new(),
            });
        }
        let mut evidence = Evidence {
            deployment_id: hook.deployment_id.clone(),
            hook_execution_id: hook.lifecycle_event_hook_execution_id.clone(),
            application: None,
            deployment_group: None,
            lifecycle_event: None,
            status: HookStatus::Failed,
            reason: String::new(),
            checks: Vec::new(),
            started_at,
            decided_at: started_at,
            reported: false,
            notice_sent: false,
            deliveries: Deliveries::new(),
        };
        let result = self.validate(hook, spec, facts, work_deadline, &mut evidence).await;
        evidence.decided_at = Utc::now();
        match result {
            Ok(()) => {
                evidence.status = HookStatus::Succeeded;
                evidence.reason = format!("all {} checks passed", evidence.checks.len());
            }
            Err(reason) => evidence.reason = reason,
        }
        let level_ok = evidence.status == HookStatus::Succeeded;
        for check in &evidence.checks {
            info!(check = %check.name, passed = check.passed, duration_ms = check.duration_ms, detail = %check.detail, "check finished");
        }
        if level_ok {
            info!(reason = %evidence.reason, "release validated");
        } else {
            warn!(reason = %evidence.reason, "release failed validation");
        }
        Ok(evidence)
    }

    /// The spec, read now if no earlier read succeeded (within the work deadline).
    async fn read_spec(&self, work_deadline: Instant) -> Result<&Spec, String> {
        tokio::time::timeout_at(work_deadline.into(), self.spec.get())
            .await
            .unwrap_or_else(|_| Err("ran out of time reading the validation spec".to_string()))
            .inspect_err(|problem| error!(problem = %problem, "no usable validation spec"))
    }

    /// CodeDeploy's facts about the deployment, or why they are not known (within the work deadline).
    async fn read_deployment(&self, hook: &HookInvocation, work_deadline: Instant) -> Result<DeploymentFacts, String> {
        let remaining = work_deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(remaining, self.lookup.deployment(&hook.deployment_id))
            .await
            .map_err(|_| "ran out of time reading the deployment".to_string())?
            .map_err(|e| format!("could not read deployment {}: {e}", hook.deployment_id))
    }

    async fn validate(
        &self,
        hook: &HookInvocation,
        spec: Result<&Spec, String>,
        facts: Result<DeploymentFacts, String>,
        work_deadline: Instant,
        evidence: &mut Evidence,
    ) -> Result<(), String> {
        let spec = spec.map_err(|problem| format!("configuration: {problem}"))?;
        let facts = facts?;
        evidence.application = Some(facts.application.clone());
        evidence.deployment_group = Some(facts.group.clone());
        evidence.lifecycle_event = facts.lifecycle_event.clone();
        info!(lifecycle_event = facts.lifecycle_event.as_deref().unwrap_or("unknown"), "hook's lifecycle event");
        let ran = deploy_context::Change::HookRan {
            deployment_id: hook.deployment_id.clone(),
            deployment_group: Some(facts.group.clone()).filter(|g| !g.is_empty()),
            at: Utc::now(),
        };
        let checks = spec.checks_for(&facts.application, &facts.group, facts.lifecycle_event.as_deref());
        let release = Release {
            deployment_id: Some(hook.deployment_id.clone()),
            lambda_target: facts.lambda_target,
            canary: facts.canary,
        };
        let remaining = work_deadline.saturating_duration_since(Instant::now());
        let run = async {
            let checks = checks?;
            tokio::time::timeout(remaining, engine::run(spec, checks, &release, &self.probes, work_deadline))
                .await
                .map_err(|_| "ran out of time: checks did not finish before the deadline".to_string())
        };
        // The deployment context is another document: recorded while the checks run.
        let ((), results) = tokio::join!(self.update_deploy_context(&facts.application, ran, work_deadline), run);
        let results = results?;
        evidence.checks = results;
        if engine::all_passed(&evidence.checks) {
            Ok(())
        } else {
            let failed: Vec<String> =
                evidence.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.detail)).collect();
            Err(format!("failed checks: {}", failed.join("; ")))
        }
    }

    /// Tells alarm-fanout what this application's deployment is doing (best effort, bounded so
    /// that it never costs the report): merged with the pipeline's record of the same release.
    async fn update_deploy_context(&self, application: &str, change: deploy_context::Change, until: Instant) {
        let Some(store) = &self.store else { return };
        let remaining = until.saturating_duration_since(Instant::now()).min(Duration::from_secs(2));
        match tokio::time::timeout(remaining, Box::pin(deploy_context::update(store, application, &change))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "deployment context not recorded"),
            Err(_) => warn!("deployment context not recorded: out of time"),
        }
    }

    async fn read_evidence(&self, key: &str, work_deadline: Instant) -> Option<Evidence> {
        let store = self.store.as_ref()?;
        let remaining = work_deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(2));
        match tokio::time::timeout(remaining, store.get(key)).await {
            Ok(Ok(Some(object))) => serde_json::from_slice(&object.body)
                .inspect_err(|e| warn!(error = %e, "unreadable evidence record; deciding afresh"))
                .ok(),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                warn!(error = %e, "evidence unreadable; deciding afresh (CodeDeploy refuses a second report)");
                None
            }
            Err(_) => {
                warn!("evidence read timed out; deciding afresh");
                None
            }
        }
    }

    /// Writes the decision if no other invocation has; if one has, its decision wins.
    /// Takes at most half the time left before `end`, so the report keeps the rest.
    async fn record_decision(&self, key: &str, decided: Evidence, end: Instant) -> Evidence {
        let Some(store) = &self.store else { return decided };
        let body = serde_json::to_vec_pretty(&decided).expect("evidence serializes");
        let remaining = (end.saturating_duration_since(Instant::now()) / 2).min(Duration::from_secs(2));
        match tokio::time::timeout(remaining, store.put(key, body, "application/json", WriteCondition::IfAbsent)).await
        {
            Ok(Ok(PutOutcome::Written { .. })) => decided,
            Ok(Ok(PutOutcome::ConditionFailed)) => {
                info!("another invocation decided first; reporting its decision");
                let until = Instant::now() + end.saturating_duration_since(Instant::now()) / 2;
                self.read_evidence(key, until).await.unwrap_or(decided)
            }
            Ok(Err(e)) => {
                error!(error = %e, "evidence not recorded");
                decided
            }
            Err(_) => {
                error!("evidence write timed out");
                decided
            }
        }
    }

    /// Sends the failure notice once, under the shared delivery protocol: claimed in the stored
    /// evidence (a conditional write) before it is sent, then marked sent or released. A notice the
    /// record says was sent, or that another live invocation is sending, is not sent again; when the
    /// record cannot be read or written, nothing is sent and the error makes Lambda retry (a second
    /// notice is worse than a later one). Without a store, it is sent as is.
    async fn announce(
        &self,
        key: &str,
        evidence: &mut Evidence,
        topic: &str,
        end: Instant,
        claimant: Claimant<'_>,
    ) -> Result<(), PortError> {
        let token = claimant.token;
        let delivery = ledger::delivery_key("notice", topic);
        if let Some(store) = &self.store {
            let claim = ledger::read_modify_write(
                store,
                key,
                || evidence.clone(),
                |stored: &mut Evidence| {
                    if stored.notice_sent {
                        return None;
                    }
                    ledger::claim(&mut stored.deliveries, &delivery, token, claimant.clock.now(), NOTICE_CLAIM_TTL)
                        .then_some(())
                },
            );
            // Capped, so the claim is still young when the publish starts: its stamp (taken on
            // reading) plus this cap plus the publish's cap stay well within its TTL.
            let claim_until = end.min(Instant::now() + NOTICE_CLAIM_WRITE_CAP);
            match tokio::time::timeout_at(claim_until.into(), Box::pin(claim)).await {
                Ok(Ok((_, Some(())))) => {}
                Ok(Ok((stored, None))) => {
                    if stored.notice_sent || matches!(stored.deliveries.get(&delivery), Some(Delivery::Sent { .. })) {
                        info!("failure notice already sent");
                        evidence.notice_sent = true;
                    } else {
                        info!("another invocation is sending the failure notice");
                    }
                    return Ok(());
                }
                Ok(Err(e)) => {
                    error!(error = %e, "failure notice not claimed; not sent, the retried invocation sends it");
                    return Err(ledger_port_error(e));
                }
                Err(_) => return Err(out_of_time("S3", "PutObject")),
            }
        }
        // Bounded well within the claim's life, so a live claim is never taken over, and leaving a
        // third of what is left (at most 2 s) to record what became of it.
        let left = end.saturating_duration_since(Instant::now());
        let until = (end - (left / 3).min(Duration::from_secs(2))).min(Instant::now() + NOTICE_SEND_CAP);
        let sent = tokio::time::timeout_at(until.into(), self.publisher.publish(topic, &notice(evidence)))
            .await
            .unwrap_or_else(|_| Err(out_of_time("SNS", "Publish")));
        if let Some(store) = &self.store {
            let message_id = sent.as_ref().ok().cloned();
            let settle = ledger::read_modify_write(
                store,
                key,
                || evidence.clone(),
                |stored: &mut Evidence| {
                    ledger::settle(
                        &mut stored.deliveries,
                        &delivery,
                        token,
                        message_id.as_deref(),
                        claimant.clock.now(),
                    );
                    stored.notice_sent |= message_id.is_some();
                    Some(())
                },
            );
            let remaining = end.saturating_duration_since(Instant::now()).min(Duration::from_secs(2));
            match tokio::time::timeout(remaining, deadline::settling(Box::pin(settle))).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "failure notice's delivery not recorded"),
                Err(_) => warn!("failure notice's delivery not recorded in time"),
            }
        }
        match sent {
            Ok(_) => {
                evidence.notice_sent = true;
                Ok(())
            }
            Err(source) => {
                error!(error = %source, "failure notice not sent; the retried invocation sends it");
                Err(source)
            }
        }
    }

    /// Marks what became of the decision (reported, notice sent) in the stored evidence: a
    /// conditional read-modify-write that only ever sets those marks, so a slower invocation
    /// cannot undo another's "notice sent" (which would send the notice twice).
    async fn save(&self, key: &str, evidence: &Evidence, end: Instant) {
        let Some(store) = &self.store else { return };
        let remaining = end.saturating_duration_since(Instant::now()).min(Duration::from_secs(2));
        let mark = pipewarden_shared::ledger::read_modify_write(
            store,
            key,
            || evidence.clone(),
            |stored: &mut Evidence| {
                let before = (stored.status, stored.reported, stored.notice_sent);
                // The status CodeDeploy kept, once reported, is the record's (see `settle`).
                if evidence.reported && stored.status != evidence.status {
                    stored.status = evidence.status;
                    stored.reason = evidence.reason.clone();
                }
                stored.reported |= evidence.reported;
                stored.notice_sent |= evidence.notice_sent;
                // Or the record is not there at all (its first write failed): write it whole.
                (before != (stored.status, stored.reported, stored.notice_sent) || stored == evidence).then_some(())
            },
        );
        match tokio::time::timeout(remaining, Box::pin(mark)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "evidence not updated"),
            Err(_) => warn!("evidence update timed out"),
        }
    }

    /// Reports, retrying what may pass, until `give_up`. `Some(status)` when CodeDeploy already
    /// had the other status for the hook, which it keeps.
    async fn report(
        &self,
        hook: &HookInvocation,
        status: HookStatus,
        give_up: Instant,
    ) -> Result<Option<HookStatus>, ValidatorError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let remaining = give_up.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                remaining,
                self.reporter.report(&hook.deployment_id, &hook.lifecycle_event_hook_execution_id, status),
            )
            .await;
            let error = match attempt {
                Ok(Ok(())) => {
                    info!(status = status.as_str(), "hook status reported");
                    return Ok(None);
                }
                // Either an earlier attempt of ours took effect and its answer was lost (the SDK
                // retried it, or this loop did), or someone else completed the hook. CodeDeploy
                // keeps the first status either way and no retry can change it: done, not an error.
                Ok(Err(e)) if e.message.contains("LifecycleEventAlreadyCompleted") => {
                    let other = match status {
                        HookStatus::Succeeded => HookStatus::Failed,
                        HookStatus::Failed => HookStatus::Succeeded,
                    };
                    if e.message.contains(other.as_str()) {
                        warn!(
                            status = status.as_str(),
                            codedeploy_said = %e.message,
                            "hook was already completed with another status, not by this decision; CodeDeploy keeps that one and so does the evidence"
                        );
                        return Ok(Some(other));
                    }
                    info!(
                        status = status.as_str(),
                        codedeploy_said = %e.message,
                        "hook was already reported (an earlier attempt whose answer was lost, or another report); nothing more to say"
                    );
                    return Ok(None);
                }
                // Only EC2/on-premises deployments refuse it so (when GetDeployment did not say).
                Ok(Err(e)) if e.message.contains("UnsupportedActionForDeploymentType") => {
                    let e = ValidatorError::UnsupportedPlatform {
                        deployment_id: hook.deployment_id.clone(),
                        hook_execution_id: hook.lifecycle_event_hook_execution_id.clone(),
                        platform: "Server".to_string(),
                    };
                    error!(error = %e, "CodeDeploy refused the report for this deployment type");
                    return Err(e);
                }
                Ok(Err(e)) => e,
                Err(_) => out_of_time("CodeDeploy", "PutLifecycleEventHookExecutionStatus"),
            };
            let time_left = give_up.saturating_duration_since(Instant::now());
            if !error.is_retryable() || time_left <= pause {
                error!(status = status.as_str(), error = %error, "hook status NOT reported; CodeDeploy will wait for its own timeout");
                return Err(ValidatorError::Report {
                    deployment_id: hook.deployment_id.clone(),
                    hook_execution_id: hook.lifecycle_event_hook_execution_id.clone(),
                    status: status.as_str(),
                    source: error,
                });
            }
            warn!(error = %error, "report failed; trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// The wall clock of one invocation: the time it started, moved on by the time since.
#[derive(Debug, Clone, Copy)]
struct Clock {
    started: Instant,
    at: DateTime<Utc>,
}

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        self.at + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }
}

/// Who claims, and when: the invocation's token and clock.
#[derive(Debug, Clone, Copy)]
struct Claimant<'a> {
    token: &'a str,
    clock: Clock,
}

/// The longest a failure notice's publish may take, well within [`NOTICE_CLAIM_TTL`].
const NOTICE_SEND_CAP: Duration = Duration::from_secs(10);
/// The longest the conditional write of a notice's claim may take.
const NOTICE_CLAIM_WRITE_CAP: Duration = Duration::from_secs(5);
/// How long a notice's claim holds: an invocation that claimed it writes the claim within
/// [`NOTICE_CLAIM_WRITE_CAP`] and sends within [`NOTICE_SEND_CAP`] of that, or died; after this
/// another may send it.
const NOTICE_CLAIM_TTL: chrono::Duration = chrono::Duration::seconds(30);

/// What identifies an invocation in a claim when the caller gives no request id: unique across
/// processes and invocations.
fn invocation_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static STARTED: OnceLock<i64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let started = STARTED.get_or_init(|| Utc::now().timestamp_nanos_opt().unwrap_or_default());
    format!("{}-{started}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed))
}

fn ledger_port_error(e: LedgerError) -> PortError {
    match e {
        LedgerError::Store { source, .. } => source,
        other => PortError::new("S3", "GetObject", FailureKind::Rejected, other.to_string()),
    }
}

fn out_of_time(service: &'static str, operation: &'static str) -> PortError {
    PortError::new(service, operation, FailureKind::Timeout, "no answer before the deadline")
}

/// The SNS notice for a failed validation.
pub fn notice(evidence: &Evidence) -> OutboundMessage {
    let place = match (&evidence.application, &evidence.deployment_group) {
        (Some(app), Some(group)) => format!("{app}/{group}"),
        _ => "unknown deployment group".to_string(),
    };
    let mut body = vec![
        format!("Deployment {} ({place}) failed validation.", evidence.deployment_id),
        String::new(),
        format!("Reason: {}", evidence.reason),
        String::new(),
    ];
    body.push(engine::report_text(&evidence.checks));
    body.push(String::new());
    body.push(format!(
        "Hook execution: {} ({})",
        evidence.hook_execution_id,
        evidence.lifecycle_event.as_deref().unwrap_or("lifecycle event unknown")
    ));
    body.push("-- Pipewarden deploy-validator".to_string());
    OutboundMessage {
        subject: Some(pipewarden_shared::format::ascii_subject(&format!(
            "[FAILED] deployment {} validation: {place}",
            evidence.deployment_id
        ))),
        body: body.join("\n"),
        attributes: [
            ("deployment", evidence.deployment_id.clone()),
            ("application", evidence.application.clone().unwrap_or_default()),
            ("state", "FAILED".to_string()),
            ("severity", "critical".to_string()),
            ("source", "pipewarden.deploy-validator".to_string()),
        ]
        .into(),
    }
}
