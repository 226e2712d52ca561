//! Pipewarden's benchmark suite; see BENCHMARKS.md for what it measures and the last results.
//! Functions run under `pipewarden_devkit::runtime_api`, spawned by `pipewarden_devkit::lambda_process`;
//! the per-event work it times is `pipewarden_devkit::work`, which the fuzz tests drive too.
//!
//! - [`measure`]: CPU time, peak RSS, medians.

pub mod measure;
