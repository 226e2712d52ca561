#!/usr/bin/env bash
# `make demo`: one release of the reference Flask app (examples/flask-app) breaks and its fix ships,
# told through Pipewarden's real functions, the local AWS emulator, a real nginx and the real Flask
# app; every step checks what it shows and the demo exits non-zero at the first unmet expectation.
# PIPEWARDEN_DEMO_MESSAGES=DIR also writes each message a subscriber received into DIR.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/bootstrap.sh >&2
export PATH="$root/.venv/bin:$PATH"
echo "== building the functions and the demo" >&2
cargo build --quiet --locked --bins
exec target/debug/pipewarden-demo
