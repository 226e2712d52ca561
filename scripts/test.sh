#!/usr/bin/env bash
# Every check Pipewarden has: formatting, clippy (warnings are errors), all tests (unit and
# end-to-end against the local AWS emulator, which the tests start themselves), and the
# template and IAM linters.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n== %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
passed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk "{s+=\$1} END {print s+0}")
failed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk "{s+=\$1} END {print s+0}")

step "cfn-lint template.yaml, with the project's rules (tools/cfn-rules: key policies allow every service that uses the key)"
cfn-lint --append-rules tools/cfn-rules -- template.yaml

step "IAM policy lint (parliament, offline; accepted findings and their reasons in tools/iam-lint-allow.yaml)"
.venv-checks/bin/python tools/iam_lint.py template.yaml --allow tools/iam-lint-allow.yaml
.venv-checks/bin/python tools/iam_lint.py template.yaml --allow tools/iam-lint-allow.yaml --param LambdaCheckFunctions=flask-api-*

step "cfn-lint with the cfn-lint-serverless rules"
.venv-checks/bin/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml

step "checkov (skipped checks are listed in template.yaml with their reasons)"
.venv-checks/bin/checkov --framework cloudformation --skip-download -f template.yaml --compact --quiet

step "cfn-lint and checkov examples/flask-app/pipeline.yaml (skipped checks are listed in it with their reasons)"
cfn-lint --append-rules tools/cfn-rules -- examples/flask-app/pipeline.yaml
.venv-checks/bin/checkov --framework cloudformation --skip-download -f examples/flask-app/pipeline.yaml --compact --quiet

step "sam validate --lint"
AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} sam validate --lint --template template.yaml

echo "all checks passed" >&2
# The plain closing line CI reads; kept in target/ so .ci/run can end with it too.
echo "tests: $passed passed, $failed failed" | tee target/test-summary.txt
