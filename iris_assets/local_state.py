"""Where the project keeps its state when nothing external is configured.

Everything local lives in one folder, ``.iris_state/`` at the repository root
(or wherever ``IRIS_STATE_DIR`` points), so a clone stays self-contained and
``rm -rf .iris_state`` resets it:

- ``mlflow.db`` — the embedded MLflow tracking store (sqlite), used when
  ``MLFLOW_TRACKING_URI`` is not set;
- ``mlartifacts/`` — artifacts of experiments created in that store;
- ``dagster_home/`` — the ``DAGSTER_HOME`` the project's scripts use.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    path = Path(os.environ.get("IRIS_STATE_DIR") or PROJECT_ROOT / ".iris_state")
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_tracking_uri() -> str:
    return f"sqlite:///{state_dir() / 'mlflow.db'}"


def embedded_artifact_root() -> str:
    return (state_dir() / "mlartifacts").as_uri()
