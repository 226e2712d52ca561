//! deploy-validator's state machine under every fault, as property tests over the in-memory fakes
//! (`pipewarden_shared::fakes`): given one or two hooks of a deployment, each invoked more than
//! once, concurrently, with S3, SNS and CodeDeploy failing, hanging or losing answers, invocations
//! dying between any two calls, Lambda retrying them and an alarm check whose answer changes from
//! one call to the next, this is what CodeDeploy and the notice topic end with.
//!
//! A case runs its chaos steps, then a quiet phase: faults cleared, Lambda's pending retries, and
//! every hook invoked once more. Then:
//! - every invocation of the quiet phase succeeds (with Lambda's retries);
//! - CodeDeploy has exactly one status for every hook, every report of it carried that status (one
//!   decision per hook), and the evidence in S3 says that status, reported;
//! - a hook reported Failed is announced on the topic once, except the documented at-least-once
//!   exception (RELIABILITY.md; SNS and S3 are not one transaction): a notice may be followed by
//!   another only if SNS accepted it and it was never recorded as sent, because its answer was lost,
//!   or its invocation died or was stopped before its next successful S3 write, or an S3 call of its
//!   invocation failed after SNS accepted it and before a successful write recorded it
//!   ([`Unrecorded`]); one such notice excuses one more, never two. A hook reported Succeeded is
//!   never announced.
//!
//! Not generated (see [`scenario`]): an S3 fault beside two invocations of one hook at once, or
//! beside a second hook of the deployment, with an alarm check whose answer changes the status.
//!
//! `PROPTEST_CASES` sets the cases per property (default [`DEFAULT_CASES`]). Time is tokio's
//! paused clock: a hang to the deadline costs no wall time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy_validator::canary::{MetricQuery, Series, Window};
use deploy_validator::deployment::{already_reported, DeploymentFacts, DeploymentLookup, TargetEvent};
use deploy_validator::engine::Probes;
use deploy_validator::function_scope::FunctionScope;
use deploy_validator::hook::{Evidence, Validator};
use deploy_validator::probes::{
    AlarmGate, FunctionInvoker, HttpProbe, HttpRequest, HttpResponse, Invocation, MetricSource,
};
use deploy_validator::spec::Spec;
use futures_util::future::join_all;
use pipewarden_shared::fakes::{
    invoke, Ended, Fault, Invoked, ManualClock, MemoryHookReporter, MemoryPublisher, MemoryStore, GET_OBJECT, PUBLISH,
    PUBLISH_BATCH, PUT_OBJECT, REPORT_HOOK,
};
use pipewarden_shared::ports::{
    BatchEntryOutcome, FailureKind, HookReporter, HookStatus, ObjectStore, OutboundMessage, PortError, Publisher,
    PutOutcome, StoredObject, WriteCondition,
};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::json;

const DEFAULT_CASES: u32 = 500;
const DEPLOYMENT: &str = "d-STATEMACH1";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:deployments";
const MAX_HOOKS: usize = 2;
/// The function's timeout (the template's).
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(300);
const SAFETY_MARGIN: Duration = Duration::from_millis(3000);
/// Lambda retries a failed asynchronous invocation (same request id) up to twice.
const LAMBDA_RETRIES: u8 = 2;
const SPEC: &str = "checks: [{name: no-alarms, type: alarms, alarmNames: [flask-web-app-5xx]}]";

// ---- scenarios ---------------------------------------------------------------------------------

#[derive(Clone)]
struct Scenario {
    hooks: usize,
    /// Whether failed validations are announced (`DEPLOY_TOPIC_ARN`).
    topic: bool,
    deliveries: Vec<Delivery>,
    /// Per operation, what its calls do in turn (`None`: answered).
    faults: Vec<(&'static str, Vec<Option<Fault>>)>,
    /// What CloudWatch answers, call after call (cyclic): the check passes, fails or errs.
    alarms: Vec<Alarms>,
    /// How many steps later each failed invocation's retry comes, used in turn.
    retry_delays: Vec<u8>,
    /// Turns each S3, SNS and CodeDeploy call takes (cyclic): how concurrent invocations interleave.
    latency: Vec<u8>,
}

#[derive(Clone)]
struct Delivery {
    hook: usize,
    /// Runs concurrently with the next delivery (and the retries due then).
    with_next: bool,
    /// The invocation dies just before its n-th call to S3, SNS or CodeDeploy.
    crash: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alarms {
    Quiet,
    Firing,
    Unreadable,
}

/// One line per part, to replay by hand: `h1|` invokes hook 1 together with the next delivery,
/// `h0!3` dies before its 3rd call; faults per call, `-` answered.
impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} hook(s), notice topic {}", self.hooks, self.topic)?;
        let deliveries: Vec<String> = self.deliveries.iter().map(|d| format!("{d:?}")).collect();
        writeln!(f, "deliveries: {}", deliveries.join(" "))?;
        for (operation, steps) in &self.faults {
            writeln!(f, "{operation}: {}", steps_text(steps))?;
        }
        write!(f, "alarms {:?}; latency {:?}; retry delays {:?}", self.alarms, self.latency, self.retry_delays)
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "h{}", self.hook)?;
        if let Some(n) = self.crash {
            write!(f, "!{n}")?;
        }
        if self.with_next {
            write!(f, "|")?;
        }
        Ok(())
    }
}

