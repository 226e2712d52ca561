#!/usr/bin/env bash
# Builds the reference Flask app's CodeDeploy revision: the zip CodeDeploy downloads from S3, with
# appspec.yml at its root, the hook scripts (executable), the app, its nginx site, its validation
# spec and bin/pipewarden-validate.
#
#   scripts/flask-bundle.sh [--app DIR] [--binary PATH] [--out PATH]
#
# --app     the app's source, default examples/flask-app (`make demo` bundles changed copies of it)
# --binary  a pipewarden-validate already built for the instances (their architecture and a glibc no
#           newer than theirs); default: `cargo build --release --locked --bin pipewarden-validate`
#           for this machine.
# --out     default target/flask-app-revision.zip
set -euo pipefail
cd "$(dirname "$0")/.."

app=examples/flask-app
binary=""
out=target/flask-app-revision.zip
while [ $# -gt 0 ]; do
  case $1 in
    --app) app=${2:?--app needs a directory}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a path}; shift 2 ;;
    *) echo "usage: scripts/flask-bundle.sh [--app DIR] [--binary PATH] [--out PATH]" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  cargo build --release --locked --bin pipewarden-validate
  binary=target/release/pipewarden-validate
fi
[ -x "$binary" ] || { echo "flask-bundle: $binary is not an executable" >&2; exit 2; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
[ -f "$app/appspec.yml" ] || { echo "flask-bundle: $app has no appspec.yml" >&2; exit 2; }
cp -R "$app"/. "$stage/"
# What builds and tests the app stays out of what the instances run.
rm -rf "$stage/tests" "$stage/buildspec.yml" "$stage/Jenkinsfile" "$stage/pipeline.yaml" "$stage/requirements-dev.txt"
install -D -m 0755 "$binary" "$stage/bin/pipewarden-validate"
mkdir -p "$(dirname "$out")"

# Python's zipfile rather than zip(1), which is not always installed; unix modes go into
# external_attr, which CodeDeploy's agent restores, so the hooks stay executable.
"${PYTHON:-python3}" - "$stage" "$out" <<'PY'
import os, stat, sys, zipfile

stage, out = sys.argv[1], sys.argv[2]
paths = []
for folder, dirs, files in os.walk(stage):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    paths += [os.path.join(folder, f) for f in sorted(files) if not f.endswith(".pyc")]
# appspec.yml first, at the root of the archive, where CodeDeploy requires it.
paths.sort(key=lambda p: (os.path.relpath(p, stage) != "appspec.yml", os.path.relpath(p, stage)))
tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
    for path in paths:
        info = zipfile.ZipInfo.from_file(path, os.path.relpath(path, stage))
        mode = 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644
        info.external_attr = (stat.S_IFREG | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            archive.writestr(info, f.read())
os.replace(tmp, out)
PY
echo "flask-bundle: $out ($(du -h "$out" | cut -f1))" >&2
