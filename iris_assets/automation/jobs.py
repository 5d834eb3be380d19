"""The job and the executor every job (and the UI's implicit asset job) runs on."""

import dagster as dg

from iris_assets.tracking.executor import settling

# Dagster's own multi_or_in_process_executor, with in-process as the default: this
# graph takes ~7 s in one process and ~25 s with a process per step. The run config
# still picks either, with the same keys:
#   execution: {config: {multiprocess: {max_concurrent: 4}}}   or   {in_process: {}}
in_process_or_multiprocess_executor = settling(
    dg.multi_or_in_process_executor,
    name="in_process_or_multiprocess",
    description="In-process by default; `multiprocess: {}` runs one process per step.",
    default_config={"in_process": {}},
)

iris_pipeline = dg.define_asset_job(
    "iris_pipeline",
    selection=dg.AssetSelection.groups("iris"),
    description="The whole Iris pipeline: raw data, splits, model, metrics and the ONNX model.",
)
