//! pipewarden-bench: the benchmark suite behind BENCHMARKS.md. A benchmark, never a test: it
//! measures and prints, and fails only when something it runs fails.
//!
//! Usage: pipewarden-bench [--runs N] [--peer DIR] [--load-events N] [--burst-events N] [--latency-ms N]
//!                         [--iterations N] [--bin-dir DIR] [--env NAME=VALUE]... [SECTION...]
//! Sections: cold-start, concurrency, cpu, fanout, latency, load, size (all when none is given).
//!
//! Binaries are taken from target/release (scripts/bench.sh builds them) or `--bin-dir`; `--peer` is a
//! folder holding the Python peer's `notify_slack.py`. Results are printed as Markdown and also
//! written to target/bench/results.md.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use alarm_fanout::config::Config as FanoutConfig;
use alarm_fanout::deployments::MemoryDeployments;
use alarm_fanout::handler::Fanout;
use alarm_fanout::rules::RuleSet;
use alarm_fanout::tags::{CachedAlarmTags, MemoryAlarmTags};
use pipewarden_bench::measure::{proc_status_kib, thread_cpu_time, Summary};
use pipewarden_devkit::http::{LocalHttp, Reply};
use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::work::Workload;
use pipewarden_devkit::{local, repo_root, Emulator};
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::document::DocumentSource;
use serde_json::{json, Value};

type Failure = Box<dyn std::error::Error>;

struct Options {
    runs: usize,
    peer: Option<PathBuf>,
    load_events: usize,
    /// Distinct events of the concurrency section (each delivered twice).
    burst_events: usize,
    latency_ms: u64,
    iterations: usize,
    bin_dir: PathBuf,
    /// Extra variables for every function started (experiments: `--env SSL_CERT_FILE=...`).
    env: Vec<(String, String)>,
    sections: Vec<String>,
}

