//! What checks touch: HTTP endpoints, CloudWatch alarms, Lambda functions. One trait each, one
//! real adapter each.

pub mod egress;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::ports::{FailureKind, PortError};

use crate::canary::{MetricQuery, Series, Window};

pub use egress::StaticLookup;
use egress::{
    next_hop, AllowedHosts, EgressPolicy, GuardedResolver, Hop, NameLookup, Refused, RuntimeApi, SystemLookup,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Names of headers (any case) whose values are secrets: with `Authorization`, `Cookie` and
    /// `Proxy-Authorization`, dropped when a redirect leaves the URL's origin.
    pub secret_headers: Vec<String>,
    pub body: Option<String>,
    /// For the whole attempt: every redirect hop and the body.
    pub timeout: Duration,
    /// Read at most this much of the response body; the rest is left unread.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// The body as read: at most the request's `max_body_bytes`.
    pub body: String,
    /// The body went on past `max_body_bytes` and was cut there.
    pub body_cut: bool,
    pub latency: Duration,
}

pub trait HttpProbe: Send + Sync {
    /// Sends one request; `Err` says why no response came (refused, timeout, redirect refused).
    fn send(&self, request: &HttpRequest) -> impl Future<Output = Result<HttpResponse, String>> + Send;
}

pub trait AlarmGate: Send + Sync {
    /// The alarms among these names (or with this prefix) that are in ALARM.
    fn alarms_in_alarm(
        &self,
        names: &[String],
        prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
}

/// CloudWatch's metrics, for the canary check.
pub trait MetricSource: Send + Sync {
    /// The values of each query over `window` (every page), by query id; a query with no data
    /// points is absent or empty.
    fn metric_data(
        &self,
        queries: &[MetricQuery],
        window: Window,
    ) -> impl Future<Output = Result<Series, PortError>> + Send;

    /// The region the metrics come from, for console links.
    fn region(&self) -> String;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub payload: String,
    /// Set when the function itself failed (Lambda's `FunctionError`).
    pub function_error: Option<String>,
}

pub trait FunctionInvoker: Send + Sync {
    fn invoke(&self, function: &str, payload: Vec<u8>) -> impl Future<Output = Result<Invocation, PortError>> + Send;
}

/// HTTP over reqwest, going only where the spec allows ([`egress`]): the origin of the URL and of
/// every redirect hop is checked against `allowedHosts`, names are resolved by a resolver that
/// refuses guarded addresses, and redirects are followed here, hop by hop (at most
/// [`egress::MAX_REDIRECTS`]), so that credentials stay behind when a redirect leaves the origin.
#[derive(Clone)]
pub struct ReqwestProbe {
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
}

impl ReqwestProbe {
    /// The probe for a spec's `allowedHosts`: names resolved by the system, and the Lambda Runtime
    /// API's address read from `AWS_LAMBDA_RUNTIME_API` (set by Lambda; unset for the CLI).
    pub fn new(allowed_hosts: AllowedHosts) -> Result<Self, String> {
        let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API").ok().filter(|v| !v.trim().is_empty());
        Self::with_lookup(allowed_hosts, SystemLookup, runtime_api.as_deref())
    }

    /// The probe with its own name lookup (tests map names to addresses with [`StaticLookup`]) and
    /// Runtime API address (`host:port`). A Runtime API address that cannot be read is an error:
    /// the probe would not know what to refuse.
    pub fn with_lookup(
        allowed_hosts: AllowedHosts,
        lookup: impl NameLookup,
        runtime_api: Option<&str>,
    ) -> Result<Self, String> {
        let runtime_api = runtime_api.map(RuntimeApi::parse).transpose()?;
        let policy = Arc::new(EgressPolicy { allowed: allowed_hosts, runtime_api });
        let resolver = GuardedResolver { lookup: Arc::new(lookup), policy: policy.clone() };
        // The process's one TLS setup, the SDK's too (`PIPEWARDEN_TRUST_STORE`, `PIPEWARDEN_CA_BUNDLE`).
        let tls = pipewarden_shared::tls::shared(&pipewarden_shared::config::ProcessEnv).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, past the resolver's checks.
            .no_proxy()
            .dns_resolver(resolver)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, policy })
    }
}

