//! Fuzzing every parser Pipewarden has: the event parsers (through each function's reader), the
//! routing rules and the validation spec. The corpus starts from `events/` and `examples/`; each
//! case mutates it (fields removed, nulled, retyped, strings and numbers swapped, also inside JSON
//! held in strings such as SNS messages and `reasonData`) or is arbitrary input. Every input must
//! give a result or an error that names the event (or document) and the field: never a panic.
//!
//! proptest rather than cargo-fuzz: cargo-fuzz needs a nightly toolchain, which our machines cannot
//! fetch. `make test` runs 256 cases per property; a longer bounded run (see RELIABILITY.md):
//!   PROPTEST_CASES=100000 cargo test -p pipewarden-tests --test fuzz_parsers
//! A failing case is saved under tests/proptest-regressions/ and replayed first from then on; a
//! crash found becomes a named regression test below as well.

use std::collections::HashMap;
use std::sync::OnceLock;

use alarm_fanout::rules::RuleSet;
use deploy_validator::spec::Spec;
use pipeline_notifier::read_events;
use pipewarden_devkit::work::{Workload, SAMPLE_TOPICS};
use pipewarden_devkit::{all_events, repo_root};
use pipewarden_shared::events::cloudwatch::{parse_classic, parse_eventbridge_alarm, parse_lambda_action};
use pipewarden_shared::events::codedeploy::parse_hook;
use pipewarden_shared::events::codepipeline::PipelineEvent;
use pipewarden_shared::events::eventbridge::Shape;
use pipewarden_shared::events::sns::parse_sns;
use pipewarden_shared::events::EventError;
use proptest::prelude::*;
use serde_json::{json, Value};

fn corpus() -> &'static [(String, Value)] {
    static CORPUS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    CORPUS.get_or_init(all_events)
}

fn workload() -> &'static Workload {
    static WORKLOAD: OnceLock<Workload> = OnceLock::new();
    WORKLOAD.get_or_init(Workload::sample)
}

fn vars() -> HashMap<String, String> {
    SAMPLE_TOPICS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove,
    Null,
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    EmptyObject,
    EmptyArray,
    /// A number becomes its text, a text becomes a number.
    Retype,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Remove),
        Just(Mutation::Null),
        any::<String>().prop_map(Mutation::Text),
        prop_oneof![
            Just(String::new()),
            Just("ALARM".to_string()),
            Just("1.0".to_string()),
            Just("2026-13-45T99:99:99Z".to_string())
        ]
        .prop_map(Mutation::Text),
        any::<i64>().prop_map(Mutation::Integer),
        any::<f64>().prop_map(Mutation::Float),
        any::<bool>().prop_map(Mutation::Bool),
        Just(Mutation::EmptyObject),
        Just(Mutation::EmptyArray),
        Just(Mutation::Retype),
    ]
}

fn replace(node: &mut Value, m: &Mutation) {
    let new = match m {
        Mutation::Remove | Mutation::Null => Value::Null,
        Mutation::Text(s) => json!(s),
        Mutation::Integer(i) => json!(i),
        Mutation::Float(f) => json!(f),
        Mutation::Bool(b) => json!(b),
        Mutation::EmptyObject => json!({}),
        Mutation::EmptyArray => json!([]),
        Mutation::Retype => match &*node {
            Value::Number(n) => json!(n.to_string()),
            Value::String(s) => s.parse::<f64>().map(|f| json!(f)).unwrap_or_else(|_| json!(s.len())),
            Value::Bool(b) => json!(b.to_string()),
            other => json!(other.to_string()),
        },
    };
    *node = new;
}

/// Walks `path` (each step picks a key or an element by index modulo the size) and applies `m`
/// where it ends. Strings holding JSON (SNS messages, `reasonData`) are walked into as well.
fn mutate(node: &mut Value, path: &[usize], m: &Mutation) {
    if let Value::String(s) = node {
        if let Ok(mut inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s) {
            mutate(&mut inner, path, m);
            *s = inner.to_string();
            return;
        }
    }
    let Some((&seed, rest)) = path.split_first() else {
        replace(node, m);
        return;
    };
    match node {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(seed % map.len()).cloned().expect("index within the map");
            if rest.is_empty() && matches!(m, Mutation::Remove) {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rest, m);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = seed % items.len();
            if rest.is_empty() && matches!(m, Mutation::Remove) {
                items.remove(i);
            } else {
                mutate(&mut items[i], rest, m);
            }
        }
        _ => replace(node, m),
    }
}

