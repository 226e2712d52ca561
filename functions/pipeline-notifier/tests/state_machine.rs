//! pipeline-notifier's state machine under every fault, as property tests over the in-memory
//! fakes (`pipewarden_shared::fakes`): given the events of two executions (one failing in its Build
//! action, stage and pipeline, one succeeding), delivered in any order, more than once,
//! concurrently, with S3 and SNS failing, hanging or losing answers, invocations dying between any
//! two calls and Lambda retrying them, this is what each topic (text and chat) ends with.
//!
//! A case runs its chaos steps, then a quiet phase: faults cleared, the clock past the claim TTL,
//! Lambda's pending retries, and every event delivered once more. Then:
//! - every invocation of the quiet phase succeeds (with Lambda's retries);
//! - each outcome reaches each topic at most once, except the documented at-least-once exception
//!   (RELIABILITY.md; SNS and S3 are not one transaction): a copy may be followed by another only
//!   if SNS accepted it and it was never recorded as sent, because its answer was lost, or its
//!   invocation died or was stopped before its next successful S3 write, or an S3 call of its
//!   invocation failed after SNS accepted it and before a successful write recorded it
//!   ([`Unrecorded`]); one such copy excuses one more, never two;
//! - no claim is left held once the invocations have ended;
//! - each execution's final outcome reaches every topic, and an outcome one topic got, every topic
//!   got;
//! - the last message of each execution on every topic is its final outcome.
//!
//! `PROPTEST_CASES` sets the cases per property (default [`DEFAULT_CASES`]). Time is tokio's
//! paused clock: a hang to the deadline costs no wall time.

mod common;
use common::NoLookups;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use pipeline_notifier::config::{parse_notify_on, Config};
use pipeline_notifier::handler::Notifier;
use pipewarden_shared::fakes::{
    invoke, Ended, Fault, Invoked, ManualClock, MemoryPublisher, MemoryStore, GET_OBJECT, PUBLISH, PUBLISH_BATCH,
    PUT_OBJECT,
};
use pipewarden_shared::ports::{
    BatchEntryOutcome, FailureKind, ObjectStore, OutboundMessage, PortError, Publisher, PutOutcome, StoredObject,
    WriteCondition,
};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{json, Value};

const DEFAULT_CASES: u32 = 500;
const TEXT: &str = "arn:aws:sns:us-east-1:123456789012:pipeline";
const CHAT: &str = "arn:aws:sns:us-east-1:123456789012:chat";
const TOPICS: [&str; 2] = [TEXT, CHAT];
const NOTIFY_ON: &str = "pipeline:SUCCEEDED,pipeline:FAILED,stage:FAILED,action:FAILED";
/// What scenarios with faults, crashes or concurrent deliveries notify on (see [`scenario`]).
const CLAIM_TTL_SECONDS: i64 = 120;
/// The function's timeout.
const LAMBDA_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Lambda retries a failed asynchronous invocation (same request id) up to twice.
const LAMBDA_RETRIES: u8 = 2;

/// The events of the two executions: (fixture, pipeline, what it announces), in the order they
/// happened. The first execution's STARTED is made from the second's.
const EVENTS: [(&str, &str, &str); 6] = [
    ("codepipeline-pipeline-started-v2.json", LEGACY, "pipeline STARTED"),
    ("codepipeline-action-build-failed.json", LEGACY, "action FAILED"),
    ("codepipeline-stage-build-failed.json", LEGACY, "stage FAILED"),
    ("codepipeline-pipeline-failed-v1.json", LEGACY, "pipeline FAILED"),
    ("codepipeline-pipeline-started-v2.json", FLASK, "pipeline STARTED"),
    ("codepipeline-pipeline-succeeded-v2.json", FLASK, "pipeline SUCCEEDED"),
];
const LEGACY: &str = "flask-web-app-legacy";
const FLASK: &str = "flask-web-app";
/// Each execution's final outcome.
const FINAL: [(&str, &str); 2] = [(LEGACY, "pipeline FAILED"), (FLASK, "pipeline SUCCEEDED")];

// ---- scenarios ---------------------------------------------------------------------------------

