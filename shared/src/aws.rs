//! SDK clients, built once per cold start from one `aws-config` load.
//!
//! `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_SNS`, `_S3`, `_CODEDEPLOY`) points every client at a
//! local emulator with no code change; S3 then uses path-style addressing, since a local endpoint
//! has no per-bucket host names.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads region, credentials and endpoint overrides from the environment.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

pub fn sns_client(config: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(config)
}

pub fn codedeploy_client(config: &SdkConfig) -> aws_sdk_codedeploy::Client {
    aws_sdk_codedeploy::Client::new(config)
}

pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let local_endpoint = config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(local_endpoint).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
