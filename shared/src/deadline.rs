//! The invocation's deadline, applied to every outbound call, in phases.
//!
//! A handler runs its work inside [`within`]; each SDK adapter wraps its call in [`bounded`], so a
//! dependency that hangs (a dropped connection, a throttled retry loop, a slow endpoint) turns into
//! a retryable `Timeout` failure instead of Lambda killing the invocation.
//!
//! The time is split up front, so that no phase can eat the next one's:
//! - lookups the work can go without ([`bounded_optional`]) get a share of what is left, and fail
//!   alone (the message says less, it still goes out);
//! - the work (sending) stops at the *work deadline*: [`SETTLE_RESERVE`] before the *settle
//!   deadline*;
//! - what records the work's outcome (marking what was sent, releasing the claims of what was not,
//!   reporting a hook) runs in [`settling`], bounded by the settle deadline, [`MARGIN`] before
//!   Lambda's. So a send that hangs to the work deadline still leaves its claim released and the
//!   sends that succeeded recorded, and a retry (with any request id) sends only what is missing.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::ports::{FailureKind, PortError};

#[derive(Debug, Clone, Copy)]
struct Phases {
    /// Where calls made now stop.
    current: Instant,
    /// Where calls made while settling stop.
    settle: Instant,
}

tokio::task_local! {
    static PHASES: Phases;
}

/// Time kept back from Lambda's deadline to log and answer the runtime.
pub const MARGIN: Duration = Duration::from_millis(1000);

/// Time kept for settling after the work deadline (at most a third of the invocation's time, so
/// a short invocation still has most of it for the work).
pub const SETTLE_RESERVE: Duration = Duration::from_millis(1500);

/// The runtime's deadline (milliseconds since the epoch) as an `Instant`.
///
/// `cargo lambda watch` sends the timeout itself (600000) rather than a point in time; a value too
/// small to be a date since 2001 is read that way, so the local run behaves like Lambda.
pub fn instant_of(deadline_ms: u64) -> Instant {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    if deadline_ms < YEAR_2001_MS {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// The settle deadline and the work deadline of an invocation that must answer by `lambda_deadline`.
pub fn phases_of(lambda_deadline: Instant) -> (Instant, Instant) {
    let now = Instant::now();
    let settle = lambda_deadline.checked_sub(MARGIN).unwrap_or(now).max(now);
    let reserve = SETTLE_RESERVE.min(settle.saturating_duration_since(now) / 3);
    (settle, settle.checked_sub(reserve).unwrap_or(now))
}

/// Runs one invocation's `work` so that every [`bounded`] call in it stops at the work deadline,
/// and every one in [`settling`] at the settle deadline ([`MARGIN`] before `lambda_deadline`).
pub async fn within<F: Future>(lambda_deadline: Instant, work: F) -> F::Output {
    let (settle, work_deadline) = phases_of(lambda_deadline);
    PHASES.scope(Phases { current: work_deadline, settle }, work).await
}

/// Runs `settle` (recording what the work did) with the time reserved for it: its calls stop at
/// the settle deadline, not the work deadline, which may have passed. Outside [`within`], unbounded.
pub async fn settling<F: Future>(settle: F) -> F::Output {
    match PHASES.try_with(|p| *p) {
        Ok(phases) => PHASES.scope(Phases { current: phases.settle, ..phases }, settle).await,
        Err(_) => settle.await,
    }
}

/// Where calls made now stop, if inside an invocation.
pub fn current() -> Option<Instant> {
    PHASES.try_with(|p| p.current).ok()
}

/// Bounds one outbound call by the current phase's deadline (no bound outside an invocation).
pub async fn bounded<T>(
    service: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    match current() {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), call).await.unwrap_or_else(|_| {
            Err(PortError::new(service, operation, FailureKind::Timeout, "stopped at the invocation's deadline"))
        }),
        None => call.await,
    }
}

/// Bounds a call the work can go on without (an enrichment, a lookup with a fallback): it gets at
/// most `cap`, and at most a quarter of the time left before the work deadline, so that a call
/// that hangs leaves the rest of the invocation to the work that must be done.
pub async fn bounded_optional<T>(
    service: &'static str,
    operation: &'static str,
    cap: Duration,
    call: impl Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    let now = Instant::now();
    let share = current().map(|deadline| deadline.saturating_duration_since(now) / 4).unwrap_or(cap);
    tokio::time::timeout(share.min(cap), call).await.unwrap_or_else(|_| {
        Err(PortError::new(service, operation, FailureKind::Timeout, "gave up to leave time for the rest of the work"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_hangs_stops_at_the_work_deadline() {
        let started = Instant::now();
        let hang = std::future::pending::<Result<(), PortError>>();
        let result = within(started + MARGIN + Duration::from_millis(300), bounded("SNS", "Publish", hang)).await;
        let error = result.unwrap_err();
        assert_eq!(error.kind, FailureKind::Timeout);
        assert!(error.is_retryable());
        let took = started.elapsed();
        // A third of the 300 ms before the settle deadline is kept for settling.
        assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(290), "{took:?}");
    }

    /// The hole issue 15 names: a send that hung to the work deadline left no time at all to
    /// release its claim, so the claim stayed held until its TTL.
    #[tokio::test]
    async fn settling_after_a_hang_still_has_its_reserved_time() {
        let started = Instant::now();
        let lambda_deadline = started + MARGIN + Duration::from_secs(3);
        let (hung, settled) = within(lambda_deadline, async {
            let hung = bounded("SNS", "Publish", std::future::pending::<Result<(), PortError>>()).await;
            let settled = settling(bounded("S3", "PutObject", async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, PortError>("released")
            }))
            .await;
            (hung, settled)
        })
        .await;
        assert_eq!(hung.unwrap_err().kind, FailureKind::Timeout);
        assert_eq!(settled, Ok("released"));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "settling ends by the settle deadline: {took:?}");
        let hang =
            within(lambda_deadline, settling(bounded("S3", "PutObject", std::future::pending::<Result<(), _>>())));
        let started = Instant::now();
        assert!(hang.await.is_err());
        assert!(started.elapsed() < Duration::from_secs(3) + Duration::from_millis(100));
    }

    #[tokio::test]
    async fn an_optional_call_gets_a_quarter_of_the_time_left_at_most() {
        let started = Instant::now();
        let hang = std::future::pending::<Result<(), PortError>>();
        // 1200 ms to the settle deadline, a third kept for settling: 800 ms of work, a quarter of it.
        let work_left = Duration::from_millis(1200);
        let result =
            within(started + MARGIN + work_left, bounded_optional("CloudWatch", "X", Duration::from_secs(5), hang))
                .await;
        assert_eq!(result.unwrap_err().kind, FailureKind::Timeout);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(400), "{took:?}");
        let capped =
            bounded_optional("CloudWatch", "X", Duration::from_millis(50), std::future::pending::<Result<(), _>>());
        assert!(capped.await.is_err());
    }

    #[tokio::test]
    async fn calls_outside_an_invocation_are_not_bounded() {
        assert_eq!(bounded("S3", "GetObject", async { Ok::<_, PortError>(7) }).await, Ok(7));
    }

    #[test]
    fn small_deadlines_are_read_as_a_timeout() {
        let in_ten_minutes = instant_of(600_000);
        let left = in_ten_minutes.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 5_000;
        let left = instant_of(epoch_ms).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
    }
}
