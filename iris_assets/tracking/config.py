"""Where and how a binding tracks, resolved once: resource config first, then the environment.

``TrackingConfig`` is what the election, closing and store code receive: plain,
frozen values, never the resource itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlparse

from iris_assets import settings as project_settings

# MLflow 3.17's UI opens an experiment in its GenAI view (traces, token usage) unless told
# otherwise per link or per browser (the sidebar's "Model training" switch); no experiment tag
# or server setting chooses it. Links carry the model-training view.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"


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

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}{MODEL_TRAINING_VIEW}"

    def experiment_url(self, experiment_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}{MODEL_TRAINING_VIEW}"

    def dagster_run_url(self, dagster_run_id: str) -> str:
        return f"{self.dagster_ui_url}/runs/{dagster_run_id}"


def resolve(
    *,
    tracking_uri: Optional[str] = None,
    experiment_name: Optional[str] = None,
    ui_url: Optional[str] = None,
    dagster_ui_url: Optional[str] = None,
    parent_run_id: Optional[str] = None,
    mlflow_run_id: Optional[str] = None,
    extra_tags: Optional[dict[str, str]] = None,
) -> TrackingConfig:
    """Explicit values (resource config) win over the environment, which wins over defaults."""
    env = project_settings.current()
    if tracking_uri:
        source = "the resource config key mlflow_tracking_uri"
    elif env.tracking_uri:
        source = "$MLFLOW_TRACKING_URI"
    else:
        source = "the embedded default store"
    uri = tracking_uri or env.resolved_tracking_uri
    return TrackingConfig(
        tracking_uri=uri,
        tracking_uri_source=source,
        experiment_name=experiment_name or env.experiment,
        ui_url=_ui_url(ui_url or env.mlflow_ui_url, uri),
        dagster_ui_url=(dagster_ui_url or env.dagster_ui_url).rstrip("/"),
        parent_run_id=parent_run_id,
        mlflow_run_id=mlflow_run_id,
        extra_tags=dict(extra_tags or {}),
    )


def _ui_url(explicit: Optional[str], tracking_uri: str) -> str:
    if explicit:
        return explicit.rstrip("/")
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return tracking_uri.rstrip("/")
    return project_settings.DEFAULT_MLFLOW_UI_URL