fn steps_text(steps: &[Option<Fault>]) -> String {
    let words: Vec<String> = steps
        .iter()
        .map(|s| match s {
            None => "-".to_string(),
            Some(Fault::Fail(kind)) => format!("{kind:?}"),
            Some(other) => format!("{other:?}"),
        })
        .collect();
    format!("[{}]", words.join(" "))
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Fail(FailureKind::Throttled)),
        Just(Fault::Fail(FailureKind::ServerError)),
        Just(Fault::Fail(FailureKind::Rejected)),
        Just(Fault::Hang),
        Just(Fault::AcceptThenLose),
        Just(Fault::AcceptThenHang),
    ]
}

fn fault_queue() -> impl Strategy<Value = Vec<Option<Fault>>> {
    proptest::collection::vec(proptest::option::weighted(0.3, fault()), 0..10)
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (0..MAX_HOOKS, proptest::bool::weighted(0.3), proptest::option::weighted(0.2, 0usize..10))
        .prop_map(|(hook, with_next, crash)| Delivery { hook, with_next, crash })
}

impl Alarms {
    /// The status a decision made on this answer reports.
    fn status(self) -> HookStatus {
        match self {
            Alarms::Quiet => HookStatus::Succeeded,
            Alarms::Firing | Alarms::Unreadable => HookStatus::Failed,
        }
    }
}

/// Not generated, a limit left (RELIABILITY.md): when S3 fails the decision's write, nothing
/// makes two invocations of a hook agree on one status. A retry once the deployment has ended
/// finds CodeDeploy's status and reports nothing (`a_retry_that_finds_no_decision_does_not_report_another`),
/// but two invocations of one hook at once (Lambda delivering an event twice, or a retry running
/// beside a second delivery), or a retry while a later hook of the deployment runs, may each
/// decide and report; CodeDeploy keeps the first status and refuses the other, and the evidence
/// follows the one kept. So a case with an S3 fault and more than one delivery, or two hooks,
/// gets alarm answers of one status only (those of its first answer's status: Firing and
/// Unreadable still alternate); one delivery and Lambda's retries of it get any.
fn scenario() -> impl Strategy<Value = Scenario> {
    let alarms = prop_oneof![3 => Just(Alarms::Quiet), 2 => Just(Alarms::Firing), 1 => Just(Alarms::Unreadable)];
    (
        1..=MAX_HOOKS,
        proptest::bool::weighted(0.7),
        proptest::collection::vec(delivery(), 1..8),
        [fault_queue(), fault_queue(), fault_queue(), fault_queue()],
        proptest::collection::vec(alarms, 1..4),
        proptest::collection::vec(0u8..4, 1..6),
        proptest::collection::vec(0u8..3, 1..6),
    )
        .prop_map(
            move |(
                hooks,
                topic,
                mut deliveries,
                [gets, puts, publishes, reports],
                mut alarms,
                retry_delays,
                latency,
            )| {
                for d in &mut deliveries {
                    d.hook %= hooks;
                }
                // Several deliveries may run at once, delivered together or a retry beside the next.
                let at_once = deliveries.len() > 1;
                if (hooks > 1 || at_once) && gets.iter().chain(&puts).any(Option::is_some) {
                    let status = alarms[0].status();
                    alarms.retain(|a| a.status() == status);
                }
                Scenario {
                    hooks,
                    topic,
                    deliveries,
                    faults: vec![(GET_OBJECT, gets), (PUT_OBJECT, puts), (PUBLISH, publishes), (REPORT_HOOK, reports)],
                    alarms,
                    retry_delays,
                    latency,
                }
            },
        )
}

// ---- the world ---------------------------------------------------------------------------------

/// CodeDeploy's `PutLifecycleEventHookExecutionStatus`, as the fake keeps it, shared with the
/// deployment's lookup (a report moves the deployment on).
#[derive(Clone, Default)]
struct Reporter(Arc<MemoryHookReporter>);

impl std::ops::Deref for Reporter {
    type Target = MemoryHookReporter;

    fn deref(&self) -> &MemoryHookReporter {
        &self.0
    }
}

