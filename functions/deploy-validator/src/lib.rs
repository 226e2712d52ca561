//! deploy-validator: the CodeDeploy lifecycle hook.

pub use pipewarden_shared::events::codedeploy::{parse_hook, HookInvocation};