#[derive(Clone)]
struct Scenario {
    /// `NOTIFY_ON` of this case.
    notify_on: &'static str,
    deliveries: Vec<Delivery>,
    /// Per operation, what its calls do in turn (`None`: answered).
    faults: Vec<(&'static str, Vec<Option<Fault>>)>,
    /// How many steps later each failed invocation's retry comes, used in turn.
    retry_delays: Vec<u8>,
    /// The order of the quiet phase's deliveries.
    quiet_order: Vec<usize>,
    /// Turns each S3 and SNS call takes (cyclic): how concurrent invocations interleave.
    latency: Vec<u8>,
}

#[derive(Clone)]
struct Delivery {
    event: usize,
    /// Runs concurrently with the next delivery (and the retries due then).
    with_next: bool,
    /// The invocation dies just before its n-th call to S3 or SNS.
    crash: Option<usize>,
    /// Seconds the clock moves before this delivery (for several at once, the first one's).
    clock: i64,
}

/// One line per part, to replay by hand: `e2|` runs event 2 together with the next delivery,
/// `e1!3` dies before its 3rd call, `+121s` moves the clock first; faults per call, `-` answered.
impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "NOTIFY_ON {}", self.notify_on)?;
        let deliveries: Vec<String> = self.deliveries.iter().map(|d| format!("{d:?}")).collect();
        writeln!(f, "deliveries: {}", deliveries.join(" "))?;
        for (operation, steps) in &self.faults {
            writeln!(f, "{operation}: {}", steps_text(steps))?;
        }
        write!(
            f,
            "latency {:?}; retry delays {:?}; quiet order {:?}",
            self.latency, self.retry_delays, self.quiet_order
        )
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.clock > 0 {
            write!(f, "+{}s ", self.clock)?;
        }
        write!(f, "e{}", self.event)?;
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
    proptest::collection::vec(proptest::option::weighted(0.3, fault()), 0..14)
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        0..EVENTS.len(),
        proptest::bool::weighted(0.3),
        proptest::option::weighted(0.2, 0usize..12),
        prop_oneof![4 => Just(0i64), 3 => 1i64..30, 1 => Just(CLAIM_TTL_SECONDS + 1)],
    )
        .prop_map(|(event, with_next, crash, clock)| Delivery { event, with_next, crash, clock })
}

/// A quarter of the cases are calm (no fault, no crash, one delivery at a time: any order, any
/// number of times, across the claim TTL); the others take everything.
fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::bool::weighted(0.25),
        proptest::collection::vec(delivery(), 1..14),
        [fault_queue(), fault_queue(), fault_queue()],
        proptest::collection::vec(0u8..4, 1..6),
        [any::<u8>(); EVENTS.len()],
        proptest::collection::vec(0u8..3, 1..6),
    )
        .prop_map(|(calm, mut deliveries, [gets, puts, publishes], retry_delays, keys, latency)| {
            let mut quiet_order: Vec<usize> = (0..EVENTS.len()).collect();
            quiet_order.sort_by_key(|&e| keys[e]);
            let mut faults = vec![(GET_OBJECT, gets), (PUT_OBJECT, puts), (PUBLISH, publishes)];
            if calm {
                faults.iter_mut().for_each(|(_, steps)| steps.clear());
                deliveries.iter_mut().for_each(|d| (d.crash, d.with_next) = (None, false));
            }
            Scenario { notify_on: NOTIFY_ON, deliveries, faults, retry_delays, quiet_order, latency }
        })
}

// ---- the world ---------------------------------------------------------------------------------

type TestNotifier = Notifier<Sns, Store, NoLookups, NoLookups, NoLookups, NoLookups>;

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
    notifier: TestNotifier,
    clock: ManualClock,
    events: Vec<Value>,
}

impl World {
    fn new(scenario: &Scenario) -> World {
        let notifier = Notifier {
            config: Config {
                topic_arn: TEXT.into(),
                chat_topic_arn: Some(CHAT.into()),
                bucket: "audit".into(),
                notify_on: parse_notify_on(scenario.notify_on).expect("NOTIFY_ON"),
                claim_ttl_seconds: CLAIM_TTL_SECONDS,
                digest: None,
                approvals: Default::default(),
            },
            publisher: Sns::default(),
            store: Store::default(),
            history: NoLookups,
            diagnostics: NoLookups,
            revisions: NoLookups,
            metrics: NoLookups,
        };
        for (operation, steps) in &scenario.faults {
            let plan = if *operation == PUBLISH { &notifier.publisher.faults } else { &notifier.store.faults };
            plan.script(operation, steps.iter().cloned());
        }
        notifier.store.latency.set(scenario.latency.clone());
        notifier.publisher.latency.set(scenario.latency.iter().rev().cloned().collect());
        let mut events: Vec<Value> = EVENTS.iter().map(|(name, _, _)| fixture(name)).collect();
        // The legacy execution's STARTED: the other's, moved to that execution.
        let failed = events[3].clone();
        let started = &mut events[0];
        started["id"] = json!("11234567-0123-0123-0123-012345678900");
        started["time"] = json!("2026-11-20T11:00:00Z");
        started["region"] = failed["region"].clone();
        started["resources"] = failed["resources"].clone();
        started["detail"]["pipeline"] = json!(LEGACY);
        started["detail"]["execution-id"] = failed["detail"]["execution-id"].clone();
        started["detail"]["start-time"] = json!("2026-11-20T11:00:00.000Z");
        let start = DateTime::parse_from_rfc3339("2026-11-20T11:10:00Z").expect("time").with_timezone(&Utc);
        World { notifier, clock: ManualClock::at(start), events }
    }

