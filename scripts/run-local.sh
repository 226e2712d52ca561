#!/usr/bin/env bash
# Runs Pipewarden end to end on this machine, with no AWS account:
#   scripts/run-local.sh                 every sample event in events/
#   scripts/run-local.sh replay PATH...  your own event files or folders (make replay EVENTS=...)
# It starts the local AWS emulator (moto + our extension) on 127.0.0.1, creates the topics (each
# with a subscriber queue) and the bucket, runs the three functions under `cargo lambda watch`,
# feeds each event to the function its shape belongs to, prints what subscribers received, what
# was written to S3 and which hook statuses were reported, then stops everything it started.
# It exits non-zero when any event failed, has a shape no function handles, or was dropped as
# invalid (whole, or records inside a batch): on AWS it would have been lost too.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

mode=${1:-run}
if [ "$mode" = replay ]; then
  shift
  [ "$#" -gt 0 ] || { echo 'usage: make replay EVENTS="file-or-dir ..."' >&2; exit 2; }
  events=()
  for p in "$@"; do events+=("$(cd "$(dirname "$p")" && pwd)/$(basename "$p")"); done
else
  events=("$root/events")
fi

scripts/bootstrap.sh
export PATH="$root/.venv/bin:$PATH"
# Logs and scratch files; PIPEWARDEN_LOCAL_DIR lets two runs (the tests) keep theirs apart.
work="${PIPEWARDEN_LOCAL_DIR:-$root/.local}"
mkdir -p "$work"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== building the functions" >&2
cargo build --quiet --bins

echo "== starting the local AWS emulator" >&2
.venv/bin/python tests/emulator/server.py --no-stdin-watch > "$work/emulator.out" 2> "$work/emulator.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^PORT ' "$work/emulator.out" 2>/dev/null && break; sleep 0.1; done
emulator="http://127.0.0.1:$(sed -n 's/^PORT //p' "$work/emulator.out")"

echo "== starting the sample web app (examples/flask-app) for deploy-validator to check" >&2
app_port=$(free_port)
PORT=$app_port .venv/bin/python examples/flask-app/app.py > "$work/flask.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$app_port/health" && break; sleep 0.1; done
spec="{\"allowedHosts\": [\"http://127.0.0.1:$app_port\"], \"checks\": [{\"name\": \"health\", \"type\": \"http\", \"url\": \"http://127.0.0.1:$app_port/health\", \"jsonField\": {\"pointer\": \"/status\", \"equals\": \"ok\"}, \"consecutiveSuccesses\": 2}]}"
printf "VALIDATION_SPEC='%s'\n" "$spec" > "$work/extra.env"
# The example routing rules, as one line of JSON for the environment file.
rules=$(.venv/bin/python -c 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' examples/routing-rules.yaml)
printf "ROUTING_RULES='%s'\n" "$rules" >> "$work/extra.env"

PIPEWARDEN_LOCAL_ENV="$work/extra.env" target/debug/pipewarden-local setup "$emulator" "$work/lambda.env"

invoke_port=$(free_port)
echo "== starting cargo lambda watch on 127.0.0.1:$invoke_port (log: $work/watch.log)" >&2
cargo lambda watch --quiet --ignore-changes --timeout 60 --invoke-address 127.0.0.1 --invoke-port "$invoke_port" \
  --env-file "$work/lambda.env" > "$work/watch.log" 2>&1 &
watch_pid=$!
pids+=($watch_pid)
for _ in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$invoke_port/" && break
  kill -0 "$watch_pid" 2>/dev/null || { echo "cargo lambda watch stopped:" >&2; tail -20 "$work/watch.log" >&2; exit 1; }
  sleep 0.2
done

echo "== invoking" >&2
target/debug/pipewarden-local invoke "$emulator" "http://127.0.0.1:$invoke_port" "${events[@]}"
