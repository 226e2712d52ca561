//! The Lambda boundary: how our errors reach the runtime.

use lambda_runtime::Diagnostic;

/// Whether Lambda (or EventBridge, or the DLQ) should try the event again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A dependency failed; the same event may well succeed later.
    Helps,
    /// The event itself is wrong; trying again cannot help.
    Useless,
}

/// A diagnostic whose `errorType` says whether a retry can help.
pub fn diagnostic(error: &dyn std::error::Error, retry: Retry) -> Diagnostic {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Diagnostic {
        error_type: match retry {
            Retry::Helps => "Pipewarden.RetryableError".to_string(),
            Retry::Useless => "Pipewarden.BadEvent".to_string(),
        },
        error_message: message,
    }
}

/// One invocation: its body as Lambda sent it, and its context.
pub struct Invocation {
    body: bytes::Bytes,
    pub context: lambda_runtime::Context,
}

impl Invocation {
    /// The body as text: Lambda sends JSON, so anything else is named as a bad event.
    pub fn text(&self) -> Result<&str, Diagnostic> {
        std::str::from_utf8(&self.body).map_err(|e| {
            let error = crate::events::EventError::new("Lambda invocation", ".", format!("the body is not UTF-8: {e}"));
            diagnostic(&error, Retry::Useless)
        })
    }
}

/// Runs the Lambda runtime loop with `handler` given each invocation's body as Lambda sent it.
///
/// `lambda_runtime` reads the body into the handler's payload type before calling it: a whole
/// pass over the text (for a `RawValue`, a scan and a copy; a fifth of the CPU an SNS-wrapped alarm
/// event costs, its escaped message scanned once more than needed). Here a layer takes the body
/// before that read, gives the runtime `null` to read instead (the unit payload), and hands the
/// body to the handler, which reads it once. Everything else is `lambda_runtime::run`'s: its
/// tracing span, the handler's panics caught and reported, the response or error posted.
/// Invocations are handled one at a time (`run`, not `run_concurrent`), and the handler is called
/// within the layer's own call, so the body handed over is always this invocation's.
pub async fn run_on_body<H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Invocation) -> F,
    F: std::future::Future<Output = Result<serde_json::Value, Diagnostic>>,
{
    use lambda_runtime::{layers::TracingLayer, service_fn, tower::layer::layer_fn, LambdaEvent, Runtime};
    let slot = Slot::default();
    let handed = slot.clone();
    let runtime = Runtime::new(service_fn(move |event: LambdaEvent<()>| {
        handler(Invocation { body: handed.take(), context: event.context })
    }))
    .layer(layer_fn(move |inner| TakeBody { inner, slot: slot.clone() }))
    .layer(TracingLayer::new());
    runtime.run().await
}

/// Where the layer leaves the body for the handler.
#[derive(Clone, Default)]
struct Slot(std::sync::Arc<std::sync::Mutex<Option<bytes::Bytes>>>);

impl Slot {
    fn put(&self, body: bytes::Bytes) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(body);
    }
    fn take(&self) -> bytes::Bytes {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take().unwrap_or_default()
    }
}

/// The layer: the body into the slot, `null` in its place.
struct TakeBody<S> {
    inner: S,
    slot: Slot,
}

impl<S> tower_service::Service<lambda_runtime::LambdaInvocation> for TakeBody<S>
where
    S: tower_service::Service<lambda_runtime::LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        self.slot.put(std::mem::replace(&mut invocation.body, bytes::Bytes::from_static(b"null")));
        self.inner.call(invocation)
    }
}
