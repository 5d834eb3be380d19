"""Jobs and the executor every job (and the UI's implicit asset job) runs on."""

import dagster as dg

# Dagster's own multi_or_in_process_executor, with in-process as the default: this
# graph takes ~7 s in one process and ~25 s with a process per step. The run config
# still picks either, with the same keys:
#   execution: {config: {multiprocess: {max_concurrent: 4}}}   or   {in_process: {}}
in_process_or_multiprocess_executor = dg.ExecutorDefinition(
    name="in_process_or_multiprocess",
    config_schema=dg.Field(
        dg.multi_or_in_process_executor.config_schema.config_type,
        default_value={"in_process": {}},
    ),
    executor_creation_fn=dg.multi_or_in_process_executor.executor_creation_fn,
    requirements=dg.multi_or_in_process_executor.get_requirements,
    description="In-process by default; `multiprocess: {}` runs one process per step.",
)

iris_pipeline = dg.define_asset_job(
    "iris_pipeline",
    selection=dg.AssetSelection.groups("iris"),
    description="The whole Iris pipeline: raw data, splits, model, metrics and the ONNX model.",
)
