#!/usr/bin/env bash
# Install the project's pinned environment into .venv (needs only python3 >= 3.11), and
# create the project's Dagster instance (.iris_state/dagster_home) with the .env that
# points Dagster's CLI at it.
#
# uv (pinned, bootstrapped with pip into .iris_state/tools) installs exactly what
# uv.lock says, in seconds; it never downloads a Python of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3}
TOOLS=.iris_state/tools
UV="$TOOLS/bin/uv"

# What each stage does and how long it took, as it goes (a first install is silent otherwise):
# `stage "what"` prints the start of a line, `took` ends it with the stage's seconds.
STARTED=$SECONDS
stage() { printf '==> %s ... ' "$1"; STAGE=$SECONDS; }
took() { echo "$((SECONDS - STAGE)) s"; }

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), f"Python 3.11+ needed, this is {sys.version}"'
if ! "$UV" --version 2>/dev/null | grep -q "uv $UV_VERSION"; then
  stage "uv $UV_VERSION, the installer (pip, into $TOOLS)"
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  took
fi
export UV_PYTHON_DOWNLOADS=never
# The interpreter's real path, not `command -v` (a pyenv shim, say): uv compares the
# request with the venv's interpreter, and on a mismatch deletes and recreates .venv
# on every call (each test and pipeline run), which also throws away its bytecode.
stage "uv sync: the $(grep -c '^\[\[package\]\]' uv.lock) packages of uv.lock into .venv (Dagster, MLflow, scikit-learn, ONNX...)"
"$UV" sync --frozen --python "$("$PYTHON" -c 'import sys; print(sys.executable)')" --quiet
took
# Bytecode, once: uv installs sources only, and with PYTHONDONTWRITEBYTECODE set (as in
# many CI images and our Dockerfile) every process would compile every module it imports
# again (~8 s of a pipeline run, and again in each step process). compileall skips files
# whose bytecode is current, so this costs ~2 s once everything is compiled.
stage "bytecode (compileall: all of .venv the first time, what changed after)"
.venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages iris_assets iris_harness benchmarks >/dev/null 2>&1 || true
took
# Dagster's CLI (dg, dagster, dagster-webserver, dagster-daemon) loads .env from its working
# directory: with this line, runs started from the repository root land in the project's
# instance, never in a temporary one that vanishes. An exported DAGSTER_HOME still wins;
# the rest of the file (docker compose's settings, see .env.example) is kept.
touch .env
{ grep -v -e '^DAGSTER_HOME=' -e '^# scripts/install.sh:' .env || true; } > .env.install
printf '%s\n' "# scripts/install.sh: the project's Dagster instance, for Dagster's CLI" \
  "DAGSTER_HOME=\${DAGSTER_HOME:-$PWD/.iris_state/dagster_home}" >> .env.install
cat .env.install > .env && rm .env.install
stage "the Dagster instance (.iris_state/dagster_home) and .env"
.venv/bin/iris-runs init
took
echo "==> installed in $((SECONDS - STARTED)) s"
