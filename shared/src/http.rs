//! The AWS SDK's HTTPS client over the process's one TLS setup ([`crate::tls`]).
//!
//! aws-smithy's default client builds its own TLS setup from the system's root certificates each
//! time an SDK client is built, which was most of a cold start's cost. This is the same stack
//! (hyper 1 with hyper-util's pooling client, rustls with aws-lc-rs, HTTP/1.1) with the trust
//! store decided once. It honours the SDK's connect and read timeouts and classifies failures as
//! the default client does, so the SDK's retries and our ledger's "may have taken effect" see the
//! same kinds of error.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
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
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
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
        tcp.set_connect_timeout(connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(https);
        Self { client, read_timeout }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
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

/// The default client's classification: a connection that could not be made, was closed or
/// failed on I/O is `io` (retried, and the request may not have been sent); a timeout is
/// `timeout`; a response cut short is a transient error.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
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
