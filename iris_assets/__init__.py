"""The Iris ML pipeline as Dagster assets, each materialisation one MLflow run."""

import os

# Telemetry off unless the user says otherwise. MLflow writes an installation id under
# ~/.config; onnxruntime (1.29+) writes a device id under ~/.cache and sends events.
# Set here, in the code location, so every run worker and step process inherits it.
for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "ORT_DISABLE_TELEMETRY": "1"}.items():
    os.environ.setdefault(_name, _value)

# Bounded retries against a tracking server. MLflow's defaults (7 retries, backoff
# factor 2, 120 s per request) keep a step waiting minutes on a server that is down;
# these give up after ~10 s of connection failures and ride out a restart shorter
# than that. Each can still be set in the environment.
for _name, _value in {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}.items():
    os.environ.setdefault(_name, _value)

from iris_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
