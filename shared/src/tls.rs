//! The process's one TLS setup, shared by the AWS SDK clients ([`crate::http`]) and
//! deploy-validator's HTTP checks.
//!
//! The trust store is chosen deliberately (`PIPEWARDEN_TRUST_STORE`):
//! - `mozilla` (the default): Mozilla's root program, compiled in by the `webpki-roots` crate as
//!   ready trust anchors, so a cold start parses no certificate. AWS endpoints chain to Amazon
//!   Trust Services roots, which are in it.
//! - `system`: the operating system's store (`SSL_CERT_FILE`, `SSL_CERT_DIR` or the distribution's
//!   bundle), loaded and parsed at the cold start (about 3 ms for Debian's 146 roots). It is the
//!   default when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, as those name the store wanted.
//!
//! `PIPEWARDEN_CA_BUNDLE` names a PEM file of extra certificate authorities added to either store
//! (a private CA for an internal release endpoint, a VPC proxy, an emulator behind TLS). A file
//! that cannot be read, holds no certificate or one that does not parse stops the cold start with
//! an error naming the variable.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::config::{ConfigError, Vars};

pub const TRUST_STORE_VAR: &str = "PIPEWARDEN_TRUST_STORE";
pub const CA_BUNDLE_VAR: &str = "PIPEWARDEN_CA_BUNDLE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    Mozilla,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStore {
    pub roots: Roots,
    pub extra_bundle: Option<String>,
}

impl TrustStore {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let roots = match vars.optional(TRUST_STORE_VAR).map(|v| v.to_ascii_lowercase()).as_deref() {
            // A deployer who points OpenSSL's variables at a bundle means the system's store.
            None if vars.optional("SSL_CERT_FILE").is_some() || vars.optional("SSL_CERT_DIR").is_some() => {
                Roots::System
            }
            None | Some("mozilla") => Roots::Mozilla,
            Some("system") => Roots::System,
            Some(other) => {
                return Err(ConfigError::new(
                    TRUST_STORE_VAR,
                    format!("{other:?} is neither \"mozilla\" nor \"system\""),
                ))
            }
        };
        Ok(Self { roots, extra_bundle: vars.optional(CA_BUNDLE_VAR) })
    }

    /// The certificate authorities this store trusts.
    pub fn root_store(&self) -> Result<RootCertStore, ConfigError> {
        let mut store = match self.roots {
            Roots::Mozilla => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                let (added, _unparsable) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                    return Err(ConfigError::new(
                        TRUST_STORE_VAR,
                        format!("\"system\" found no certificate authority in the system's store{why}"),
                    ));
                }
                store
            }
        };
        if let Some(path) = &self.extra_bundle {
            let bad = |problem: String| ConfigError::new(CA_BUNDLE_VAR, format!("{path}: {problem}"));
            let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| bad(format!("is not a PEM certificate bundle: {e}")))?;
                store.add(cert).map_err(|e| bad(format!("holds a certificate that does not parse: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad("holds no PEM certificate".to_string()));
            }
        }
        Ok(store)
    }

    /// A TLS client setup trusting this store: TLS 1.2 and 1.3, aws-lc-rs as the crypto provider
    /// (the one the SDK uses), no client certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new(TRUST_STORE_VAR, format!("no TLS version available: {e}")))?
            .with_root_certificates(self.root_store()?)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

static SHARED: OnceLock<Arc<ClientConfig>> = OnceLock::new();

/// The process's TLS setup, built from the environment on first use and then shared.
pub fn shared(vars: &impl Vars) -> Result<Arc<ClientConfig>, ConfigError> {
    if let Some(config) = SHARED.get() {
        return Ok(config.clone());
    }
    let config = TrustStore::from_vars(vars)?.client_config()?;
    Ok(SHARED.get_or_init(|| config).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn mozilla_roots_are_the_default_and_hold_amazons_roots() {
        let store = TrustStore::from_vars(&vars(&[])).unwrap();
        assert_eq!(store, TrustStore { roots: Roots::Mozilla, extra_bundle: None });
        let roots = store.root_store().unwrap();
        assert!(roots.len() > 100, "{} roots", roots.len());
        // Amazon Root CA 1, which AWS endpoints chain to.
        let amazon =
            roots.roots.iter().filter(|a| String::from_utf8_lossy(a.subject.as_ref()).contains("Amazon Root CA 1"));
        assert_eq!(amazon.count(), 1);
    }

    #[test]
    fn a_bad_trust_store_or_bundle_names_its_variable() {
        let pointed = TrustStore::from_vars(&vars(&[("SSL_CERT_FILE", "/etc/ssl/mine.pem")])).unwrap();
        assert_eq!(pointed.roots, Roots::System, "SSL_CERT_FILE names the store wanted");
        let chosen =
            TrustStore::from_vars(&vars(&[("SSL_CERT_FILE", "/x.pem"), (TRUST_STORE_VAR, "Mozilla")])).unwrap();
        assert_eq!(chosen.roots, Roots::Mozilla);
        let e = TrustStore::from_vars(&vars(&[(TRUST_STORE_VAR, "windows")])).unwrap_err();
        assert_eq!(e.variable, TRUST_STORE_VAR);
        let missing = TrustStore::from_vars(&vars(&[(CA_BUNDLE_VAR, "/nonexistent/ca.pem")])).unwrap();
        let e = missing.root_store().unwrap_err();
        assert_eq!(e.variable, CA_BUNDLE_VAR);
        assert!(e.problem.contains("/nonexistent/ca.pem") && e.problem.contains("cannot be read"), "{e}");
        let dir = std::env::temp_dir().join(format!("pipewarden-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TrustStore { roots: Roots::Mozilla, extra_bundle: Some(empty.display().to_string()) }
            .root_store()
            .unwrap_err();
        assert!(e.problem.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
