//! In-memory fakes of the ports, for tests (cargo feature `fakes`): an object store that honours
//! ETag conditions as S3 does, a publisher that records what each topic got, a hook reporter that
//! refuses a second report as CodeDeploy does, and a clock. Each fake fails, hangs or loses an
//! answer on cue ([`FaultPlan`]) and takes its time ([`Latency`]) so that concurrent invocations
//! interleave; [`traced`] records what an invocation did and stops it between two calls as a
//! process that dies would, and [`invoke`] runs a handler as Lambda does. The moto emulator tests
//! prove the real adapters; these make thousands of fault sequences cheap
//! (`functions/*/tests/state_machine.rs`).
//!
//! Like the real adapters, every call runs in [`deadline::bounded`], so a fake that hangs stops at
//! the invocation's deadline with a retryable `Timeout` (outside [`deadline::within`] it hangs for
//! ever). Under tokio's paused clock such a hang costs no wall time.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use crate::deadline;
use crate::ports::{
    BatchEntryOutcome, FailureKind, HookReporter, HookStatus, ObjectStore, OutboundMessage, PortError, Publisher,
    PutOutcome, StoredObject, WriteCondition,
};

/// Operation names, the same as the real adapters' (what a [`FaultPlan`] is keyed by).
pub const GET_OBJECT: &str = "GetObject";
pub const PUT_OBJECT: &str = "PutObject";
pub const PUBLISH: &str = "Publish";
pub const PUBLISH_BATCH: &str = "PublishBatch";
/// One entry of a batch: only [`Fault::Fail`] applies (SNS answers each entry alone).
pub const PUBLISH_BATCH_ENTRY: &str = "PublishBatchEntry";
pub const REPORT_HOOK: &str = "PutLifecycleEventHookExecutionStatus";

/// What one call does instead of answering normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Refused before it took effect.
    Fail(FailureKind),
    /// No answer: waits until the caller's deadline stops it (a `Timeout`); no effect.
    Hang,
    /// Took effect, then the connection dropped: the caller gets a `Network` error.
    AcceptThenLose,
    /// Took effect, then no answer until the caller's deadline (a `Timeout`).
    AcceptThenHang,
}

impl Fault {
    /// Whether the call took effect although the caller got an error.
    pub fn took_effect(&self) -> bool {
        matches!(self, Fault::AcceptThenLose | Fault::AcceptThenHang)
    }
}

/// Per operation, a queue of what its next calls do: `None` answers normally, `Some(fault)` fails,
/// hangs or loses the answer. A call with nothing planned answers normally.
#[derive(Debug, Default)]
pub struct FaultPlan {
    queues: Mutex<BTreeMap<String, VecDeque<Option<Fault>>>>,
    fired: Mutex<Vec<(String, Fault)>>,
}

impl FaultPlan {
    /// Appends `steps` to what the next calls of `operation` do, in order.
    pub fn script(&self, operation: &str, steps: impl IntoIterator<Item = Option<Fault>>) {
        lock(&self.queues).entry(operation.to_string()).or_default().extend(steps);
    }

    /// The next call of `operation` not yet planned gets `fault`.
    pub fn then(&self, operation: &str, fault: Fault) {
        self.script(operation, [Some(fault)]);
    }

    /// Every planned step dropped: calls answer normally from now on.
    pub fn clear(&self) {
        lock(&self.queues).clear();
    }

    /// Faults that fired so far, in order, with their operation.
    pub fn fired(&self) -> Vec<(String, Fault)> {
        lock(&self.fired).clone()
    }

    fn take(&self, operation: &str) -> Option<Fault> {
        let fault = lock(&self.queues).get_mut(operation).and_then(VecDeque::pop_front).flatten();
        if let Some(fault) = &fault {
            lock(&self.fired).push((operation.to_string(), fault.clone()));
        }
        fault
    }
}

/// How many calls each operation got (crashed calls not counted: they never reached the service).
#[derive(Debug, Default)]
pub struct CallCounts(Mutex<BTreeMap<String, usize>>);

impl CallCounts {
    pub fn of(&self, operation: &str) -> usize {
        lock(&self.0).get(operation).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        lock(&self.0).values().sum()
    }