impl HttpProbe for ReqwestProbe {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        let method =
            reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes()).map_err(|e| e.to_string())?;
        let first = reqwest::Url::parse(&request.url).map_err(|e| format!("not a URL: {e}"))?;
        let started = Instant::now();
        // The request's timeout holds for the whole attempt, every hop and the body included.
        let until = started + request.timeout;
        let mut hop = Hop {
            url: first.clone(),
            method,
            headers: request.headers.clone(),
            body: request.body.clone(),
            with_credentials: true,
        };
        self.policy.check_target(&hop.url).map_err(|p| format!("refused: {p}"))?;
        let mut redirects = 0;
        loop {
            let remaining = until.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err("timed out".to_string());
            }
            let mut builder = self.client.request(hop.method.clone(), hop.url.clone()).timeout(remaining);
            for (name, value) in &hop.headers {
                builder = builder.header(name, value);
            }
            if let Some(body) = &hop.body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(describe)?;
            let status = response.status().as_u16();
            let location = match status {
                301 | 302 | 303 | 307 | 308 => response.headers().get(reqwest::header::LOCATION).cloned(),
                _ => None,
            };
            // A redirect without a Location is an answer like any other.
            let Some(location) = location else {
                let (body, body_cut) = read_at_most(response, request.max_body_bytes).await?;
                return Ok(HttpResponse { status, body, body_cut, latency: started.elapsed() });
            };
            drop(response);
            if redirects == egress::MAX_REDIRECTS {
                return Err(format!("redirect refused: more than {} redirects", egress::MAX_REDIRECTS));
            }
            redirects += 1;
            // Not quoted anywhere: a Location may carry anything, secrets included.
            let location = String::from_utf8_lossy(location.as_bytes());
            hop = next_hop(&first, &hop, status, &location, &request.secret_headers)?;
            self.policy.check_target(&hop.url).map_err(|p| format!("redirect refused: {p}"))?;
        }
    }
}

/// Streams the body chunk by chunk and stops at `cap` bytes, so memory never holds more than the
/// cap and one chunk, however much the server sends.
async fn read_at_most(mut response: reqwest::Response, cap: usize) -> Result<(String, bool), String> {
    let mut body = Vec::with_capacity(cap.min(64 * 1024));
    let mut cut = false;
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    // Dropping the response here closes the connection instead of draining the rest.
    drop(response);
    Ok((String::from_utf8_lossy(&body).into_owned(), cut))
}

fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    // The resolver refused every address of the name: say so, not "connection failed".
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return format!("refused: {refused}");
        }
        source = cause.source();
    }
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // Never echo the URL itself: it may carry credentials or tokens.
    text
}

pub struct CloudWatchAlarmGate {
    client: aws_sdk_cloudwatch::Client,
    page_size: Option<i32>,
}

impl CloudWatchAlarmGate {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client, page_size: None }
    }

    /// Asks for pages of at most `size` alarms of each kind (CloudWatch's default is 50).
    pub fn with_page_size(self, size: i32) -> Self {
        Self { page_size: Some(size), ..self }
    }
}

impl AlarmGate for CloudWatchAlarmGate {
    async fn alarms_in_alarm(&self, names: &[String], prefix: Option<&str>) -> Result<Vec<String>, PortError> {
        use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
        let mut in_alarm = Vec::new();
        let mut queries = Vec::new();
        if !names.is_empty() {
            queries.push(self.client.describe_alarms().set_alarm_names(Some(names.to_vec())));
        }
        if let Some(prefix) = prefix {
            queries.push(self.client.describe_alarms().alarm_name_prefix(prefix));
        }
        for query in queries {
            let mut pages = query
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .state_value(StateValue::Alarm)
                .into_paginator();
            if let Some(size) = self.page_size {
                pages = pages.page_size(size);
            }
            let mut pages = pages.send();
            while let Some(page) = pages.next().await {
                let output = page.map_err(|e| classify_sdk_error("CloudWatch", "DescribeAlarms", &e))?;
                // The filter is asked of CloudWatch and checked here too: only ALARM counts.
                for alarm in output.metric_alarms.unwrap_or_default() {
                    if alarm.state_value == Some(StateValue::Alarm) {
                        in_alarm.extend(alarm.alarm_name);
                    }
                }
                for alarm in output.composite_alarms.unwrap_or_default() {
                    if alarm.state_value == Some(StateValue::Alarm) {
                        in_alarm.extend(alarm.alarm_name);
                    }
                }
            }
        }
        in_alarm.sort();
        in_alarm.dedup();
        Ok(in_alarm)
    }
}

