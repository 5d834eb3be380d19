"""One line that says how a run ended: its MLflow run, scores and registry decision.

A terminal run ends with it (the executor wrapper logs it after the last step), and
`python -m iris_assets.runs.last_run` prints it for the latest run.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import dagster as dg

from iris_assets.evaluation.scoring import METRICS
from iris_assets.tracking.election import announcements
from iris_assets.tracking.store import mlflow_client

_FINISHED = re.compile(r"^.*MLflow run [0-9a-f]{32} FINISHED\b", re.M)


def reports_success(output: str) -> bool:
    """Whether a terminal run's output ends its summary saying FINISHED (what scripts check)."""
    return bool(_FINISHED.search(output))


def describe(run: Any) -> str:
    """An MLflow run (``MlflowClient.get_run``) in one line."""
    metrics, tags = run.data.metrics, run.data.tags
    scores = ", ".join(f"{name} {metrics[name]:.3f}" for name in METRICS if name in metrics)
    line = f"MLflow run {run.info.run_id} {run.info.status}" + (f": {scores}" if scores else "")
    if "registered_model" in tags:
        promoted = tags.get("promoted") == "True"
        decision = "champion" if promoted else "not promoted"
        line += f"; registry: {tags['registered_model']} {decision} ({tags.get('promotion_reason', '')})"
    return line


def summary(instance: dg.DagsterInstance, dagster_run_id: str) -> Optional[str]:
    """The line for the MLflow run a Dagster run was bound to (None: it was bound to none)."""
    for mlflow_run_id, tracking_uri in announcements(instance, dagster_run_id):
        if tracking_uri:
            return describe(mlflow_client(tracking_uri).get_run(mlflow_run_id))
    return None
