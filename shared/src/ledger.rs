//! Exactly-once delivery across duplicates, retries and concurrent invocations, kept in S3.
//!
//! A JSON document per subject (an execution's timeline, an alarm's memory) holds a [`Delivery`]
//! per (what, where). Before sending, an invocation claims what it will send with a conditional
//! write; only the winner sends; afterwards it marks what was sent and releases what was not, so a
//! retry sends only that. A claim left by an invocation that died expires after a TTL.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ports::{ObjectStore, PortError, PutOutcome, WriteCondition};

/// How many times a read-modify-write is retried after losing to a concurrent writer.
pub const MAX_WRITE_TRIES: usize = 8;

/// The shortest claim TTL: longer than the functions' timeout (30 s in the template) with room,
/// so that a live invocation's claim never expires under it and its message is never sent twice.
pub const MIN_CLAIM_TTL_SECONDS: u64 = 60;
/// The longest claim TTL: a message waiting behind a claim whose invocation died is sent by
/// Lambda's last retry of its event, which comes about three minutes after the first attempt (one
/// minute, then two, between them); a longer TTL would send it to the on-failure destination.
pub const MAX_CLAIM_TTL_SECONDS: u64 = 170;

/// How long an invocation keeps looking again ([`LookAgain`]) while a live claim of another
/// invocation holds its message back (an older message being sent to the same topic right now): a
/// healthy claimant settles within milliseconds, so the message goes out in this invocation, not a
/// minute later with Lambda's retry. A claimant that died holds its claim to the TTL; then the
/// invocation fails and a retry takes over. At most a quarter of the time left before the work
/// deadline.
pub const WAIT_CAP: std::time::Duration = std::time::Duration::from_secs(2);
/// The first pause before looking again (doubled each time).
const FIRST_LOOK_AGAIN: std::time::Duration = std::time::Duration::from_millis(50);

/// The pauses of one invocation looking again at a claim that holds its message back: 50 ms,
/// doubled each time, within [`WAIT_CAP`] (and a quarter of the time left before the work deadline).
#[derive(Debug)]
pub struct LookAgain {
    budget: std::time::Duration,
    started: tokio::time::Instant,
    pause: std::time::Duration,
}

impl LookAgain {
    pub fn new() -> Self {
        let now = std::time::Instant::now();
        let share = crate::deadline::current().map_or(WAIT_CAP, |deadline| deadline.saturating_duration_since(now) / 4);
        Self { budget: share.min(WAIT_CAP), started: tokio::time::Instant::now(), pause: FIRST_LOOK_AGAIN }
    }

    /// Pauses before the next look and returns `true`, or returns `false` at once when the budget
    /// has no room for another (the message is then left to Lambda's retry).
    pub async fn pause(&mut self) -> bool {
        if self.started.elapsed() + self.pause > self.budget {
            return false;
        }
        tracing::info!(
            pause_ms = self.pause.as_millis() as u64,
            "held back by another invocation's claim; looking again"
        );
        tokio::time::sleep(self.pause).await;
        self.pause *= 2;
        true
    }
}

impl Default for LookAgain {
    fn default() -> Self {
        Self::new()
    }
}

