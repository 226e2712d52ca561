#!/usr/bin/env bash
# Pipewarden's benchmark suite (make bench): builds the release binaries and runs
# bench/src/bin/pipewarden-bench.rs, which prints Markdown tables and writes target/bench/results.md.
# BENCHMARKS.md holds the last results written down. A benchmark, never a test: run it on a quiet
# machine; it takes about 10 minutes after the release build (the 10,000-event load run is most of it).
#
# The Python peer is terraform-aws-modules' notify-slack function (functions/notify_slack.py), copied
# into target/bench/peer at benchmark time and never committed. Point NOTIFY_SLACK at a checkout of
# https://github.com/terraform-aws-modules/terraform-aws-notify-slack (a work tree or a bare git
# directory). Without it the suite runs without the peer and says so.
#
# Arguments go to pipewarden-bench, e.g. `make bench ARGS="--runs 3 cold-start cpu"`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

peer_args=()
peer=target/bench/peer
mkdir -p "$peer"
src=${NOTIFY_SLACK:-}
if [ -n "$src" ] && [ -f "$src/functions/notify_slack.py" ]; then
  cp "$src/functions/notify_slack.py" "$peer/notify_slack.py"
elif [ -n "$src" ] && git --git-dir="$src" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git --git-dir="$src" show HEAD:functions/notify_slack.py > "$peer/notify_slack.py"
  echo "bench: Python peer notify-slack at $(git --git-dir="$src" describe --tags --always HEAD 2>/dev/null)" >&2
elif [ -n "$src" ]; then
  echo "bench: NOTIFY_SLACK=$src holds no functions/notify_slack.py" >&2
  exit 2
fi
if [ -f "$peer/notify_slack.py" ]; then
  peer_args=(--peer "$peer")
else
  echo "bench: no Python peer (set NOTIFY_SLACK to a notify-slack checkout); Rust-only results" >&2
fi

echo "bench: building release binaries" >&2
cargo build --release --locked -p pipeline-notifier -p deploy-validator -p alarm-fanout -p pipewarden-bench
exec target/release/pipewarden-bench "${peer_args[@]}" "$@"
