//! SDK clients, built once per cold start from one `aws-config` load.
//!
//! `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_SNS`, `_S3`, `_CODEDEPLOY`) points every client at a
//! local emulator with no code change; S3 then uses path-style addressing, since a local endpoint
//! has no per-bucket host names.

//!
//! Every client shares one HTTPS client over the process's one TLS setup ([`crate::tls`]: Mozilla's
//! roots compiled in unless `PIPEWARDEN_TRUST_STORE=system`, plus `PIPEWARDEN_CA_BUNDLE`). When
//! the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, any case), the SDK's
//! own connector is used, since it goes through the proxy (and honours `NO_PROXY`): it trusts the
//! system's store and `PIPEWARDEN_CA_BUNDLE` (a TLS-inspecting proxy's CA).

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{tls, Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{ConfigError, Vars};

const PROXY_VARS: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// Loads region, credentials and endpoint overrides from the environment. A bad trust store
/// setting is an error naming its variable.
pub async fn load_config(vars: &impl Vars) -> Result<SdkConfig, ConfigError> {
    // Checked whatever the client: a bad setting stops the cold start, proxy or not.
    let shared = crate::tls::shared(vars)?;
    let client = if PROXY_VARS.iter().any(|name| vars.optional(name).is_some()) {
        proxied_client(vars)?
    } else {
        crate::http::sdk_client(shared)
    };
    Ok(loader(vars).http_client(client).load().await)
}

/// `aws-config`'s loader, told where the credentials are when the environment holds them.
///
/// Lambda gives a function its role's credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
/// and `AWS_SESSION_TOKEN`. The default chain would take them too (the environment is its first
/// source), but building it at a cold start first builds every other source it might fall back
/// to: the profile files, IMDS, the container endpoint, and web identity with an STS client of its
/// own (STS's endpoint rules parsed, a tenth of alarm-fanout's init). Without them (the validator
/// as a CLI on EC2, a developer's profile) the default chain is used as before.
fn loader(vars: &impl Vars) -> aws_config::ConfigLoader {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    if credentials_in_environment(vars) {
        loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    }
}

/// Both keys set, as the environment provider reads them (its `SECRET_ACCESS_KEY` fallback aside:
/// without `AWS_SECRET_ACCESS_KEY` the default chain decides).
fn credentials_in_environment(vars: &impl Vars) -> bool {
    vars.optional("AWS_ACCESS_KEY_ID").is_some() && vars.optional("AWS_SECRET_ACCESS_KEY").is_some()
}

/// The SDK's own connector through the environment's proxy, trusting the system's store and the
/// extra bundle.
fn proxied_client(vars: &impl Vars) -> Result<SharedHttpClient, ConfigError> {
    let store = crate::tls::TrustStore::from_vars(vars)?;
    let mut trust = tls::TrustStore::empty().with_native_roots(true);
    if let Some(path) = &store.extra_bundle {
        // Read and parsed once already by `tls::shared`, which would have failed on a bad file.
        let pem =
            std::fs::read(path).map_err(|e| ConfigError::new(crate::tls::CA_BUNDLE_VAR, format!("{path}: {e}")))?;
        trust = trust.with_pem_certificate(pem);
    }
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| ConfigError::new(crate::tls::TRUST_STORE_VAR, format!("no TLS setup for the proxy: {e}")))?;
    Ok(Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    }))
}

/// The SDK's own HTTPS client and the system's trust store: for deploy-validator when the trust
/// store setting is bad, since it must still report to CodeDeploy (and fails every hook, saying why).
pub async fn load_config_with_system_store(vars: &impl Vars) -> SdkConfig {
    loader(vars).load().await
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_environment_provider_only_when_both_keys_are_set() {
        let lambda = HashMap::from([
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]);
        assert!(credentials_in_environment(&lambda), "Lambda's role credentials");
        let long_term = HashMap::from([("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret")]);
        assert!(credentials_in_environment(&long_term), "keys without a session token");
        // The default chain decides: a profile, web identity, IMDS (the validator as a CLI on EC2).
        for partial in [
            HashMap::new(),
            HashMap::from([("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")]),
            HashMap::from([("AWS_SECRET_ACCESS_KEY", "secret")]),
            HashMap::from([("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "  ")]),
            HashMap::from([("AWS_PROFILE", "dev"), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/token")]),
        ] {
            assert!(!credentials_in_environment(&partial), "{partial:?}");
        }
    }
}
