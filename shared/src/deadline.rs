//! The invocation's deadline, applied to every outbound call.
//!
//! A handler runs its work inside [`within`]; each SDK adapter wraps its call in [`bounded`], so a
//! dependency that hangs (a dropped connection, a throttled retry loop, a slow endpoint) turns into
//! a retryable `Timeout` failure at the work deadline instead of Lambda killing the invocation. The
//! handler's normal failure path then releases what it claimed and fails the invocation, so Lambda
//! retries it; the retry carries the same request id and takes over any claim left behind.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::ports::{FailureKind, PortError};

tokio::task_local! {
    static WORK_DEADLINE: Instant;
}

/// Time kept back from Lambda's deadline to log, release claims and answer the runtime.
pub const MARGIN: Duration = Duration::from_millis(1000);

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

/// Runs one invocation's `work` so that every [`bounded`] call in it stops [`MARGIN`] before
/// `lambda_deadline`.
pub async fn within<F: Future>(lambda_deadline: Instant, work: F) -> F::Output {
    let work_deadline = lambda_deadline.checked_sub(MARGIN).unwrap_or_else(Instant::now);
    WORK_DEADLINE.scope(work_deadline, work).await
}

/// Bounds one outbound call by the current invocation's work deadline (no bound outside one).
pub async fn bounded<T>(
    service: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    match WORK_DEADLINE.try_with(|deadline| *deadline) {
        Ok(deadline) => tokio::time::timeout_at(deadline.into(), call).await.unwrap_or_else(|_| {
            Err(PortError::new(service, operation, FailureKind::Timeout, "stopped at the invocation's deadline"))
        }),
        Err(_) => call.await,
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
    let share = WORK_DEADLINE.try_with(|deadline| deadline.saturating_duration_since(now) / 4).unwrap_or(cap);
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
        let result = within(started + MARGIN + Duration::from_millis(200), bounded("SNS", "Publish", hang)).await;
        let error = result.unwrap_err();
        assert_eq!(error.kind, FailureKind::Timeout);
        assert!(error.is_retryable());
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200) && took < MARGIN + Duration::from_millis(200), "{took:?}");
    }

    #[tokio::test]
    async fn an_optional_call_gets_a_quarter_of_the_time_left_at_most() {
        let started = Instant::now();
        let hang = std::future::pending::<Result<(), PortError>>();
        let work_left = Duration::from_millis(800);
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