impl HookReporter for Reporter {
    async fn report(&self, deployment_id: &str, hook_execution_id: &str, status: HookStatus) -> Result<(), PortError> {
        self.0.report(deployment_id, hook_execution_id, status).await
    }
}

/// CodeDeploy's `GetDeployment` and the target's lifecycle events: a Lambda deployment whose hooks
/// (hook 0 at BeforeAllowTraffic, hook 1 at AfterAllowTraffic) are in progress until reported; it
/// has failed once one is reported Failed, succeeded once all are reported Succeeded.
struct LambdaDeployment {
    hooks: usize,
    reporter: Reporter,
}

impl DeploymentLookup for LambdaDeployment {
    async fn deployment(&self, _: &str) -> Result<DeploymentFacts, PortError> {
        let events: Vec<TargetEvent> = (0..self.hooks)
            .map(|hook| TargetEvent {
                name: ["BeforeAllowTraffic", "AfterAllowTraffic"][hook].to_string(),
                status: self.reporter.status_of(&hook_id(hook)).map_or("InProgress", |s| s.as_str()).to_string(),
            })
            .collect();
        let status = if events.iter().any(|e| e.status == "Failed") {
            "Failed"
        } else if events.iter().all(|e| e.status == "Succeeded") {
            "Succeeded"
        } else {
            "InProgress"
        };
        Ok(DeploymentFacts {
            application: "flask-web-app".into(),
            group: "flask-web-app-group".into(),
            compute_platform: Some("Lambda".into()),
            lambda_target: None,
            lifecycle_event: Some("BeforeAllowTraffic".into()),
            already_reported: already_reported(Some(status), &events),
            canary: Default::default(),
        })
    }
}

/// CloudWatch's answers, in turn.
struct ScriptedAlarms(Mutex<VecDeque<Alarms>>);

/// The scenarios' specs have no canary check: no metric is ever read.
impl MetricSource for ScriptedAlarms {
    async fn metric_data(&self, _: &[MetricQuery], _: Window) -> Result<Series, PortError> {
        Ok(Series::new())
    }

    fn region(&self) -> String {
        "us-east-1".to_string()
    }
}

impl AlarmGate for ScriptedAlarms {
    async fn alarms_in_alarm(&self, names: &[String], _: Option<&str>) -> Result<Vec<String>, PortError> {
        let answer = {
            let mut script = self.0.lock().expect("alarms");
            let answer = script.pop_front().expect("a cyclic script");
            script.push_back(answer);
            answer
        };
        match answer {
            Alarms::Quiet => Ok(Vec::new()),
            Alarms::Firing => Ok(names.to_vec()),
            Alarms::Unreadable => Err(PortError::new("CloudWatch", "DescribeAlarms", FailureKind::Throttled, "x")),
        }
    }
}

/// The spec has no HTTP or Lambda check.
struct Unused;

impl HttpProbe for Unused {
    async fn send(&self, _: &HttpRequest) -> Result<HttpResponse, String> {
        unreachable!("no HTTP check in the spec")
    }
}

impl FunctionInvoker for Unused {
    async fn invoke(&self, _: &str, _: Vec<u8>) -> Result<Invocation, PortError> {
        unreachable!("no Lambda check in the spec")
    }
}

type TestValidator = Validator<Reporter, Store, Sns, LambdaDeployment, Unused, ScriptedAlarms, Unused>;

/// SNS as the fake keeps it, and the message ids its callers were told: an id SNS accepted that
/// no caller got back is a lost answer (an injected one, or a call SNS took that its invocation's
/// deadline then cut).
#[derive(Default)]
struct Sns {
    fake: MemoryPublisher,
    answered: Mutex<BTreeSet<String>>,
}

impl Sns {
    fn answered(&self, message_id: &str) -> bool {
        self.answered.lock().expect("answered").contains(message_id)
    }
}

impl std::ops::Deref for Sns {
    type Target = MemoryPublisher;

    fn deref(&self) -> &MemoryPublisher {
        &self.fake
    }
}

impl Publisher for Sns {
    async fn publish(&self, topic_arn: &str, message: &OutboundMessage) -> Result<String, PortError> {
        let result = self.fake.publish(topic_arn, message).await;
        if let Ok(message_id) = &result {
            self.answered.lock().expect("answered").insert(message_id.clone());
            seen(Seen::Published(message_id.clone()));
        }
        result
    }

    async fn publish_batch(
        &self,
        topic_arn: &str,
        messages: &[OutboundMessage],
    ) -> Result<Vec<BatchEntryOutcome>, PortError> {
        let result = self.fake.publish_batch(topic_arn, messages).await;
        if let Ok(outcomes) = &result {
            for message_id in outcomes.iter().filter_map(|o| o.result.as_ref().ok()) {
                self.answered.lock().expect("answered").insert(message_id.clone());
                seen(Seen::Published(message_id.clone()));
            }
        }
        result
    }
}

