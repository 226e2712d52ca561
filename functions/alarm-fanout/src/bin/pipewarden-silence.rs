//! pipewarden-silence: silences for alarm-fanout, kept in the audit bucket (`config/silences/`).
//!
//! pipewarden-silence add --comment TEXT (--for 2h | --until TIME) [--start TIME] [--author NAME]
//!                        [--id ID] MATCHER...
//! pipewarden-silence list [--all]
//! pipewarden-silence expire ID
//!
//! MATCHER: label=value, label!=value, label=~regex, label!~regex, label^=prefix, label*=glob.
//! The bucket is `--bucket` or `AUDIT_BUCKET`; AWS credentials as the AWS CLI finds them (the
//! bucket policy lets only the stack's ConfigWriterArn write there). Exit status: 0 done, 1 AWS
//! refused or failed, 2 the arguments are wrong.

use std::process::ExitCode;

use alarm_fanout::silences::{self, Silence, PREFIX};
use chrono::{DateTime, Utc};
use pipewarden_shared::adapters::S3ObjectStore;
use pipewarden_shared::config::ProcessEnv;
use pipewarden_shared::ports::{ObjectStore, PutOutcome, WriteCondition};

enum End {
    At(DateTime<Utc>),
    After(chrono::Duration),
}

enum Command {
    Add(Silence),
    List { all: bool },
    Expire(String),
}

fn parse(args: Vec<String>, now: DateTime<Utc>) -> Result<(Option<String>, Command), String> {
    let mut args = args.into_iter();
    let verb = args.next().ok_or("add, list or expire")?;
    let (mut bucket, mut comment, mut author, mut id) = (None, None, std::env::var("USER").ok(), None);
    let (mut start, mut end, mut all) = (now, None, false);
    let mut rest = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let time = |text: String| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{text:?} is not a time such as 2026-11-27T22:00:00Z: {e}"))
        };
        match arg.as_str() {
            "--bucket" => bucket = Some(value("--bucket")?),
            "--comment" => comment = Some(value("--comment")?),
            "--author" => author = Some(value("--author")?),
            "--id" => id = Some(value("--id")?),
            "--start" => start = time(value("--start")?)?,
            "--until" => end = Some(End::At(time(value("--until")?)?)),
            "--for" => end = Some(End::After(silences::parse_duration(&value("--for")?)?)),
            "--all" => all = true,
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ => rest.push(arg),
        }
    }
    let command = match verb.as_str() {
        "add" => {
            let matchers = rest.iter().map(|m| silences::parse_matcher(m)).collect::<Result<Vec<_>, _>>()?;
            // `--for` counts from now, or from --start when it is later.
            let ends_at = match end.ok_or("add needs --for or --until")? {
                End::At(at) => at,
                End::After(length) => start.max(now) + length,
            };
            let silence = Silence {
                id: id.unwrap_or_else(|| {
                    format!("s-{}-{:04x}", now.format("%Y%m%d%H%M%S"), now.timestamp_subsec_micros() & 0xffff)
                }),
                matchers,
                starts_at: start,
                ends_at,
                created_by: author.ok_or("add needs --author (or USER)")?,
                comment: comment.ok_or("add needs --comment")?,
            };
            Command::Add(silence.clone().check().map(|_| silence)?)
        }
        "list" => Command::List { all },
        "expire" => Command::Expire(rest.first().cloned().ok_or("expire needs the silence's id")?),
        other => return Err(format!("{other:?} is not add, list or expire")),
    };
    Ok((bucket, command))
}

fn line(s: &Silence, now: DateTime<Utc>) -> String {
    let state = if s.ends_at <= now {
        "expired"
    } else if s.starts_at > now {
        "pending"
    } else {
        "active"
    };
    let matchers: Vec<String> = s
        .matchers
        .iter()
        .map(|m| {
            let (op, value) = match (&m.exact, &m.prefix, &m.glob, &m.regex) {
                (Some(v), ..) => (if m.negate { "!=" } else { "=" }, v),
                (_, Some(v), ..) => (if m.negate { "!^=" } else { "^=" }, v),
                (_, _, Some(v), _) => (if m.negate { "!*=" } else { "*=" }, v),
                (.., Some(v)) => (if m.negate { "!~" } else { "=~" }, v),
                _ => ("?", &m.label),
            };
            format!("{}{op}{value}", m.label)
        })
        .collect();
    format!(
        "{}  {state}  {} .. {}  {}  by {}: {}",
        s.id,
        s.starts_at.to_rfc3339(),
        s.ends_at.to_rfc3339(),
        matchers.join(" "),
        s.created_by,
        s.comment
    )
}

async fn run(bucket: String, command: Command, now: DateTime<Utc>) -> Result<String, String> {
    let sdk = pipewarden_shared::aws::load_config(&ProcessEnv).await.map_err(|e| e.to_string())?;
    let store = S3ObjectStore::new(pipewarden_shared::aws::s3_client(&sdk), bucket);
    let read = |key: String| {
        let store = &store;
        async move {
            let object = store.get(&key).await.map_err(|e| e.to_string())?.ok_or(format!("{key}: no such silence"))?;
            // As the function reads it (JSON or YAML, checked).
            let silence = silences::read(&object.body).map_err(|e| format!("{key}: {e}"))?.silence;
            Ok::<_, String>((silence, object.etag))
        }
    };
    match command {
        Command::Add(silence) => {
            let body = serde_json::to_vec_pretty(&silence).expect("a silence serializes");
            match store.put(&silence.key(), body, "application/json", WriteCondition::IfAbsent).await {
                Ok(PutOutcome::Written { .. }) => Ok(format!("added {}", line(&silence, now))),
                Ok(PutOutcome::ConditionFailed) => Err(format!("a silence {} exists already", silence.id)),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::List { all } => {
            let keys = store.list(PREFIX, silences::MAX_SILENCES).await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for key in keys.into_iter().filter(|k| k.ends_with(".json")) {
                match read(key.clone()).await {
                    Ok((s, _)) if all || s.ends_at > now => out.push(line(&s, now)),
                    Ok(_) => {}
                    Err(e) => out.push(format!("{key}: unreadable ({e}): it silences nothing")),
                }
            }
            Ok(out.join("\n"))
        }
        Command::Expire(id) => {
            let (mut silence, etag) = read(format!("{PREFIX}{id}.json")).await?;
            if silence.ends_at <= now {
                return Ok(format!("already expired: {}", line(&silence, now)));
            }
            // A silence not begun yet never holds anything.
            if silence.starts_at > now {
                silence.starts_at = now - chrono::Duration::seconds(1);
            }
            silence.ends_at = now;
            let body = serde_json::to_vec_pretty(&silence).expect("a silence serializes");
            match store.put(&silence.key(), body, "application/json", WriteCondition::IfMatches(etag)).await {
                Ok(PutOutcome::Written { .. }) => Ok(format!("expired {}", line(&silence, now))),
                Ok(PutOutcome::ConditionFailed) => Err(format!("{id} changed meanwhile: try again")),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let now = Utc::now();
    let (bucket, command) = match parse(std::env::args().skip(1).collect(), now) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("pipewarden-silence: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(bucket) = bucket.or_else(|| std::env::var("AUDIT_BUCKET").ok()) else {
        eprintln!("pipewarden-silence: --bucket or AUDIT_BUCKET names the audit bucket");
        return ExitCode::from(2);
    };
    match run(bucket, command, now).await {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pipewarden-silence: {e}");
            ExitCode::from(1)
        }
    }
}