    /// One invocation of pipeline-notifier as Lambda runs it: how it ended, and what it sent
    /// unrecorded.
    async fn invoke(&self, event: usize, token: &str, crash: Option<usize>) -> (Ended, Vec<(String, Unrecorded)>) {
        let (payload, now) = (self.events[event].clone(), self.clock.now());
        let log = Arc::new(Mutex::new(Vec::new()));
        let handle = SEEN.scope(Arc::clone(&log), self.notifier.handle(payload, token, now));
        let invoked = invoke(LAMBDA_TIMEOUT, crash, |_| Box::pin(handle)).await;
        let seen = log.lock().expect("seen").clone();
        let unrecorded = unrecorded(&invoked, &self.notifier.publisher, &seen);
        (invoked.ended, unrecorded)
    }

    fn publisher(&self) -> &MemoryPublisher {
        &self.notifier.publisher
    }

    fn store(&self) -> &MemoryStore {
        &self.notifier.store
    }
}

/// Why a copy SNS accepted may be followed by another: the documented at-least-once exception
/// (RELIABILITY.md). SNS and S3 are not one transaction, so a publish SNS accepted whose record
/// could not be written may be sent again once its claim expires.
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

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

/// One step on a fresh runtime under tokio's paused clock, which starts at the real time: the
/// handlers' `std::time::Instant` and tokio's agree at the start of every step.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime").block_on(f)
}

// ---- a case ------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Pending {
    event: usize,
    token: String,
    retries_left: u8,
    due: usize,
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
    let mut tokens = 0;
    let mut new_token = || {
        tokens += 1;
        format!("req-{tokens}")
    };

    // Chaos: each step is one delivery or several at once, with the Lambda retries due then.
    let (mut step, mut i) = (0, 0);
    while i < scenario.deliveries.len() {
        let mut group = vec![&scenario.deliveries[i]];
        while group.last().is_some_and(|d| d.with_next) && i + 1 < scenario.deliveries.len() {
            i += 1;
            group.push(&scenario.deliveries[i]);
        }
        i += 1;
        run.world.clock.advance(Duration::seconds(group[0].clock));
        let mut invocations: Vec<(usize, String, Option<usize>, u8)> =
            group.iter().map(|d| (d.event, new_token(), d.crash, LAMBDA_RETRIES)).collect();
        invocations
            .extend(pending.iter().filter(|p| p.due <= step).map(|p| (p.event, p.token.clone(), None, p.retries_left)));
        pending.retain(|p| p.due > step);
        let world = &run.world;
        let ended = block_on(join_all(invocations.iter().map(|(e, token, crash, _)| world.invoke(*e, token, *crash))));
        for ((event, token, crash, retries_left), (ended, unrecorded)) in invocations.into_iter().zip(ended) {
            let at = run.world.clock.now().format("%H:%M:%S");
            run.log.push(format!("step {step} at {at}: e{event} {token} crash {crash:?}: {ended:?}"));
            run.invocations += 1;
            run.unrecorded.extend(unrecorded);
            if ended != Ended::Ok && retries_left > 0 {
                let delay = *delays.next().expect("cycled") as usize;
                pending.push(Pending { event, token, retries_left: retries_left - 1, due: step + 1 + delay });
            }
        }
        step += 1;
    }

    // Quiet: no faults, every claim expired; Lambda's retries, then every event once more.
    run.world.publisher().faults.clear();
    run.world.store().faults.clear();
    run.world.clock.advance(Duration::seconds(CLAIM_TTL_SECONDS + 1));
    run.log.push(format!("quiet at {}", run.world.clock.now().format("%H:%M:%S")));
    let mut quiet: Vec<(usize, String, u8)> = pending.into_iter().map(|p| (p.event, p.token, p.retries_left)).collect();
    quiet.extend(scenario.quiet_order.iter().map(|&t| (t, new_token(), LAMBDA_RETRIES)));
    for (event, token, retries_left) in quiet {
        for attempt in 0..=retries_left {
            let (ended, unrecorded) = block_on(run.world.invoke(event, &token, None));
            run.log.push(format!("quiet: e{event} {token}: {ended:?}"));
            run.invocations += 1;
            run.unrecorded.extend(unrecorded);
            if ended == Ended::Ok {
                break;
            }
            if attempt == retries_left {
                run.quiet_failures.push(format!("e{event} {token}: {ended:?}"));
            }
        }
    }
    run
}

