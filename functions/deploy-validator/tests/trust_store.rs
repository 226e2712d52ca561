//! The trust store, end to end: the deploy-validator binary cold-started as Lambda starts it, its
//! AWS calls going over TLS to the emulator (a local TLS front with its own certificate
//! authority) and its HTTP check to a release served over TLS by the same authority. Mozilla's
//! roots (the default) do not trust that authority; `PIPEWARDEN_CA_BUNDLE` adds it, and
//! `PIPEWARDEN_TRUST_STORE=system` trusts what the system's store names (`SSL_CERT_FILE`).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{deployment, hook, http_spec};
use deploy_validator::hook::Evidence;
use pipewarden_devkit::lambda_process::LambdaProcess;
use pipewarden_devkit::{local, Emulator};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A certificate authority of our own and a server certificate it signed for 127.0.0.1.
struct Authority {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

fn authority() -> Authority {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Pipewarden test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    server_params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    let chain = vec![CertificateDer::from(server.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Authority { ca_pem: ca.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
}

/// A TLS front on 127.0.0.1 for the plain TCP service at `target`: returns its port.
async fn tls_front(acceptor: TlsAcceptor, target: SocketAddr) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the authority ends the handshake: nothing to serve.
                let Ok(mut tls) = acceptor.accept(client).await else { return };
                let Ok(mut upstream) = TcpStream::connect(target).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    port
}

/// A release that answers every request with 200 "ok", over plain HTTP: returns its address.
async fn healthy_release() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .await;
            });
        }
    });
    address
}

fn emulator_address(aws: &Emulator) -> SocketAddr {
    let url = reqwest::Url::parse(&aws.endpoint).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap()).parse().unwrap()
}

/// Runs one PreTraffic hook through the cold-started binary with `env` on top of the installed
/// variables; returns the evidence it wrote.
async fn hook_with(aws: &Emulator, name: &str, spec: &str, extra: &[(&str, String)]) -> (Evidence, String) {
    let deployment_id = format!("d-{}", name.to_ascii_uppercase());
    deployment(aws, &deployment_id).await;
    aws.hook_execution(&deployment_id, name, "BeforeAllowTraffic").await;
    let mut env = local::prepare(aws).await;
    env.push(("VALIDATION_SPEC".to_string(), spec.to_string()));
    env.push(("SAFETY_MARGIN_MS".to_string(), "3000".to_string()));
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.clone()));
    }
    let log = std::env::temp_dir().join(format!("deploy-validator-trust-{name}-{}.log", std::process::id()));
    let program = env!("CARGO_BIN_EXE_deploy-validator");
    let mut validator =
        LambdaProcess::start("CodeDeployHook_pipewarden-validator", program.as_ref(), &[], &env, &log).await.unwrap();
    validator.init(Duration::from_secs(30)).await.unwrap();
    let answer = validator.invoke(name, &hook(&deployment_id, name), Duration::from_secs(60)).await.unwrap();
    let logs = validator.logs();
    assert!(answer.ok, "{}\n{logs}", answer.body);
    let body = aws.object(local::BUCKET, &Evidence::key(&deployment_id, name)).await.expect("the hook's evidence");
    (serde_json::from_slice(&body).unwrap(), logs)
}

#[tokio::test]
async fn a_private_certificate_authority_is_trusted_only_when_the_deployer_adds_it() {
    let aws = Emulator::fresh().await;
    let authority = authority();
    let dir = std::env::temp_dir().join(format!("pipewarden-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("private-ca.pem");
    std::fs::write(&ca_file, &authority.ca_pem).unwrap();
    let ca_file = ca_file.display().to_string();
    let release = tls_front(authority.acceptor.clone(), healthy_release().await).await;
    let aws_over_tls =
        format!("https://127.0.0.1:{}", tls_front(authority.acceptor.clone(), emulator_address(&aws)).await);
    let spec = http_spec(&format!("https://127.0.0.1:{release}/health"), "    maxAttempts: 1\n");

    // GIVEN the default trust store (Mozilla's roots) and a release behind a private CA
    // WHEN the hook checks it THEN the check fails on the certificate and CodeDeploy is told Failed
    let (evidence, logs) = hook_with(&aws, "hook-mozilla", &spec, &[]).await;
    assert_eq!(evidence.status, pipewarden_shared::ports::HookStatus::Failed, "{logs}");
    let detail = &evidence.checks[0].detail;
    assert!(detail.to_ascii_lowercase().contains("certificate"), "the check says why: {detail}");

    // GIVEN the private CA added with PIPEWARDEN_CA_BUNDLE, and every AWS call over TLS through it
    // WHEN the hook runs THEN the release passes and the report and evidence reached AWS over TLS
    let extra = [("PIPEWARDEN_CA_BUNDLE", ca_file.clone()), ("AWS_ENDPOINT_URL", aws_over_tls.clone())];
    let (evidence, logs) = hook_with(&aws, "hook-bundle", &spec, &extra).await;
    assert_eq!(evidence.status, pipewarden_shared::ports::HookStatus::Succeeded, "{logs}");
    assert!(evidence.reported, "{logs}");

    // GIVEN the system's store, which SSL_CERT_FILE points at the private CA alone
    // WHEN the hook runs THEN it trusts the CA too, for AWS and for the release
    let extra = [
        ("PIPEWARDEN_TRUST_STORE", "system".to_string()),
        ("SSL_CERT_FILE", ca_file.clone()),
        ("AWS_ENDPOINT_URL", aws_over_tls.clone()),
    ];
    let (evidence, logs) = hook_with(&aws, "hook-system", &spec, &extra).await;
    assert_eq!(evidence.status, pipewarden_shared::ports::HookStatus::Succeeded, "{logs}");

    // CodeDeploy was told each outcome.
    let statuses: Vec<(String, String)> =
        aws.hook_statuses().await.into_iter().map(|s| (s.hook_execution_id, s.status)).collect();
    for (hook_id, status) in [("hook-mozilla", "Failed"), ("hook-bundle", "Succeeded"), ("hook-system", "Succeeded")] {
        assert!(statuses.contains(&(hook_id.to_string(), status.to_string())), "{hook_id}: {statuses:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
