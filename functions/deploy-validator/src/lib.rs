//! deploy-validator: the CodeDeploy lifecycle hook (and the `pipewarden-validate` CLI) that
//! validates a new release and always reports Succeeded or Failed before its deadline.

pub mod canary;
pub mod config;
pub mod deployment;
pub mod engine;
pub mod function_scope;
pub mod hook;
pub mod probes;
pub mod spec;
pub mod spec_source;
pub mod stats;