    fn count(&self, operation: &str) {
        *lock(&self.0).entry(operation.to_string()).or_default() += 1;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked holding a fake's lock has failed already; its data is still readable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn error(service: &'static str, operation: &'static str, kind: FailureKind, message: &str) -> PortError {
    PortError::new(service, operation, kind, message)
}

/// What a fault does to the caller once its effect (if any) happened: an error now, or a hang.
async fn fail_as<T>(service: &'static str, operation: &'static str, fault: &Fault) -> Result<T, PortError> {
    match fault {
        Fault::Fail(kind) => Err(error(service, operation, *kind, "injected fault")),
        Fault::AcceptThenLose => {
            Err(error(service, operation, FailureKind::Network, "connection reset after it took effect"))
        }
        Fault::Hang | Fault::AcceptThenHang => std::future::pending().await,
    }
}

// ---- invocations: crashes and what each call did --------------------------------------------

/// One call an invocation made to a fake, as the service saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub operation: &'static str,
    pub fault: Option<Fault>,
    /// What it changed: the message ids it published (also those whose answer was lost), or the
    /// ETag it wrote; empty for a read, a refused call or a write whose condition failed.
    pub effects: Vec<String>,
}

/// How an invocation run by [`traced`] ended, and every call it made, in order.
#[derive(Debug)]
pub struct Traced<T> {
    /// `None`: it died (see [`traced`]).
    pub output: Option<T>,
    pub calls: Vec<Call>,
}

impl<T> Traced<T> {
    /// The messages it published whose acceptance it never wrote down: accepted after its last
    /// successful write (`PutObject` with an effect), by an invocation that then died. The process
    /// took SNS's answer with it, as a lost answer does.
    pub fn published_unrecorded(&self) -> Vec<String> {
        if self.output.is_some() {
            return Vec::new();
        }
        let last_write = self.calls.iter().rposition(|c| c.operation == PUT_OBJECT && !c.effects.is_empty());
        let after = last_write.map_or(0, |i| i + 1);
        self.calls[after..]
            .iter()
            .filter(|c| c.operation == PUBLISH || c.operation == PUBLISH_BATCH)
            .flat_map(|c| c.effects.iter().cloned())
            .collect()
    }
}

struct Scope {
    /// Calls it may still make before it dies; `None`: it does not die.
    calls_left: Mutex<Option<usize>>,
    dead: AtomicBool,
    died: Notify,
    calls: Mutex<Vec<Call>>,
}

tokio::task_local! {
    static INVOCATION: Arc<Scope>;
}

/// Runs `invocation`, recording every call it makes to the fakes of this module; with
/// `crash_before_call: Some(n)`, as a process that dies just before its n-th call (0: before the
/// first): the calls before it took effect, nothing after, and `output` is `None`. Each of several
/// concurrent invocations has its own count and record.
pub async fn traced<F: Future>(crash_before_call: Option<usize>, invocation: F) -> Traced<F::Output> {
    let scope = Arc::new(Scope {
        calls_left: Mutex::new(crash_before_call),
        dead: AtomicBool::new(false),
        died: Notify::new(),
        calls: Mutex::new(Vec::new()),
    });
    let watch = Arc::clone(&scope);
    let output = INVOCATION
        .scope(Arc::clone(&scope), async move {
            tokio::select! {
                biased;
                _ = watch.died.notified() => None,
                output = invocation => Some(output),
            }
        })
        .await;
    let calls = lock(&scope.calls).clone();
    Traced { output, calls }
}

/// [`traced`] without the record: `None` when it died before its `calls`-th call.
pub async fn crash_after<F: Future>(calls: usize, invocation: F) -> Option<F::Output> {
    traced(Some(calls), invocation).await.output
}

/// Called first by every fake call: in an invocation whose time to die has come, never returns.
async fn reach_service() {
    let dies = INVOCATION
        .try_with(|scope| {
            if scope.dead.load(Ordering::SeqCst) {
                return true;
            }
            let mut left = lock(&scope.calls_left);
            match *left {
                Some(0) => {
                    scope.dead.store(true, Ordering::SeqCst);
                    scope.died.notify_one();
                    true
                }
                Some(n) => {
                    *left = Some(n - 1);
                    false
                }
                None => false,
            }
        })
        .unwrap_or(false);
    if dies {
        std::future::pending::<()>().await;
    }
}

