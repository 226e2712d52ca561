//! The canary check's statistics against SciPy (installed into the project's .venv by the test
//! command): random and edge-case samples (ties, zeros, tiny samples, huge counts), every answer
//! within a stated tolerance. `CANARY_ORACLE_CASES` sets how many random cases (default 2,000;
//! the big run is written down in RELIABILITY.md), `CANARY_ORACLE_SEED` the seed.

use std::io::Write;
use std::process::{Command, Stdio};

use deploy_validator::stats::{mann_whitney_greater, proportion_greater};
use serde_json::{json, Value};

/// Both sides compute the normal tail with different code (statrs' erfc, SciPy's ndtr).
fn close(ours: f64, scipy: f64) -> bool {
    (ours - scipy).abs() <= 1e-9 + 1e-7 * scipy.abs()
}

fn scipy(cases: &[Value]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/scipy_stats.py");
    let mut child = Command::new(pipewarden_devkit::python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the project's Python (run `make test`, which installs SciPy into .venv)");
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the SciPy oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sample(rng: &mut fastrand::Rng, len: usize) -> Vec<f64> {
    match rng.u8(0..4) {
        // Few distinct values: many ties.
        0 => (0..len).map(|_| f64::from(rng.u8(0..4))).collect(),
        // Latencies in milliseconds.
        1 => (0..len).map(|_| 20.0 + rng.f64() * 300.0).collect(),
        // Zeros with the odd value.
        2 => (0..len).map(|_| if rng.u8(0..5) == 0 { rng.f64() } else { 0.0 }).collect(),
        // Seconds, shifted: a slower side.
        _ => (0..len).map(|_| 0.05 + rng.f64() * 0.1 + f64::from(rng.u8(0..2)) * 0.05).collect(),
    }
}

fn rate_case(rng: &mut fastrand::Rng) -> [f64; 4] {
    let total = |rng: &mut fastrand::Rng| 10f64.powf(rng.f64() * 6.0).round().max(1.0);
    let errors = |rng: &mut fastrand::Rng, n: f64| match rng.u8(0..4) {
        0 => 0.0,
        1 => n,
        _ => (n * rng.f64() * rng.f64()).round(),
    };
    let (n1, n0) = (total(rng), total(rng));
    [errors(rng, n1), n1, errors(rng, n0), n0]
}

#[test]
fn rank_and_rate_tests_agree_with_scipy() {
    let count: usize = std::env::var("CANARY_ORACLE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let seed: u64 =
        std::env::var("CANARY_ORACLE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    // Edge cases first: one value a side, every value tied, zeros, a side entirely above the other.
    let mut ranks: Vec<(Vec<f64>, Vec<f64>)> = vec![
        (vec![1.0], vec![1.0]),
        (vec![2.0], vec![1.0]),
        (vec![0.0, 0.0, 0.0], vec![0.0, 0.0]),
        (vec![0.0, 0.0, 1.0], vec![0.0, 0.0]),
        (vec![5.0, 6.0, 7.0], vec![1.0, 2.0, 3.0]),
        (vec![1.0, 2.0, 3.0], vec![5.0, 6.0, 7.0]),
    ];
    let mut rates: Vec<[f64; 4]> = vec![
        [0.0, 100.0, 0.0, 100.0],
        [100.0, 100.0, 100.0, 100.0],
        [1.0, 1.0, 0.0, 1.0],
        [40.0, 1000.0, 20.0, 1000.0],
        [20.0, 1000.0, 20.0, 1000.0],
        [0.0, 5.0, 3.0, 5.0],
        [1.0, 1_000_000.0, 0.0, 1_000_000.0],
    ];
    for _ in 0..count / 2 {
        let (n1, n0) = (rng.usize(1..=25), rng.usize(1..=25));
        ranks.push((sample(&mut rng, n1), sample(&mut rng, n0)));
        rates.push(rate_case(&mut rng));
    }
    let cases: Vec<Value> = ranks
        .iter()
        .map(|(new, old)| json!({"rank": [new, old]}))
        .chain(rates.iter().map(|r| json!({"rate": r})))
        .collect();
    let answers = scipy(&cases);
    assert_eq!(answers.len(), cases.len());
    let (rank_answers, rate_answers) = answers.split_at(ranks.len());
    for ((new, old), answer) in ranks.iter().zip(rank_answers) {
        let ours = mann_whitney_greater(new, old).expect("both sides have values");
        let u = answer["u"].as_f64().unwrap();
        assert!(
            close(ours.statistic, u),
            "seed {seed}: U {} against SciPy's {u} for {new:?} > {old:?}",
            ours.statistic
        );
        match answer["p"].as_f64() {
            Some(p) => assert!(
                close(ours.p_value, p),
                "seed {seed}: p {} against SciPy's {p} for {new:?} > {old:?}",
                ours.p_value
            ),
            // SciPy: NaN where every value ties; no evidence either way here.
            None => assert_eq!(ours.p_value, 1.0, "seed {seed}: every value tied in {new:?} and {old:?}"),
        }
    }
    for (case, answer) in rates.iter().zip(rate_answers) {
        let ours = proportion_greater(case[0], case[1], case[2], case[3]).expect("both sides have requests");
        match answer["p"].as_f64() {
            Some(p) => {
                assert!(close(ours.p_value, p), "seed {seed}: p {} against SciPy's {p} for {case:?}", ours.p_value)
            }
            // SciPy refuses a table without variance: equal rates of 0 or 1.
            None => assert_eq!(ours.p_value, 1.0, "seed {seed}: no variance in {case:?}"),
        }
    }
}
