//! What checks touch: HTTP endpoints, CloudWatch alarms, Lambda functions. One trait each, one
//! real adapter each.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipewarden_shared::adapters::classify_sdk_error;
use pipewarden_shared::ports::PortError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub payload: String,
    /// Set when the function itself failed (Lambda's `FunctionError`).
    pub function_error: Option<String>,
}

pub trait FunctionInvoker: Send + Sync {
    fn invoke(&self, function: &str, payload: Vec<u8>) -> impl Future<Output = Result<Invocation, PortError>> + Send;
}

/// HTTP over reqwest. Redirects are followed only to hosts the spec allows.
#[derive(Clone)]
pub struct ReqwestProbe {
    client: reqwest::Client,
}

impl ReqwestProbe {
    pub fn new(allowed_hosts: Vec<String>) -> Result<Self, reqwest::Error> {
        let allowed = Arc::new(allowed_hosts);
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let host = attempt.url().host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string();
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if allowed.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
                attempt.follow()
            } else {
                attempt.error(format!("redirect to host {host:?}, which is not in allowedHosts"))
            }
        });
        Ok(Self { client: reqwest::Client::builder().redirect(policy).no_proxy().build()? })
    }
}

impl HttpProbe for ReqwestProbe {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        let method =
            reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes()).map_err(|e| e.to_string())?;
        let mut builder = self.client.request(method, &request.url).timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let started = Instant::now();
        let response = builder.send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let (body, body_cut) = read_at_most(response, request.max_body_bytes).await?;
        Ok(HttpResponse { status, body, body_cut, latency: started.elapsed() })
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
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_redirect() {
        "redirect refused".to_string()
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
        let (name, qualifier) = match function.rsplit_once(':') {
            // `name:qualifier`, but not a full ARN without a qualifier.
            Some((name, q)) if !function.starts_with("arn:") || function.matches(':').count() == 7 => (name, Some(q)),
            _ => (function, None),
        };
        let output = self
            .client
            .invoke()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_string))
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