/// How long calls take, in turns of the runtime (`yield_now`): a call waits its turns before it
/// reaches the service and again before its answer is back, so that concurrent invocations
/// interleave between a request, its effect and its answer. Each wait takes the next number of
/// turns from a cyclic pattern; none by default.
#[derive(Debug, Default)]
pub struct Latency(Mutex<(Vec<u8>, usize)>);

impl Latency {
    pub fn set(&self, turns: Vec<u8>) {
        *lock(&self.0) = (turns, 0);
    }

    async fn wait(&self) {
        let turns = {
            let mut pattern = lock(&self.0);
            let (turns, next) = &mut *pattern;
            let n = turns.get(*next % turns.len().max(1)).copied().unwrap_or(0);
            *next += 1;
            n
        };
        for _ in 0..turns {
            tokio::task::yield_now().await;
        }
    }
}

/// Writes down a call in the invocation's record (outside [`traced`], nowhere).
fn note(operation: &'static str, fault: &Option<Fault>, effects: Vec<String>) {
    let _ = INVOCATION.try_with(|scope| lock(&scope.calls).push(Call { operation, fault: fault.clone(), effects }));
}

// ---- Lambda ------------------------------------------------------------------------------------

/// How an invocation ended, as Lambda sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Ok,
    /// The handler returned this error.
    Failed(String),
    /// The process died (see [`traced`]).
    Crashed,
    /// Still running at the function's timeout: Lambda stopped it.
    TimedOut,
}

/// One invocation, and what it did.
#[derive(Debug)]
pub struct Invoked {
    pub ended: Ended,
    pub calls: Vec<Call>,
    /// See [`Traced::published_unrecorded`]; also for an invocation Lambda stopped.
    pub published_unrecorded: Vec<String>,
}

/// One invocation as Lambda runs it: `handler` is given Lambda's deadline, `timeout` from now,
/// and runs in [`deadline::within`] it as `main` runs it; Lambda stops it at that deadline; with
/// `crash_before_call`, its process dies just before that call (see [`traced`]).
pub async fn invoke<F, T, E>(
    timeout: std::time::Duration,
    crash_before_call: Option<usize>,
    handler: impl FnOnce(std::time::Instant) -> F,
) -> Invoked
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let lambda_deadline = tokio::time::Instant::now() + timeout;
    let work = deadline::within(lambda_deadline.into_std(), handler(lambda_deadline.into_std()));
    let traced = traced(crash_before_call, tokio::time::timeout_at(lambda_deadline, work)).await;
    let ended = match &traced.output {
        None => Ended::Crashed,
        Some(Err(_)) => Ended::TimedOut,
        Some(Ok(Ok(_))) => Ended::Ok,
        Some(Ok(Err(e))) => Ended::Failed(e.to_string()),
    };
    let dead = Traced::<()> { output: None, calls: traced.calls };
    let published_unrecorded =
        if ended == Ended::Ok || matches!(ended, Ended::Failed(_)) { Vec::new() } else { dead.published_unrecorded() };
    Invoked { ended, calls: dead.calls, published_unrecorded }
}

// ---- object store ------------------------------------------------------------------------------