// ---- what the topics got -----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Got {
    pipeline: String,
    /// `pipeline FAILED`, `stage FAILED`, ...
    outcome: String,
    /// Why it was never recorded as sent, if it was not (see [`Unrecorded`]).
    unrecorded: Option<Unrecorded>,
}

impl Run {
    fn got(&self, topic: &str) -> Vec<Got> {
        let published = self.world.publisher().on(topic);
        published
            .iter()
            .map(|p| {
                let attribute = |name: &str| p.message.attributes.get(name).cloned().unwrap_or_default();
                Got {
                    pipeline: attribute("pipeline"),
                    outcome: format!("{} {}", attribute("level"), attribute("state")),
                    unrecorded: self
                        .unrecorded
                        .get(&p.message_id)
                        .copied()
                        .or(p.answer_lost.then_some(Unrecorded::AnswerLost)),
                }
            })
            .collect()
    }

    fn report(&self) -> String {
        let events: Vec<String> =
            EVENTS.iter().enumerate().map(|(i, (_, p, what))| format!("e{i} {p} {what}")).collect();
        let mut text = format!("events: {}\n", events.join(", "));
        for topic in TOPICS {
            let got: Vec<String> = self
                .got(topic)
                .iter()
                .map(|g| match g.unrecorded {
                    Some(why) => format!("{} {} (unrecorded: {why:?})", g.pipeline, g.outcome),
                    None => format!("{} {}", g.pipeline, g.outcome),
                })
                .collect();
            text.push_str(&format!("{topic} got [{}]\n", got.join(", ")));
        }
        text.push_str(&format!(
            "faults fired: S3 {:?}; SNS {:?}\n",
            self.world.store().faults.fired(),
            self.world.publisher().faults.fired()
        ));
        text.push_str(&self.log.join("\n"));
        text
    }
}

// ---- invariants --------------------------------------------------------------------------------

type Invariant = fn(&Run) -> Result<(), String>;

fn the_quiet_phase_delivers(run: &Run) -> Result<(), String> {
    match run.quiet_failures.is_empty() {
        true => Ok(()),
        false => Err(format!("failed without faults, after Lambda's retries: {:?}", run.quiet_failures)),
    }
}

/// The deadline's promise: every call stops before Lambda's deadline, so no invocation is stopped.
fn no_invocation_outlives_its_deadline(run: &Run) -> Result<(), String> {
    match run.log.iter().find(|line| line.ends_with("TimedOut")) {
        Some(line) => Err(format!("stopped by Lambda at its deadline: {line}")),
        None => Ok(()),
    }
}

/// Once, but for the documented exception: every copy but the last of an outcome on a topic must
/// be one SNS accepted that was never recorded as sent ([`Unrecorded`]), so each such copy excuses
/// one more and a recorded copy none.
fn each_outcome_at_most_once_but_for_unrecorded_sends(run: &Run) -> Result<(), String> {
    for topic in TOPICS {
        let mut copies: BTreeMap<(String, String), Vec<Option<Unrecorded>>> = BTreeMap::new();
        for got in run.got(topic) {
            copies.entry((got.pipeline, got.outcome)).or_default().push(got.unrecorded);
        }
        for ((pipeline, outcome), copies) in copies {
            if let Some(recorded) = copies[..copies.len() - 1].iter().position(Option::is_none) {
                return Err(format!(
                    "{topic} got {pipeline} {outcome} {} times; copy {} was recorded as sent, yet another followed it",
                    copies.len(),
                    recorded + 1
                ));
            }
        }
    }
    Ok(())
}

fn every_final_outcome_reaches_every_topic(run: &Run) -> Result<(), String> {
    for topic in TOPICS {
        let got = run.got(topic);
        for (pipeline, outcome) in FINAL {
            if !got.iter().any(|g| g.pipeline == pipeline && g.outcome == outcome) {
                return Err(format!("{topic} never got {pipeline} {outcome}"));
            }
        }
    }
    Ok(())
}

