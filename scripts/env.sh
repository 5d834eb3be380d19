# Sourced by the scripts: local state in .iris_state/, nothing written under $HOME
# by MLflow or Dagster, no telemetry.
export IRIS_STATE_DIR=${IRIS_STATE_DIR:-$PWD/.iris_state}
export DAGSTER_HOME=${DAGSTER_HOME:-$IRIS_STATE_DIR/dagster_home}
export MLFLOW_DISABLE_TELEMETRY=true
export DAGSTER_DISABLE_TELEMETRY=yes
export ORT_DISABLE_TELEMETRY=1
export DO_NOT_TRACK=1
mkdir -p "$DAGSTER_HOME"
# Pools: one registry promotion at a time (iris_assets/registry/promotion.py).
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n' > "$DAGSTER_HOME/dagster.yaml"
# A new home's storage is created once, here, under a lock: Dagster creates it on first
# use, and several first uses at once (runs started together) race in its migrations.
if [ ! -f "$DAGSTER_HOME/.iris-initialised" ]; then
  flock "$DAGSTER_HOME/.iris-init.lock" sh -c \
    '[ -f "$DAGSTER_HOME/.iris-initialised" ] || { .venv/bin/iris-runs init && touch "$DAGSTER_HOME/.iris-initialised"; }'
fi