/// A bucket in memory. ETags change on every write (as with SSE-KMS, where they are no MD5);
/// conditions hold as in S3: `IfAbsent` fails when the key exists, `IfMatches` when the ETag
/// differs or the object is gone.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, StoredObject>>,
    writes: AtomicUsize,
    pub faults: FaultPlan,
    pub latency: Latency,
    pub calls: CallCounts,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The object's body now, if any.
    pub fn body(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects).get(key).map(|o| o.body.clone())
    }

    /// Every object now, by key.
    pub fn objects(&self) -> BTreeMap<String, StoredObject> {
        lock(&self.objects).clone()
    }

    /// Writes `body` unconditionally, as a test's setup (no fault, no call counted).
    pub fn seed(&self, key: &str, body: Vec<u8>) -> String {
        self.write(key, body)
    }

    fn next_etag(&self) -> String {
        format!("\"etag-{}\"", self.writes.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn write(&self, key: &str, body: Vec<u8>) -> String {
        let etag = self.next_etag();
        lock(&self.objects).insert(key.to_string(), StoredObject { body, etag: etag.clone() });
        etag
    }

    /// Decided and written under one lock, as S3 decides a conditional write atomically.
    fn put_now(&self, key: &str, body: Vec<u8>, condition: &WriteCondition) -> PutOutcome {
        let mut objects = lock(&self.objects);
        let holds = match (condition, objects.get(key)) {
            (WriteCondition::Always, _) => true,
            (WriteCondition::IfAbsent, existing) => existing.is_none(),
            (WriteCondition::IfMatches(wanted), Some(object)) => *wanted == object.etag,
            (WriteCondition::IfMatches(_), None) => false,
        };
        if !holds {
            return PutOutcome::ConditionFailed;
        }
        let etag = self.next_etag();
        objects.insert(key.to_string(), StoredObject { body, etag: etag.clone() });
        PutOutcome::Written { etag }
    }
}

impl ObjectStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        deadline::bounded("S3", GET_OBJECT, async move {
            self.latency.wait().await;
            reach_service().await;
            self.calls.count(GET_OBJECT);
            let fault = self.faults.take(GET_OBJECT);
            note(GET_OBJECT, &fault, Vec::new());
            self.latency.wait().await;
            match fault {
                None => {
                    let object = lock(&self.objects).get(key).cloned();
                    Ok(object)
                }
                // A read has no effect to lose: a lost answer is a plain network error.
                Some(fault) => fail_as("S3", GET_OBJECT, &fault).await,
            }
        })
        .await
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
        condition: WriteCondition,
    ) -> Result<PutOutcome, PortError> {
        deadline::bounded("S3", PUT_OBJECT, async move {
            self.latency.wait().await;
            reach_service().await;
            self.calls.count(PUT_OBJECT);
            let fault = self.faults.take(PUT_OBJECT);
            let outcome = match &fault {
                None => Some(self.put_now(key, body, &condition)),
                Some(f) if f.took_effect() => Some(self.put_now(key, body, &condition)),
                Some(_) => None,
            };
            let effects = match &outcome {
                Some(PutOutcome::Written { etag }) => vec![etag.clone()],
                _ => Vec::new(),
            };
            note(PUT_OBJECT, &fault, effects);
            self.latency.wait().await;
            match (fault, outcome) {
                (None, Some(outcome)) => Ok(outcome),
                (Some(fault), _) => fail_as("S3", PUT_OBJECT, &fault).await,
                (None, None) => unreachable!("an answered put has an outcome"),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, PortError> {
        self.latency.wait().await;
        reach_service().await;
        self.calls.count("ListObjectsV2");
        let objects = lock(&self.objects);
        Ok(objects.keys().filter(|k| k.starts_with(prefix)).take(limit).cloned().collect())
    }
}

// ---- publisher ---------------------------------------------------------------------------------

/// One message a topic got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub topic_arn: String,
    pub message_id: String,
    pub message: OutboundMessage,
    /// SNS took it, but the caller was told it failed (the documented duplicate's first copy).
    pub answer_lost: bool,
}

/// SNS in memory: every message accepted, in the order accepted, with its id.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    published: Mutex<Vec<Published>>,
    pub faults: FaultPlan,
    pub latency: Latency,
    pub calls: CallCounts,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message accepted so far, in order.
    pub fn published(&self) -> Vec<Published> {
        lock(&self.published).clone()
    }

    /// What one topic got, in order.
    pub fn on(&self, topic_arn: &str) -> Vec<Published> {
        lock(&self.published).iter().filter(|p| p.topic_arn == topic_arn).cloned().collect()
    }

    fn accept(&self, topic_arn: &str, message: &OutboundMessage, answer_lost: bool) -> String {
        let mut published = lock(&self.published);
        let message_id = format!("msg-{}", published.len() + 1);
        published.push(Published {
            topic_arn: topic_arn.to_string(),
            message_id: message_id.clone(),
            message: message.clone(),
            answer_lost,
        });
        message_id
    }
}

impl Publisher for MemoryPublisher {
    async fn publish(&self, topic_arn: &str, message: &OutboundMessage) -> Result<String, PortError> {
        deadline::bounded("SNS", PUBLISH, async move {
            self.latency.wait().await;
            reach_service().await;
            self.calls.count(PUBLISH);
            let fault = self.faults.take(PUBLISH);
            let accepted = match &fault {
                None => Some(self.accept(topic_arn, message, false)),
                Some(f) if f.took_effect() => Some(self.accept(topic_arn, message, true)),
                Some(_) => None,
            };
            note(PUBLISH, &fault, accepted.iter().cloned().collect());
            self.latency.wait().await;
            match (fault, accepted) {
                (None, Some(message_id)) => Ok(message_id),
                (Some(fault), _) => fail_as("SNS", PUBLISH, &fault).await,
                (None, None) => unreachable!("an answered publish has a message id"),
            }
        })
        .await
    }

    /// The call takes the next step of [`PUBLISH_BATCH`] (a lost answer loses every entry's);
    /// then each entry the next of [`PUBLISH_BATCH_ENTRY`], where a `Fail` fails that entry alone.
    async fn publish_batch(
        &self,
        topic_arn: &str,
        messages: &[OutboundMessage],
    ) -> Result<Vec<BatchEntryOutcome>, PortError> {
        deadline::bounded("SNS", PUBLISH_BATCH, async move {
            self.latency.wait().await;
            reach_service().await;
            self.calls.count(PUBLISH_BATCH);
            let call_fault = self.faults.take(PUBLISH_BATCH);
            if let Some(fault @ (Fault::Fail(_) | Fault::Hang)) = &call_fault {
                note(PUBLISH_BATCH, &call_fault, Vec::new());
                self.latency.wait().await;
                return fail_as("SNS", PUBLISH_BATCH, fault).await;
            }
            let answer_lost = call_fault.is_some();
            let mut outcomes = Vec::with_capacity(messages.len());
            for (index, message) in messages.iter().enumerate() {
                let result = match self.faults.take(PUBLISH_BATCH_ENTRY) {
                    None => Ok(self.accept(topic_arn, message, answer_lost)),
                    Some(Fault::Fail(kind)) => Err(error("SNS", PUBLISH_BATCH, kind, "injected entry failure")),
                    Some(other) => panic!("a batch entry can only fail ({other:?} is planned on {PUBLISH_BATCH})"),
                };
                outcomes.push(BatchEntryOutcome { index, result });
            }
            let accepted = outcomes.iter().filter_map(|o| o.result.as_ref().ok().cloned()).collect();
            note(PUBLISH_BATCH, &call_fault, accepted);
            self.latency.wait().await;
            match call_fault {
                Some(fault) => fail_as("SNS", PUBLISH_BATCH, &fault).await,
                None => Ok(outcomes),
            }
        })
        .await
    }
}

// ---- hook reporter -----------------------------------------------------------------------------

/// One report CodeDeploy got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReport {
    pub deployment_id: String,
    pub hook_execution_id: String,
    pub status: HookStatus,
    /// CodeDeploy kept it (the first for its hook); a refused one was answered
    /// `LifecycleEventAlreadyCompletedException`.
    pub accepted: bool,
}

