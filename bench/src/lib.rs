//! Pipewarden's benchmark suite; see BENCHMARKS.md for what it measures and the last results.
//! Functions run under `pipewarden_tests::runtime_api`, spawned by `pipewarden_tests::lambda_process`.
//!
//! - [`work`]: the pure per-event work (parse, route, format), also driven by the fuzz tests.
//! - [`measure`]: CPU time, peak RSS, medians.

pub mod measure;
pub mod work;
