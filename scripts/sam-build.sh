#!/usr/bin/env bash
# `sam build` of the three functions (arm64 release builds through cargo-lambda), the way the
# pipelines and `make sam-build` run it: first scripts/ci-tools.sh (Rust, the arm64 target, the .venv
# with cargo-lambda, zig and the SAM CLI; does nothing when they are there), then sam build with
# .venv/bin and cargo's bin folder on PATH, where SAM looks for cargo and cargo-lambda.
# Arguments go to sam build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ci-tools.sh
export PATH="$PWD/.venv/bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# cargo-lambda links through zig wrapper scripts that it writes to a cache folder, by default under
# $HOME; their path is part of cargo's fingerprints. Keeping them beside target/ keeps a cached
# target/ valid whichever user or HOME builds (a CodeBuild cache, CI after the tests' own build).
export CARGO_ZIGBUILD_CACHE_DIR="$PWD/target/cargo-zigbuild"
exec sam build "$@"
