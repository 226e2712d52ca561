//! SDK clients, built once per cold start from one `aws-config` load.
//!
//! `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_SNS`, `_S3`, `_CODEDEPLOY`) points every client at a
//! local emulator with no code change; S3 then uses path-style addressing, since a local endpoint
//! has no per-bucket host names.

//!
//! Every client shares one HTTPS client over the process's one TLS setup ([`crate::tls`]: Mozilla's
//! roots compiled in unless `PIPEWARDEN_TRUST_STORE=system`, plus `PIPEWARDEN_CA_BUNDLE`). When
//! the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, any case), the SDK's
//! own client is kept, since it goes through the proxy; it trusts the system's store.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::{ConfigError, Vars};

const PROXY_VARS: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// Loads region, credentials and endpoint overrides from the environment. A bad trust store
/// setting is an error naming its variable.
pub async fn load_config(vars: &impl Vars) -> Result<SdkConfig, ConfigError> {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    let loader = if PROXY_VARS.iter().any(|name| vars.optional(name).is_some()) {
        loader
    } else {
        loader.http_client(crate::http::sdk_client(crate::tls::shared(vars)?))
    };
    Ok(loader.load().await)
}

/// The SDK's own HTTPS client and the system's trust store: for deploy-validator when the trust
/// store setting is bad, since it must still report to CodeDeploy (and fails every hook, saying why).
pub async fn load_config_with_system_store() -> SdkConfig {
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
