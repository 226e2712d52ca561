//! pipewarden-bench: the benchmark suite behind BENCHMARKS.md. A benchmark, never a test: it
//! measures and prints, and fails only when something it runs fails.
//!
//! Usage: pipewarden-bench [--runs N] [--peer DIR] [--load-events N] [--latency-ms N]
//!                         [--iterations N] [--bin-dir DIR] [--env NAME=VALUE]... [SECTION...]
//! Sections: cold-start, cpu, fanout, load, size (all when none is given).
//!
//! Binaries are taken from target/release (scripts/bench.sh builds them) or `--bin-dir`; `--peer` is a
//! folder holding the Python peer's `notify_slack.py`. Results are printed as Markdown and also
//! written to target/bench/results.md.

use std::collections::HashMap;
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
            "--latency-ms" => o.latency_ms = value()?.parse()?,
            "--iterations" => o.iterations = value()?.parse()?,
            "--bin-dir" => o.bin_dir = PathBuf::from(value()?),
            "--env" => {
                let pair = value()?;
                let (k, v) = pair.split_once('=').ok_or("--env takes NAME=VALUE")?;
                o.env.push((k.to_string(), v.to_string()));
            }
            "cold-start" | "cpu" | "fanout" | "load" | "size" => o.sections.push(arg),
            other => {
                return Err(
                    format!("unknown argument {other:?}; see the usage in bench/src/bin/pipewarden-bench.rs").into()
                )
            }
        }
    }
    if o.sections.is_empty() {
        o.sections = ["size", "cold-start", "cpu", "fanout", "load"].map(String::from).to_vec();
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
            "load" => load(&o).await?,
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
    init_peak_kib: u64,
    peak_kib: u64,
}

async fn cold_start_once(c: &Candidate, run: usize) -> Result<Reading, Failure> {
    let log = repo_root().join(format!("target/bench/logs/cold-start-{}.log", c.name));
    let mut process = LambdaProcess::start(c.name, &c.program, &c.args, &c.env, &log).await?;
    let init = process.init(Duration::from_secs(30)).await?;
    let init_peak_kib = proc_status_kib(process.pid(), "VmHWM").unwrap_or(0);
    let answer = process.invoke(&format!("cold-{run}"), &(c.event)(run), Duration::from_secs(30)).await?;
    if !answer.ok {
        return Err(format!("{} failed its invocation: {}; its log:\n{}", c.name, answer.body, process.logs()).into());
    }
    let peak_kib = proc_status_kib(process.pid(), "VmHWM").unwrap_or(0);
    Ok(Reading { init_ms: init.as_secs_f64() * 1000.0, init_peak_kib, peak_kib })
}

fn sample(name: &str) -> Value {
    pipewarden_devkit::event(name)
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
    for run in 0..o.runs {
        aws.hook_execution(&deployment, &format!("cold-start-hook-{run}"), "BeforeAllowTraffic").await;
    }

    let mut candidates = vec![Candidate {
        name: "hello-lambda",
        program: release("hello-lambda"),
        args: vec![],
        env: vec![],
        event: Box::new(|_| json!({"hello": "world"})),
    }];
    candidates.push(Candidate {
        name: "pipeline-notifier",
        program: release("pipeline-notifier"),
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
        program: release("deploy-validator"),
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
        program: release("alarm-fanout"),
        args: vec![],
        env: env.clone(),
        event: Box::new(|run| {
            alarm_event(&format!("cold-start-{run}"), &format!("flask-web-app-5xx-{run}"), "ALARM", run)
        }),
    });
    if let Some(peer) = &o.peer {
        let mut peer_env = env.clone();
        peer_env.extend(
            [
                ("LAMBDA_TASK_ROOT", peer.display().to_string()),
                ("_HANDLER", "notify_slack.lambda_handler".to_string()),
                ("SLACK_WEBHOOK_URL", sink.url("/services/T000/B000/XXXX")),
                ("SLACK_CHANNEL", "alerts".to_string()),
                ("SLACK_USERNAME", "notify-slack".to_string()),
                ("SLACK_EMOJI", ":aws:".to_string()),
                ("AWS_DEFAULT_REGION", pipewarden_devkit::REGION.to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
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
    let mut readings: Vec<Vec<Reading>> = candidates.iter().map(|_| Vec::new()).collect();
    for run in 0..o.runs {
        // Interleaved, so that whatever else the machine does falls on every candidate alike.
        for (i, c) in candidates.iter().enumerate() {
            readings[i].push(cold_start_once(c, run).await?);
        }
    }
    let floor = Summary::of(&readings[0].iter().map(|r| r.init_ms).collect::<Vec<_>>()).median;
    let mut text = format!(
        "## Cold start\n\nSpawn -> first `GET /runtime/invocation/next` (init), and peak RSS (VmHWM) at that moment and \
         after one invocation, under a local Runtime API; each function with its real configuration and SDK \
         clients built at init, against the local emulator. Median (min-max) of {} runs. Targets: init <= 2.0x the \
         hello-world floor, >= 50x faster init than the Python peer, peak RSS <= 12 MB.\n\n\
         | function | init ms | x floor | peak RSS at init MB | peak RSS after 1 event MB |\n| --- | --- | --- | --- | --- |\n",
        o.runs
    );
    let mut peer_init = None;
    for (c, r) in candidates.iter().zip(&readings) {
        let init = Summary::of(&r.iter().map(|r| r.init_ms).collect::<Vec<_>>());
        let init_rss = Summary::of(&r.iter().map(|r| r.init_peak_kib as f64 / 1024.0).collect::<Vec<_>>());
        let rss = Summary::of(&r.iter().map(|r| r.peak_kib as f64 / 1024.0).collect::<Vec<_>>());
        if c.name.starts_with("python") {
            peer_init = Some(init.median);
        }
        let _ = writeln!(
            text,
            "| {} | {} | {:.1}x | {} | {} |",
            c.name,
            init.show(2),
            init.median / floor,
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
        let payload: Value = serde_json::from_slice(bytes)?;
        let rendered = workload.render(payload)?;
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
            peer_us.push(reading["cpu_us_per_event"].as_f64().ok_or("cpu_peer.py printed no cpu_us_per_event")?);
        }
    }
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
        let python = Summary::of(&peer_us);
        let _ = writeln!(
            text,
            "| Python peer (notify-slack), SNS-wrapped alarms | {} | {} |\n\nPipewarden uses {:.0}x less CPU per event on the same events.",
            peer_raw.len(),
            python.show(1),
            python.median / rust_peer_events.median
        );
    }
    Ok(text)
}

// ---------------------------------------------------------------------------------------------
// Fan-out: one alarm to 10 topics versus one, every AWS call slowed by a fixed latency.

type BenchFanout = Fanout<SnsPublisher, S3ObjectStore, MemoryAlarmTags, MemoryDeployments>;

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
            },
            publisher: SnsPublisher::new(aws.sns()),
            store: S3ObjectStore::new(aws.s3(), bucket),
            // The fan-out is measured, not a tag lookup: the events carry their alarms' tags.
            tags: CachedAlarmTags::new(MemoryAlarmTags::default(), std::time::Duration::from_secs(300)),
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