/// GetMetricData takes at most 500 queries a call.
const QUERIES_PER_CALL: usize = 500;
/// Pages read for one set of queries at most: a canary window of a day at one-minute periods is
/// 1,440 points a query, well within one page of 100,800 points for a few dozen queries.
const MAX_PAGES: usize = 20;

fn to_smithy(time: chrono::DateTime<chrono::Utc>) -> aws_sdk_cloudwatch::primitives::DateTime {
    aws_sdk_cloudwatch::primitives::DateTime::from_secs(time.timestamp())
}

impl MetricSource for CloudWatchAlarmGate {
    async fn metric_data(&self, queries: &[MetricQuery], window: Window) -> Result<Series, PortError> {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StatusCode};
        let mut series = Series::new();
        for chunk in queries.chunks(QUERIES_PER_CALL) {
            let built: Vec<MetricDataQuery> = chunk
                .iter()
                .map(|q| {
                    let metric = Metric::builder()
                        .namespace(&q.namespace)
                        .metric_name(&q.metric_name)
                        .set_dimensions(Some(
                            q.dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect(),
                        ))
                        .build();
                    let stat = MetricStat::builder()
                        .metric(metric)
                        .period(i32::try_from(q.period_seconds).unwrap_or(i32::MAX))
                        .stat(&q.stat)
                        .build();
                    MetricDataQuery::builder().id(&q.id).metric_stat(stat).return_data(true).build()
                })
                .collect();
            let mut token: Option<String> = None;
            for page in 1..=MAX_PAGES {
                let output = self
                    .client
                    .get_metric_data()
                    .set_metric_data_queries(Some(built.clone()))
                    .start_time(to_smithy(window.start))
                    .end_time(to_smithy(window.end))
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| classify_sdk_error("CloudWatch", "GetMetricData", &e))?;
                for result in output.metric_data_results.unwrap_or_default() {
                    if matches!(result.status_code, Some(StatusCode::Forbidden) | Some(StatusCode::InternalError)) {
                        let messages: Vec<String> =
                            result.messages.unwrap_or_default().into_iter().filter_map(|m| m.value).collect();
                        let kind = match result.status_code {
                            Some(StatusCode::InternalError) => FailureKind::ServerError,
                            _ => FailureKind::Rejected,
                        };
                        return Err(PortError::new(
                            "CloudWatch",
                            "GetMetricData",
                            kind,
                            format!(
                                "query {} answered {}: {}",
                                result.id.unwrap_or_default(),
                                result.status_code.map(|s| s.as_str().to_string()).unwrap_or_default(),
                                messages.join("; ")
                            ),
                        ));
                    }
                    let id = result.id.unwrap_or_default();
                    series.entry(id).or_default().extend(result.values.unwrap_or_default());
                }
                match output.next_token.filter(|t| !t.is_empty()) {
                    None => break,
                    Some(_) if page == MAX_PAGES => {
                        return Err(PortError::new(
                            "CloudWatch",
                            "GetMetricData",
                            FailureKind::Rejected,
                            format!("more than {MAX_PAGES} pages of data points; shorten windowMinutes"),
                        ))
                    }
                    Some(next) => token = Some(next),
                }
            }
        }
        Ok(series)
    }

    fn region(&self) -> String {
        self.client.config().region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".to_string())
    }
}

pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
}

impl LambdaInvoker {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

impl FunctionInvoker for LambdaInvoker {
    async fn invoke(&self, function: &str, payload: Vec<u8>) -> Result<Invocation, PortError> {
        // As given: Invoke reads a version or alias appended to any form of the name (`name:5`,
        // `123456789012:function:name:5`, the ARN), where splitting it here took the partial
        // ARN `123456789012:function:name` for the function `123456789012:function` at `name`.
        let output = self
            .client
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| classify_sdk_error("Lambda", "Invoke", &e))?;
        Ok(Invocation {
            payload: output.payload.map(|p| String::from_utf8_lossy(p.as_ref()).to_string()).unwrap_or_default(),
            function_error: output.function_error,
        })
    }
}
