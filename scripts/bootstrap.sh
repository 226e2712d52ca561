#!/usr/bin/env bash
# Installs what Pipewarden's commands need: a Python venv in the project (.venv) with moto,
# cargo-lambda, cfn-lint, the SAM CLI and Flask, from tools/requirements.txt; and Debian's nginx
# (the reference deployment's web server, for the end-to-end tests) when it is missing.
# Template and IAM linters (checkov, cfn-lint-serverless, parliament with the SAM translator) go into a
# second venv, .venv-checks.
# Idempotent: does nothing when everything is already there.
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
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "bootstrap: installing nginx (Debian package nginx-light)" >&2
  sudo_=""
  [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq nginx-light >/dev/null
fi
checks_stamp=.venv-checks/.requirements.sha256
checks_want=$(sha256sum tools/requirements-checks.txt | cut -d' ' -f1)
if [ ! -x .venv-checks/bin/python ]; then
  "$python" -m venv .venv-checks
fi
if [ "$(cat "$checks_stamp" 2>/dev/null)" != "$checks_want" ]; then
  echo "bootstrap: installing tools/requirements-checks.txt into .venv-checks" >&2
  .venv-checks/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-checks.txt
  echo "$checks_want" > "$checks_stamp"
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