tokio::task_local! {
    /// What the current invocation's calls came to, as its handler saw them.
    static SEEN: Arc<Mutex<Vec<Seen>>>;
}

/// One call as the handler saw it, in the order their answers came (or they were cut).
#[derive(Debug, Clone)]
enum Seen {
    /// A publish answered with this message id.
    Published(String),
    /// An S3 call: whether its caller got an error or no answer at all (cut by a deadline), and
    /// whether it wrote (a write that took effect, even if its answer was lost).
    S3 { failed: bool, wrote: bool },
}

fn seen(call: Seen) {
    let _ = SEEN.try_with(|log| log.lock().expect("seen").push(call));
}

/// S3 as the fake keeps it, noting in the invocation's log what each call came to for its caller
/// (see [`Seen`]): a call cut by a deadline never answers, and the fake cannot tell.
#[derive(Default)]
struct Store {
    fake: MemoryStore,
}

impl std::ops::Deref for Store {
    type Target = MemoryStore;

    fn deref(&self) -> &MemoryStore {
        &self.fake
    }
}

/// Notes an S3 call dropped before its answer (cut by a deadline) as failed, and whether its write
/// took effect all the same.
struct Unanswered<'a> {
    store: &'a MemoryStore,
    write: Option<(&'a str, &'a [u8])>,
    answered: bool,
}

impl Unanswered<'_> {
    fn wrote(&self) -> bool {
        self.write.is_some_and(|(key, body)| self.store.body(key).as_deref() == Some(body))
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let wrote = self.wrote();
            seen(Seen::S3 { failed: !wrote, wrote });
        }
    }
}

impl ObjectStore for Store {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        let mut call = Unanswered { store: &self.fake, write: None, answered: false };
        let result = self.fake.get(key).await;
        call.answered = true;
        seen(Seen::S3 { failed: result.is_err(), wrote: false });
        result
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        condition: WriteCondition,
    ) -> Result<PutOutcome, PortError> {
        let written = body.clone();
        let mut call = Unanswered { store: &self.fake, write: Some((key, &written)), answered: false };
        let result = self.fake.put(key, body, content_type, condition).await;
        call.answered = true;
        let wrote = match &result {
            Ok(PutOutcome::Written { .. }) => true,
            Ok(PutOutcome::ConditionFailed) => false,
            Err(_) => call.wrote(),
        };
        seen(Seen::S3 { failed: result.is_err() && !wrote, wrote });
        result
    }
}

struct World {
    validator: TestValidator,
    hooks: usize,
    /// The wall clock the invocations start at: each chaos step moves it on by [`STEP`], the quiet
    /// phase by an hour (every claim has expired by then).
    clock: ManualClock,
}

/// The wall-clock time between two chaos steps (a notice's claim holds 30 s).
const STEP: chrono::Duration = chrono::Duration::seconds(10);

impl World {
    fn new(scenario: &Scenario) -> World {
        let reporter = Reporter::default();
        let validator = Validator {
            spec: Spec::parse(SPEC, "state machine test").map_err(|e| e.to_string()).into(),
            safety_margin: SAFETY_MARGIN,
            topic_arn: scenario.topic.then(|| TOPIC.to_string()),
            reporter: reporter.clone(),
            store: Some(Store::default()),
            publisher: Sns::default(),
            lookup: LambdaDeployment { hooks: scenario.hooks, reporter },
            probes: Probes {
                http: Unused,
                alarms: ScriptedAlarms(Mutex::new(scenario.alarms.iter().copied().collect())),
                functions: Unused,
                function_scope: FunctionScope::Any,
            },
        };
        let world = World { validator, hooks: scenario.hooks, clock: ManualClock::at(chrono::Utc::now()) };
        for (operation, steps) in &scenario.faults {
            world.plan(operation).script(operation, steps.iter().cloned());
        }
        world.store().latency.set(scenario.latency.clone());
        world.validator.publisher.latency.set(scenario.latency.iter().rev().cloned().collect());
        world.validator.reporter.latency.set(scenario.latency.iter().skip(1).cloned().collect());
        world
    }

    fn plan(&self, operation: &str) -> &pipewarden_shared::fakes::FaultPlan {
        match operation {
            PUBLISH => &self.validator.publisher.faults,
            REPORT_HOOK => &self.validator.reporter.faults,
            _ => &self.store().faults,
        }
    }

    fn store(&self) -> &MemoryStore {
        self.validator.store.as_ref().expect("evidence store")
    }

