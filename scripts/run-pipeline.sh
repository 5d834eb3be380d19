#!/usr/bin/env bash
# The quick start: install, materialise the whole graph once on the embedded defaults (one
# Dagster run in .iris_state/dagster_home, one MLflow run in .iris_state/mlflow.db), then say
# where to look. Extra arguments go to `dg launch` (e.g. -c examples/small_forest.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
# Measured from a clean clone on 2 cores, uv's package cache warm: install 22-34 s (most of it
# compiling bytecode), the pipeline ~15 s, ~55 s in all; downloads come on top the very first time.
echo "==> Installing the locked environment into .venv (about 35 s the first time, seconds after)"
bash scripts/install.sh
echo "==> Running the pipeline once: .venv/bin/dg launch --job iris_pipeline $*"
PIPELINE=$SECONDS
.venv/bin/dg launch --job iris_pipeline "$@"
echo "==> Done: the pipeline in $((SECONDS - PIPELINE)) s, $SECONDS s in all"
.venv/bin/python -m iris_assets.runs.last_run
