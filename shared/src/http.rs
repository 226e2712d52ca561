//! The AWS SDK's HTTPS client over the process's one TLS setup ([`crate::tls`]).
//!
//! aws-smithy's default client builds its own TLS setup from the system's root certificates each
//! time an SDK client is built, which was most of a cold start's cost. This one is built on the
//! same parts (hyper 1, hyper-util's pooling client, rustls with aws-lc-rs) but speaks HTTP/1.1
//! only, and its trust store is decided once. It keeps what the SDK relies on: the connect
//! timeout covers name lookup, TCP and the TLS handshake; the read timeout runs until the
//! response's headers; the connection of an attempt is captured so that the SDK can close it
//! after a transient failure (its connection poisoning); and failures are classified as the
//! default client classifies them, so the SDK's retries and our ledger's "may have taken effect"
//! see the same kinds of error.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{capture_connection, HttpConnector as TcpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

/// An SDK HTTP client over `tls`; one per process, given to `aws-config` so every SDK client
/// shares it.
pub fn sdk_client(tls: Arc<ClientConfig>) -> SharedHttpClient {
    SharedHttpClient::new(SdkHttpClient { tls, connectors: Arc::new(Mutex::new(Vec::new())) })
}

type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Clone)]
struct SdkHttpClient {
    tls: Arc<ClientConfig>,
    /// One connector (and so one connection pool) per pair of timeouts the SDK asks for.
    connectors: Arc<Mutex<Vec<(Timeouts, SharedHttpConnector)>>>,
}

impl fmt::Debug for SdkHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkHttpClient").finish_non_exhaustive()
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(Connector::new(self.tls.clone(), key));
        connectors.push((key, connector.clone()));
        connector
    }
}

struct Connector {
    client: Client<ConnectWithin<HttpsConnector<TcpConnector>>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("read_timeout", &self.read_timeout).finish_non_exhaustive()
    }
}

impl Connector {
    fn new(tls: Arc<ClientConfig>, (connect_timeout, read_timeout): Timeouts) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let connect = ConnectWithin { inner: https, limit: connect_timeout };
        let client = Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(connect);
        Self { client, read_timeout }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // The SDK closes the connection of an attempt that failed transiently (a 5xx, a timeout),
        // so that its retry goes out on a new one.
        let captured = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || {
                captured.connection_metadata().as_ref()?;
                let captured = captured.clone();
                Some(
                    ConnectionMetadata::builder()
                        .proxied(false)
                        .poison_fn(move || {
                            if let Some(connection) = captured.connection_metadata().as_ref() {
                                connection.poison();
                            }
                        })
                        .build(),
                )
            });
        }
        let sent = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answered = match read_timeout {
                None => sent.await,
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(answered) => answered,
                    Err(_) => {
                        return Err(ConnectorError::timeout(
                            format!("no response within the read timeout of {limit:?}").into(),
                        ))
                    }
                },
            };
            match answered {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// The default client's classification: a connection not made within the connect timeout is a
/// `timeout`; a connection that could not be made, was closed or
/// failed on I/O is `io` (retried, and the request may not have been sent); a timeout is
/// `timeout`; a response cut short is a transient error.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    if find_source::<ConnectTimedOut>(&error).is_some() {
        return ConnectorError::timeout(Box::new(error));
    }
    let connect = error.is_connect();
    let hyper_error = find_source::<hyper::Error>(&error)
        .map(|e| (e.is_timeout(), e.is_user(), e.is_closed() || e.is_canceled(), e.is_incomplete_message()));
    let io = find_source::<std::io::Error>(&error).is_some();
    let boxed: BoxError = Box::new(error);
    match hyper_error {
        Some((true, _, _, _)) => ConnectorError::timeout(boxed),
        Some((_, true, _, _)) => ConnectorError::user(boxed),
        Some((_, _, true, _)) => ConnectorError::io(boxed),
        _ if connect || io => ConnectorError::io(boxed),
        Some((_, _, _, true)) => ConnectorError::other(boxed, Some(ErrorKind::TransientError)),
        _ => ConnectorError::other(boxed, None),
    }
}

fn find_source<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    std::iter::successors(Some(error), |&e| e.source()).find_map(|e| e.downcast_ref::<E>())
}

/// A connector whose whole connect (name lookup, TCP, TLS handshake) must finish within `limit`.
#[derive(Clone)]
struct ConnectWithin<C> {
    inner: C,
    limit: Option<Duration>,
}

#[derive(Debug)]
struct ConnectTimedOut(Duration);

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no connection within the connect timeout of {:?}", self.0)
    }
}

impl StdError for ConnectTimedOut {}

impl<C> tower_service::Service<Uri> for ConnectWithin<C>
where
    C: tower_service::Service<Uri> + Send,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                None => connecting.await.map_err(Into::into),
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(connected) => connected.map_err(Into::into),
                    Err(_) => Err(Box::new(ConnectTimedOut(limit)) as BoxError),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Roots, TrustStore};
    use aws_sdk_s3::config::{Credentials, Region};
    use aws_sdk_s3::error::SdkError;
    use aws_smithy_types::retry::RetryConfig;
    use aws_smithy_types::timeout::TimeoutConfig;
    use std::time::Instant;

    /// An S3 client over [`sdk_client`] at `endpoint`, with a short connect timeout and no retry.
    fn s3(endpoint: &str, connect_timeout: Duration) -> aws_sdk_s3::Client {
        let tls = TrustStore { roots: Roots::Mozilla, extra_bundle: None }.client_config().unwrap();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .http_client(sdk_client(tls))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .timeout_config(TimeoutConfig::builder().connect_timeout(connect_timeout).build())
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_ends_is_a_connect_timeout() {
        // A server that takes the TCP connection and then says nothing: no TLS handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let client = s3(&format!("https://127.0.0.1:{port}"), Duration::from_millis(300));
        let started = Instant::now();
        let sent = client.get_object().bucket("audit").key("k").send();
        let answer = tokio::time::timeout(Duration::from_secs(10), sent).await.expect("the connect timeout ends it");
        let elapsed = started.elapsed();
        match answer {
            Err(SdkError::DispatchFailure(failure)) => assert!(failure.is_timeout(), "{failure:?}"),
            other => panic!("expected a connect timeout, got {other:?}"),
        }
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_failure_the_sdk_may_retry() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = s3(&format!("http://127.0.0.1:{port}"), Duration::from_secs(3));
        match client.get_object().bucket("audit").key("k").send().await {
            Err(SdkError::DispatchFailure(failure)) => assert!(failure.is_io(), "{failure:?}"),
            other => panic!("expected a connection failure, got {other:?}"),
        }
    }
}
