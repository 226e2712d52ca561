//! Timers: what alarm-fanout does later, as EventBridge Scheduler one-time schedules that invoke
//! alarm-fanout itself with an `Alarm Timer` event. A reminder for an alarm still in ALARM
//! (`repeatInterval`), and a look again at an ALARM a silence or a quiet route held back, when that
//! hold ends (sent then if still the alarm's state).
//!
//! A timer is named by what it is for, so setting it twice (a retry, a duplicate event) sets it
//! once: CreateSchedule answers ConflictException for a name that exists, which is success here.
//! Schedules delete themselves once they ran (`ActionAfterCompletion: DELETE`). Scheduler invokes
//! at least once: what a timer does is idempotent (the alarm's memory and its delivery claims).

use std::future::Future;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::deadline;
use pipewarden_shared::ports::{FailureKind, PortError};
use serde::{Deserialize, Serialize};

/// The event a timer sends (EventBridge's envelope, so one classifier reads every input).
pub const SOURCE: &str = "pipewarden.alarm-fanout";
pub const DETAIL_TYPE: &str = "Alarm Timer";

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimerKind {
    /// Send reminder `reminder` of an ALARM still the alarm's state.
    Remind,
    /// Look again at an ALARM held back: send it if nothing holds it any more.
    Release,
    /// Send what a group has pending (`memoryKey` is the group's object).
    Flush,
}

/// A timer's `detail`: which alarm's memory, which transition, which reminder, when it was due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerDetail {
    pub kind: TimerKind,
    pub memory_key: String,
    pub transition: String,
    #[serde(default)]
    pub reminder: u32,
    pub due: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
struct TimerEvent {
    detail: TimerDetail,
}

/// Reads a timer's event.
pub fn read(
    payload: impl pipewarden_shared::events::Document,
) -> Result<TimerDetail, pipewarden_shared::events::EventError> {
    payload.parse::<TimerEvent>("alarm-fanout timer").map(|e| e.detail)
}

/// One timer to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// Unique for what it is for (at most 64 of `[0-9a-zA-Z-_.]`).
    pub name: String,
    pub at: DateTime<Utc>,
    pub detail: TimerDetail,
}

impl Timer {
    pub fn new(detail: TimerDetail) -> Timer {
        let hash = fnv1a(&detail.memory_key);
        let millis = transition_millis(&detail.transition);
        let name = match detail.kind {
            TimerKind::Remind => format!("pw-{hash:016x}-{millis}-remind-{}", detail.reminder),
            TimerKind::Release => format!("pw-{hash:016x}-{millis}-release-{}", detail.due.timestamp()),
            TimerKind::Flush => format!("pw-{hash:016x}-flush-{}", detail.due.timestamp()),
        };
        Timer { name, at: whole_minute_after(detail.due), detail }
    }

    /// The flush of the group kept at `group_key`, due at `due`.
    pub fn flush(group_key: &str, due: DateTime<Utc>) -> Timer {
        Timer::new(TimerDetail {
            kind: TimerKind::Flush,
            memory_key: group_key.to_string(),
            transition: String::new(),
            reminder: 0,
            due,
        })
    }

    /// The event the schedule sends.
    pub fn input(&self) -> String {
        serde_json::json!({ "source": SOURCE, "detail-type": DETAIL_TYPE, "detail": self.detail }).to_string()
    }
}

