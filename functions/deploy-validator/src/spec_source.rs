//! The validation spec, read once it can be: a read that fails (S3 throttled, a dropped
//! connection) is tried again on the next hook, so one bad moment at cold start does not fail every
//! hook until Lambda recycles the container. A spec that was read but is invalid, or a
//! configuration that names no spec, is a configuration error and stays one.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use pipewarden_shared::config::ConfigError;
use pipewarden_shared::document::DocumentSource;

use crate::probes::{HttpProbe, HttpRequest, HttpResponse, ReqwestProbe};
use crate::spec::Spec;

/// Why there is no spec to validate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecProblem {
    /// It could not be read this time; the next hook reads it again.
    Unread(String),
    /// It was read and is wrong, or the configuration is: no later read changes that.
    Invalid(String),
}

type ReadFuture = Pin<Box<dyn Future<Output = Result<Spec, SpecProblem>> + Send>>;
type Read = Box<dyn Fn() -> ReadFuture + Send + Sync>;

/// The spec once read (or known to be unusable), and how to read it while it is not.
pub struct SpecSlot {
    settled: OnceLock<Result<Spec, String>>,
    read: Option<Read>,
}

impl SpecSlot {
    /// A spec known already (the CLI, tests): never read again.
    pub fn settled(spec: Result<Spec, String>) -> Self {
        Self { settled: OnceLock::from(spec), read: None }
    }

    /// A spec read by `read` on first use, and again on every use until a read settles it.
    pub fn read_by<F>(read: impl Fn() -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = Result<Spec, SpecProblem>> + Send + 'static,
    {
        Self { settled: OnceLock::new(), read: Some(Box::new(move || Box::pin(read()))) }
    }

    /// The spec, reading it if no read has settled it yet; `Err` says why there is none.
    pub async fn get(&self) -> Result<&Spec, String> {
        if self.settled.get().is_none() {
            let Some(read) = &self.read else { return Err("no validation spec".to_string()) };
            let settled = match read().await {
                Ok(spec) => Ok(spec),
                Err(SpecProblem::Invalid(problem)) => Err(problem),
                Err(SpecProblem::Unread(problem)) => return Err(format!("{problem} (read again on the next hook)")),
            };
            // One invocation at a time: nothing else can have settled it meanwhile.
            let _ = self.settled.set(settled);
        }
        match self.settled.get() {
            Some(Ok(spec)) => Ok(spec),
            Some(Err(problem)) => Err(problem.clone()),
            None => Err("no validation spec".to_string()),
        }
    }
}

impl From<Result<Spec, String>> for SpecSlot {
    fn from(spec: Result<Spec, String>) -> Self {
        Self::settled(spec)
    }
}

/// The HTTP probe, built once the spec's `allowedHosts` are known (its redirect policy needs them).
#[derive(Clone, Default)]
pub struct SpecHttp(Arc<OnceLock<ReqwestProbe>>);

impl HttpProbe for SpecHttp {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        match self.0.get() {
            Some(probe) => probe.send(request).await,
            None => Err("no HTTP client: the validation spec has not been read".to_string()),
        }
    }
}

/// The Lambda's spec: read from `source` (S3 or an environment variable) when first needed, and
/// the HTTP probe that follows redirects only to the hosts it allows.
pub fn read_on_demand(source: Result<DocumentSource, ConfigError>, s3: aws_sdk_s3::Client) -> (SpecSlot, SpecHttp) {
    let source = match source {
        Ok(source) => source,
        Err(e) => return (SpecSlot::settled(Err(e.to_string())), SpecHttp::default()),
    };
    let http = SpecHttp::default();
    let filled = http.clone();
    let slot = SpecSlot::read_by(move || {
        let (source, s3, filled) = (source.clone(), s3.clone(), filled.clone());
        async move {
            let spec = read_spec(&source, &s3).await?;
            let probe = ReqwestProbe::new(spec.allowed_hosts.clone())
                .map_err(|e| SpecProblem::Unread(format!("HTTP client not built: {e}")))?;
            let _ = filled.0.set(probe);
            Ok(spec)
        }
    });
    (slot, http)
}

/// Reads and validates the spec; the error says what is wrong and where, and whether reading
/// again can help.
pub async fn read_spec(source: &DocumentSource, s3: &aws_sdk_s3::Client) -> Result<Spec, SpecProblem> {
    let text = source.read(s3).await.map_err(SpecProblem::Unread)?;
    Spec::parse(&text, &source.origin()).map_err(|e| SpecProblem::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    const SPEC: &str = "allowedHosts: [127.0.0.1]\nchecks: [{name: h, type: http, url: 'http://127.0.0.1/'}]";

    /// A slot whose reads answer `answers` in turn, and how many reads it made.
    fn slot(answers: Vec<Result<&'static str, SpecProblem>>) -> (SpecSlot, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let counted = reads.clone();
        let slot = SpecSlot::read_by(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answers.lock().unwrap().next().expect("no more reads expected");
            async move { answer.and_then(|text| Spec::parse(text, "t").map_err(|e| SpecProblem::Invalid(e.to_string()))) }
        });
        (slot, reads)
    }

    #[tokio::test]
    async fn a_read_that_failed_is_tried_again_and_a_good_spec_kept() {
        let (slot, reads) =
            slot(vec![Err(SpecProblem::Unread("s3://b/k could not be read: SlowDown".into())), Ok(SPEC)]);
        let first = slot.get().await.unwrap_err();
        assert!(first.contains("could not be read") && first.contains("read again on the next hook"), "{first}");
        assert!(slot.get().await.is_ok());
        assert!(slot.get().await.is_ok());
        assert_eq!(reads.load(Ordering::SeqCst), 2, "kept once read");
    }

    #[tokio::test]
    async fn an_invalid_spec_stays_a_configuration_error() {
        let (slot, reads) = slot(vec![Ok("checks: [{name: h, type: nonsense}]")]);
        let first = slot.get().await.unwrap_err();
        assert_eq!(slot.get().await.unwrap_err(), first);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(SpecSlot::settled(Err("VALIDATION_SPEC: not set".into())).get().await.is_err());
    }
}