    /// One invocation of the hook as Lambda runs it: how it ended, and what it sent unrecorded.
    /// One invocation of `hook`'s event; `token` is its Lambda request id (a retry keeps its try's).
    async fn invoke(&self, hook: usize, crash: Option<usize>, token: &str) -> (Ended, Vec<(String, Unrecorded)>) {
        let payload = json!({"DeploymentId": DEPLOYMENT, "LifecycleEventHookExecutionId": hook_id(hook)});
        let log = Arc::new(Mutex::new(Vec::new()));
        let invoked = invoke(LAMBDA_TIMEOUT, crash, |deadline| {
            Box::pin(SEEN.scope(Arc::clone(&log), self.validator.handle_as(payload, deadline, token, self.clock.now())))
        })
        .await;
        let seen = log.lock().expect("seen").clone();
        let unrecorded = unrecorded(&invoked, &self.validator.publisher, &seen);
        (invoked.ended, unrecorded)
    }
}

/// Why a notice SNS accepted may be followed by another: the documented at-least-once exception
/// (RELIABILITY.md). SNS and S3 are not one transaction, so a notice SNS accepted whose record
/// (`noticeSent`) could not be written may be sent again by the next invocation of its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unrecorded {
    /// SNS accepted it, and its caller got an error or no answer instead.
    AnswerLost,
    /// Its invocation died, or Lambda stopped it, before its next successful S3 write.
    Died,
    /// An S3 call of its invocation (the recording write's read or conditional put) failed (an
    /// error, or cut by a deadline) after SNS accepted it and before a successful write recorded
    /// it. (Measured from the publish's answer: no S3 call of an invocation runs beside a publish.)
    S3Failed,
}

/// The messages an invocation published that it never recorded as sent, and why: nothing else
/// excuses a second copy.
fn unrecorded(invoked: &Invoked, sns: &Sns, seen: &[Seen]) -> Vec<(String, Unrecorded)> {
    let mut out = Vec::new();
    let publishes = invoked.calls.iter().filter(|c| matches!(c.operation, PUBLISH | PUBLISH_BATCH));
    for message_id in publishes.flat_map(|c| c.effects.iter()) {
        let why = if !sns.answered(message_id) {
            Unrecorded::AnswerLost
        } else if invoked.published_unrecorded.contains(message_id) {
            Unrecorded::Died
        } else if s3_failed_before_a_write(seen, message_id) {
            Unrecorded::S3Failed
        } else {
            continue;
        };
        out.push((message_id.clone(), why));
    }
    out
}

/// Whether, once its caller was told `message_id`, an S3 call of the invocation failed before one
/// wrote.
fn s3_failed_before_a_write(seen: &[Seen], message_id: &str) -> bool {
    let Some(at) = seen.iter().position(|s| matches!(s, Seen::Published(id) if id == message_id)) else {
        return false;
    };
    for call in &seen[at + 1..] {
        match call {
            Seen::S3 { wrote: true, .. } => return false,
            Seen::S3 { failed: true, .. } => return true,
            _ => {}
        }
    }
    false
}

fn hook_id(hook: usize) -> String {
    format!("hook-{hook}")
}

/// One step on a fresh runtime under tokio's paused clock, which starts at the real time: the
/// handler's `std::time::Instant` and tokio's agree at the start of every step.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime").block_on(f)
}

// ---- a case ------------------------------------------------------------------------------------