/// CodeDeploy's `PutLifecycleEventHookExecutionStatus` in memory: the first status of a hook is
/// kept; a later report is refused as CodeDeploy refuses it, naming the kept status.
#[derive(Debug, Default)]
pub struct MemoryHookReporter {
    reports: Mutex<Vec<HookReport>>,
    pub faults: FaultPlan,
    pub latency: Latency,
    pub calls: CallCounts,
}

impl MemoryHookReporter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every report that reached CodeDeploy, kept or refused, in order.
    pub fn reports(&self) -> Vec<HookReport> {
        lock(&self.reports).clone()
    }

    /// The status CodeDeploy keeps for a hook, if reported.
    pub fn status_of(&self, hook_execution_id: &str) -> Option<HookStatus> {
        lock(&self.reports).iter().find(|r| r.accepted && r.hook_execution_id == hook_execution_id).map(|r| r.status)
    }

    fn record(&self, deployment_id: &str, hook_execution_id: &str, status: HookStatus) -> Result<(), PortError> {
        let mut reports = lock(&self.reports);
        let kept = reports.iter().find(|r| r.accepted && r.hook_execution_id == hook_execution_id).map(|r| r.status);
        reports.push(HookReport {
            deployment_id: deployment_id.to_string(),
            hook_execution_id: hook_execution_id.to_string(),
            status,
            accepted: kept.is_none(),
        });
        match kept {
            None => Ok(()),
            // What the real adapter makes of CodeDeploy's answer (code, HTTP status, message).
            Some(kept) => Err(error(
                "CodeDeploy",
                REPORT_HOOK,
                FailureKind::Rejected,
                &format!(
                    "LifecycleEventAlreadyCompletedException (HTTP 400): The lifecycle event {hook_execution_id} has already completed with status {}",
                    kept.as_str()
                ),
            )),
        }
    }
}

