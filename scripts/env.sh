# Sourced by the scripts and by shells outside the repository root: the project's state
# (.iris_state/), nothing written under $HOME by MLflow or Dagster, no telemetry.
# Commands run from the repository root need none of it: the .env that install.sh writes
# gives Dagster's CLI the same DAGSTER_HOME, and the project's commands default to it.
export IRIS_STATE_DIR=${IRIS_STATE_DIR:-$PWD/.iris_state}
export DAGSTER_HOME=${DAGSTER_HOME:-$IRIS_STATE_DIR/dagster_home}
export MLFLOW_DISABLE_TELEMETRY=true
export DAGSTER_DISABLE_TELEMETRY=yes
export ORT_DISABLE_TELEMETRY=1
export DO_NOT_TRACK=1
# A new home is created once, under a lock (iris-runs init: dagster.yaml, storage).
[ -f "$DAGSTER_HOME/.iris-initialised" ] || .venv/bin/iris-runs init