/// A new Lambda request id.
fn fresh_token() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("req-{}", COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

#[derive(Debug, Clone)]
struct Pending {
    hook: usize,
    retries_left: u8,
    due: usize,
    token: String,
}

/// What a case did.
struct Run {
    world: World,
    log: Vec<String>,
    invocations: usize,
    quiet_failures: Vec<String>,
    /// Messages SNS accepted that were never recorded as sent, by message id.
    unrecorded: BTreeMap<String, Unrecorded>,
}

fn run(scenario: &Scenario) -> Run {
    let world = World::new(scenario);
    let mut run =
        Run { world, log: Vec::new(), invocations: 0, quiet_failures: Vec::new(), unrecorded: BTreeMap::new() };
    let mut pending: Vec<Pending> = Vec::new();
    let mut delays = scenario.retry_delays.iter().cycle();

    // Chaos: each step is one invocation or several at once, with the Lambda retries due then.
    let (mut step, mut i) = (0, 0);
    while i < scenario.deliveries.len() {
        let mut group = vec![&scenario.deliveries[i]];
        while group.last().is_some_and(|d| d.with_next) && i + 1 < scenario.deliveries.len() {
            i += 1;
            group.push(&scenario.deliveries[i]);
        }
        i += 1;
        let mut invocations: Vec<(usize, Option<usize>, u8, String)> =
            group.iter().map(|d| (d.hook, d.crash, LAMBDA_RETRIES, fresh_token())).collect();
        let mut later = Vec::new();
        for retry in pending.drain(..) {
            match retry.due <= step {
                true => invocations.push((retry.hook, None, retry.retries_left, retry.token)),
                false => later.push(retry),
            }
        }
        pending = later;
        let world = &run.world;
        let ended =
            block_on(join_all(invocations.iter().map(|(hook, crash, _, token)| world.invoke(*hook, *crash, token))));
        for ((hook, crash, retries_left, token), (ended, unrecorded)) in invocations.into_iter().zip(ended) {
            run.log.push(format!("step {step}: h{hook} crash {crash:?}: {ended:?}"));
            run.invocations += 1;
            run.unrecorded.extend(unrecorded);
            if ended != Ended::Ok && retries_left > 0 {
                let delay = *delays.next().expect("cycled") as usize;
                pending.push(Pending { hook, retries_left: retries_left - 1, due: step + 1 + delay, token });
            }
        }
        step += 1;
        run.world.clock.advance(STEP);
    }

    // Quiet: no faults; Lambda's retries, then every hook invoked once more.
    run.world.clock.advance(chrono::Duration::hours(1));
    for operation in [GET_OBJECT, PUBLISH, REPORT_HOOK] {
        run.world.plan(operation).clear();
    }
    run.log.push("quiet".to_string());
    let mut quiet: Vec<(usize, u8, String)> = pending.into_iter().map(|p| (p.hook, p.retries_left, p.token)).collect();
    quiet.extend((0..scenario.hooks).map(|hook| (hook, LAMBDA_RETRIES, fresh_token())));
    for (hook, retries_left, token) in quiet {
        for attempt in 0..=retries_left {
            let (ended, unrecorded) = block_on(run.world.invoke(hook, None, &token));
            run.log.push(format!("quiet: h{hook}: {ended:?}"));
            run.invocations += 1;
            run.unrecorded.extend(unrecorded);
            if ended == Ended::Ok {
                break;
            }
            if attempt == retries_left {
                run.quiet_failures.push(format!("h{hook}: {ended:?}"));
            }
        }
    }
    run
}

impl Run {
    fn kept(&self, hook: usize) -> Option<HookStatus> {
        self.world.validator.reporter.status_of(&hook_id(hook))
    }

    fn evidence(&self, hook: usize) -> Option<Evidence> {
        let body = self.world.store().body(&Evidence::key(DEPLOYMENT, &hook_id(hook)))?;
        serde_json::from_slice(&body).ok()
    }

    /// The notices of one hook, in order: why each was never recorded as sent, if it was not.
    fn notices(&self, hook: usize) -> Vec<Option<Unrecorded>> {
        let marker = format!("Hook execution: {} ", hook_id(hook));
        self.world
            .validator
            .publisher
            .on(TOPIC)
            .iter()
            .filter(|p| p.message.body.contains(&marker))
            .map(|p| self.unrecorded.get(&p.message_id).copied().or(p.answer_lost.then_some(Unrecorded::AnswerLost)))
            .collect()
    }

    fn report(&self) -> String {
        let mut text = String::new();
        for hook in 0..self.world.hooks {
            let reports: Vec<String> = self
                .world
                .validator
                .reporter
                .reports()
                .iter()
                .filter(|r| r.hook_execution_id == hook_id(hook))
                .map(|r| format!("{}{}", r.status.as_str(), if r.accepted { "" } else { " (refused)" }))
                .collect();
            let evidence = self.evidence(hook).map(|e| (e.status, e.reported, e.notice_sent));
            text.push_str(&format!(
                "h{hook}: CodeDeploy got [{}]; evidence (status, reported, notice sent) {evidence:?}; notices (unrecorded) {:?}\n",
                reports.join(", "),
                self.notices(hook)
            ));
        }
        let fired = |operation: &str| self.world.plan(operation).fired();
        text.push_str(&format!(
            "faults fired: S3 {:?}; SNS {:?}; CodeDeploy {:?}\n",
            fired(GET_OBJECT),
            fired(PUBLISH),
            fired(REPORT_HOOK)
        ));
        text.push_str(&self.log.join("\n"));
        text
    }
}

// ---- invariants --------------------------------------------------------------------------------

type Invariant = fn(&Run) -> Result<(), String>;

fn the_quiet_phase_succeeds(run: &Run) -> Result<(), String> {
    match run.quiet_failures.is_empty() {
        true => Ok(()),
        false => Err(format!("failed without faults, after Lambda's retries: {:?}", run.quiet_failures)),
    }
}

fn each_hook_reported_once_with_one_decision(run: &Run) -> Result<(), String> {
    for hook in 0..run.world.hooks {
        let Some(kept) = run.kept(hook) else {
            return Err(format!("hook {hook} was never reported"));
        };
        let reports = run.world.validator.reporter.reports();
        if let Some(other) = reports.iter().find(|r| r.hook_execution_id == hook_id(hook) && r.status != kept) {
            return Err(format!(
                "hook {hook}: CodeDeploy kept {} but another invocation decided and reported {}",
                kept.as_str(),
                other.status.as_str()
            ));
        }
        match run.evidence(hook) {
            Some(e) if e.status == kept && e.reported => {}
            other => {
                return Err(format!(
                    "hook {hook}: CodeDeploy has {} but the evidence says {:?}",
                    kept.as_str(),
                    other.map(|e| (e.status, e.reported))
                ))
            }
        }
    }
    Ok(())
}

fn a_failed_hook_is_announced_once_a_succeeded_one_never(run: &Run) -> Result<(), String> {
    if run.world.validator.topic_arn.is_none() {
        return Ok(());
    }
    for hook in 0..run.world.hooks {
        let notices = run.notices(hook);
        // Once, but for the documented exception: every notice but the last must be one SNS accepted
        // that was never recorded as sent, so each such notice excuses one more and a recorded one none.
        let last = notices.len().saturating_sub(1);
        let recorded_then_again = notices[..last].iter().position(Option::is_none).map(|i| i + 1);
        match run.kept(hook) {
            Some(HookStatus::Failed) if notices.is_empty() => {
                return Err(format!("hook {hook} was reported Failed and never announced"))
            }
            Some(HookStatus::Failed) if recorded_then_again.is_some() => {
                let (n, recorded) = (notices.len(), recorded_then_again.unwrap_or_default());
                return Err(format!(
                    "hook {hook}'s failure was announced {n} times; notice {recorded} was recorded as sent, yet another followed it"
                ));
            }
            Some(HookStatus::Succeeded) if !notices.is_empty() => {
                return Err(format!(
                    "hook {hook} was reported Succeeded but announced as failed {} time(s)",
                    notices.len()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn holds(run: &Run, invariants: &[Invariant]) -> Result<(), String> {
    for invariant in invariants {
        invariant(run).map_err(|violation| format!("{violation}\n{}", run.report()))?;
    }
    Ok(())
}

/// Runs the cases, prints how many and the longest, and fails with the smallest counterexample.
fn check(invariants: &[Invariant]) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    // The counterexamples found are kept as the named tests below, not in a regressions file.
    let config =
        ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 4096, ..ProptestConfig::default() };
    let started = std::time::Instant::now();
    let (ran, longest) = (std::cell::Cell::new(0), std::cell::Cell::new((0, 0)));
    let result = TestRunner::new(config).run(&scenario(), |scenario| {
        ran.set(ran.get() + 1);
        let run = run(&scenario);
        longest.set(longest.get().max((run.invocations, scenario.deliveries.len())));
        holds(&run, invariants).map_err(TestCaseError::fail)
    });
    let (invocations, deliveries) = longest.get();
    eprintln!(
        "{} cases ({cases} asked) in {:.1} s; the longest: {invocations} invocations ({deliveries} chaos deliveries)",
        ran.get(),
        started.elapsed().as_secs_f64()
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn each_hook_is_reported_exactly_once_with_one_decision() {
    check(&[the_quiet_phase_succeeds, each_hook_reported_once_with_one_decision]);
}

#[test]
fn a_failed_hook_is_announced_once_and_a_succeeded_one_never() {
    check(&[the_quiet_phase_succeeds, a_failed_hook_is_announced_once_a_succeeded_one_never]);
}

// ---- the counterexamples found, as named cases -------------------------------------------------

/// `h0| h1 h0!3` as the scenarios print it.
fn deliveries(text: &str) -> Vec<Delivery> {
    text.split_whitespace()
        .map(|word| {
            let with_next = word.ends_with('|');
            let word = word.trim_end_matches('|').trim_start_matches('h');
            let (hook, crash) = match word.split_once('!') {
                Some((h, n)) => (h, Some(n.parse().expect("call number"))),
                None => (word, None),
            };
            Delivery { hook: hook.parse().expect("hook"), with_next, crash }
        })
        .collect()
}

/// `- Throttled AcceptThenLose` as the scenarios print it.
fn steps(text: &str) -> Vec<Option<Fault>> {
    text.split_whitespace()
        .map(|word| match word {
            "-" => None,
            "Throttled" => Some(Fault::Fail(FailureKind::Throttled)),
            "ServerError" => Some(Fault::Fail(FailureKind::ServerError)),
            "Rejected" => Some(Fault::Fail(FailureKind::Rejected)),
            "Hang" => Some(Fault::Hang),
            "AcceptThenLose" => Some(Fault::AcceptThenLose),
            "AcceptThenHang" => Some(Fault::AcceptThenHang),
            other => panic!("unknown step {other}"),
        })
        .collect()
}

/// One hook whose alarm check answers `alarms` in turn, announced on the topic.
fn given(delivered: &str, alarms: &[Alarms]) -> Scenario {
    Scenario {
        hooks: 1,
        topic: true,
        deliveries: deliveries(delivered),
        faults: Vec::new(),
        alarms: alarms.to_vec(),
        retry_delays: vec![0],
        latency: vec![0],
    }
}

fn assert_holds(scenario: Scenario, invariants: &[Invariant]) {
    if let Err(violation) = holds(&run(&scenario), invariants) {
        panic!("{violation}\n{scenario:?}");
    }
}

/// Found by the first property: the decision (Failed: the alarm fires) cannot be written (S3
/// throttled, after the SDK's retries); it is reported, and the invocation dies before it saves
/// the evidence. Lambda's retry finds no decision, decides afresh while the alarm is quiet again,
/// reports Succeeded; CodeDeploy refuses (`LifecycleEventAlreadyCompleted ... Failed`), the
/// invocation takes that as done and saves evidence saying Succeeded, reported: S3 (and, the
/// other way round, the notice) disagree with the status CodeDeploy acts on. Later the evidence
/// followed the refusal, but a second status was still reported; now a hook of a deployment that
/// has ended with its hooks reported is not reported again, and its record takes CodeDeploy's.
#[test]
fn a_retry_that_finds_no_decision_does_not_report_another() {
    let scenario = Scenario {
        faults: vec![(PUT_OBJECT, steps("- Throttled"))],
        ..given("h0!5", &[Alarms::Firing, Alarms::Quiet])
    };
    assert_holds(scenario, &[each_hook_reported_once_with_one_decision]);
}

/// Found by the second property: the first invocation decides Failed, reports, announces and records
/// the notice as sent. The next invocation of the hook cannot read the evidence (S3 throttled),
/// decides afresh (Failed again), cannot write that decision either (throttled), reports (refused:
/// CodeDeploy has Failed) and, its fresh decision knowing of no notice, announces it again.
#[test]
fn a_retry_that_cannot_read_the_decision_does_not_announce_it_again() {
    let scenario = Scenario {
        faults: vec![(GET_OBJECT, steps("- - - Throttled - Throttled")), (PUT_OBJECT, steps("- - - - Throttled"))],
        ..given("h0 h0", &[Alarms::Firing])
    };
    assert_holds(scenario, &[a_failed_hook_is_announced_once_a_succeeded_one_never]);
}

/// Found by the second property: a Failed hook's notice is throttled, so the invocation fails
/// (as designed: the retry sends only the notice). Lambda's retry and a second delivery of the
/// event run at once; both read the evidence (reported, notice not sent) and both announce it.
#[test]
fn a_notice_retried_by_two_invocations_at_once_is_sent_once() {
    let scenario =
        Scenario { faults: vec![(PUBLISH, steps("Throttled"))], latency: vec![1], ..given("h0 h0", &[Alarms::Firing]) };
    assert_holds(scenario, &[a_failed_hook_is_announced_once_a_succeeded_one_never]);
}

/// Found by the second property: one invocation decides Failed, reports, announces, and cannot
/// save `noticeSent` (its fifth write, after the deployment context, the decision, the evidence
/// and the context again; S3 throttled). It ends well; the next invocation of the hook reads the
/// evidence (reported, notice not sent) and announces again. The documented at-least-once
/// exception (RELIABILITY.md): one extra notice, never a second one however often the hook is
/// invoked again, and without the S3 fault exactly one notice.
#[test]
fn a_notice_sent_but_not_recorded_is_sent_again_at_most_once() {
    let invariants: &[Invariant] = &[
        the_quiet_phase_succeeds,
        each_hook_reported_once_with_one_decision,
        a_failed_hook_is_announced_once_a_succeeded_one_never,
    ];
    let faulty =
        Scenario { faults: vec![(PUT_OBJECT, steps("- - - - Throttled"))], ..given("h0 h0 h0", &[Alarms::Firing]) };
    let sent = run(&faulty);
    holds(&sent, invariants).unwrap_or_else(|violation| panic!("{violation}\n{faulty:?}"));
    let notices = sent.notices(0);
    assert!((1..=2).contains(&notices.len()), "{} notices\n{}", notices.len(), sent.report());
    if notices.len() == 2 {
        assert_eq!(notices[0], Some(Unrecorded::S3Failed), "{}", sent.report());
    }
    let calm = given("h0 h0 h0", &[Alarms::Firing]);
    let once = run(&calm);
    holds(&once, invariants).unwrap_or_else(|violation| panic!("{violation}\n{calm:?}"));
    assert_eq!(once.notices(0).len(), 1, "without the S3 fault, once\n{}", once.report());
}