impl HookReporter for MemoryHookReporter {
    async fn report(&self, deployment_id: &str, hook_execution_id: &str, status: HookStatus) -> Result<(), PortError> {
        deadline::bounded("CodeDeploy", REPORT_HOOK, async move {
            self.latency.wait().await;
            reach_service().await;
            self.calls.count(REPORT_HOOK);
            let fault = self.faults.take(REPORT_HOOK);
            let answer = match &fault {
                None => Some(self.record(deployment_id, hook_execution_id, status)),
                Some(f) if f.took_effect() => Some(self.record(deployment_id, hook_execution_id, status)),
                Some(_) => None,
            };
            let kept = matches!(answer, Some(Ok(())));
            note(REPORT_HOOK, &fault, if kept { vec![status.as_str().to_string()] } else { Vec::new() });
            self.latency.wait().await;
            match (fault, answer) {
                (None, Some(answer)) => answer,
                // The answer is lost whatever it was.
                (Some(fault), _) => fail_as("CodeDeploy", REPORT_HOOK, &fault).await,
                (None, None) => unreachable!("an answered report has an answer"),
            }
        })
        .await
    }
}

// ---- clock -------------------------------------------------------------------------------------

/// The wall clock the handlers are given (`now`), moved by the test: claims expire when it says.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn at(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn now(&self) -> DateTime<Utc> {
        *lock(&self.0)
    }

    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut now = lock(&self.0);
        *now += by;
        *now
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    fn put(store: &MemoryStore, key: &str, body: &str, condition: WriteCondition) -> Result<PutOutcome, PortError> {
        block_on(store.put(key, body.as_bytes().to_vec(), "text/plain", condition))
    }

    fn etag_of(outcome: Result<PutOutcome, PortError>) -> String {
        match outcome {
            Ok(PutOutcome::Written { etag }) => etag,
            other => panic!("not written: {other:?}"),
        }
    }

    #[test]
    fn if_absent_writes_only_a_new_key() {
        let store = MemoryStore::new();
        etag_of(put(&store, "k", "first", WriteCondition::IfAbsent));
        assert_eq!(put(&store, "k", "second", WriteCondition::IfAbsent), Ok(PutOutcome::ConditionFailed));
        assert_eq!(store.body("k").unwrap(), b"first");
    }

    #[test]
    fn if_matches_writes_only_over_the_etag_read() {
        let store = MemoryStore::new();
        let first = etag_of(put(&store, "k", "v1", WriteCondition::Always));
        let read = block_on(store.get("k")).unwrap().unwrap();
        assert_eq!(read.etag, first);
        let second = etag_of(put(&store, "k", "v2", WriteCondition::IfMatches(first.clone())));
        assert_ne!(second, first);
        assert_eq!(put(&store, "k", "v3", WriteCondition::IfMatches(first)), Ok(PutOutcome::ConditionFailed), "stale");
        assert_eq!(store.body("k").unwrap(), b"v2");
        assert_eq!(
            put(&store, "absent", "x", WriteCondition::IfMatches(second)),
            Ok(PutOutcome::ConditionFailed),
            "If-Match on a missing object fails (S3: 404, the adapter's ConditionFailed)"
        );
        assert_eq!(store.body("absent"), None);
    }

    #[test]
    fn etags_change_on_every_write_even_of_the_same_body() {
        let store = MemoryStore::new();
        let a = etag_of(put(&store, "k", "same", WriteCondition::Always));
        let b = etag_of(put(&store, "k", "same", WriteCondition::Always));
        assert_ne!(a, b);
        assert_eq!(block_on(store.get("missing")), Ok(None));
    }

    #[test]
    fn faults_fire_in_order_and_a_lost_answer_still_writes() {
        let store = MemoryStore::new();
        store.faults.script(PUT_OBJECT, [None, Some(Fault::Fail(FailureKind::Throttled)), Some(Fault::AcceptThenLose)]);
        etag_of(put(&store, "a", "1", WriteCondition::IfAbsent));
        assert_eq!(put(&store, "b", "1", WriteCondition::IfAbsent).unwrap_err().kind, FailureKind::Throttled);
        assert_eq!(store.body("b"), None, "refused: no effect");
        assert_eq!(put(&store, "c", "1", WriteCondition::IfAbsent).unwrap_err().kind, FailureKind::Network);
        assert_eq!(store.body("c").unwrap(), b"1", "taken, answer lost");
        assert_eq!(put(&store, "c", "2", WriteCondition::IfAbsent), Ok(PutOutcome::ConditionFailed), "the retry's 412");
        assert_eq!(store.calls.of(PUT_OBJECT), 4);
        assert_eq!(store.faults.fired().len(), 2);
        store.faults.then(GET_OBJECT, Fault::Fail(FailureKind::ServerError));
        store.faults.clear();
        assert!(block_on(store.get("a")).is_ok(), "cleared");
    }

    #[test]
    fn a_hang_stops_at_the_invocations_deadline() {
        let store = MemoryStore::new();
        store.faults.then(PUT_OBJECT, Fault::AcceptThenHang);
        store.faults.then(PUT_OBJECT, Fault::Hang);
        let started = Instant::now();
        let deadline = started + deadline::MARGIN + std::time::Duration::from_millis(300);
        let (accepted, hung) = block_on(deadline::within(deadline, async {
            let a = store.put("k", b"1".to_vec(), "text/plain", WriteCondition::IfAbsent).await;
            let b = store.put("j", b"1".to_vec(), "text/plain", WriteCondition::IfAbsent).await;
            (a, b)
        }));
        assert_eq!(accepted.unwrap_err().kind, FailureKind::Timeout);
        assert_eq!(hung.unwrap_err().kind, FailureKind::Timeout);
        assert_eq!(store.body("k").unwrap(), b"1");
        assert_eq!(store.body("j"), None);
        assert!(started.elapsed() < std::time::Duration::from_millis(1000), "{:?}", started.elapsed());
    }

    #[test]
    fn the_publisher_records_per_topic_and_batches_per_entry() {
        let sns = MemoryPublisher::new();
        let m = |body: &str| OutboundMessage { body: body.into(), ..OutboundMessage::default() };
        sns.faults.then(PUBLISH, Fault::AcceptThenLose);
        assert_eq!(block_on(sns.publish("t1", &m("a"))).unwrap_err().kind, FailureKind::Network);
        assert_eq!(block_on(sns.publish("t1", &m("a"))).unwrap(), "msg-2");
        sns.faults.script(PUBLISH_BATCH_ENTRY, [None, Some(Fault::Fail(FailureKind::Rejected))]);
        let outcomes = block_on(sns.publish_batch("t2", &[m("b"), m("c"), m("d")])).unwrap();
        assert!(outcomes[0].result.is_ok() && outcomes[2].result.is_ok());
        assert_eq!(outcomes[1].result.as_ref().unwrap_err().kind, FailureKind::Rejected);
        sns.faults.then(PUBLISH_BATCH, Fault::AcceptThenLose);
        assert!(block_on(sns.publish_batch("t2", &[m("e")])).is_err());
        let bodies = |topic| sns.on(topic).into_iter().map(|p| (p.message.body, p.answer_lost)).collect::<Vec<_>>();
        assert_eq!(bodies("t1"), [("a".into(), true), ("a".into(), false)]);
        assert_eq!(bodies("t2"), [("b".into(), false), ("d".into(), false), ("e".into(), true)]);
        sns.faults.then(PUBLISH_BATCH, Fault::Fail(FailureKind::ServerError));
        assert!(block_on(sns.publish_batch("t2", &[m("f")])).is_err());
        assert_eq!(sns.on("t2").len(), 3, "a refused batch delivers nothing");
    }

    #[test]
    fn codedeploy_keeps_the_first_status_and_refuses_a_second_naming_it() {
        let codedeploy = MemoryHookReporter::new();
        codedeploy.faults.then(REPORT_HOOK, Fault::AcceptThenLose);
        assert_eq!(
            block_on(codedeploy.report("d-1", "h-1", HookStatus::Failed)).unwrap_err().kind,
            FailureKind::Network
        );
        let again = block_on(codedeploy.report("d-1", "h-1", HookStatus::Succeeded)).unwrap_err();
        assert!(!again.is_retryable());
        assert!(again.message.contains("LifecycleEventAlreadyCompleted"), "{again}");
        assert!(again.message.contains("Failed"), "{again}");
        assert_eq!(codedeploy.status_of("h-1"), Some(HookStatus::Failed));
        assert_eq!(block_on(codedeploy.report("d-1", "h-2", HookStatus::Succeeded)), Ok(()));
        assert_eq!(codedeploy.reports().iter().filter(|r| r.accepted).count(), 2);
    }

    #[test]
    fn a_crash_stops_the_invocation_before_its_nth_call() {
        let store = MemoryStore::new();
        let writes = async {
            for key in ["a", "b", "c"] {
                store.put(key, b"1".to_vec(), "text/plain", WriteCondition::Always).await.unwrap();
            }
            "done"
        };
        assert_eq!(block_on(crash_after(2, writes)), None);
        assert!(store.body("b").is_some() && store.body("c").is_none());
        assert_eq!(store.calls.of(PUT_OBJECT), 2);
        let read = block_on(crash_after(5, async { store.get("a").await.unwrap().is_some() }));
        assert_eq!(read, Some(true));
    }

    #[test]
    fn a_crashed_invocation_knows_which_messages_it_never_wrote_down() {
        let (store, sns) = (MemoryStore::new(), MemoryPublisher::new());
        let m = OutboundMessage::default();
        let invocation = async {
            let first = sns.publish("t", &m).await.unwrap();
            store.put("k", first.into_bytes(), "text/plain", WriteCondition::Always).await.unwrap();
            let second = sns.publish("t", &m).await.unwrap();
            store.get("k").await.unwrap();
            store.put("k", second.into_bytes(), "text/plain", WriteCondition::Always).await.unwrap();
        };
        let died = block_on(traced(Some(4), invocation));
        assert!(died.output.is_none());
        let operations: Vec<&str> = died.calls.iter().map(|c| c.operation).collect();
        assert_eq!(operations, [PUBLISH, PUT_OBJECT, PUBLISH, GET_OBJECT]);
        assert_eq!(died.published_unrecorded(), ["msg-2"], "the first was written down before it died");
        let lived = block_on(traced(None, sns.publish("t", &m)));
        assert_eq!(lived.output, Some(Ok("msg-3".to_string())));
        assert!(lived.published_unrecorded().is_empty());
    }

    #[test]
    fn latency_lets_concurrent_writers_race_and_one_loses() {
        let store = MemoryStore::new();
        store.latency.set(vec![1]);
        let writer = |body: &'static str| async {
            let read = store.get("k").await.unwrap();
            assert!(read.is_none(), "both read before either wrote");
            store.put("k", body.as_bytes().to_vec(), "text/plain", WriteCondition::IfAbsent).await.unwrap()
        };
        let (a, b) = block_on(async { tokio::join!(writer("a"), writer("b")) });
        let written = [&a, &b].iter().filter(|o| matches!(o, PutOutcome::Written { .. })).count();
        assert_eq!(written, 1, "{a:?} {b:?}");
        assert!(a == PutOutcome::ConditionFailed || b == PutOutcome::ConditionFailed);
    }

    #[test]
    fn the_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::at(start);
        assert_eq!(clock.advance(Duration::seconds(121)), start + Duration::seconds(121));
        assert_eq!(clock.now(), start + Duration::seconds(121));
    }
}
