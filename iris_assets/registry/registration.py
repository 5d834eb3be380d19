"""Registering a run's logged model as a new version of a registered model."""

from collections.abc import Mapping
from typing import Any, Optional

from iris_assets.tracking import MlflowBindingError, MlflowRun
from iris_assets.tracking.store import sqlite_registry_lock


def register_model(
    mlflow: MlflowRun,
    name: str,
    logged_model: str = "model",
    tags: Optional[Mapping[str, Any]] = None,
    *,
    model_uri: Optional[str] = None,
    run_id: Optional[str] = None,
):
    """Register the bound run's logged model ``logged_model`` as a new version of ``name``
    (or the logged model ``model_uri`` of another run ``run_id``: a sweep's best trial).

    Through the binding's own client, not ``mlflow.register_model``: in a sqlite
    store, a version written through the fluent API's store was not yet visible to
    this client's reads ("Model Version ... not found" right after registering).

    Idempotent: a step that runs twice (a Celery task redelivered after its worker
    died) finds the version it registered the first time and returns it.
    """
    from mlflow.exceptions import MlflowException

    model_uri = model_uri or mlflow.logged_model_uri(logged_model)
    run_id = run_id or mlflow.run_id
    if model_uri is None:
        raise MlflowBindingError(f"MLflow run {run_id} has no logged model {logged_model!r}")
    client = mlflow.client
    # create_model_version looks the logged model up through MLflow's global tracking URI.
    model_id = model_uri.removeprefix("models:/")
    with sqlite_registry_lock(mlflow.tracking_uri), mlflow.global_store():
        for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
            if version.source == model_uri or getattr(version, "model_id", None) == model_id:
                return version
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            try:
                client.create_registered_model(name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        return client.create_model_version(
            name,
            source=model_uri,
            run_id=run_id,
            tags={k: str(v) for k, v in (tags or {}).items()},
            model_id=model_id,
        )
