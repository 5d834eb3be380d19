"""The code location: what `dagster dev`, `-m iris_assets` and workspace.yaml load."""

import dagster as dg

from iris_assets import asset_checks, data, evaluation, packaging, registry, training
from iris_assets.io_manager import RunScopedPickleIOManager
from iris_assets.jobs import in_process_or_multiprocess_executor, iris_pipeline
from iris_assets.mlflow_run import MlflowRun, credentials_from_environment
from iris_assets.schedules import iris_retraining
from iris_assets.sensors import (
    close_mlflow_run_on_cancel,
    close_mlflow_run_on_failure,
    close_orphaned_mlflow_runs,
    new_iris_data,
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data, training, evaluation, packaging, registry]),
    asset_checks=dg.load_asset_checks_from_modules([asset_checks]),
    jobs=[iris_pipeline],
    schedules=[iris_retraining],
    sensors=[new_iris_data, close_mlflow_run_on_failure, close_mlflow_run_on_cancel, close_orphaned_mlflow_runs],
    resources={"mlflow": MlflowRun(**credentials_from_environment()), "io_manager": RunScopedPickleIOManager()},
    executor=in_process_or_multiprocess_executor,
)
