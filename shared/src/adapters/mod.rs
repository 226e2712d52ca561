//! The one real adapter of each port, over the AWS SDK.

mod codedeploy;
mod s3;
mod sns;

pub use self::classify as classify_sdk_error;
pub use codedeploy::CodeDeployHookReporter;
pub use s3::S3ObjectStore;
pub use sns::SnsPublisher;

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::ports::{FailureKind, PortError};

/// Turns any SDK error into a [`PortError`] that says whether a retry can help.
pub fn classify<E, R>(service: &'static str, operation: &'static str, err: &SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error,
    R: HttpStatus + std::fmt::Debug,
{
    let (kind, message) = match err {
        SdkError::TimeoutError(_) => (FailureKind::Timeout, "no answer in time".to_string()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => (FailureKind::Timeout, format!("{failure:?}")),
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            // The cause, such as a certificate the trust store does not accept.
            let cause = failure.as_connector_error().map(|e| DisplayErrorContext(e).to_string()).unwrap_or_default();
            (FailureKind::Network, format!("connection failed: {cause}"))
        }
        SdkError::DispatchFailure(failure) => (FailureKind::Network, format!("{failure:?}")),
        SdkError::ResponseError(response) => {
            let status = response.raw().status_code();
            (kind_of(status, None), format!("unreadable response with HTTP {status}"))
        }
        SdkError::ServiceError(service_err) => {
            let status = service_err.raw().status_code();
            let e = service_err.err();
            let code = e.code().unwrap_or("Unknown");
            let text = e.message().unwrap_or("");
            (kind_of(status, Some(code)), format!("{code} (HTTP {status}): {text}"))
        }
        other => (FailureKind::Network, format!("{other:?}")),
    };
    PortError::new(service, operation, kind, message)
}

fn kind_of(status: u16, code: Option<&str>) -> FailureKind {
    let throttling_code =
        code.map(|c| c.contains("Throttl") || c == "TooManyRequestsException" || c == "SlowDown").unwrap_or(false);
    if status == 429 || throttling_code {
        FailureKind::Throttled
    } else if status >= 500 {
        FailureKind::ServerError
    } else {
        FailureKind::Rejected
    }
}

/// The status code of a raw response, whichever HTTP type the SDK hands us.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_sns::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_retryable_client_errors_are_not() {
        assert_eq!(kind_of(429, None), FailureKind::Throttled);
        assert_eq!(kind_of(400, Some("Throttling")), FailureKind::Throttled);
        assert_eq!(kind_of(503, Some("SlowDown")), FailureKind::Throttled);
        assert_eq!(kind_of(500, Some("InternalError")), FailureKind::ServerError);
        assert_eq!(kind_of(404, Some("NotFound")), FailureKind::Rejected);
        assert!(!PortError::new("SNS", "Publish", FailureKind::Rejected, "x").is_retryable());
        assert!(PortError::new("SNS", "Publish", FailureKind::Timeout, "x").is_retryable());
    }
}