/// An outcome one topic got, every topic got, or the other topic's record says the execution's
/// final outcome superseded it (the attempt ended before it could reach that topic; sent after, it
/// would leave the topic on a stale message).
fn an_outcome_one_topic_got_every_topic_got(run: &Run) -> Result<(), String> {
    let outcomes = |topic| -> std::collections::BTreeSet<(String, String)> {
        run.got(topic).into_iter().map(|g| (g.pipeline, g.outcome)).collect()
    };
    for (topic, other) in [(TEXT, CHAT), (CHAT, TEXT)] {
        for (pipeline, outcome) in outcomes(topic).difference(&outcomes(other)) {
            if !superseded_on(run, pipeline, outcome, other) {
                return Err(format!(
                    "{topic} got {pipeline}'s {outcome}, {other} neither got it nor has it recorded as superseded"
                ));
            }
        }
    }
    Ok(())
}

/// Whether a timeline of `pipeline` records `outcome` (`"action FAILED"`) as superseded on `topic`.
fn superseded_on(run: &Run, pipeline: &str, outcome: &str, topic: &str) -> bool {
    let Some((level, state)) = outcome.split_once(' ') else {
        return false;
    };
    run.world.store().objects().iter().any(|(key, object)| {
        let document: Value = serde_json::from_slice(&object.body).unwrap_or_default();
        key.contains(&format!("/{pipeline}/"))
            && document["deliveries"].as_object().is_some_and(|deliveries| {
                deliveries.iter().any(|(k, v)| {
                    k.starts_with(&format!("{level}:"))
                        && k.contains(&format!(":{state}:"))
                        && k.ends_with(&format!("|{topic}"))
                        && v["status"] == "superseded"
                })
            })
    })
}

fn each_execution_ends_with_its_final_outcome(run: &Run) -> Result<(), String> {
    for topic in TOPICS {
        let got = run.got(topic);
        for (pipeline, outcome) in FINAL {
            let last = got.iter().rev().find(|g| g.pipeline == pipeline);
            if let Some(last) = last.filter(|g| g.outcome != outcome) {
                return Err(format!("{topic}'s last message of {pipeline} is {}, not {outcome}", last.outcome));
            }
        }
    }
    Ok(())
}

fn no_claim_is_left_held(run: &Run) -> Result<(), String> {
    for (key, object) in run.world.store().objects() {
        let document: Value = serde_json::from_slice(&object.body).map_err(|e| format!("{key}: {e}"))?;
        let mut held = Vec::new();
        claims_in(&document, &mut held);
        if !held.is_empty() {
            return Err(format!("{key} still holds claims once every invocation ended: {held:?}"));
        }
    }
    Ok(())
}

/// Every `{"status": "claimed", ...}` in a document (`pipewarden_shared::ledger::Delivery`).
fn claims_in(value: &Value, held: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if inner.get("status").and_then(Value::as_str) == Some("claimed") {
                    held.push(format!("{key}: {inner}"));
                }
                claims_in(inner, held);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| claims_in(item, held)),
        _ => {}
    }
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
fn each_outcome_reaches_each_topic_once_and_no_claim_stays_held() {
    check(&[
        the_quiet_phase_delivers,
        no_invocation_outlives_its_deadline,
        each_outcome_at_most_once_but_for_unrecorded_sends,
        no_claim_is_left_held,
        every_final_outcome_reaches_every_topic,
        an_outcome_one_topic_got_every_topic_got,
    ]);
}

#[test]
fn each_execution_ends_with_its_final_outcome_on_every_topic() {
    check(&[the_quiet_phase_delivers, each_execution_ends_with_its_final_outcome]);
}

// ---- the counterexamples found, as named cases -------------------------------------------------

/// `e0| e1 +121s e2!3` as the scenarios print it.
fn deliveries(text: &str) -> Vec<Delivery> {
    let mut clock = 0;
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        if let Some(seconds) = word.strip_prefix('+').and_then(|w| w.strip_suffix('s')) {
            clock = seconds.parse().expect("seconds");
            continue;
        }
        let with_next = word.ends_with('|');
        let word = word.trim_end_matches('|').trim_start_matches('e');
        let (event, crash) = match word.split_once('!') {
            Some((e, n)) => (e, Some(n.parse().expect("call number"))),
            None => (word, None),
        };
        out.push(Delivery { event: event.parse().expect("event"), with_next, crash, clock });
        clock = 0;
    }
    out
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

