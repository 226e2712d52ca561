#!/usr/bin/env bash
# Installs everything a clean build agent (CodeBuild's standard image, a bare Jenkins agent) needs
# to test and build Pipewarden, and changes nothing that is already there:
#   - Rust, through rustup, when there is no cargo on PATH nor in $CARGO_HOME (default ~/.cargo);
#   - the aarch64-unknown-linux-gnu target (Lambda runs the functions on arm64);
#   - the project's .venv with cargo-lambda, its zig (the arm64 cross linker), the SAM CLI and the
#     test tools, through scripts/bootstrap.sh.
# It cannot change its caller's PATH: scripts/sam-build.sh, and the pipelines' own steps, put
# ${CARGO_HOME:-$HOME/.cargo}/bin and .venv/bin on PATH themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

if ! command -v cargo >/dev/null && [ ! -x "$cargo_bin/cargo" ]; then
  echo "ci-tools: installing Rust (rustup, minimal profile)" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --no-modify-path
fi
export PATH="$cargo_bin:$PATH"

if ! command -v rustup >/dev/null; then
  echo "ci-tools: cargo is $(command -v cargo), without rustup: cannot add the $target target" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx "$target"; then
  echo "ci-tools: adding the Rust target $target" >&2
  rustup target add "$target"
fi

scripts/bootstrap.sh

# What `sam build` will use, so a missing piece shows here and not halfway through the build.
export PATH="$PWD/.venv/bin:$PATH"
echo "ci-tools: $(cargo --version); $(cargo lambda --version); zig $(python3 -m ziglang version); $(sam --version)" >&2