fn options() -> Result<Options, Failure> {
    let mut o = Options {
        runs: 7,
        peer: None,
        load_events: 10_000,
        burst_events: 500,
        latency_ms: 50,
        iterations: 2_000,
        bin_dir: repo_root().join("target/release"),
        env: Vec::new(),
        sections: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => o.runs = value()?.parse()?,
            "--peer" => o.peer = Some(PathBuf::from(value()?)),
            "--load-events" => o.load_events = value()?.parse()?,
            "--burst-events" => o.burst_events = value()?.parse()?,
            "--latency-ms" => o.latency_ms = value()?.parse()?,
            "--iterations" => o.iterations = value()?.parse()?,
            "--bin-dir" => o.bin_dir = PathBuf::from(value()?),
            "--env" => {
                let pair = value()?;
                let (k, v) = pair.split_once('=').ok_or("--env takes NAME=VALUE")?;
                o.env.push((k.to_string(), v.to_string()));
            }
            "cold-start" | "concurrency" | "cpu" | "fanout" | "latency" | "load" | "size" | "storm" => {
                o.sections.push(arg)
            }
            other => {
                return Err(
                    format!("unknown argument {other:?}; see the usage in bench/src/bin/pipewarden-bench.rs").into()
                )
            }
        }
    }
    if o.sections.is_empty() {
        o.sections = ["size", "cold-start", "cpu", "fanout", "latency", "concurrency", "load", "storm"]
            .map(String::from)
            .to_vec();
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipewarden-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Failure> {
    let o = options()?;
    BIN_DIR.get_or_init(|| o.bin_dir.clone());
    let out_dir = repo_root().join("target/bench");
    std::fs::create_dir_all(out_dir.join("logs"))?;
    let mut report = format!(
        "# Pipewarden benchmark results\n\n{}, {} cores, {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu_model()
    );
    for section in &o.sections {
        eprintln!("== {section}");
        let text = match section.as_str() {
            "size" => size()?,
            "cold-start" => cold_start(&o).await?,
            "cpu" => cpu(&o)?,
            "fanout" => fanout(&o).await?,
            "latency" => latency(&o).await?,
            "concurrency" => concurrency(&o).await?,
            "load" => load(&o).await?,
            "storm" => storm(&o).await?,
            _ => unreachable!("options() accepts only known sections"),
        };
        println!("{text}");
        report.push('\n');
        report.push_str(&text);
    }
    std::fs::write(out_dir.join("results.md"), &report)?;
    eprintln!("written to {}", out_dir.join("results.md").display());
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

fn release(name: &str) -> PathBuf {
    BIN_DIR.get().cloned().unwrap_or_else(|| repo_root().join("target/release")).join(name)
}

static BIN_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

const FUNCTIONS: [&str; 3] = ["pipeline-notifier", "deploy-validator", "alarm-fanout"];

// ---------------------------------------------------------------------------------------------
// Size: each release bootstrap zipped as Lambda receives it.

fn size() -> Result<String, Failure> {
    let mut text = String::from(
        "## Size\n\nRelease `bootstrap` zipped (deflate) as Lambda receives it. Target: <= 5 MB.\n\n\
         | function | build | binary | zip | target |\n| --- | --- | --- | --- | --- |\n",
    );
    let sam = |logical: &str| repo_root().join(".aws-sam/build").join(logical).join("bootstrap");
    let logical = ["PipelineNotifierFunction", "DeployValidatorFunction", "AlarmFanoutFunction"];
    for (function, logical) in FUNCTIONS.iter().zip(logical) {
        for (build, path) in
            [("x86_64 (cargo build --release)", release(function)), ("arm64 (make sam-build)", sam(logical))]
        {
            if !path.exists() {
                continue;
            }
            let binary = std::fs::metadata(&path)?.len();
            let zip = zipped_size(&path)?;
            let _ = writeln!(
                text,
                "| {function} | {build} | {:.1} MB | {:.1} MB | {} |",
                mb(binary),
                mb(zip),
                if zip <= 5_000_000 { "met" } else { "MISSED" }
            );
        }
    }
    Ok(text)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn zipped_size(path: &Path) -> Result<u64, Failure> {
    let script = "import io,sys,zipfile\nb=io.BytesIO()\nwith zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED,compresslevel=9) as z: z.write(sys.argv[1],'bootstrap')\nprint(len(b.getvalue()))";
    let out = Command::new(python()).arg("-c").arg(script).arg(path).output()?;
    if !out.status.success() {
        return Err(format!("zipping {}: {}", path.display(), String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

// ---------------------------------------------------------------------------------------------
// Cold start: spawn -> first GET /runtime/invocation/next, and peak RSS, under a local Runtime API.

struct Candidate {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The event for invocation `run`.
    event: Box<dyn Fn(usize) -> Value>,
}

struct Reading {
    init_ms: f64,
    /// Time the process spent on a CPU until init ended: what the machine's scheduling (a shared
    /// VM's other tenants) does not add to, unlike the wall time.
    init_cpu_ms: f64,
    init_peak_kib: u64,
    peak_kib: u64,
}

async fn cold_start_once(c: &Candidate, run: usize) -> Result<Reading, Failure> {
    let log = repo_root().join(format!("target/bench/logs/cold-start-{}.log", c.name));
    let mut process = LambdaProcess::start(c.name, &c.program, &c.args, &c.env, &log).await?;
    let init = process.init(Duration::from_secs(30)).await?;
    let init_peak_kib = proc_status_kib(process.pid(), "VmHWM").unwrap_or(0);
    let init_cpu_ms = on_cpu_ms(process.pid()).ok_or("no /proc/<pid>/task/*/schedstat to read")?;
    let answer = process.invoke(&format!("cold-{run}"), &(c.event)(run), Duration::from_secs(30)).await?;
    if !answer.ok {
        return Err(format!("{} failed its invocation: {}; its log:\n{}", c.name, answer.body, process.logs()).into());
    }
    let peak_kib = proc_status_kib(process.pid(), "VmHWM").unwrap_or(0);
    Ok(Reading { init_ms: init.as_secs_f64() * 1000.0, init_cpu_ms, init_peak_kib, peak_kib })
}

/// The CPU time of every thread of a process so far (`/proc/<pid>/task/*/schedstat`, whose first
/// field is the time on a CPU in nanoseconds), in milliseconds.
fn on_cpu_ms(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e6)
}

fn sample(name: &str) -> Value {
    pipewarden_devkit::event(name)
}

/// The release binaries copied into a fresh directory of this run's own, as Lambda unpacks a
/// deployment package into `/var/task`, and written to disk: every candidate, the floor included,
/// starts from a file written the same way. Run from `target/release`, a binary the linker had just
/// written started 10-20% slower than the same bytes copied (430-450 page faults against 418,
/// 2026-11-28), which fell on whichever binaries a build had relinked.
fn unpacked(names: &[&str]) -> Result<PathBuf, Failure> {
    let task = repo_root().join(format!("target/bench/task-{}", std::process::id()));
    if task.exists() {
        std::fs::remove_dir_all(&task)?;
    }
    std::fs::create_dir_all(&task)?;
    for name in names {
        std::fs::copy(release(name), task.join(name))
            .map_err(|e| format!("{}: {e} (build the release binaries first)", release(name).display()))?;
        std::fs::File::open(task.join(name))?.sync_all()?;
    }
    Ok(task)
}

async fn cold_start(o: &Options) -> Result<String, Failure> {
    let aws = Emulator::fresh().await;
    let mut env = local::prepare(&aws).await;
    let health = LocalHttp::start(Reply::ok(r#"{"status":"ok"}"#)).await;
    let sink = LocalHttp::start(Reply::ok("ok")).await;
    let rules = std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml"))?;
    let spec = json!({
        "allowedHosts": [format!("http://127.0.0.1:{}", health.port)],
        "checks": [{"name": "health", "type": "http", "url": health.url("/health"),
                    "jsonField": {"pointer": "/status", "equals": "ok"}}]
    });
    env.push(("ROUTING_RULES".into(), rules));
    env.push(("VALIDATION_SPEC".into(), spec.to_string()));
    let hook = sample("codedeploy-hook-before-allow-traffic.json");
    let deployment = hook["DeploymentId"].as_str().unwrap_or_default().to_string();
    aws.deployment_with_id(&deployment, "flask-web-app", "Lambda").await;
    // CodeDeploy accepts a report only for a hook execution it issued: one per cold-start run.
    for run in 0..=o.runs {
        aws.hook_execution(&deployment, &format!("cold-start-hook-{run}"), "BeforeAllowTraffic").await;
    }

    let task = unpacked(&["hello-lambda", "pipeline-notifier", "deploy-validator", "alarm-fanout"])?;
    let mut candidates = vec![Candidate {
        name: "hello-lambda",
        program: task.join("hello-lambda"),
        args: vec![],
        env: vec![],
        event: Box::new(|_| json!({"hello": "world"})),
    }];
    candidates.push(Candidate {
        name: "pipeline-notifier",
        program: task.join("pipeline-notifier"),
        args: vec![],
        env: env.clone(),
        event: Box::new(|run| {
            let mut e = sample("codepipeline-pipeline-failed-v1.json");
            e["detail"]["execution-id"] = json!(format!("cold-start-{run}"));
            e
        }),
    });
    candidates.push(Candidate {
        name: "deploy-validator",
        program: task.join("deploy-validator"),
        args: vec![],
        env: env.clone(),
        event: Box::new(move |run| {
            let mut e = hook.clone();
            e["LifecycleEventHookExecutionId"] = json!(format!("cold-start-hook-{run}"));
            e
        }),
    });
    candidates.push(Candidate {
        name: "alarm-fanout",
        program: task.join("alarm-fanout"),
        args: vec![],
        env: env.clone(),
        event: Box::new(|run| {
            alarm_event(&format!("cold-start-{run}"), &format!("flask-web-app-5xx-{run}"), "ALARM", run)
        }),
    });
    if let Some(peer) = &o.peer {
        let mut peer_env = env.clone();
        peer_env.extend(peer_vars(peer, &sink));
        candidates.push(Candidate {
            name: "python-peer (notify-slack)",
            program: python(),
            args: vec![repo_root().join("bench/python/runtime_loop.py").display().to_string()],
            env: peer_env,
            event: Box::new(|_| sample("sns-classic-alarm-metric.json")),
        });
    }

    for c in &mut candidates {
        c.env.extend(o.env.iter().cloned());
    }
    // A round not counted first: every binary started once from its new file before any is timed.
    for c in &candidates {
        cold_start_once(c, o.runs).await?;
    }
    let mut readings: Vec<Vec<Reading>> = candidates.iter().map(|_| Vec::new()).collect();
    for run in 0..o.runs {
        // Interleaved, so that whatever else the machine does falls on every candidate alike, in
        // an order turned by one each run, so that none always follows the same one.
        for k in 0..candidates.len() {
            let i = (k + run) % candidates.len();
            readings[i].push(cold_start_once(&candidates[i], run).await?);
        }
    }
    std::fs::remove_dir_all(&task)?;
    let floor = Summary::of(&readings[0].iter().map(|r| r.init_ms).collect::<Vec<_>>()).median;
    let cpu_floor = Summary::of(&readings[0].iter().map(|r| r.init_cpu_ms).collect::<Vec<_>>()).median;
    let mut text = format!(
        "## Cold start\n\nSpawn -> first `GET /runtime/invocation/next` (init), and peak RSS (VmHWM) at that moment and \
         after one invocation, under a local Runtime API; each function with its real configuration and SDK \
         clients built at init, against the local emulator. Median (min-max) of {} runs. Targets: init <= 2.0x the \
         hello-world floor, >= 50x faster init than the Python peer, peak RSS <= 12 MB. On-CPU: the process's CPU \
         time until then (all its threads).\n\n\
         | function | init ms | x floor | on-CPU ms at init | x floor | peak RSS at init MB | peak RSS after 1 event MB |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
        o.runs
    );
    let mut peer_init = None;
    for (c, r) in candidates.iter().zip(&readings) {
        let init = Summary::of(&r.iter().map(|r| r.init_ms).collect::<Vec<_>>());
        let cpu = Summary::of(&r.iter().map(|r| r.init_cpu_ms).collect::<Vec<_>>());
        let init_rss = Summary::of(&r.iter().map(|r| r.init_peak_kib as f64 / 1024.0).collect::<Vec<_>>());
        let rss = Summary::of(&r.iter().map(|r| r.peak_kib as f64 / 1024.0).collect::<Vec<_>>());
        if c.name.starts_with("python") {
            peer_init = Some(init.median);
        }
        let _ = writeln!(
            text,
            "| {} | {} | {:.1}x | {} | {:.1}x | {} | {} |",
            c.name,
            init.show(2),
            init.median / floor,
            cpu.show(2),
            cpu.median / cpu_floor,
            init_rss.show(1),
            rss.show(1)
        );
    }
    if let Some(peer) = peer_init {
        text.push('\n');
        for (c, r) in candidates.iter().zip(&readings).filter(|(c, _)| FUNCTIONS.contains(&c.name)) {
            let init = Summary::of(&r.iter().map(|r| r.init_ms).collect::<Vec<_>>()).median;
            let _ = writeln!(text, "- {}: init {:.0}x faster than the Python peer", c.name, peer / init);
        }
    }
    Ok(text)
}

/// The Python peer's variables: its handler in `peer`, its Slack webhook at `sink`.
fn peer_vars(peer: &Path, sink: &LocalHttp) -> Vec<(String, String)> {
    [
        ("LAMBDA_TASK_ROOT", peer.display().to_string()),
        ("_HANDLER", "notify_slack.lambda_handler".to_string()),
        ("SLACK_WEBHOOK_URL", sink.url("/services/T000/B000/XXXX")),
        ("SLACK_CHANNEL", "alerts".to_string()),
        ("SLACK_USERNAME", "notify-slack".to_string()),
        ("SLACK_EMOJI", ":aws:".to_string()),
        ("AWS_DEFAULT_REGION", pipewarden_devkit::REGION.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

/// A CloudWatch alarm state change (EventBridge) for `alarm`, moving into `state`.
fn alarm_event(id: &str, alarm: &str, state: &str, second: usize) -> Value {
    let mut e = sample("cloudwatch-alarm-metric.json");
    let previous = if state == "ALARM" { "OK" } else { "ALARM" };
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-20T17:04:40Z").expect("fixed time")
        + chrono::Duration::seconds(second as i64);
    e["id"] = json!(id);
    e["time"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    e["resources"] = json!([format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}")]);
    e["detail"]["alarmName"] = json!(alarm);
    e["detail"]["state"]["value"] = json!(state);
    e["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    e["detail"]["previousState"]["value"] = json!(previous);
    e
}

// ---------------------------------------------------------------------------------------------
// CPU per event: parse + route + format, in process, against the Python peer on the same events.

/// The SNS-wrapped CloudWatch alarm events: the shapes the Python peer handles.
const PEER_EVENTS: [&str; 3] =
    ["sns-classic-alarm-metric.json", "sns-classic-alarm-composite.json", "sns-classic-alarm-batch.json"];

fn rust_cpu_us_per_event(workload: &Workload, raw: &[Vec<u8>], iterations: usize) -> Result<f64, Failure> {
    let render = |bytes: &[u8]| -> Result<usize, Failure> {
        // As the functions get it: the body as Lambda sent it, checked to be UTF-8
        // (`pipewarden_shared::lambda::Invocation::text`), read once by the handler.
        let text = std::str::from_utf8(bytes)?;
        let rendered = workload.render(text)?;
        Ok(std::hint::black_box(rendered.messages.len()))
    };
    for bytes in raw {
        render(bytes)?; // warm up
    }
    let started = thread_cpu_time();
    for _ in 0..iterations {
        for bytes in raw {
            render(bytes)?;
        }
    }
    let spent = thread_cpu_time() - started;
    Ok(spent.as_secs_f64() * 1e6 / (iterations * raw.len()) as f64)
}

fn cpu(o: &Options) -> Result<String, Failure> {
    let workload = Workload::sample();
    let read = |names: &[String]| -> Result<Vec<Vec<u8>>, Failure> {
        names.iter().map(|n| Ok(std::fs::read(repo_root().join("events").join(n))?)).collect()
    };
    let all: Vec<String> = pipewarden_devkit::all_events().into_iter().map(|(n, _)| n).collect();
    let peer_names: Vec<String> = PEER_EVENTS.iter().map(|n| n.to_string()).collect();
    let (all_raw, peer_raw) = (read(&all)?, read(&peer_names)?);

    let mut rust_all = Vec::new();
    let mut rust_peer_events = Vec::new();
    let mut peer_us = Vec::new();
    // The machine's speed drifts (a shared VM): each run's ratio is the peer against the Rust
    // readings just before and just after it, and the ratios are summarised.
    let mut ratios = Vec::new();
    for _ in 0..o.runs {
        rust_all.push(rust_cpu_us_per_event(&workload, &all_raw, o.iterations)?);
        rust_peer_events.push(rust_cpu_us_per_event(&workload, &peer_raw, o.iterations)?);
        if let Some(peer) = &o.peer {
            let files: Vec<PathBuf> = peer_names.iter().map(|n| repo_root().join("events").join(n)).collect();
            let out = Command::new(python())
                .arg(repo_root().join("bench/python/cpu_peer.py"))
                .arg(peer)
                .arg((o.iterations / 4).max(1).to_string())
                .args(&files)
                .output()?;
            if !out.status.success() {
                return Err(format!("the Python peer failed: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
            let reading: Value = serde_json::from_slice(&out.stdout)?;
            let peer_run = reading["cpu_us_per_event"].as_f64().ok_or("cpu_peer.py printed no cpu_us_per_event")?;
            let after = rust_cpu_us_per_event(&workload, &peer_raw, o.iterations)?;
            let before = *rust_peer_events.last().expect("measured above");
            peer_us.push(peer_run);
            ratios.push(peer_run / ((before + after) / 2.0));
        }
    }
    let steps = cpu_steps(&workload, &peer_raw, o.iterations)?;
    let (rust_all, rust_peer_events) = (Summary::of(&rust_all), Summary::of(&rust_peer_events));
    let mut text = format!(
        "## CPU per event\n\nThread CPU time per event for parse + route + format (every message the event leads to), \
         in process, from the event's JSON bytes. Median (min-max) of {} runs of {} iterations. Target: >= 10x less \
         CPU per event than the Python peer.\n\n| work | events | CPU us per event |\n| --- | --- | --- |\n\
         | Pipewarden, all sample events | {} | {} |\n| Pipewarden, SNS-wrapped alarms | {} | {} |\n",
        o.runs,
        o.iterations,
        all_raw.len(),
        rust_all.show(1),
        peer_raw.len(),
        rust_peer_events.show(1),
    );
    if !peer_us.is_empty() {
        let (python, ratio) = (Summary::of(&peer_us), Summary::of(&ratios));
        let _ = writeln!(
            text,
            "| Python peer (notify-slack), SNS-wrapped alarms | {} | {} |\n\nPipewarden uses {:.1}x ({:.1}-{:.1}) less CPU \
             per event on the same events (median of the runs' ratios, each the peer against the Rust readings just \
             before and after it; the ratio of the medians is {:.1}x).",
            peer_raw.len(),
            python.show(1),
            ratio.median,
            ratio.min,
            ratio.max,
            python.median / rust_peer_events.median
        );
    }
    text.push_str(&steps);
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Fan-out: one alarm to 10 topics versus one, every AWS call slowed by a fixed latency.

type BenchFanout =
    Fanout<SnsPublisher, S3ObjectStore, MemoryAlarmTags, MemoryDeployments, alarm_fanout::timers::NoTimers>;

async fn fanout(o: &Options) -> Result<String, Failure> {
    let aws = Emulator::fresh().await;
    let bucket = "bench-fanout";
    aws.bucket(bucket).await;
    let mut vars = HashMap::new();
    for i in 0..10 {
        let topic = aws.sns().create_topic().name(format!("fan-{i}")).send().await?;
        vars.insert(format!("T{i}"), topic.topic_arn.unwrap_or_default());
    }
    let make = |topics: usize| -> Result<BenchFanout, Failure> {
        let list: Vec<String> = (0..topics).map(|i| format!("$T{i}")).collect();
        let text =
            format!("mode: all-matches\nrules: []\ndefault:\n  severity: critical\n  topics: [{}]\n", list.join(", "));
        Ok(Fanout {
            rules: RuleSet::parse(&text, "bench", &vars)?,
            config: FanoutConfig {
                rules: DocumentSource::Inline { variable: "ROUTING_RULES", text },
                bucket: bucket.to_string(),
                flap_window: chrono::Duration::seconds(900),
                claim_ttl: chrono::Duration::seconds(120),
                deploy_context_max_age: chrono::Duration::seconds(3600),
                alarm_tags_cache: std::time::Duration::from_secs(300),
                silences_prefix: None,
                schedule: None,
            },
            publisher: SnsPublisher::new(aws.sns()),
            store: S3ObjectStore::new(aws.s3(), bucket),
            // The fan-out is measured, not a tag lookup: the events carry their alarms' tags.
            tags: CachedAlarmTags::new(MemoryAlarmTags::default(), std::time::Duration::from_secs(300)),
            silences: Default::default(),
            timers: alarm_fanout::timers::NoTimers,
            // No deployment context is recorded here: nothing to ask CodeDeploy.
            deployments: MemoryDeployments::default(),
        })
    };
    let (one, ten) = (make(1)?, make(10)?);
    for operation in ["GetObject", "PutObject", "Publish", "PublishBatch"] {
        aws.control_post("faults", json!({"operation": operation, "delayMs": o.latency_ms, "count": 1_000_000})).await;
    }
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for run in 0..o.runs {
        for (slot, (label, f)) in [("one", &one), ("ten", &ten)].into_iter().enumerate() {
            let alarm = format!("fanout-{label}-{run}");
            let mut payload = alarm_event(&alarm, &alarm, "ALARM", run);
            payload["detail"]["alarmTagsStatus"] = json!("SUCCESS");
            let started = Instant::now();
            let out = f.handle(payload, &alarm, chrono::Utc::now()).await.map_err(|e| format!("{label}: {e}"))?;
            times[slot].push(started.elapsed().as_secs_f64() * 1000.0);
            let sent = out.to_string().matches("arn:aws:sns").count();
            if sent == 0 {
                return Err(format!("fan-out {label} sent nothing: {out}").into());
            }
        }
    }
    aws.clear_faults().await;
    let (one, ten) = (Summary::of(&times[0]), Summary::of(&times[1]));
    Ok(format!(
        "## Fan-out\n\nOne alarm through alarm-fanout's handler to 1 topic and to 10 topics, against the local emulator \
         with {} ms added to every S3 and SNS call (the invocation also reads and writes the alarm's memory in S3). \
         Median (min-max) of {} runs. Target: 10 topics <= 1.3x one.\n\n| topics | wall ms |\n| --- | --- |\n\
         | 1 | {} |\n| 10 | {} |\n\n10 topics take {:.2}x the time of one.\n",
        o.latency_ms,
        o.runs,
        one.show(0),
        ten.show(0),
        ten.median / one.median
    ))
}

// ---------------------------------------------------------------------------------------------
// Latency and cost per kind of event: the release binaries under the local Runtime API, each AWS
// call made `latency_ms` slower, against no added latency; the requests counted by the emulator.

/// Every AWS operation the three functions make, each delayed alike.
const OPERATIONS: [&str; 15] = [
    "GetObject",
    "PutObject",
    "Publish",
    "PublishBatch",
    "GetPipelineExecution",
    "ListActionExecutions",
    "GetDeployment",
    "ListDeployments",
    "BatchGetDeployments",
    "ListDeploymentTargets",
    "BatchGetDeploymentTargets",
    "DescribeAlarms",
    "ListTagsForResource",
    "PutLifecycleEventHookExecutionStatus",
    "Invoke",
];

/// Prices (US East (N. Virginia), on-demand, without free tiers), as AWS lists them on 2026-11-27.
const LAMBDA_ARM_GB_SECOND: f64 = 0.0000133334;
const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
const S3_PUT: f64 = 0.005 / 1000.0;
const S3_GET: f64 = 0.0004 / 1000.0;
const SNS_PUBLISH: f64 = 0.50 / 1e6;
/// CloudWatch API requests other than GetMetricData and its kind.
const CLOUDWATCH_REQUEST: f64 = 0.01 / 1000.0;
/// The template's MemorySize.
const MEMORY_GB: f64 = 128.0 / 1024.0;

/// What one event costs on AWS: Lambda's billed duration (rounded up to the millisecond) and
/// request, and the priced requests it makes. CodePipeline and CodeDeploy API calls carry no charge.
fn cost_per_event(billed_ms: f64, calls: &BTreeMap<String, u64>) -> f64 {
    let n = |op: &str| calls.get(op).copied().unwrap_or(0) as f64;
    billed_ms.ceil() / 1000.0 * MEMORY_GB * LAMBDA_ARM_GB_SECOND
        + LAMBDA_REQUEST
        + n("PutObject") * S3_PUT
        + (n("GetObject") + n("HeadObject")) * S3_GET
        + (n("Publish") + n("PublishBatch")) * SNS_PUBLISH
        + (n("DescribeAlarms") + n("ListTagsForResource")) * CLOUDWATCH_REQUEST
}

struct Kind {
    label: &'static str,
    function: &'static str,
    program: PathBuf,
    args: Vec<String>,
    /// The peer's Slack webhook, as slow as an AWS call.
    sink: Option<LocalHttp>,
    env: Vec<(String, String)>,
    /// Before the measured event of run `run` (not timed): the state it finds.
    prepare: Vec<Value>,
    event: Value,
}

/// One kind of event, `runs` times at each delay: wall ms per delay, and the requests of one event.
async fn time_kind(
    aws: &Emulator,
    kind: &Kind,
    fresh: &dyn Fn(&Value, usize) -> Value,
    first_run: usize,
    o: &Options,
) -> Result<([Summary; 2], BTreeMap<String, u64>), Failure> {
    let log = repo_root().join(format!("target/bench/logs/latency-{}.log", kind.function));
    let mut process = LambdaProcess::start(kind.function, &kind.program, &kind.args, &kind.env, &log).await?;
    process.init(Duration::from_secs(30)).await?;
    let mut walls: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut calls = BTreeMap::new();
    // Runs are numbered apart per kind: no kind finds another's alarm, execution or hook.
    let mut run = first_run;
    for (slot, delay) in [0, o.latency_ms].into_iter().enumerate() {
        aws.clear_faults().await;
        if let Some(sink) = &kind.sink {
            sink.set_reply(Reply { delay: Duration::from_millis(delay), ..Reply::ok("ok") });
        }
        if delay > 0 {
            for operation in OPERATIONS {
                aws.control_post("faults", json!({"operation": operation, "delayMs": delay, "count": 1_000_000})).await;
            }
        }
        // One unmeasured event first: connections open, caches warm, as on a warm instance.
        for _ in 0..=o.runs {
            run += 1;
            if kind.function == "deploy-validator" {
                // CodeDeploy accepts a report only for a hook execution it issued.
                let id = format!("d-LATENCY{run}");
                aws.deployment_with_id(&id, "flask-web-app", "Lambda").await;
                aws.hook_execution(&id, &format!("hook-latency-{run}"), "BeforeAllowTraffic").await;
            }
            for (i, before) in kind.prepare.iter().enumerate() {
                let answer =
                    process.invoke(&format!("prepare-{run}-{i}"), &fresh(before, run), Duration::from_secs(30)).await?;
                if !answer.ok {
                    return Err(format!("{}: {}\n{}", kind.label, answer.body, process.logs()).into());
                }
            }
            let before = aws.calls().await;
            let sent = Instant::now();
            let answer =
                process.invoke(&format!("measured-{run}"), &fresh(&kind.event, run), Duration::from_secs(30)).await?;
            let wall = (answer.at - sent).as_secs_f64() * 1000.0;
            if !answer.ok {
                return Err(format!("{}: {}\n{}", kind.label, answer.body, process.logs()).into());
            }
            let after = aws.calls().await;
            calls = after
                .into_iter()
                .filter_map(|(op, n)| {
                    Some((op.clone(), n - before.get(&op).copied().unwrap_or(0))).filter(|(_, n)| *n > 0)
                })
                .collect();
            if (run - first_run) % (o.runs + 1) != 1 {
                walls[slot].push(wall);
            }
        }
    }
    aws.clear_faults().await;
    Ok(([Summary::of(&walls[0]), Summary::of(&walls[1])], calls))
}

async fn latency(o: &Options) -> Result<String, Failure> {
    let aws = Emulator::fresh().await;
    let env = local::prepare(&aws).await;
    let mut topics = Vec::new();
    for i in 0..10 {
        topics.push(aws.topic_with_subscriber(&format!("bench-latency-{i}")).await.topic_arn);
    }
    let routed = |n: usize| {
        let mut env = env.clone();
        let names: Vec<String> = (0..n).map(|i| format!("$BENCH_TOPIC_{i}")).collect();
        env.push((
            "ROUTING_RULES".to_string(),
            format!("mode: all-matches\nrules: []\ndefault:\n  severity: critical\n  topics: [{}]\n", names.join(", ")),
        ));
        env.extend(topics.iter().enumerate().map(|(i, arn)| (format!("BENCH_TOPIC_{i}"), arn.clone())));
        env
    };
    let mut validator_env = env.clone();
    validator_env.push((
        "VALIDATION_SPEC".to_string(),
        "checks: [{name: no-alarms, type: alarms, alarmNames: [flask-web-app-5xx]}]".to_string(),
    ));
    let execution = |name: &str| sample(name);
    let kinds = [
        Kind {
            label: "alarm transition to 1 topic",
            function: "alarm-fanout",
            program: release("alarm-fanout"),
            args: vec![],
            sink: None,
            env: routed(1),
            prepare: vec![alarm_event("prepare", "latency-alarm", "ALARM", 0)],
            event: alarm_event("measured", "latency-alarm", "OK", 1),
        },
        Kind {
            label: "alarm transition to 10 topics",
            function: "alarm-fanout",
            program: release("alarm-fanout"),
            args: vec![],
            sink: None,
            env: routed(10),
            prepare: vec![alarm_event("prepare", "latency-alarm", "ALARM", 0)],
            event: alarm_event("measured", "latency-alarm", "OK", 1),
        },
        Kind {
            label: "pipeline event that only records (a stage FAILED, not notified)",
            function: "pipeline-notifier",
            program: release("pipeline-notifier"),
            args: vec![],
            sink: None,
            env: env.clone(),
            prepare: vec![execution("codepipeline-pipeline-started-v2.json")],
            event: execution("codepipeline-stage-build-failed.json"),
        },
        Kind {
            label: "pipeline outcome that notifies (the pipeline's FAILED, 1 topic)",
            function: "pipeline-notifier",
            program: release("pipeline-notifier"),
            args: vec![],
            sink: None,
            env: env.clone(),
            prepare: vec![execution("codepipeline-pipeline-started-v2.json")],
            event: execution("codepipeline-pipeline-failed-v1.json"),
        },
        Kind {
            label: "hook (a Lambda deployment, one alarm check, Succeeded)",
            function: "deploy-validator",
            program: release("deploy-validator"),
            args: vec![],
            sink: None,
            env: validator_env,
            prepare: vec![],
            event: json!({"DeploymentId": "d-LATENCY", "LifecycleEventHookExecutionId": "hook-latency"}),
        },
    ];
    let mut kinds = Vec::from(kinds);
    if let Some(peer) = &o.peer {
        let sink = LocalHttp::start(Reply::ok("ok")).await;
        let mut peer_env = env.clone();
        peer_env.extend(peer_vars(peer, &sink));
        kinds.push(Kind {
            label: "Python peer (notify-slack): an SNS-wrapped alarm to its Slack webhook",
            function: "python-peer",
            program: python(),
            args: vec![repo_root().join("bench/python/runtime_loop.py").display().to_string()],
            sink: Some(sink),
            env: peer_env,
            prepare: vec![],
            event: sample("sns-classic-alarm-metric.json"),
        });
    }
    // Each run its own alarm, execution or hook, so that every measured event finds the same state.
    let fresh = |e: &Value, run: usize| -> Value {
        let mut e = e.clone();
        if e.get("Records").is_some() {
            // The peer keeps nothing between events.
        } else if e.get("LifecycleEventHookExecutionId").is_some() {
            e["DeploymentId"] = json!(format!("d-LATENCY{run}"));
            e["LifecycleEventHookExecutionId"] = json!(format!("hook-latency-{run}"));
        } else if e["source"] == "aws.cloudwatch" {
            let alarm = format!("latency-alarm-{run}");
            e["detail"]["alarmName"] = json!(alarm);
            e["resources"] =
                json!([format!("arn:aws:cloudwatch:us-east-1:{}:alarm:{alarm}", pipewarden_devkit::ACCOUNT)]);
            e["detail"]["alarmTagsStatus"] = json!("SUCCESS");
        } else {
            e["detail"]["pipeline"] = json!("flask-web-app-legacy");
            e["detail"]["execution-id"] = json!(format!("latency-{run}"));
        }
        e
    };
    let mut rows = Vec::new();
    for (index, kind) in kinds.iter().enumerate() {
        let (walls, calls) = time_kind(&aws, kind, &fresh, index * 1000, o).await?;
        rows.push((kind.label, walls, calls));
    }

    let d = o.latency_ms as f64;
    let mut text = format!(
        "## Latency and cost per event\n\nEach kind of event through its release binary under the local Runtime API \
         (invoke -> answer), warm, against the local emulator with no added latency and with {} ms added to every AWS \
         call (what a same-region call costs). Median (min-max) of {} runs. The critical path is measured: the extra \
         time divided by the delay is the number of requests that wait on each other.\n\n\
         | event | requests | wall ms, no delay | wall ms, {} ms per call | requests in sequence (measured) |\n\
         | --- | --- | --- | --- | --- |\n",
        o.latency_ms, o.runs, o.latency_ms
    );
    for (label, walls, calls) in &rows {
        let all: u64 = calls.values().sum();
        let list: Vec<String> = calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        let _ = writeln!(
            text,
            "| {label} | {all}: {} | {} | {} | {:.1} |",
            list.join(", "),
            walls[0].show(1),
            walls[1].show(1),
            (walls[1].median - walls[0].median) / d
        );
    }
    let _ = write!(
        text,
        "\n### Cost per million events\n\nOn AWS prices of 2026-11-27 (US East (N. Virginia), on-demand, no free tier): \
         Lambda arm64 ${LAMBDA_ARM_GB_SECOND}/GB-s at the template's 128 MB, $0.20 per million requests; S3 PUT \
         $0.005 and GET $0.0004 per 1,000; SNS publish $0.50 per million; CloudWatch API requests $0.01 per \
         1,000; CodePipeline and CodeDeploy API calls free. The billed duration is the wall time with {} ms per \
         AWS call, rounded up to the millisecond.\n\n\
         | event | billed ms | Lambda $ | requests $ | total $ per million |\n| --- | --- | --- | --- | --- |\n",
        o.latency_ms
    );
    for (label, walls, calls) in &rows {
        let total = cost_per_event(walls[1].median, calls) * 1e6;
        let lambda = cost_per_event(walls[1].median, &BTreeMap::new()) * 1e6;
        let _ = writeln!(
            text,
            "| {label} | {:.0} | {lambda:.2} | {:.2} | {total:.2} |",
            walls[1].median.ceil(),
            total - lambda
        );
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Concurrency: several alarm-fanout instances at once on the same alarms, as Lambda scales out
// under a burst; every event delivered twice (EventBridge delivers at least once), a failed
// invocation retried as Lambda retries an asynchronous event (twice).

struct BurstRun {
    instances: usize,
    seconds: f64,
    attempts: usize,
    retried: usize,
    lost: usize,
    latencies: Vec<f64>,
    messages: usize,
    distinct: usize,
}

async fn burst_once(instances: usize, events: usize, latency_ms: u64) -> Result<BurstRun, Failure> {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    let aws = Emulator::fresh().await;
    let mut env = local::prepare(&aws).await;
    let subscribed = aws.topic_with_subscriber("bench-burst").await;
    env.push(("BENCH_TOPIC".into(), subscribed.topic_arn.clone()));
    env.push((
        "ROUTING_RULES".into(),
        "mode: all-matches\nrules: []\ndefault:\n  severity: critical\n  topics: [$BENCH_TOPIC]\n".into(),
    ));
    // 10 alarms, each flipping every 10 events: each event a real transition of its alarm.
    let mut deliveries = VecDeque::new();
    for i in 0..events {
        let state = if (i / 10) % 2 == 0 { "ALARM" } else { "OK" };
        let mut event = alarm_event(&format!("burst-{i}"), &format!("burst-alarm-{}", i % 10), state, i);
        event["detail"]["alarmTagsStatus"] = json!("SUCCESS");
        deliveries.push_back((event.clone(), 0u32));
        deliveries.push_back((event, 0u32));
    }
    let queue = Arc::new(Mutex::new(deliveries));
    for operation in OPERATIONS {
        aws.control_post("faults", json!({"operation": operation, "delayMs": latency_ms, "count": 1_000_000})).await;
    }
    let mut processes = Vec::new();
    for k in 0..instances {
        let log = repo_root().join(format!("target/bench/logs/burst-{instances}-{k}.log"));
        let process = LambdaProcess::start("alarm-fanout", &release("alarm-fanout"), &[], &env, &log).await?;
        process.init(Duration::from_secs(30)).await?;
        processes.push(process);
    }
    let started = Instant::now();
    let mut workers = Vec::new();
    for (k, mut process) in processes.into_iter().enumerate() {
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let (mut attempts, mut retried, mut lost, mut latencies) = (0usize, 0usize, 0usize, Vec::new());
            let mut n = 0;
            loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((event, attempt)) = next else { break };
                n += 1;
                let sent = Instant::now();
                let answer = match process.invoke(&format!("burst-{k}-{n}"), &event, Duration::from_secs(30)).await {
                    Ok(answer) => answer,
                    Err(e) => return Err(e),
                };
                attempts += 1;
                latencies.push((answer.at - sent).as_secs_f64() * 1000.0);
                if !answer.ok {
                    if attempt < 2 {
                        retried += 1;
                        queue.lock().unwrap().push_back((event, attempt + 1));
                    } else {
                        lost += 1;
                        eprintln!("burst: an event failed its last retry: {}", answer.body);
                    }
                }
            }
            Ok::<_, String>((attempts, retried, lost, latencies))
        }));
    }
    let mut run = BurstRun {
        instances,
        seconds: 0.0,
        attempts: 0,
        retried: 0,
        lost: 0,
        latencies: Vec::new(),
        messages: 0,
        distinct: 0,
    };
    for worker in workers {
        let (attempts, retried, lost, latencies) = worker.await??;
        run.attempts += attempts;
        run.retried += retried;
        run.lost += lost;
        run.latencies.extend(latencies);
    }
    run.seconds = started.elapsed().as_secs_f64();
    let received = aws.received(&subscribed).await;
    run.messages = received.len();
    let mut bodies: Vec<&str> = received.iter().map(|n| n.message.as_str()).collect();
    bodies.sort_unstable();
    bodies.dedup();
    run.distinct = bodies.len();
    Ok(run)
}

async fn concurrency(o: &Options) -> Result<String, Failure> {
    let events = o.burst_events;
    let mut text = format!(
        "## Concurrency\n\n{events} alarm transitions (10 alarms, each flipping every 10 events), every event delivered \
         twice back to back (EventBridge delivers at least once), through N release alarm-fanout instances under local \
         Runtime APIs taking deliveries from one queue at once, as Lambda scales out under a burst; a failed invocation \
         goes back to the end of the queue, twice at most, as Lambda retries an asynchronous event. One topic, \
         subscribed by an SQS queue that is read at the end. A fresh emulator per row, {} ms added to every AWS call \
         (the functions wait on AWS as on Lambda, and the emulator serves those waits at once).\n\n\
         | instances | deliveries | invocations | retried | lost | messages | distinct messages | duplicates | throughput | latency ms median (min-max) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        o.latency_ms
    );
    for instances in [1, 2, 4, 8] {
        let run = burst_once(instances, events, o.latency_ms).await?;
        let latency = Summary::of(&run.latencies);
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} deliveries/s | {} |",
            run.instances,
            events * 2,
            run.attempts,
            run.retried,
            run.lost,
            run.messages,
            run.distinct,
            run.messages - run.distinct,
            (events * 2) as f64 / run.seconds,
            latency.show(1)
        );
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Load: N alarm events through alarm-fanout's runtime loop against the emulator.

async fn load(o: &Options) -> Result<String, Failure> {
    let aws = Emulator::fresh().await;
    let mut env = local::prepare(&aws).await;
    env.push(("ROUTING_RULES".into(), std::fs::read_to_string(repo_root().join("examples/routing-rules.yaml"))?));
    let log = repo_root().join("target/bench/logs/load-alarm-fanout.log");
    let mut process = LambdaProcess::start("alarm-fanout", &release("alarm-fanout"), &[], &env, &log).await?;
    let pid = process.pid();
    process.init(Duration::from_secs(30)).await?;
    let n = o.load_events;
    let warm = (n / 10).max(1);
    let (mut errors, mut latencies, mut rss_after_warmup) = (0usize, Vec::with_capacity(n), 0u64);
    let started = Instant::now();
    for i in 0..n {
        // 100 alarms, each flipping between ALARM and OK every 100 events: every event is a
        // real transition that is routed, remembered and published.
        let state = if (i / 100) % 2 == 0 { "ALARM" } else { "OK" };
        let name = format!("flask-web-app-{}", i % 100);
        let payload = alarm_event(&format!("load-{i}"), &name, state, i);
        let sent = Instant::now();
        let answer = process.invoke(&format!("load-{i}"), &payload, Duration::from_secs(30)).await?;
        latencies.push((answer.at - sent).as_secs_f64() * 1000.0);
        if !answer.ok {
            errors += 1;
            eprintln!("event {i} failed: {}", answer.body);
        }
        if i + 1 == warm {
            rss_after_warmup = proc_status_kib(pid, "VmRSS").unwrap_or(0);
        }
    }
    let elapsed = started.elapsed();
    let rss_end = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let peak = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    let latency = Summary::of(&latencies);
    latencies.sort_by(|a, b| a.total_cmp(b));
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let growth = (rss_end as f64 - rss_after_warmup as f64) * 1024.0 / (n - warm).max(1) as f64;
    Ok(format!(
            "## Load\n\n{n} CloudWatch alarm state changes (100 alarms flipping between ALARM and OK, each event routed, \
             remembered in S3 and published) through the release alarm-fanout under the local Runtime API, one at a \
             time as one Lambda instance takes them, against the local emulator (moto, which dominates the time).\n\n\
             | events | errors | throughput | latency ms median (min-max) | p99 ms | RSS after {warm} events | RSS at end | peak RSS | growth per event |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
             | {n} | {errors} | {:.0} events/s | {} | {:.1} | {:.1} MB | {:.1} MB | {:.1} MB | {:.1} bytes |\n",
            n as f64 / elapsed.as_secs_f64(),
            latency.show(1),
            p99,
            rss_after_warmup as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            peak as f64 / 1024.0,
            growth,
        ))
}

// ---------------------------------------------------------------------------------------------
// An alarm storm: 500 transitions over 50 alarms in one minute, without and with grouping.

type StormFanout =
    Fanout<SnsPublisher, S3ObjectStore, MemoryAlarmTags, MemoryDeployments, alarm_fanout::timers::MemoryTimers>;

/// One storm through the handler against the emulator, each event its own invocation (as
/// EventBridge delivers them), `latency_ms` added to every S3 and SNS call; with grouping, the
/// bench plays the scheduler: each flush timer is invoked at its time (simulated: no waiting).
/// Messages, requests, and when the first message went (wall time for the work, plus the
/// simulated wait for a group's timer).
async fn storm_once(grouped: bool, latency_ms: u64) -> Result<Vec<String>, Failure> {
    let aws = Emulator::fresh().await;
    let bucket = "bench-storm";
    aws.bucket(bucket).await;
    let topic = aws.topic_with_subscriber("storm").await;
    let vars = HashMap::from([("T".to_string(), topic.topic_arn.clone())]);
    let grouping = if grouped { "  groupBy: [application]\n  groupWait: 30s\n  groupInterval: 5m\n" } else { "" };
    let text = format!(
        "mode: first-match\nrules: []\ndefault:\n  severity: critical\n  application: flask-web-app\n  topics: [$T]\n{grouping}"
    );
    let fanout: StormFanout = Fanout {
        rules: RuleSet::parse(&text, "bench", &vars)?,
        config: FanoutConfig {
            rules: DocumentSource::Inline { variable: "ROUTING_RULES", text: text.clone() },
            bucket: bucket.to_string(),
            flap_window: chrono::Duration::seconds(900),
            claim_ttl: chrono::Duration::seconds(120),
            deploy_context_max_age: chrono::Duration::seconds(3600),
            alarm_tags_cache: std::time::Duration::from_secs(300),
            silences_prefix: None,
            schedule: Some(("bench".into(), "arn:aws:iam::123456789012:role/bench".into())),
        },
        publisher: SnsPublisher::new(aws.sns()),
        store: S3ObjectStore::new(aws.s3(), bucket),
        tags: CachedAlarmTags::new(MemoryAlarmTags::default(), std::time::Duration::from_secs(300)),
        silences: Default::default(),
        timers: alarm_fanout::timers::MemoryTimers::default(),
        deployments: MemoryDeployments::default(),
    };
    for operation in ["GetObject", "PutObject", "Publish", "PublishBatch"] {
        aws.control_post("faults", json!({"operation": operation, "delayMs": latency_ms, "count": 1_000_000})).await;
    }
    let before = aws.calls().await;
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T17:04:40Z")?.with_timezone(&chrono::Utc);
    let started = Instant::now();
    let mut first: Option<f64> = None;
    // Alarm k's j-th transition (ALARM, OK, ALARM, ...) at 6 j seconds: 500 in a minute.
    for j in 0..10 {
        for k in 0..50 {
            let state = if j % 2 == 0 { "ALARM" } else { "OK" };
            let mut payload = alarm_event(&format!("storm-{k}-{j}"), &format!("storm-{k}"), state, j * 6);
            payload["detail"]["alarmTagsStatus"] = json!("SUCCESS");
            let now = start + chrono::Duration::seconds(j as i64 * 6);
            fanout.handle(payload.to_string().as_str(), &format!("s{k}-{j}"), now).await?;
            if first.is_none() && !grouped {
                first = Some(started.elapsed().as_secs_f64());
            }
        }
    }
    let storm_s = started.elapsed().as_secs_f64();
    // The scheduler: every flush timer at its time, until none is left.
    let mut fired = std::collections::BTreeSet::new();
    loop {
        let mut due: Vec<alarm_fanout::timers::Timer> =
            fanout.timers.all().into_iter().filter(|t| !fired.contains(&t.name)).collect();
        if due.is_empty() {
            break;
        }
        due.sort_by_key(|t| t.at);
        let timer = due.remove(0);
        fired.insert(timer.name.clone());
        let work = Instant::now();
        fanout.handle(timer.input().as_str(), &timer.name, timer.at).await?;
        if first.is_none() {
            // The wait for the first flush (simulated) and the flush's own work.
            first = Some((timer.at - start).num_milliseconds() as f64 / 1000.0 + work.elapsed().as_secs_f64());
        }
    }
    let after = aws.calls().await;
    let count = |ops: &[&str]| -> u64 {
        ops.iter().map(|op| after.get(*op).copied().unwrap_or(0) - before.get(*op).copied().unwrap_or(0)).sum()
    };
    let messages = aws.received(&topic).await.len();
    Ok(vec![
        if grouped { "groupBy [application], 30s, 5m".to_string() } else { "no grouping".to_string() },
        messages.to_string(),
        count(&["GetObject", "PutObject", "HeadObject"]).to_string(),
        count(&["Publish", "PublishBatch"]).to_string(),
        fanout.timers.all().len().to_string(),
        format!("{:.2} s", first.unwrap_or(f64::NAN)),
        format!("{storm_s:.1} s"),
    ])
}

async fn storm(o: &Options) -> Result<String, Failure> {
    let mut out = format!(
        "## Alarm storm\n\n500 transitions over 50 alarms in one minute (each alarm ALARM, OK, ... ten times, 6 s apart), each \
         event its own invocation through `Fanout::handle` against the emulator, {} ms added to every S3 and SNS call; with \
         grouping the bench invokes each flush timer at its time (the wait simulated, not slept).\n\n\
         | routes | messages | S3 requests | SNS requests | timers set | first message after | 500 events took |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
        o.latency_ms
    );
    for grouped in [false, true] {
        let row = storm_once(grouped, o.latency_ms).await?;
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    Ok(out)
}

/// Where the CPU per event goes on the SNS-wrapped alarms, step by step as alarm-fanout takes
/// them (each step timed alone over the previous step's output), beside the whole render: a
/// Markdown table. The typed parse is timed with the classification it needs, less that.
fn cpu_steps(workload: &Workload, raw: &[Vec<u8>], iterations: usize) -> Result<String, Failure> {
    use pipewarden_shared::events::Document;
    let t = |f: &mut dyn FnMut()| {
        f(); // warm up
        let s = thread_cpu_time();
        for _ in 0..iterations {
            f()
        }
        (thread_cpu_time() - s).as_secs_f64() * 1e6 / (iterations * raw.len()) as f64
    };
    let raws: Vec<&str> = raw.iter().map(|b| std::str::from_utf8(b).unwrap()).collect();
    let a = t(&mut || {
        for b in raw {
            std::hint::black_box(std::str::from_utf8(std::hint::black_box(b)).is_ok());
        }
    });
    let b = t(&mut || {
        for r in &raws {
            std::hint::black_box(r.classify());
        }
    });
    let c = t(&mut || {
        for r in &raws {
            let (s, sns) = r.classify();
            std::hint::black_box(alarm_fanout::handler::transitions_of(*r, s, sns).unwrap());
        }
    });
    let alarms: Vec<_> = raws.iter().flat_map(|r| alarm_fanout::handler::read_transitions(*r).unwrap().0).collect();
    let d = t(&mut || {
        for al in &alarms {
            let targets = workload.rules.targets(al);
            let mut m = alarm_fanout::memory::AlarmMemory { subject: al.subject(), ..Default::default() };
            std::hint::black_box(m.plan(
                al,
                &targets,
                "bench",
                chrono::Utc::now(),
                chrono::Duration::minutes(15),
                chrono::Duration::seconds(120),
            ));
        }
    });
    let targets: Vec<_> = alarms.iter().map(|al| workload.rules.targets(al)).collect();
    let e = t(&mut || {
        for (al, ts) in alarms.iter().zip(&targets) {
            for tg in ts {
                std::hint::black_box(alarm_fanout::format::message(al, tg, None));
            }
        }
    });
    let whole = rust_cpu_us_per_event(workload, raw, iterations)?;
    Ok(format!(
        "\nWhere it goes, per event (the {} events carry {} alarms and route them to {} targets; one run):\n\n\
         | step | CPU us per event |\n| --- | --- |\n\
         | the body's UTF-8 check | {a:.2} |\n\
         | the shape, and the SNS records (their messages unescaped) | {b:.2} |\n\
         | the alarm messages' typed parse into transitions | {:.2} |\n\
         | routing and the exactly-once plan, over a fresh in-memory memory (no S3 document read or written) | {d:.2} |\n\
         | formatting every message (text, subject, attributes) | {e:.2} |\n\
         | the steps together | {:.2} |\n\
         | the whole render, timed in one (dropping what it made included) | {whole:.2} |\n",
        raw.len(),
        alarms.len(),
        targets.iter().map(|t| t.len()).sum::<usize>(),
        c - b,
        a + c + d + e,
    ))
}
