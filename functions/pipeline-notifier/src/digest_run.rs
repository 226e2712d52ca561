//! The scheduled DORA digest: an EventBridge schedule rule's `Scheduled Event` in; each pipeline's
//! health object read, one digest per pipeline (or one for all) sent to every topic, exactly once
//! per scheduled time (the claim, send, settle protocol of every other notification).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use futures_util::StreamExt;
use pipewarden_shared::events::eventbridge::EventBridgeEvent;
use pipewarden_shared::events::{parse_time, Document};
use pipewarden_shared::ledger::{self, delivery_key, Deliveries};
use pipewarden_shared::ports::{ObjectStore, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument};

use crate::digest::{self, Digest, Period, PipelineRuns, Scope};
use crate::format;
use crate::handler::{Notifier, NotifierError};
use crate::lookups::{ActionHistory, DeploymentDiagnostics, ExecutionRevisions};
use crate::metrics::{MetricSink, PipelineHealth, Run};

/// Where the pipelines' health objects are, one per pipeline.
const HEALTH_PREFIX: &str = "pipeline-notifier/pipelines/";
/// Pipelines read at most (a digest of more says so).
const MAX_PIPELINES: usize = 2000;
/// Health objects read at once.
const READS_AT_ONCE: usize = 8;

/// What a digest's scheduled time has sent: its claims and deliveries, per pipeline and topic.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DigestLedger {
    #[serde(default)]
    deliveries: Deliveries,
}

