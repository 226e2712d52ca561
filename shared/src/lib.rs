//! What Pipewarden's three functions truly share.
//!
//! - [`events`]: lenient models of the AWS events we receive, parsed at the edge with errors that
//!   name the event and the field.
//! - [`config`]: reading typed configuration from environment variables once per cold start.
//! - [`aws`]: SDK clients built once from one `aws-config` load (honours `AWS_ENDPOINT_URL*`).
//! - [`ports`]: the outbound effects (publish, store, report hook status) as small traits, with one
//!   real SDK adapter each in [`adapters`].
//! - [`deadline`]: every outbound call stops at the invocation's deadline.
//! - [`logging`]: JSON `tracing` output compatible with Lambda's JSON log format.
//! - [`links`]: console links correct for region and partition.

pub mod adapters;
pub mod aws;
pub mod config;
pub mod deadline;
pub mod deploy_context;
pub mod document;
pub mod events;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod format;
pub mod http;
pub mod lambda;
pub mod ledger;
pub mod links;
pub mod logging;
pub mod ports;
pub mod tls;