fn mutated_event() -> impl Strategy<Value = Value> {
    (any::<usize>(), prop::collection::vec((prop::collection::vec(any::<usize>(), 0..7), mutation()), 1..5)).prop_map(
        |(pick, mutations)| {
            let mut event = corpus()[pick % corpus().len()].1.clone();
            for (path, m) in &mutations {
                mutate(&mut event, path, m);
            }
            event
        },
    )
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::hash_map(
                prop_oneof![
                    Just("source".to_string()),
                    Just("detail".to_string()),
                    Just("detail-type".to_string()),
                    Just("Records".to_string()),
                    Just("alarmData".to_string()),
                    Just("DeploymentId".to_string()),
                    Just("LifecycleEventHookExecutionId".to_string()),
                    "[a-zA-Z-]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An error must say which event and which field.
fn named(e: &EventError) -> Result<(), TestCaseError> {
    prop_assert!(!e.event.trim().is_empty(), "error names no event: {e:?}");
    prop_assert!(!e.field.trim().is_empty(), "error names no field: {e:?}");
    prop_assert!(!e.problem.trim().is_empty(), "error says nothing: {e:?}");
    Ok(())
}

/// Every parser on `payload`, whichever shape it has: none may panic; every error is named.
fn every_parser(payload: &Value) -> Result<(), TestCaseError> {
    if let Err(e) = workload().render(payload.clone()) {
        named(&e)?;
    }
    let results: Vec<Result<(), EventError>> = vec![
        read_events(payload.clone()).map(drop),
        PipelineEvent::from_eventbridge(payload.clone()).map(drop),
        PipelineEvent::from_notification(payload.clone()).map(drop),
        alarm_fanout::handler::read_transitions(payload.clone()).map(drop),
        parse_eventbridge_alarm(payload.clone()).map(drop),
        parse_lambda_action(payload.clone()).map(drop),
        parse_hook(payload.clone()).map(drop),
        parse_sns(payload.clone()).map(drop),
    ];
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        named(e)?;
    }
    if let Some(message) = payload.pointer("/Records/0/Sns/Message").and_then(Value::as_str) {
        if let Err(e) = parse_classic(message) {
            named(&e)?;
        }
    }
    same_from_text(payload)
}

/// The functions read the invocation as Lambda sends it, text, in one pass: whatever the document,
/// that must read exactly as the tree does (errors may add where in the text they are).
fn same_from_text(payload: &Value) -> Result<(), TestCaseError> {
    let text = payload.to_string();
    // The tree read from that same text, as `lambda_runtime` built it before (a float read back
    // from its text may differ from the generated one in its last bit).
    let tree: Value = serde_json::from_str(&text).expect("serde_json reads what it wrote");
    same_from_text_of(&text, &tree)
}

fn same_from_text_of(text: &str, payload: &Value) -> Result<(), TestCaseError> {
    fn same<T: PartialEq + std::fmt::Debug>(
        text: Result<T, EventError>,
        tree: Result<T, EventError>,
    ) -> Result<(), TestCaseError> {
        match (text, tree) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!((a.event, a.field), (b.event, b.field)),
            (a, b) => prop_assert!(false, "text read {a:?}, the tree {b:?}"),
        }
        Ok(())
    }
    prop_assert_eq!(Shape::of_json(text), Shape::of(payload), "shape of {}", text);
    same(read_events(text), read_events(payload.clone()))?;
    same(
        alarm_fanout::handler::read_transitions(text).map(|(a, e)| (a, e.len())),
        alarm_fanout::handler::read_transitions(payload.clone()).map(|(a, e)| (a, e.len())),
    )?;
    same(parse_hook(text), parse_hook(payload.clone()))?;
    match (workload().render(text), workload().render(payload.clone())) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a.messages.len(), b.messages.len()),
        (Err(a), Err(b)) => prop_assert_eq!((a.event, a.field), (b.event, b.field)),
        (a, b) => prop_assert!(false, "text rendered {a:?}, the tree {b:?}"),
    }
    Ok(())
}

/// A document's lines, changed: lines dropped, doubled, swapped or garbled.
fn mutated_lines(text: &'static str) -> impl Strategy<Value = String> {
    let lines: Vec<&'static str> = text.lines().collect();
    let n = lines.len();
    prop::collection::vec((0..4u8, 0..n, 0..n, ".{0,16}"), 1..5).prop_map(move |ops| {
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for (op, i, j, garbage) in ops {
            if out.is_empty() {
                break;
            }
            let (i, j) = (i % out.len(), j % out.len());
            match op {
                0 => {
                    out.remove(i);
                }
                1 => out.insert(j, out[i].clone()),
                2 => out.swap(i, j),
                _ => {
                    let line = &mut out[i];
                    let cut =
                        line.char_indices().map(|(k, _)| k).nth(j % (line.chars().count() + 1)).unwrap_or(line.len());
                    line.insert_str(cut, &garbage);
                }
            }
        }
        out.join("\n")
    })
}

fn example(path: &str) -> &'static str {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    Box::leak(text.into_boxed_str())
}