/// `CLAIM_TTL_SECONDS` (default 120), between [`MIN_CLAIM_TTL_SECONDS`] and
/// [`MAX_CLAIM_TTL_SECONDS`].
pub fn claim_ttl(vars: &impl crate::config::Vars) -> Result<Duration, crate::config::ConfigError> {
    const VARIABLE: &str = "CLAIM_TTL_SECONDS";
    let seconds = vars.seconds_at_most(VARIABLE, 120, MAX_CLAIM_TTL_SECONDS)?;
    if seconds < MIN_CLAIM_TTL_SECONDS {
        let problem = format!(
            "{seconds} seconds is less than {MIN_CLAIM_TTL_SECONDS}: a claim must outlive the invocation holding it"
        );
        return Err(crate::config::ConfigError::new(VARIABLE, problem));
    }
    Ok(Duration::seconds(seconds as i64))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Delivery {
    Claimed {
        token: String,
        at: DateTime<Utc>,
    },
    Sent {
        message_id: String,
        at: DateTime<Utc>,
    },
    /// Never to be sent: a newer message took its place before it could go (an OK that resolved
    /// an ALARM this topic never got).
    Superseded {
        by: String,
        at: DateTime<Utc>,
    },
}

/// Deliveries by key (`what|where`).
pub type Deliveries = BTreeMap<String, Delivery>;

pub fn delivery_key(what: &str, topic_arn: &str) -> String {
    // Written, not formatted: it is made for every topic of every event.
    let mut key = String::with_capacity(what.len() + 1 + topic_arn.len());
    key.push_str(what);
    key.push('|');
    key.push_str(topic_arn);
    key
}

/// Claims `key` for `token` unless it was sent or another live invocation holds it.
pub fn claim(deliveries: &mut Deliveries, key: &str, token: &str, now: DateTime<Utc>, ttl: Duration) -> bool {
    let free = match deliveries.get(key) {
        None => true,
        Some(Delivery::Sent { .. } | Delivery::Superseded { .. }) => false,
        Some(Delivery::Claimed { token: other, at }) => other == token || now - *at > ttl,
    };
    if free {
        deliveries.insert(key.to_string(), Delivery::Claimed { token: token.to_string(), at: now });
    }
    free
}

/// Records a send: `Ok(message id)` marks it sent; `Err` releases the claim if it is still ours.
pub fn settle(deliveries: &mut Deliveries, key: &str, token: &str, sent: Option<&str>, now: DateTime<Utc>) {
    match sent {
        Some(message_id) => {
            deliveries.insert(key.to_string(), Delivery::Sent { message_id: message_id.to_string(), at: now });
        }
        None => {
            if matches!(deliveries.get(key), Some(Delivery::Claimed { token: t, .. }) if t == token) {
                deliveries.remove(key);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{key}: {source}")]
    Store { key: String, source: PortError },
    #[error("{key} in S3 is not readable: {problem}")]
    Corrupt { key: String, problem: String },
    #[error("{key} kept changing under concurrent writers")]
    Contention { key: String },
}

/// Reads the document at `key` (or starts from `fresh`), lets `change` modify it, and writes it
/// back only if it is unchanged in S3 meanwhile; on a lost race, reads again and reapplies.
/// `change` returns `None` when there is nothing to write, `Some(r)` to write and return `r`.
pub async fn read_modify_write<T, S, R>(
    store: &S,
    key: &str,
    fresh: impl Fn() -> T,
    change: impl FnMut(&mut T) -> Option<R>,
) -> Result<(T, Option<R>), LedgerError>
where
    T: Serialize + DeserializeOwned,
    S: ObjectStore,
{
    update(store, key, None, fresh, change).await.map(|u| (u.document, u.result))
}

/// What [`update`] left in S3: the document, `change`'s result (`None`: nothing written), and the
/// document's ETag (what this call wrote, or read when it wrote nothing; `None`: no object).
#[derive(Debug)]
pub struct Updated<T, R> {
    pub document: T,
    pub result: Option<R>,
    pub etag: Option<String>,
}

/// [`read_modify_write`] that may start from a version of the document already known (`known`:
/// the document and its ETag, as an earlier write of this invocation left it): the first write
/// goes without reading, conditional on that ETag, and only if someone wrote since is the document
/// read again. The settle after a claim then costs one S3 request, not two.
pub async fn update<T, S, R>(
    store: &S,
    key: &str,
    mut known: Option<(T, String)>,
    fresh: impl Fn() -> T,
    mut change: impl FnMut(&mut T) -> Option<R>,
) -> Result<Updated<T, R>, LedgerError>
where
    T: Serialize + DeserializeOwned,
    S: ObjectStore,
{
    for _ in 0..MAX_WRITE_TRIES {
        let (mut document, condition) = match known.take() {
            Some((document, etag)) => (document, WriteCondition::IfMatches(etag)),
            None => {
                // Boxed: the SDK's futures are deep, and a handler holds several of these at once.
                let stored = Box::pin(store.get(key))
                    .await
                    .map_err(|source| LedgerError::Store { key: key.to_string(), source })?;
                match stored {
                    None => (fresh(), WriteCondition::IfAbsent),
                    Some(object) => (
                        serde_json::from_slice(&object.body)
                            .map_err(|e| LedgerError::Corrupt { key: key.to_string(), problem: e.to_string() })?,
                        WriteCondition::IfMatches(object.etag),
                    ),
                }
            }
        };
        let Some(result) = change(&mut document) else {
            let etag = match condition {
                WriteCondition::IfMatches(etag) => Some(etag),
                _ => None,
            };
            return Ok(Updated { document, result: None, etag });
        };
        let body = serde_json::to_vec_pretty(&document).expect("ledger documents serialize");
        match Box::pin(store.put(key, body, "application/json", condition)).await {
            Ok(PutOutcome::Written { etag }) => {
                return Ok(Updated { document, result: Some(result), etag: Some(etag) })
            }
            Ok(PutOutcome::ConditionFailed) => continue,
            Err(source) => return Err(LedgerError::Store { key: key.to_string(), source }),
        }
    }
    Err(LedgerError::Contention { key: key.to_string() })
}

/// What one invocation's sends came to: per delivery key, `Some(message id)` when sent, `None`
/// when not; `token` is the invocation's, `now` the time it records.
#[derive(Debug, Clone, Copy)]
pub struct Sends<'a> {
    pub outcomes: &'a [(String, Option<String>)],
    pub token: &'a str,
    pub now: DateTime<Utc>,
}

/// The last step of the delivery protocol (claim, send, settle): records what one invocation sent
/// (`Some(message id)`) and releases what it did not (`None`), per delivery key, in the document
/// at `key`, so a retry sends only what is missing. Runs in the time reserved for settling
/// ([`crate::deadline::settling`]): a send that hung to the work deadline still gets its claim
/// released. `known`: the document as this invocation's claim wrote it, with its ETag (see
/// [`update`]).
pub async fn settle_all<T, S>(
    store: &S,
    key: &str,
    known: Option<(T, String)>,
    fresh: impl Fn() -> T,
    deliveries: impl Fn(&mut T) -> &mut Deliveries,
    sent: Sends<'_>,
) -> Result<(), LedgerError>
where
    T: Serialize + DeserializeOwned,
    S: ObjectStore,
{
    let Sends { outcomes, token, now } = sent;
    if outcomes.is_empty() {
        return Ok(());
    }
    let write = update(store, key, known, fresh, |document| {
        let ledger = deliveries(document);
        for (delivery, sent) in outcomes {
            settle(ledger, delivery, token, sent.as_deref(), now);
        }
        Some(())
    });
    crate::deadline::settling(Box::pin(write)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn claims_hold_until_sent_or_expired() {
        let mut d = Deliveries::new();
        let ttl = Duration::seconds(60);
        assert!(claim(&mut d, "k", "a", at(0), ttl));
        assert!(!claim(&mut d, "k", "b", at(10), ttl), "a live claim holds");
        assert!(claim(&mut d, "k", "a", at(10), ttl), "the holder may go on");
        assert!(claim(&mut d, "k", "b", at(100), ttl), "an expired claim is taken over");
        settle(&mut d, "k", "a", None, at(101));
        assert!(
            matches!(d.get("k"), Some(Delivery::Claimed { token, .. }) if token == "b"),
            "a stale release does nothing"
        );
        settle(&mut d, "k", "b", Some("m-1"), at(102));
        assert!(!claim(&mut d, "k", "c", at(10_000), ttl), "sent is final");
    }
}