/// FNV-1a: a short hash, stable across processes and versions (for names and keys).
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Scheduler runs a one-time schedule within the minute its time names (AWS: set for 1:00, it
/// invokes between 1:00:00 and 1:00:59), so a time within a minute could fire before it: a timer
/// is set for the next whole minute at or after what it is due.
pub fn whole_minute_after(due: DateTime<Utc>) -> DateTime<Utc> {
    let secs = due.timestamp();
    let exact = secs % 60 == 0 && due.timestamp_subsec_nanos() == 0;
    let minute = if exact { secs } else { (secs.div_euclid(60) + 1) * 60 };
    DateTime::from_timestamp(minute, 0).unwrap_or(due)
}

fn transition_millis(transition: &str) -> String {
    transition
        .rsplit(':')
        .next()
        .filter(|m| m.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .unwrap_or("0")
        .to_string()
}

/// Sets timers.
pub trait Timers: Send + Sync {
    /// Sets `timer`; one of that name already set is success.
    fn set(&self, timer: &Timer) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Whether timers can be set here (a scheduler is configured).
    fn enabled(&self) -> bool {
        true
    }
}

/// The real one: EventBridge Scheduler, in the stack's schedule group, invoking this function
/// (its ARN as Lambda gave it to the first invocation) through the scheduler's role.
#[derive(Debug)]
pub struct SchedulerTimers {
    client: aws_sdk_scheduler::Client,
    /// The schedule group and the role Scheduler invokes the function with; none: no timers.
    schedule: Option<(String, String)>,
    function_arn: OnceLock<String>,
}

impl SchedulerTimers {
    pub fn new(client: aws_sdk_scheduler::Client, schedule: Option<(String, String)>) -> Self {
        Self { client, schedule, function_arn: OnceLock::new() }
    }

    /// The function the schedules invoke: this one (`invoked_function_arn` of an invocation).
    pub fn target(&self, function_arn: &str) {
        // Unqualified: a container first invoked through an alias or a version (a console test of
        // `:$LATEST`, say) must not pin every schedule to it.
        let unqualified: Vec<&str> = function_arn.splitn(8, ':').take(7).collect();
        let _ = self.function_arn.set(unqualified.join(":"));
    }
}

impl Timers for SchedulerTimers {
    async fn set(&self, timer: &Timer) -> Result<(), PortError> {
        use aws_sdk_scheduler::types::{
            ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
        };
        let Some((group, role_arn)) = &self.schedule else {
            return NoTimers.set(timer).await;
        };
        let Some(function_arn) = self.function_arn.get() else {
            return Err(PortError::new(
                "Scheduler",
                "CreateSchedule",
                FailureKind::Rejected,
                "no function ARN to invoke",
            ));
        };
        let build = |e: aws_sdk_scheduler::error::BuildError| {
            PortError::new("Scheduler", "CreateSchedule", FailureKind::Rejected, e.to_string())
        };
        let target = Target::builder()
            .arn(function_arn)
            .role_arn(role_arn)
            .input(timer.input())
            // Scheduler's own defaults, written down: a day of retries when Lambda cannot be invoked.
            .retry_policy(
                RetryPolicy::builder().maximum_event_age_in_seconds(86_400).maximum_retry_attempts(185).build(),
            )
            .build()
            .map_err(build)?;
        let request = self
            .client
            .create_schedule()
            .name(&timer.name)
            .group_name(group)
            .schedule_expression(format!("at({})", timer.at.format("%Y-%m-%dT%H:%M:%S")))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().map_err(build)?,
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .description(
                format!("alarm-fanout {:?} {}", timer.detail.kind, timer.detail.transition)
                    .chars()
                    .take(512)
                    .collect::<String>(),
            )
            .target(target);
        deadline::bounded("Scheduler", "CreateSchedule", async {
            match request.send().await {
                Ok(_) => Ok(()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => Ok(()),
                Err(e) => Err(classify_sdk_error("Scheduler", "CreateSchedule", &e)),
            }
        })
        .await
    }

    fn enabled(&self) -> bool {
        self.schedule.is_some()
    }
}

/// Timers kept in memory, for tests: every timer set, once per name.
#[derive(Debug, Default)]
pub struct MemoryTimers {
    pub set: std::sync::Mutex<Vec<Timer>>,
    /// Fails every `set` while true.
    pub failing: std::sync::atomic::AtomicBool,
}

impl MemoryTimers {
    pub fn all(&self) -> Vec<Timer> {
        self.set.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Timers for MemoryTimers {
    async fn set(&self, timer: &Timer) -> Result<(), PortError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::new("Scheduler", "CreateSchedule", FailureKind::ServerError, "injected"));
        }
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if !set.iter().any(|t| t.name == timer.name) {
            set.push(timer.clone());
        }
        Ok(())
    }
}

/// No timers (none configured): setting one is an error naming what is missing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTimers;

impl Timers for NoTimers {
    fn enabled(&self) -> bool {
        false
    }

    async fn set(&self, _timer: &Timer) -> Result<(), PortError> {
        Err(PortError::new(
            "Scheduler",
            "CreateSchedule",
            FailureKind::Rejected,
            "no schedule group configured (SCHEDULE_GROUP and SCHEDULER_ROLE_ARN)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(kind: TimerKind, reminder: u32) -> TimerDetail {
        TimerDetail {
            kind,
            memory_key: "alarm-fanout/alarms/123456789012/us-east-1/a-very-long-alarm-name-that-goes-on-and-on.json"
                .into(),
            transition: "a-very-long-alarm-name:ALARM:1764230400000".into(),
            reminder,
            due: "2026-11-27T08:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn names_are_what_scheduler_accepts_and_tell_timers_apart() {
        let remind = Timer::new(detail(TimerKind::Remind, 12));
        let release = Timer::new(detail(TimerKind::Release, 0));
        for t in [&remind, &release] {
            assert!(t.name.len() <= 64, "{}", t.name);
            assert!(
                t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
                "{}",
                t.name
            );
        }
        assert_eq!(remind.name, Timer::new(detail(TimerKind::Remind, 12)).name, "stable");
        assert_ne!(remind.name, Timer::new(detail(TimerKind::Remind, 13)).name);
        assert_ne!(remind.name, release.name);
        let mut later = detail(TimerKind::Release, 0);
        later.due += chrono::Duration::minutes(10);
        assert_ne!(release.name, Timer::new(later).name);
    }

    #[test]
    fn a_timer_is_set_for_the_whole_minute_at_or_after_its_due_time() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(whole_minute_after(at("2026-11-27T08:00:00Z")), at("2026-11-27T08:00:00Z"));
        assert_eq!(whole_minute_after(at("2026-11-27T08:00:00.001Z")), at("2026-11-27T08:01:00Z"));
        assert_eq!(whole_minute_after(at("2026-11-27T08:00:45Z")), at("2026-11-27T08:01:00Z"));
    }

    #[test]
    fn the_input_reads_back_as_the_timer() {
        let timer = Timer::new(detail(TimerKind::Remind, 2));
        let input = timer.input();
        assert_eq!(
            pipewarden_shared::events::eventbridge::Shape::read_json(&input).0,
            pipewarden_shared::events::eventbridge::Shape::AlarmFanoutTimer
        );
        assert_eq!(read(input.as_str()).unwrap(), timer.detail);
    }
}