fn rules_never_panic(text: &str) -> Result<(), TestCaseError> {
    match RuleSet::parse(text, "fuzzed-rules.yaml", &vars()) {
        Ok(rules) => {
            // Rules that parse must route and format every sample alarm.
            for (_, event) in corpus() {
                if let Ok((alarms, _)) = alarm_fanout::handler::read_transitions(event.clone()) {
                    for alarm in &alarms {
                        for target in rules.targets(alarm) {
                            alarm_fanout::format::message(alarm, &target, None);
                        }
                    }
                }
            }
        }
        Err(e) => {
            prop_assert_eq!(&e.origin, "fuzzed-rules.yaml");
            prop_assert!(!e.problem.trim().is_empty());
        }
    }
    Ok(())
}

fn spec_never_panics(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = Spec::parse(text, "fuzzed-spec.yaml") {
        prop_assert_eq!(&e.origin, "fuzzed-spec.yaml");
        prop_assert!(!e.problem.trim().is_empty());
    }
    Ok(())
}

proptest! {
    #[test]
    fn mutated_sample_events_never_panic_and_errors_name_event_and_field(payload in mutated_event()) {
        every_parser(&payload)?;
    }

    #[test]
    fn arbitrary_json_never_panics_any_parser(payload in arbitrary_json()) {
        every_parser(&payload)?;
    }

    #[test]
    fn arbitrary_sns_messages_never_panic(message in ".{0,200}", subject in proptest::option::of(".{0,20}")) {
        let payload = json!({"Records": [{"EventSource": "aws:sns", "Sns": {
            "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Subject": subject,
            "Message": message, "Timestamp": "2026-11-20T17:04:40.000Z"}}]});
        every_parser(&payload)?;
    }

    #[test]
    fn mutated_routing_rules_never_panic(text in mutated_lines(example("examples/routing-rules.yaml"))) {
        rules_never_panic(&text)?;
    }

    #[test]
    fn arbitrary_routing_rules_never_panic(text in ".{0,300}") {
        rules_never_panic(&text)?;
    }

    #[test]
    fn mutated_validation_specs_never_panic(text in mutated_lines(example("examples/flask-app/validation.yaml"))) {
        spec_never_panics(&text)?;
    }

    #[test]
    fn arbitrary_validation_specs_never_panic(text in ".{0,300}") {
        spec_never_panics(&text)?;
    }
}

#[test]
fn the_corpus_is_every_sample_event_and_each_renders() {
    assert!(corpus().len() >= 20, "events/ holds the corpus");
    for (name, event) in corpus() {
        workload().render(event.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn yaml_alias_bombs_are_refused_not_expanded() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n\
                rules: [*h]\n";
    let rules = RuleSet::parse(bomb, "bomb.yaml", &vars()).unwrap_err();
    assert_eq!(rules.origin, "bomb.yaml");
    let spec = Spec::parse(bomb, "bomb.yaml").unwrap_err();
    assert_eq!(spec.origin, "bomb.yaml");
}

#[test]
fn deeply_nested_events_are_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let error = serde_json::from_str::<Value>(&deep).unwrap_err();
    assert!(error.to_string().contains("recursion limit"), "{error}");
    let message = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m-1", "Message": deep}}]});
    every_parser(&message).unwrap();
}

/// Text the property cannot write (`Value` keeps one of each key, sorted): a key given twice,
/// and arrays where AWS sends objects. Each must read from its text as from its tree.
#[test]
fn unusual_text_reads_as_its_tree() {
    let metric = std::fs::read_to_string(repo_root().join("events/cloudwatch-alarm-metric.json")).unwrap();
    let twice = metric.replacen('{', r#"{"id": "first", "account": "999999999999", "#, 1);
    let sns = std::fs::read_to_string(repo_root().join("events/sns-classic-alarm-metric.json")).unwrap();
    let message_twice =
        sns.replacen(r#"{\"AlarmName\": "#, r#"{\"AWSAccountId\": \"999999999999\", \"AlarmName\": "#, 1);
    assert_ne!(message_twice, sns, "the sample's message starts with its AlarmName");
    let cases = [
        twice.as_str(),
        message_twice.as_str(),
        // Arrays that a derived struct would read field by field (`MessageId`, `TopicArn`,
        // `Message`; a record's one field `Sns`), were they not refused as AWS never sends them.
        r#"{"Records": [{"Sns": ["m", null, "{\"AlarmName\": \"a\", \"NewStateValue\": \"ALARM\"}"]}]}"#,
        r#"{"Records": [{"Sns": ["m", null, "x"]}], "alarmData": {}}"#,
        r#"{"Records": [[{"MessageId": "m", "Message": "{\"AlarmName\": \"a\"}"}]]}"#,
        r#"{"source": "aws.codepipeline", "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change"}"#,
    ];
    for text in cases {
        let tree: Value = serde_json::from_str(text).unwrap();
        same_from_text_of(text, &tree).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    // The key given twice is its last value, as in the tree, not an error.
    let (alarms, _) = alarm_fanout::handler::read_transitions(twice.as_str()).unwrap();
    assert_eq!(alarms[0].account, "123456789012");
    let (alarms, _) = alarm_fanout::handler::read_transitions(message_twice.as_str()).unwrap();
    assert_eq!(alarms[0].account, "123456789012");
}
