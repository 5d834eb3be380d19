"""The code location: what `dagster dev`, `-m iris_assets` and workspace.yaml load."""

import dagster as dg

from iris_assets import data, evaluation, packaging, training
from iris_assets.jobs import in_process_or_multiprocess_executor, iris_pipeline
from iris_assets.mlflow_run import MlflowRun

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data, training, evaluation, packaging]),
    jobs=[iris_pipeline],
    resources={"mlflow": MlflowRun()},
    executor=in_process_or_multiprocess_executor,
)