impl<P, S, H, D, R, M> Notifier<P, S, H, D, R, M>
where
    P: Publisher,
    S: ObjectStore,
    H: ActionHistory,
    D: DeploymentDiagnostics,
    R: ExecutionRevisions,
    M: MetricSink,
{
    /// A scheduled event: the digest of the period that ends at the event's scheduled time (to the
    /// minute; a retry of the same event has the same time, and sends only what is missing).
    pub(crate) async fn scheduled(
        &self,
        payload: impl Document,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NotifierError> {
        let event: EventBridgeEvent<serde::de::IgnoredAny> = match payload.parse("EventBridge Scheduled Event") {
            Ok(event) => event,
            Err(e) => {
                error!(error = %e, event = %e.event, field = %e.field, "bad event acknowledged without retry");
                return Ok(json!({ "ignored": e.to_string() }));
            }
        };
        let span = info_span!("digest", event_id = %event.id);
        async {
            let Some((period, scope)) = self.config.digest else {
                warn!("a scheduled event, but DIGEST_PERIOD is not set: nothing sent");
                return Ok(json!({ "ignored": "no digest configured (DIGEST_PERIOD)" }));
            };
            let at = parse_time(event.time.as_deref()).unwrap_or(now);
            let to = at.duration_trunc(Duration::minutes(1)).unwrap_or(at);
            self.send_digests(period, scope, to, token, now).await
        }
        .instrument(span)
        .await
    }

    async fn send_digests(
        &self,
        period: Period,
        scope: Scope,
        to: DateTime<Utc>,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NotifierError> {
        let failure = |problem: String, retryable: bool| NotifierError::Digest {
            period: period.as_str(),
            to: to.to_rfc3339(),
            problem,
            retryable,
        };
        let keys = self
            .store
            .list(HEALTH_PREFIX, MAX_PIPELINES)
            .await
            .map_err(|e| failure(format!("pipelines not listed: {e}"), e.is_retryable()))?;
        let names: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(HEALTH_PREFIX)?.strip_suffix(".json"))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .map(str::to_string)
            .collect();
        if keys.len() >= MAX_PIPELINES {
            warn!(pipelines = MAX_PIPELINES, "more pipelines than a digest reads: the first ones by name only");
        }
        // Each pipeline's runs; one that does not read is left out and said (the rest still go).
        let reads = futures_util::stream::iter(names.into_iter().map(|name| async move {
            let key = PipelineHealth::key(&name);
            // Err((problem, whether reading again may help)).
            let health = match self.store.get(&key).await {
                Ok(Some(object)) => {
                    serde_json::from_slice::<PipelineHealth>(&object.body).map_err(|e| (e.to_string(), false))
                }
                Ok(None) => Ok(PipelineHealth::default()),
                Err(e) => Err((e.to_string(), true)),
            };
            (name, health)
        }))
        .buffered(READS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
        let mut pipelines: Vec<PipelineRuns> = Vec::new();
        // Not read this time (the retry reads them again), and not readable at all (left out).
        let (mut unread, mut unreadable) = (Vec::new(), Vec::new());
        for (name, health) in reads {
            match health {
                Ok(health) => {
                    let complete_since = digest::complete_since(health.runs_since, &health.runs);
                    pipelines.push(PipelineRuns { name, runs: health.runs, complete_since });
                }
                Err((e, true)) => {
                    warn!(pipeline = %name, error = %e, "pipeline health not read: its digest is left to the retry");
                    unread.push(name);
                }
                Err((e, false)) => {
                    error!(pipeline = %name, error = %e, "pipeline health unreadable: left out of the digest");
                    unreadable.push(name);
                }
            }
        }
        // All pipelines in one message: not without one of them (the retry reads it again).
        if scope == Scope::AllPipelines && !unread.is_empty() {
            return Err(failure(format!("the health of {} not read", unread.join(", ")), true));
        }
        let window_start = to - Duration::days(2 * period.days());
        let active = |runs: &[Run]| runs.iter().any(|r| r.ended >= window_start && r.ended < to);
        let any_active = pipelines.iter().any(|p| active(&p.runs));
        let digests: Vec<(String, Digest)> = match scope {
            Scope::EachPipeline => pipelines
                .iter()
                .filter(|p| active(&p.runs))
                .map(|p| (p.name.clone(), digest::digest(Some(p.name.clone()), &p.runs, period, to, p.complete_since)))
                .collect(),
            Scope::AllPipelines if any_active => vec![("*".to_string(), digest::digest_all(&pipelines, period, to))],
            Scope::AllPipelines => Vec::new(),
        };
        if digests.is_empty() {
            info!("no pipeline ran in the digest's two periods: nothing to send");
        }
        // Claim every (digest, topic), send what this invocation claimed, settle.
        let key = format!("pipeline-notifier/digests/{}/{}.json", period.as_str(), to.format("%Y-%m-%dT%H-%MZ"));
        let targets = self.config.targets();
        let ttl = Duration::seconds(self.config.claim_ttl_seconds);
        let wanted: Vec<(String, &Digest, &crate::config::Target)> = digests
            .iter()
            .flat_map(|(name, d)| targets.iter().map(move |t| (delivery_key(name, &t.topic_arn), d, t)))
            .collect();
        let claimed = ledger::update(&self.store, &key, None, DigestLedger::default, |ledger| {
            let claimed: Vec<String> = wanted
                .iter()
                .filter(|(k, _, _)| ledger::claim(&mut ledger.deliveries, k, token, now, ttl))
                .map(|(k, _, _)| k.clone())
                .collect();
            (!claimed.is_empty()).then_some(claimed)
        })
        .await
        .map_err(|e| failure(e.to_string(), !matches!(e, ledger::LedgerError::Corrupt { .. })))?;
        let known = claimed.etag.clone().map(|etag| (claimed.document, etag));
        let claimed = claimed.result.unwrap_or_default();
        let sends = wanted.iter().filter(|(k, _, _)| claimed.contains(k)).map(|(k, d, target)| async move {
            let message = format::digest_message(d, target.format);
            let result = self.publisher.publish(&target.topic_arn, &message).await;
            match &result {
                Ok(id) => info!(digest = %k, message_id = %id, "digest sent"),
                Err(e) => error!(digest = %k, error = %e, "digest not sent"),
            }
            (k.clone(), result)
        });
        let results = futures_util::future::join_all(sends).await;
        let outcomes: Vec<(String, Option<String>)> =
            results.iter().map(|(k, r)| (k.clone(), r.as_ref().ok().cloned())).collect();
        let settled = ledger::settle_all(
            &self.store,
            &key,
            known,
            DigestLedger::default,
            |l| &mut l.deliveries,
            ledger::Sends { outcomes: &outcomes, token, now },
        )
        .await;
        if let Err(e) = settled {
            error!(error = %e, "could not record the sent digests");
        }
        let mut failed: Vec<String> =
            results.iter().filter_map(|(k, r)| r.as_ref().err().map(|e| format!("{k} ({e})"))).collect();
        // A pipeline whose health did not read gets its digest from the retry (what was sent is not
        // sent again).
        failed.extend(unread.iter().map(|name| format!("{name} (its health was not read)")));
        if !failed.is_empty() {
            let retryable =
                !unread.is_empty() || results.iter().any(|(_, r)| r.as_ref().is_err_and(|e| e.is_retryable()));
            return Err(failure(format!("not delivered to: {}", failed.join("; ")), retryable));
        }
        let sent: BTreeMap<&str, usize> =
            digests.iter().map(|(name, d)| (name.as_str(), d.current.executions)).collect();
        Ok(json!({
            "digest": period.as_str(),
            "to": to.to_rfc3339(),
            "pipelines": sent,
            "sent": claimed.len(),
            "unreadable": unreadable,
        }))
    }
}
