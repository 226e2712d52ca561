//! Pipewarden's end-to-end tests are the files in `tests/tests/`; what they share with the local run
//! and the benchmark (the emulator harness, the local Lambda Runtime and Invoke APIs, local HTTP
//! servers) is the `pipewarden-devkit` crate (`devkit/`).
