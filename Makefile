# Pipewarden's commands. See README.md.
.PHONY: run test replay

# Runs the whole flow locally against the local AWS emulator: no AWS account needed.
run:
	scripts/run-local.sh

# Every check: fmt, clippy, all tests, template linters. What CI runs.
test:
	scripts/test.sh

# Feeds your own event files or folders through the functions locally.
replay:
	@test -n "$(EVENTS)" || { echo 'usage: make replay EVENTS="file-or-dir ..."' >&2; exit 2; }
	scripts/run-local.sh replay $(EVENTS)
