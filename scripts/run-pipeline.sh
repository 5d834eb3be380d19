#!/usr/bin/env bash
# Install, then materialise the whole graph once on the embedded defaults and say
# where to look: one MLflow run in .iris_state/mlflow.db, one Dagster run in
# .iris_state/dagster_home. Extra arguments go to `dagster job execute` (e.g. -c FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
.venv/bin/dagster job execute -m iris_assets -j iris_pipeline "$@" 2>&1 \
  | grep -E "RUN_SUCCESS|RUN_FAILURE|STEP_FAILURE|MLflow run" || true
.venv/bin/python -m iris_assets.tracking.last_run
