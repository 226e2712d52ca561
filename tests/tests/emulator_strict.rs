//! The emulator is as strict as AWS: `tests/emulator/test_strict.py` drives every operation the
//! extension adds with boto3 (which validates against the same botocore models) for the happy path
//! and each documented error, with pages of one item, the drop-after fault, and the answers of
//! moto's own SNS, S3 and CloudWatch the functions rely on. Also here: DescribeAlarms paged through
//! the Rust SDK, whose CloudWatch client speaks Smithy RPC v2 CBOR (which the extension translates).

use std::process::Command;

use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
use pipewarden_devkit::{python, repo_root, Emulator};

#[tokio::test]
async fn every_added_operation_and_the_answers_we_rely_on_match_the_service_models() {
    let aws = Emulator::fresh().await;
    let script = repo_root().join("tests/emulator/test_strict.py");
    let endpoint = aws.endpoint.clone();
    let out = tokio::task::spawn_blocking(move || Command::new(python()).arg(script).arg(endpoint).output())
        .await
        .expect("the script's thread")
        .expect("running tests/emulator/test_strict.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "test_strict.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}\n{stderr}");
}

#[tokio::test]
async fn describe_alarms_pages_of_one_over_cbor() {
    let aws = Emulator::fresh().await;
    let cw = aws_sdk_cloudwatch::Client::new(&aws.sdk);
    for name in ["cbor-a", "cbor-b", "cbor-c"] {
        cw.put_metric_alarm()
            .alarm_name(name)
            .metric_name("Errors")
            .namespace("AWS/Lambda")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .expect("PutMetricAlarm");
    }

    let first = cw.describe_alarms().alarm_name_prefix("cbor-").max_records(1).send().await.expect("DescribeAlarms");
    assert_eq!(first.metric_alarms().len(), 1);
    assert!(first.next_token().is_some(), "{first:?}");

    let pages: Vec<_> = cw
        .describe_alarms()
        .alarm_name_prefix("cbor-")
        .max_records(1)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("every page");
    let names: Vec<Vec<String>> = pages
        .iter()
        .map(|p| p.metric_alarms().iter().filter_map(|a| a.alarm_name().map(str::to_string)).collect())
        .collect();
    assert_eq!(names, vec![vec!["cbor-a".to_string()], vec!["cbor-b".to_string()], vec!["cbor-c".to_string()]]);

    let err = cw.describe_alarms().next_token("not-a-token").send().await.unwrap_err();
    assert_eq!(err.as_service_error().and_then(|e| e.meta().code()), Some("InvalidNextToken"), "{err:?}");
}
