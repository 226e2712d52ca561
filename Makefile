# Pipewarden's commands. See README.md.
.PHONY: run demo test replay sam-build bench flask-bundle

# Runs the whole flow locally against the local AWS emulator: no AWS account needed.
run:
	scripts/run-local.sh

# A story told through the real functions, the emulator, nginx and Flask: a release of the reference
# app breaks, the FAILED notification and the alarm say what and where, the fix ships and restores.
demo:
	scripts/demo.sh

# Every check: fmt, clippy, all tests, template linters. What CI runs.
test:
	scripts/test.sh

# Feeds your own event files or folders through the functions locally.
replay:
	@test -n "$(EVENTS)" || { echo 'usage: make replay EVENTS="file-or-dir ..."' >&2; exit 2; }
	scripts/run-local.sh replay $(EVENTS)

# Builds the three functions for Lambda (arm64, release) the way `sam build` does, through
# cargo-lambda. Slow (a release build of the AWS SDK crates): run before deploying, not with every test.
sam-build:
	scripts/sam-build.sh

# The benchmark suite (cold start, CPU per event, fan-out, load, size) against a Python peer;
# results in target/bench/results.md, written down in BENCHMARKS.md. Never part of `make test`.
bench:
	scripts/bench.sh $(ARGS)

# The reference Flask app (examples/flask-app) as a CodeDeploy revision, target/flask-app-revision.zip,
# with a release pipewarden-validate for this machine's architecture. ARGS="--binary PATH" ships
# one built elsewhere (for example for arm64 instances); ARGS="--out PATH" writes the zip there.
flask-bundle:
	scripts/flask-bundle.sh $(ARGS)
