#!/usr/bin/env bash
# The quick start: install, materialise the whole graph once on the embedded defaults (one
# Dagster run in .iris_state/dagster_home, one MLflow run in .iris_state/mlflow.db), then say
# where to look. Extra arguments go to `dg launch` (e.g. -c examples/small_forest.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> Installing the locked environment into .venv (about 30 s the first time)"
bash scripts/install.sh
echo "==> Running the pipeline once: .venv/bin/dg launch --job iris_pipeline $*"
.venv/bin/dg launch --job iris_pipeline "$@"
echo "==> Done"
.venv/bin/python -m iris_assets.runs.last_run
