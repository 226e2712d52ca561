#!/usr/bin/env bash
# Installs what Pipewarden's commands need into the project, never system-wide:
# a Python venv (.venv) with moto, cargo-lambda, cfn-lint and the SAM CLI, from tools/requirements.txt.
# Idempotent: does nothing when the venv already matches the requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum tools/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$python" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing tools/requirements.txt into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
  echo "$want" > "$stamp"
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
