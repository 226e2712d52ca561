use alarm_fanout::config::Config;
use alarm_fanout::deployments::CodeDeployDeployments;
use alarm_fanout::handler::Fanout;
use alarm_fanout::silences::SilenceCache;
use alarm_fanout::tags::{CachedAlarmTags, CloudWatchAlarmTags};
use alarm_fanout::timers::SchedulerTimers;
use pipewarden_shared::adapters::{S3ObjectStore, SnsPublisher};
use pipewarden_shared::aws;
use pipewarden_shared::config::ProcessEnv;
use pipewarden_shared::deadline;
use pipewarden_shared::lambda::{diagnostic, run_on_body, Invocation};

// One thread: Lambda hands a function one event at a time, and what runs concurrently within it
// is I/O. No worker threads to start makes the cold start shorter and smaller.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    pipewarden_shared::logging::init();
    let config = Config::from_vars(&ProcessEnv)?;
    let sdk = aws::load_config(&ProcessEnv).await?;
    let s3 = aws::s3_client(&sdk);
    let rules = alarm_fanout::load_rules(&config.rules, &s3, &ProcessEnv).await?;
    if config.schedule.is_none() && (rules.repeats() || rules.groups() || !rules.inhibit.is_empty()) {
        return Err("routing rules set repeatInterval, groupBy or inhibit, but no scheduler is configured (SCHEDULE_GROUP, SCHEDULER_ROLE_ARN)".into());
    }
    let fanout = Fanout {
        rules,
        publisher: SnsPublisher::new(aws::sns_client(&sdk)),
        store: S3ObjectStore::new(s3, config.bucket.clone()),
        tags: CachedAlarmTags::new(
            CloudWatchAlarmTags::new(aws_sdk_cloudwatch::Client::new(&sdk)),
            config.alarm_tags_cache,
        ),
        deployments: CodeDeployDeployments::new(aws::codedeploy_client(&sdk)),
        silences: SilenceCache::new(config.silences_prefix.clone(), std::time::Duration::from_secs(60)),
        timers: SchedulerTimers::new(aws_sdk_scheduler::Client::new(&sdk), config.schedule.clone()),
        config,
    };
    let fanout = &fanout;
    // The invocation's body as Lambda sent it, read once into the typed event (no `Value` tree).
    run_on_body(move |event: Invocation| async move {
        let text = event.text()?;
        // Schedules invoke this function as Lambda named it to this invocation.
        fanout.timers.target(&event.context.invoked_function_arn);
        // Boxed: the handler's future is deep, and one allocation per invocation is nothing.
        let work = Box::pin(fanout.handle(text, &event.context.request_id, chrono::Utc::now()));
        deadline::within(deadline::instant_of(event.context.deadline), work)
            .await
            .map_err(|e| diagnostic(&e, e.retry()))
    })
    .await
}
