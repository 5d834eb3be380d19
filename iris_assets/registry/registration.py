"""Registering a run's logged model as a new version of a registered model."""

from collections.abc import Mapping
from typing import Any, Optional

from iris_assets.tracking import MlflowBindingError, MlflowRun
from iris_assets.tracking.store import sqlite_registry_lock

DATASET_TAG = "dataset"  # on a registered model and each version: whose models it holds
# A registered model without the tag was made before datasets existed: every one then was Iris's.
UNTAGGED_DATASET = "iris"


class ModelDatasetError(ValueError):
    """A model of one dataset offered to a registered model that holds another dataset's models."""


def registered_dataset(client: Any, name: str) -> Optional[str]:
    """The dataset whose models ``name`` holds, or None if ``name`` is not registered yet."""
    found = client.search_registered_models(filter_string=f"name = '{name}'")
    if not found:
        return None
    return found[0].tags.get(DATASET_TAG, UNTAGGED_DATASET)


def refuse_other_dataset(client: Any, name: str, dataset: str) -> None:
    """Raise ModelDatasetError if ``name`` holds models of a dataset other than ``dataset``."""
    holds = registered_dataset(client, name)
    if holds is not None and holds != dataset:
        raise ModelDatasetError(
            f"registered model {name!r} holds models of dataset {holds!r}; a model of dataset {dataset!r} may not "
            f"be registered there (nor become its champion): register it under its own dataset's name"
        )


def register_model(
    mlflow: MlflowRun,
    name: str,
    logged_model: str = "model",
    tags: Optional[Mapping[str, Any]] = None,
    *,
    model_uri: Optional[str] = None,
    run_id: Optional[str] = None,
    dataset: str = UNTAGGED_DATASET,
):
    """Register the bound run's logged model ``logged_model`` as a new version of ``name``
    (or the logged model ``model_uri`` of another run ``run_id``: a sweep's best trial).

    Through the binding's own client, not ``mlflow.register_model``: in a sqlite
    store, a version written through the fluent API's store was not yet visible to
    this client's reads ("Model Version ... not found" right after registering).

    A model is registered only under a name that holds its ``dataset``'s models (ModelDatasetError
    otherwise, before any version exists); a new registered model is tagged with its dataset.

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
        refuse_other_dataset(client, name, dataset)
        for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
            if version.source == model_uri or getattr(version, "model_id", None) == model_id:
                return version
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            try:
                client.create_registered_model(name, tags={DATASET_TAG: dataset})
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        return client.create_model_version(
            name,
            source=model_uri,
            run_id=run_id,
            tags={DATASET_TAG: dataset, **{k: str(v) for k, v in (tags or {}).items()}},
            model_id=model_id,
        )
