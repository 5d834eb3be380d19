"""The Iris ML pipeline as Dagster assets, each materialisation one MLflow run."""

import os

# Telemetry off unless the user says otherwise. MLflow writes an installation id under
# ~/.config; onnxruntime (1.29+) writes a device id under ~/.cache and sends events.
# Set here, in the code location, so every run worker and step process inherits it.
for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "ORT_DISABLE_TELEMETRY": "1"}.items():
    os.environ.setdefault(_name, _value)

from iris_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
