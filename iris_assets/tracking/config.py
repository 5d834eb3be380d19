"""Where and how a binding tracks, resolved once: resource config first, then the defaults.

``TrackingConfig`` is what the election, closing and store code receive: plain,
frozen values, never the resource itself. ``Defaults`` is what a project supplies
for what its resource config leaves unset (``MlflowRun.defaults``); without one the
binding follows MLflow's own conventions (``Defaults.from_environment``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlparse

# MLflow 3.17's UI opens an experiment in its GenAI view (traces, token usage) unless told
# otherwise per link or per browser (the sidebar's "Model training" switch); no experiment tag
# or server setting chooses it. Links carry the model-training view.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` / `mlflow server` listen by default
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"  # where `dagster dev` listens by default
# MLflow runs of Dagster's implicit asset job (the UI's "Materialize") that materialise several
# assets: the job's own name (__ASSET_JOB) means nothing to a reader.
DEFAULT_ASSET_JOB_RUN_NAME = "materialize"


@dataclass(frozen=True)
class Defaults:
    """What the binding uses where the resource config says nothing."""

    tracking_uri: str
    tracking_uri_source: str  # where the URI came from, for error messages
    experiment_name: str
    ui_url: Optional[str] = None  # None: the tracking URI if http(s), else DEFAULT_MLFLOW_UI_URL
    dagster_ui_url: str = DEFAULT_DAGSTER_UI_URL
    asset_job_run_name: str = DEFAULT_ASSET_JOB_RUN_NAME

    @classmethod
    def from_environment(cls) -> Defaults:
        """MLflow's conventions: ``$MLFLOW_TRACKING_URI`` (else MLflow's default store),
        ``$MLFLOW_EXPERIMENT_NAME`` (else ``Default``); ``$MLFLOW_UI_URL`` and ``$DAGSTER_UI_URL`` for links."""
        import mlflow

        from_variable = bool(os.environ.get("MLFLOW_TRACKING_URI"))
        return cls(
            tracking_uri=mlflow.get_tracking_uri(),
            tracking_uri_source="$MLFLOW_TRACKING_URI" if from_variable else "MLflow's default tracking URI",
            experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME") or "Default",
            ui_url=os.environ.get("MLFLOW_UI_URL") or None,
            dagster_ui_url=os.environ.get("DAGSTER_UI_URL") or DEFAULT_DAGSTER_UI_URL,
        )


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str
    tracking_uri_source: str  # where the URI came from, for error messages
    experiment_name: str
    ui_url: str  # base URL of the MLflow UI, for links
    dagster_ui_url: str  # base URL of the Dagster UI, for the link back
    parent_run_id: Optional[str] = None  # nest each MLflow run under this one
    mlflow_run_id: Optional[str] = None  # log into this existing run instead of electing one
    extra_tags: dict[str, str] = field(default_factory=dict)  # env_to_tag values and extra_tags
    run_name: Optional[str] = None  # every MLflow run's name (before the Dagster run id's first 8 characters)
    asset_job_run_name: str = DEFAULT_ASSET_JOB_RUN_NAME

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}{MODEL_TRAINING_VIEW}"

    def experiment_url(self, experiment_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}{MODEL_TRAINING_VIEW}"

    def dagster_run_url(self, dagster_run_id: str) -> str:
        return f"{self.dagster_ui_url}/runs/{dagster_run_id}"


def resolve(
    *,
    defaults: Optional[Defaults] = None,
    tracking_uri: Optional[str] = None,
    experiment_name: Optional[str] = None,
    ui_url: Optional[str] = None,
    dagster_ui_url: Optional[str] = None,
    parent_run_id: Optional[str] = None,
    mlflow_run_id: Optional[str] = None,
    extra_tags: Optional[dict[str, str]] = None,
    run_name: Optional[str] = None,
) -> TrackingConfig:
    """Explicit values (resource config) win over ``defaults`` (MLflow's conventions when None)."""
    defaults = defaults or Defaults.from_environment()
    uri = tracking_uri or defaults.tracking_uri
    return TrackingConfig(
        tracking_uri=uri,
        tracking_uri_source="the resource config key mlflow_tracking_uri"
        if tracking_uri
        else defaults.tracking_uri_source,
        experiment_name=experiment_name or defaults.experiment_name,
        ui_url=_ui_url(ui_url or defaults.ui_url, uri),
        dagster_ui_url=(dagster_ui_url or defaults.dagster_ui_url).rstrip("/"),
        parent_run_id=parent_run_id,
        mlflow_run_id=mlflow_run_id,
        extra_tags=dict(extra_tags or {}),
        run_name=run_name,
        asset_job_run_name=defaults.asset_job_run_name,
    )


def _ui_url(explicit: Optional[str], tracking_uri: str) -> str:
    if explicit:
        return explicit.rstrip("/")
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return tracking_uri.rstrip("/")
    return DEFAULT_MLFLOW_UI_URL