fn given(delivered: &str) -> Scenario {
    Scenario {
        notify_on: NOTIFY_ON,
        deliveries: deliveries(delivered),
        faults: Vec::new(),
        retry_delays: vec![0],
        quiet_order: (0..EVENTS.len()).collect(),
        latency: vec![0],
    }
}

fn assert_holds(scenario: Scenario, invariants: &[Invariant]) {
    if let Err(violation) = holds(&run(&scenario), invariants) {
        panic!("{violation}\n{scenario:?}");
    }
}

/// Found by the first property: the pipeline's FAILED goes out to both topics, then S3 throttles
/// the write that would record it (the settle's PutObject, after the SDK's own retries; it was the
/// settle's GetObject until the settle wrote from the claim's ETag without reading). The
/// invocation succeeds with both claims still held; after the claim TTL a redelivery of the event
/// takes them over and sends FAILED again. The documented at-least-once exception
/// (RELIABILITY.md): one extra copy per topic, never a second one however often the event is
/// delivered again, and without the S3 fault exactly one copy.
#[test]
fn an_outcome_sent_but_not_recorded_is_sent_again_at_most_once_after_the_claim_ttl() {
    let invariants: &[Invariant] =
        &[the_quiet_phase_delivers, each_outcome_at_most_once_but_for_unrecorded_sends, no_claim_is_left_held];
    let delivered = "e3 +121s e3 +121s e3";
    let faulty = Scenario { faults: vec![(PUT_OBJECT, steps("- Throttled"))], ..given(delivered) };
    let sent = run(&faulty);
    holds(&sent, invariants).unwrap_or_else(|violation| panic!("{violation}\n{faulty:?}"));
    let failed = |got: &Got| got.pipeline == LEGACY && got.outcome == "pipeline FAILED";
    for topic in TOPICS {
        let got: Vec<Got> = sent.got(topic).into_iter().filter(failed).collect();
        assert_eq!(got.len(), 2, "{topic}: the documented duplicate, once\n{}", sent.report());
        assert_eq!(got[0].unrecorded, Some(Unrecorded::S3Failed), "{}", sent.report());
    }
    let calm = given(delivered);
    let once = run(&calm);
    holds(&once, invariants).unwrap_or_else(|violation| panic!("{violation}\n{calm:?}"));
    for topic in TOPICS {
        let copies = once.got(topic).into_iter().filter(failed).count();
        assert_eq!(copies, 1, "without the S3 fault, once\n{}", once.report());
    }
}

/// Found by the first property: the Build action's FAILED reaches the text topic, the chat topic
/// throttles it; the pipeline's FAILED is then recorded, and Lambda's retry of the action event
/// finds the attempt ended and sends nothing: chat never gets the action's failure.
#[test]
fn an_outcome_sent_to_one_topic_reaches_the_others_or_is_recorded_superseded_once_the_execution_ends() {
    let scenario = Scenario { faults: vec![(PUBLISH, steps("- Throttled"))], retry_delays: vec![1], ..given("e1 e3") };
    assert_holds(scenario, &[an_outcome_one_topic_got_every_topic_got]);
}

/// Found by the first property: the invocation handling the action's FAILED dies after claiming
/// both topics; the pipeline's FAILED is recorded; every later delivery of the action event finds
/// the attempt ended and leaves the dead invocation's claims in the timeline for good.
#[test]
fn claims_of_an_outcome_the_execution_overtook_are_not_left_held() {
    assert_holds(given("e1!2 e3"), &[no_claim_is_left_held]);
}

/// Found by the second property: the action's FAILED and the pipeline's FAILED are handled at
/// once; the action's is claimed before the pipeline's is recorded, and reaches the topics after
/// it. Now the final outcome waits (its invocation fails, and Lambda's retry sends it) while
/// another live invocation is sending one of the attempt's earlier outcomes to the same topic.
#[test]
fn an_execution_s_last_message_is_its_final_outcome_when_events_race() {
    let scenario = Scenario { latency: vec![0, 1], ..given("e1| e3") };
    assert_holds(scenario.clone(), &[each_execution_ends_with_its_final_outcome]);
    // It looks again and goes out in the same invocation, no Lambda retry needed.
    let run = run(&scenario);
    assert!(!run.log.iter().any(|line| line.contains("Failed")), "no invocation had to be retried\n{}", run.report());
}
